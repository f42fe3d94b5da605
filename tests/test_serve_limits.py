"""The server under hostile input and load, on a real server over loopback: limits, the API key, one server
per data directory, and what job messages tell clients; the worker pool in process, with a request held in
work for as long as the test needs (no race against a slow request)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from clips import pan_frames, write_clip
from servers import free_port, running_server, wait_until

KEY = {"X-API-Key": "s3cret"}
MB = 1024 * 1024


def post(url: str, path: str, file: Path, name: str | None = None, **kwargs) -> httpx.Response:
    with file.open("rb") as f:
        return httpx.post(url + path, files={"file": (name or file.name, f)}, timeout=120, **kwargs)



@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A server with the default settings: its URL and data directory."""
    data = tmp_path_factory.mktemp("plain")
    with running_server(data) as (url, _):
        yield url, data


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A server with an API key and a 1 MB upload limit."""
    with running_server(tmp_path_factory.mktemp("keyed"), "--max-upload-mb", "1",
                        env={"MASKWATCH_API_KEY": "s3cret"}) as (url, _):
        yield url


def test_images_and_video_frames_over_the_pixel_limit_are_refused(plain, tmp_path):
    hdr = tmp_path / "scene.hdr"  # Pillow cannot read its header; OpenCV used to decode it as float, any size
    cv2.imwrite(str(hdr), np.full((48, 64, 3), 0.5, np.float32))
    frame = tmp_path / "frame.png"  # 10500x10000, a few kB: FFmpeg opens it as a one-frame video
    Image.new("1", (10500, 10000)).save(frame)
    url, data = plain
    response = post(url, "/v1/detect", hdr)
    assert response.status_code == 415 and "not a readable image" in response.json()["detail"]
    response = post(url, "/v1/detect", frame)  # a readable image, too big: its size is refused, not its kind
    assert response.status_code == 413 and "10500x10000 pixels, over the limit" in response.json()["detail"]
    response = post(url, "/v1/videos", frame, "movie.mp4")  # a photo, whatever its name: where photos go
    assert response.status_code == 415 and "send photos to POST /v1/detect" in response.json()["detail"]
    Image.new("RGB", (64, 48)).save(tmp_path / "still.gif")  # a GIF of one frame: a picture /v1/detect does not read
    response = post(url, "/v1/videos", tmp_path / "still.gif", "clip.gif")
    assert response.status_code == 415 and response.json()["detail"] == (
        "the upload is a GIF picture of one frame: convert it to JPEG or PNG and send it to POST /v1/detect "
        "(videos here)")
    clip = write_clip([np.full((240, 320, 3), 90, np.uint8)] * 4, tmp_path / "door.avi", fps=4, codec="MJPG")
    with running_server(tmp_path / "small", env={"MASKWATCH_MAX_PIXELS": "50000"}) as (small, _):
        response = post(small, "/v1/videos", clip)
        assert response.status_code == 413 and "320x240 pixels, over the limit" in response.json()["detail"]
        assert not list((tmp_path / "small" / "uploads").iterdir())  # the refused upload is not kept
    assert not list((data / "uploads").iterdir())


def test_the_key_and_the_size_are_checked_before_the_body_is_read(keyed):
    offered = 100 * MB
    head = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n")

    def upload(headers: dict) -> tuple[int, int]:
        """Stream up to 100 MB; the status and how much the server let the client send."""
        sent = [0]

        def body():
            yield head
            while sent[0] < offered:
                sent[0] += MB
                yield b"\0" * MB

        try:
            status = httpx.post(keyed + "/v1/detect", content=body(), timeout=60,
                                headers={"Content-Type": "multipart/form-data; boundary=x", **headers}).status_code
        except httpx.TransportError:  # the server closed the connection without reading on
            status = 0
        return status, sent[0]

    status, sent = upload({})  # no key: turned away before the body
    assert status == 401 and sent < offered / 4
    status, sent = upload({**KEY, "Content-Length": str(offered + len(head))})  # declared too big
    assert status == 413 and sent < offered / 4
    status, sent = upload({"Content-Length": str(offered + len(head))})  # too big and no key: the key comes first
    assert status == 401 and sent < offered / 4
    status, sent = upload(KEY)  # chunked, no length declared: stopped once past the limit
    assert status == 413 and sent < offered / 4
    response = httpx.post(keyed + "/v1/detect", headers=KEY, timeout=60,
                          files={"file": ("big.jpg", b"\xff" * (2 * MB))})
    assert response.status_code == 413 and "limit of 1 MB" in response.json()["detail"]
    # The body may hold the form's headers beyond the limit; the file itself may not.
    response = httpx.post(keyed + "/v1/detect", headers=KEY, timeout=60,
                          files={"file": ("big.jpg", b"\xff" * (MB + 10_000))})
    assert response.status_code == 413 and "limit of 1 MB" in response.json()["detail"]


def test_the_key_is_taken_only_from_the_header_and_the_docs_ask_for_it(keyed, photo):
    assert post(keyed, "/v1/detect?api_key=s3cret", photo).status_code == 401
    assert post(keyed, "/v1/detect", photo, headers=KEY).status_code == 200
    # The API's description is open (a browser cannot send a header to open /docs); other files beside it are not.
    for path in ("/docs", "/docs-assets/swagger-ui.css", "/docs-assets/swagger-ui-bundle.js", "/openapi.json"):
        assert httpx.get(keyed + path).status_code == 200, path
    assert httpx.get(keyed + "/docs-assets/LICENSE").status_code == 401
    assert httpx.get(keyed + "/").status_code == 200  # the page: static HTML that asks for the key
    assert httpx.get(keyed + "/healthz").status_code == 200
    assert httpx.get(keyed + "/favicon.ico").status_code == 204  # (browsers ask on every page)
    spec = httpx.get(keyed + "/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    security = {(method, path): operation["security"] for path, operations in spec["paths"].items()
                for method, operation in operations.items()}
    assert security.pop(("get", "/healthz")) == security.pop(("head", "/healthz")) == []
    assert len(security) >= 12 and all(value == [{"ApiKey": []}] for value in security.values()), security


class GatedDetector:
    """The shipped detector, held from its `hold_at`-th call until the test lets it go: a request or a video job
    in work for as long as the test needs."""

    def __init__(self, detector, hold_at: int = 1):
        self.detector, self.classes, self.hold_at, self.calls = detector, detector.classes, hold_at, 0
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, image, **options):
        self.calls += 1
        if self.calls >= self.hold_at:
            self.reached.set()
            assert self.go.wait(300), "the test never let the detector go"
        return self.detector(image, **options)


def test_health_answers_while_the_worker_is_busy_and_a_full_pool_answers_503(tmp_path, photo, detector):
    from fastapi.testclient import TestClient

    from maskwatch.serve.app import Settings, create_app

    gated = GatedDetector(detector)
    with TestClient(create_app(Settings(data_dir=tmp_path, workers=1, max_queue=0), gated)) as client:

        def detect():
            return client.post("/v1/detect", files={"file": (photo.name, photo.read_bytes())})

        held: dict = {}
        thread = threading.Thread(target=lambda: held.update(response=detect()))
        thread.start()
        try:
            assert gated.reached.wait(120), "the first request never reached the detector"
            in_work = client.get("/healthz").json()  # the event loop answers while the one worker is held
            refused = detect()  # the one worker is busy and no queue is allowed
        finally:
            gated.go.set()
            thread.join(120)
        assert in_work["busy"] == 1
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["detail"]
        assert held["response"].status_code == 200
        assert client.get("/healthz").json()["busy"] == 0
        assert detect().status_code == 200


def test_a_second_server_on_the_same_data_directory_refuses_to_start(tmp_path):
    with running_server(tmp_path) as (url, process):
        second = subprocess.run([sys.executable, "-m", "maskwatch.cli", "serve", "--port", str(free_port()),
                                 "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert f"pid {process.pid}" in second.stderr and "--data-dir" in second.stderr
        assert "Traceback" not in second.stderr
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_a_job_is_claimed_once(tmp_path):
    from maskwatch.serve.jobs import JobQueue

    jobs = JobQueue(tmp_path / "jobs", detector=None)  # no job is queued, so no detector is needed
    try:
        jobs.db.execute("INSERT INTO jobs (id, status, created_at, updated_at) VALUES ('j', 'queued', 0, 0)")
        assert jobs.claim("j") is True
        assert jobs.claim("j") is False
        assert jobs.get("j").status == "running"
    finally:
        jobs.close()


def test_job_messages_do_not_show_server_paths(plain, tmp_path, photo):
    clip = write_clip(pan_frames(photo, size=(320, 240), frames=16, zoom=1.5), tmp_path / "door.avi", fps=8,
                      codec="MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # ends early: a message about the input
    url, data = plain
    job = post(url, "/v1/videos", cut).json()
    state = wait_until(lambda: (answer := httpx.get(f"{url}/v1/videos/{job['id']}")).json()["status"] in (
        "finished", "failed") and answer, "the job ended", every=0.3)
    assert state.json()["message"].startswith("the upload: the video ended after")
    assert state.json()["status"] == "finished" and state.json()["complete"] is False  # (not the whole video)
    for text in (state.text, httpx.get(url + job["summary_url"]).text):
        assert str(data) not in text and str(data.resolve()) not in text


def test_a_video_upload_that_fails_leaves_no_file_behind(tmp_path, photo, detector, monkeypatch):
    import cv2

    from fastapi.testclient import TestClient

    from maskwatch.serve import app as app_module
    from maskwatch.serve.jobs import JobQueue

    clip = write_clip(pan_frames(photo, size=(320, 240), frames=4, zoom=1.5), tmp_path / "door.avi", fps=8,
                      codec="MJPG")
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "tmpleft").write_bytes(b"left by a server that was killed mid-upload")
    gated = GatedDetector(detector)
    settings = app_module.Settings(data_dir=tmp_path / "data", workers=1, max_queue=0)
    with TestClient(app_module.create_app(settings, gated), raise_server_exceptions=False) as client:
        assert list(uploads.iterdir()) == []  # cleaned at start-up

        def submit():
            return client.post("/v1/videos", files={"file": ("door.avi", clip.read_bytes())})

        held = threading.Thread(target=lambda: client.post("/v1/detect",
                                                           files={"file": (photo.name, photo.read_bytes())}))
        held.start()
        try:
            assert gated.reached.wait(120)
            busy = submit()  # the one worker is busy: 503
        finally:
            gated.go.set()
            held.join(120)
        assert busy.status_code == 503 and list(uploads.iterdir()) == []

        def broken_decoder(path):
            raise cv2.error("OpenCV(4.10.0) error: (-215:Assertion failed) in function 'open'")

        monkeypatch.setattr(app_module, "FileSource", broken_decoder)
        assert submit().status_code == 500 and list(uploads.iterdir()) == []
        monkeypatch.undo()

        def no_space(self, data_path, filename):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(JobQueue, "create", no_space)
        assert submit().status_code == 500 and list(uploads.iterdir()) == []
        monkeypatch.undo()
        # Video jobs waiting to run each keep their upload on disk: past the cap, 503 before anything is read.
        monkeypatch.setattr(JobQueue, "queued", lambda self: app_module.SERVE_MAX_QUEUED_VIDEOS)
        full = submit()
        assert full.status_code == 503 and full.headers["Retry-After"] == "60" and list(uploads.iterdir()) == []
        assert "video jobs are already waiting" in full.json()["detail"]


def test_a_server_shutting_down_stops_the_job_before_closing_its_database(tmp_path, photo, detector):
    import shutil

    from maskwatch.serve.jobs import JobQueue

    clip = write_clip(pan_frames(photo, size=(320, 240), frames=12, zoom=1.5), tmp_path / "door.avi", fps=8,
                      codec="MJPG")
    gated = GatedDetector(detector, hold_at=3)
    jobs = JobQueue(tmp_path / "jobs", gated)
    ids = [jobs.create(Path(shutil.copy(clip, tmp_path / f"upload{n}")), "door.avi") for n in range(2)]
    assert gated.reached.wait(120), "the first job never reached its third frame"
    closing = threading.Thread(target=jobs.close)
    closing.start()  # while the job is in the middle of a frame
    assert jobs._running.stopping.wait(60), "close() did not ask the running job to stop"
    gated.go.set()
    closing.join(300)
    assert not closing.is_alive() and not jobs._worker.is_alive()  # close() waited for the job to stop
    # The job stopped at its next frame and was queued again, the second never started, and the database was
    # closed only after that, so what the next start reads is right.
    with sqlite3.connect(tmp_path / "jobs" / "jobs.sqlite") as db:
        states = [db.execute("SELECT status, message FROM jobs WHERE id = ?", (job_id,)).fetchone() for job_id in ids]
    assert states[0][0] == "queued" and "runs again when the server starts" in states[0][1]
    assert states[1] == ("queued", None)
    assert gated.calls == 3  # the job stopped after the frame in work, not at the end of the video
    # The next start runs it again from its first frame, without the old message and progress.
    again = GatedDetector(detector, hold_at=2)
    jobs = JobQueue(tmp_path / "jobs", again)
    try:
        assert again.reached.wait(120), "the job did not run again"
        running = jobs.get(ids[0])
        assert (running.status, running.message) == ("running", None) and running.frames_done < 3
    finally:
        again.go.set()
        jobs.close()


def test_deleting_a_running_job_stops_it_and_the_next_one_runs(tmp_path, photo, detector):
    """A video that takes hours (huge frames) must not hold the only video worker: DELETE stops it at its next
    frame and removes it; the job queued behind it runs."""
    import shutil

    from maskwatch.serve.jobs import JobQueue

    clip = write_clip(pan_frames(photo, size=(320, 240), frames=12, zoom=1.5), tmp_path / "door.avi", fps=8,
                      codec="MJPG")
    gated = GatedDetector(detector, hold_at=3)
    jobs = JobQueue(tmp_path / "jobs", gated)
    try:
        ids = [jobs.create(Path(shutil.copy(clip, tmp_path / f"upload{n}")), "door.avi") for n in range(2)]
        assert gated.reached.wait(120), "the first job never reached its third frame"
        assert jobs.queued() == 1
        deleting = threading.Thread(target=lambda: deleted.append(jobs.delete(ids[0])))
        deleted: list[bool] = []
        deleting.start()  # while the job is in the middle of a frame
        wait_until(lambda: jobs._running is not None and jobs._running.stopping.is_set(), "the stop", 60, 0.05)
        gated.go.set()
        deleting.join(120)
        assert deleted == [True] and jobs.get(ids[0]) is None and not jobs.job_dir(ids[0]).exists()
        wait_until(lambda: jobs.get(ids[1]).status == "finished", "the second job's end", 300)
        assert gated.calls < 12 + 12  # the first stopped after the frame in work, not at its end
    finally:
        gated.go.set()
        jobs.close()


def test_old_video_results_are_deleted_after_keep_results_days(tmp_path, photo, detector):
    """Result videos show faces: with keep_days, finished and failed jobs go that long after they ended; running
    and queued ones never; without it, nothing goes."""
    import shutil

    from maskwatch.serve.jobs import JobQueue

    clip = write_clip(pan_frames(photo, size=(320, 240), frames=4, zoom=1.5), tmp_path / "door.avi", fps=4,
                      codec="MJPG")
    jobs = JobQueue(tmp_path / "jobs", detector)
    ids = [jobs.create(Path(shutil.copy(clip, tmp_path / f"upload{n}")), "door.avi") for n in range(3)]
    deadline = time.time() + 120
    while any(jobs.get(i).status != "finished" for i in ids) and time.time() < deadline:
        time.sleep(0.2)
    jobs.close()
    with sqlite3.connect(tmp_path / "jobs" / "jobs.sqlite") as db:  # one ended 3 days ago, one 1 day ago, one now
        for job_id, days in zip(ids, (3, 1, 0)):
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time() - days * 86400, job_id))
        db.execute("UPDATE jobs SET status = 'queued' WHERE id = ?", (ids[1],))  # (as if waiting to run)
    kept = JobQueue(tmp_path / "jobs", detector)
    assert kept.expire() == [] and all(kept.get(i) for i in ids)
    kept.close()
    with sqlite3.connect(tmp_path / "jobs" / "jobs.sqlite") as db:
        db.execute("UPDATE jobs SET status = 'queued' WHERE id = ?", (ids[1],))  # (the close may have run it)
        db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time() - 86400, ids[1]))
    expiring = JobQueue(tmp_path / "jobs", detector, keep_days=0.5)  # expired at the start, before any job runs
    try:
        assert expiring.get(ids[0]) is None and not (tmp_path / "jobs" / ids[0]).exists()
        assert expiring.get(ids[1]) is not None and expiring.get(ids[2]).status == "finished"
    finally:
        expiring.close()
    from maskwatch.errors import MaskwatchError

    with pytest.raises(MaskwatchError, match="--keep-results-days 0: give a number of days above 0"):
        JobQueue.checked_keep_days(0)


def test_a_job_finished_by_an_earlier_version_is_answered_as_stored(tmp_path, detector):
    """A summary stored before a key existed (or with a key this version does not know) is answered as stored,
    not refused by the answer's schema."""
    import json

    from fastapi.testclient import TestClient

    from maskwatch.serve.app import Settings, create_app
    from maskwatch.serve.jobs import JobQueue

    JobQueue(tmp_path / "data" / "jobs", detector).close()
    old = {"frames": 16, "people": {"with_mask": 1}, "seconds": 2.0, "status": "finished", "from_the_future": [1]}
    with sqlite3.connect(tmp_path / "data" / "jobs" / "jobs.sqlite") as db:
        db.execute("INSERT INTO jobs (id, status, created_at, updated_at, frames_done, frames_total, summary, "
                   "filename) VALUES (?, 'finished', 0, 0, 16, 16, ?, 'door.mp4')", ("A" * 24, json.dumps(old)))
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", api_key="k"), detector=detector),
                    headers={"X-API-Key": "k"}) as client:
        assert client.get("/v1/videos/" + "A" * 24).json()["summary"] == old
        assert client.get(f"/v1/videos/{'A' * 24}/summary").json() == old
        # A keyed server lists every job it keeps (a client that lost an id can find it and delete it).
        assert [(job["id"], job["summary"]) for job in client.get("/v1/videos").json()["jobs"]] == [("A" * 24, old)]
        assert client.delete("/v1/videos/" + "A" * 24).status_code == 204
        assert client.get("/v1/videos").json() == {"jobs": []}


def test_a_key_that_would_leave_the_server_open_or_could_never_be_sent_is_refused_at_the_start():
    import os

    from maskwatch.errors import MaskwatchError
    from maskwatch.serve.app import Settings

    for key, said in (("", "is empty"), ("  ", "is empty"), (" s3cret ", "starts or ends with spaces"),
                      ("clé", "other than printable ASCII"), ("a\tb", "other than printable ASCII")):
        with pytest.raises(MaskwatchError, match=said):
            Settings(api_key=key)
    for size in (0, -1, float("nan"), float("inf")):
        with pytest.raises(MaskwatchError, match="--max-upload-mb is"):
            Settings(max_upload_mb=size)
    assert Settings(api_key="s3cret-K3y!").api_key == "s3cret-K3y!"
    # MASKWATCH_API_KEY set to nothing (KEY=$UNSET in a unit file): the CLI refuses, it does not serve openly.
    result = subprocess.run([sys.executable, "-m", "maskwatch.cli", "serve", "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "MASKWATCH_API_KEY": ""})
    assert result.returncode == 2 and "MASKWATCH_API_KEY) is empty" in result.stderr


def test_a_loopback_server_answers_only_requests_that_name_a_loopback_host(tmp_path):
    """DNS rebinding: a page of evil.example, its name re-pointed at 127.0.0.1, must not read the open server."""
    with running_server(tmp_path / "data", "--allowed-host", "masks.example.org") as (url, _):
        port = url.rsplit(":", 1)[1]
        for host, status in ((f"127.0.0.1:{port}", 200), (f"LOCALHOST:{port}", 200), ("[::1]", 200),
                             ("[::ffff:127.0.0.1]", 200), ("masks.example.org", 200),  # (a proxy passing it on)
                             (f"evil.example:{port}", 421), (f"127.0.0.1.evil.example:{port}", 421),
                             ("127.evil.example", 421), (f"192.168.1.5:{port}", 421)):
            response = httpx.get(f"{url}/healthz", headers={"Host": host})
            assert response.status_code == status, host
        assert "listens on loopback only" in httpx.get(f"{url}/v1/cameras", headers={"Host": "evil.example"}).text


def test_a_request_whose_client_left_while_it_waited_is_not_worked_on():
    import anyio
    from fastapi import HTTPException

    from maskwatch.serve.guards import WorkerPool

    class Client:
        def __init__(self, gone: bool):
            self.gone = gone

        async def is_disconnected(self) -> bool:
            return self.gone

    calls: list[str] = []
    pool = WorkerPool(workers=1, max_queue=4)

    async def both():
        assert await pool.run(calls.append, "here", request=Client(False)) is None
        with pytest.raises(HTTPException) as left:
            await pool.run(calls.append, "gone", request=Client(True))
        assert left.value.status_code == 499 and pool.busy == 0

    anyio.run(both)
    assert calls == ["here"]


def test_an_address_the_server_cannot_listen_on_is_one_error_line_before_it_starts():
    """A port out of range ended in bind()'s traceback and one in use in uvicorn's exit 3, both after the
    'maskwatch on http://...' line had said the server was there."""
    import socket

    from maskwatch.errors import MaskwatchError
    from maskwatch.serve.app import check_can_listen

    with pytest.raises(MaskwatchError, match="--port 99999: a TCP port is a number from 1 to 65535"):
        check_can_listen("127.0.0.1", 99999)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MaskwatchError, match=f"cannot listen on 127.0.0.1:{port}: in use"):
            check_can_listen("127.0.0.1", port)
    check_can_listen("127.0.0.1", port)  # free again


def test_the_pages_answered_polls_stay_out_of_the_access_log():
    """The cameras page polls the list and each camera's snapshot every second: answered, they are left out of
    uvicorn's access log; uploads, other routes and errors are kept."""
    import logging

    from maskwatch.serve.app import QuietPagePolls

    def kept(method: str, path: str, status: int) -> bool:
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                   ("127.0.0.1:5000", method, path, "1.1", status), None)
        return QuietPagePolls().filter(record)

    assert not kept("GET", "/v1/cameras", 200) and not kept("GET", "/v1/cameras/door/snapshot.jpg", 200)
    assert not kept("GET", "/v1/cameras/hall%20b/snapshot.jpg?t=1", 304)
    assert kept("GET", "/v1/cameras", 401) and kept("GET", "/v1/cameras/door/snapshot.jpg", 404)
    assert kept("POST", "/v1/detect", 200) and kept("GET", "/v1/cameras/door/report", 200)
    assert kept("GET", "/v1/events", 200)
