"""Live cameras in the server, for real: `maskwatch serve` with a real RTSP camera on loopback (gst-rtsp-server
playing a pan across a crowd photo), a video file played on repeat, and a camera that is not there. The API's
counts grow, frames and events come out in the documented formats, the database answers the report, old data
is deleted, and the RTSP camera killed and started again turns to reconnecting and back.

The tests of one server run in file order; the last one stops the RTSP camera."""

from __future__ import annotations

import json
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

from clips import face_crop, write_clip
from conftest import seed_old_and_recent_events
from maskwatch.errors import MaskwatchError
from maskwatch.video.events import Event
from maskwatch.video.report import read_report
from maskwatch.video.store import EventStore, read_events
from servers import free_port, running_server, wait_until

KEY = "test-key-123"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def server(rtsp, crossing_clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    db = folder / "events.sqlite"
    old, recent = seed_old_and_recent_events(db)
    ghost = f"rtsp://127.0.0.1:{free_port()}/nothing-here"
    with running_server(folder / "data", "--camera", f"door={rtsp.url}", "--camera", f"hall={crossing_clip}",
                        "--camera", f"ghost={ghost}", "--scale", "1", "--db", str(db), "--retention-days", "30",
                        "--api-key", KEY) as (url, process):
        yield {"url": url, "db": db, "old": old, "recent": recent, "process": process}


def cameras(url: str) -> dict[str, dict]:
    body = httpx.get(f"{url}/v1/cameras", headers=AUTH, timeout=30).json()
    return {c["name"]: c for c in body["cameras"]}


def total(people: dict[str, int]) -> int:
    return sum(people.values())


def test_every_camera_route_needs_the_key_and_is_in_the_openapi_schema(server):
    url = server["url"]
    for path in ("/v1/cameras", "/v1/cameras/door/snapshot.jpg", "/v1/cameras/door/stream", "/v1/events",
                 "/v1/events/stream", "/v1/cameras/door/report"):
        response = httpx.get(url + path, timeout=30)
        assert response.status_code == 401, path
        assert "API key" in response.json()["detail"]
    assert httpx.get(f"{url}/v1/cameras", headers={"X-API-Key": "wrong"}, timeout=30).status_code == 401
    # The page itself is open: it holds no data and asks for the key.
    assert httpx.get(f"{url}/cameras", timeout=30).status_code == 200
    paths = set(httpx.get(f"{url}/openapi.json", headers=AUTH, timeout=30).json()["paths"])
    assert {"/v1/cameras", "/v1/cameras/{name}/snapshot.jpg", "/v1/cameras/{name}/stream", "/v1/events",
            "/v1/events/stream", "/v1/cameras/{name}/report"} <= paths


def test_live_counts_grow_and_a_missing_camera_fails_alone(server):
    url = server["url"]
    first = wait_until(lambda: (lambda c: c if c["door"]["status"] == c["hall"]["status"] == "live" else None)(
        cameras(url)), "both cameras live", timeout=180)
    assert first["door"]["size"] == [640, 480] and first["hall"]["size"] == [480, 320]
    # The file plays on repeat: every pass brings its two people again, so the count keeps growing.
    grown = wait_until(lambda: (lambda c: c if c["hall"]["frames"] > first["hall"]["frames"]
                                and c["door"]["frames"] > first["door"]["frames"]
                                and total(c["hall"]["people"]) > max(2, total(first["hall"]["people"]))
                                and c["hall"]["people"]["without_mask"] >= 1
                                and total(c["door"]["people"]) >= 1 else None)(cameras(url)),
                       "the counts of both cameras grow, the unmasked person among them", timeout=240)
    hall = grown["hall"]
    assert 0 < hall["compliance"] < 1
    assert hall["detections_per_s"] > 0 and hall["frames_per_s"] > 0 and grown["door"]["detections_per_s"] > 0
    assert hall["last_alert"]["type"] == "person.unmasked" and hall["last_alert"]["camera"] == "hall"
    # The camera nobody serves is retried, while the others run and the server answers.
    ghost = grown["ghost"]
    assert ghost["status"] == "reconnecting" and "cannot open" in ghost["message"] and ghost["frames"] == 0
    for route in ("snapshot.jpg", "stream"):  # no frame: 503 at once, not a stream that never sends
        answer = httpx.get(f"{url}/v1/cameras/ghost/{route}", headers=AUTH, timeout=30)
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert server["process"].poll() is None


def test_snapshot_and_mjpeg_stream_are_the_annotated_frames(server):
    url = server["url"]
    # Before its first frame a camera answers JSON, so wait for the door to have shown one.
    wait_until(lambda: cameras(url)["door"]["frames"] > 0 or None, "the door's first frame", timeout=180)
    snapshot = httpx.get(f"{url}/v1/cameras/door/snapshot.jpg", headers=AUTH, timeout=30)
    assert snapshot.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(snapshot.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 640, 3)
    band = image[2:18, :200].max(axis=2)
    assert (band < 40).mean() > 0.5  # the counts band drawn at the top left: white text on black
    assert httpx.get(f"{url}/v1/cameras/nope/snapshot.jpg", headers=AUTH, timeout=30).status_code == 404
    parts = []
    with httpx.stream("GET", f"{url}/v1/cameras/door/stream", headers=AUTH, timeout=60) as response:
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        boundary = response.headers["content-type"].split("boundary=")[1].encode()
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                head = buffer[:end].decode()
                length = int(next(line.split(":")[1] for line in head.split("\r\n")
                                  if line.lower().startswith("content-length")))
                if len(buffer) < end + 4 + length + 2:
                    break
                assert head.startswith(f"--{boundary.decode()}")
                frame_time = float(next(line.split(":")[1] for line in head.split("\r\n")
                                        if line.lower().startswith("x-frame-time")))
                parts.append((frame_time, buffer[end + 4:end + 4 + length]))
                buffer = buffer[end + 4 + length + 2:]
            if len(parts) >= 3:
                break
    times = [t for t, _ in parts]
    assert times == sorted(times) and times[-1] <= time.time() + 1
    frames = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for _, jpeg in parts]
    assert all(f.shape == (480, 640, 3) for f in frames)
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 1  # the camera pans: the picture moves


def event_keys(type_: str) -> set[str]:
    return set(Event(type_, "c", "r", 0.0).as_dict())


def test_events_are_paged_from_the_database_and_streamed_as_the_webhook_sends_them(server):
    url, db = server["url"], server["db"]
    wait_until(lambda: len(read_events(db, camera="hall", limit=100)) >= 16, "16 events of the hall camera")
    stored = read_events(db, camera="hall", limit=1000)
    # Paging: `next` until the end, no event twice, the database's order.
    seen, page = [], f"{url}/v1/events?camera=hall&limit=5"
    for _ in range(3):
        body = httpx.get(page, headers=AUTH, timeout=30).json()
        seen += body["events"]
        page = url + body["next"]
    assert seen == stored[:15]  # each exactly as stored (the answer's schema adds or drops no key)
    newest = httpx.get(f"{url}/v1/events?camera=hall&order=newest&limit=3", headers=AUTH, timeout=30).json()
    assert [e["time"] for e in newest["events"]] == sorted((e["time"] for e in newest["events"]), reverse=True)
    alerts = httpx.get(f"{url}/v1/events", params={"type": "person.unmasked", "camera": "hall"}, headers=AUTH,
                       timeout=30).json()["events"]
    assert alerts and all(e["type"] == "person.unmasked" and e["class"] == "without_mask" for e in alerts)
    since = stored[5]["time"]
    after = httpx.get(f"{url}/v1/events", params={"camera": "hall", "since": since}, headers=AUTH,
                      timeout=30).json()["events"]
    earlier = {e["id"] for e in stored if e["time"] < since}
    assert earlier and all(e["time"] >= since and e["id"] not in earlier for e in after)
    assert stored[5]["id"] in {e["id"] for e in after}
    assert httpx.get(f"{url}/v1/events?type=person.jumped", headers=AUTH, timeout=30).status_code == 422
    assert httpx.get(f"{url}/v1/events/stream?type=person.jumped", headers=AUTH, timeout=30).status_code == 422
    assert httpx.get(f"{url}/v1/events?since=yesterday", headers=AUTH, timeout=30).status_code == 422
    for query in ("since=nan", "since=inf", "after=garbage"):  # (once answered with an empty page)
        assert httpx.get(f"{url}/v1/events?{query}", headers=AUTH, timeout=30).status_code == 422, query
    for query in ("since=nan", "bucket_s=inf", "bucket_s=1e-300"):
        assert httpx.get(f"{url}/v1/cameras/hall/report?{query}", headers=AUTH, timeout=30).status_code == 422, query
    # A camera filter with a typo is refused, not answered with nothing; a camera gone from the configuration
    # whose events are stored (here: a `watch --db` run's) is still listed, but not streamed.
    for path in ("/v1/events", "/v1/events/stream"):
        typo = httpx.get(f"{url}{path}", params={"camera": "hal"}, headers=AUTH, timeout=30)
        assert typo.status_code == 422 and "no camera 'hal' here" in typo.json()["detail"]
        assert "(cameras: door, hall, ghost)" in typo.json()["detail"]
    store = EventStore(db)
    store.save_event(None, Event("counts", "old door", "r", 0.0))
    store.close()
    gone = httpx.get(f"{url}/v1/events", params={"camera": "old door"}, headers=AUTH, timeout=30).json()["events"]
    assert [(e["camera"], e["type"]) for e in gone] == [("old door", "counts")]
    assert httpx.get(f"{url}/v1/events/stream", params={"camera": "old door"}, headers=AUTH,
                     timeout=30).status_code == 422

    # The live stream: Server-Sent Events whose data is the event's JSON, stored alike in the database.
    def read_stream(headers: dict, wanted: int) -> list[tuple[str, dict]]:
        got = []
        with httpx.stream("GET", f"{url}/v1/events/stream", params={"camera": "hall"}, headers=headers,
                          timeout=120) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event_id = None
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:].strip())
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line == "" and event_id:
                    got.append((event_id, data))
                    event_id = None
                    if len(got) >= wanted:
                        return got
        return got

    live = read_stream(AUTH, 3)
    for event_id, event in live:
        assert event["id"] == event_id and event["camera"] == "hall"
        keys = event_keys(event["type"])
        assert keys <= set(event) <= keys | {"snapshot"}
    # (the database is written on its own thread: an event streamed live is stored a moment later)
    wait_until(lambda: {i for i, _ in live} <= {e["id"] for e in read_events(db, camera="hall", limit=10000)},
               "the streamed events in the database")
    stored_by_id = {e["id"]: e for e in read_events(db, camera="hall", limit=10000)}
    assert all(stored_by_id[event_id] == event for event_id, event in live)
    # A client that comes back with Last-Event-ID first gets what it missed, from the database.
    resumed = read_stream({**AUTH, "Last-Event-ID": stored[0]["id"]}, 2)
    assert [e for _, e in resumed] == stored[1:3]
    # An id this server does not hold (another server's, gone with the retention) is said, then the stream goes on.
    with httpx.stream("GET", f"{url}/v1/events/stream", params={"camera": "hall"},
                      headers={**AUTH, "Last-Event-ID": "deadbeef"}, timeout=120) as response:
        first = next(response.iter_lines())
    assert first == ": Last-Event-ID 'deadbeef' is not stored here; nothing replayed, live from now"


def test_report_gives_the_windows_and_counts_of_maskwatch_report(server):
    url, db = server["url"], server["db"]
    since = time.time() - 3600
    wait_until(lambda: read_report(db, camera="hall", since=since).windows, "a counting window of the hall camera",
               timeout=120)
    before = read_report(db, camera="hall", since=since)
    body = httpx.get(f"{url}/v1/cameras/hall/report", params={"since": since, "bucket_s": 60}, headers=AUTH,
                     timeout=30).json()
    after = read_report(db, camera="hall", since=since)
    assert total(before.people) >= 1 and set(body["people"]) <= {"with_mask", "without_mask", "mask_weared_incorrect"}
    # The database's counts, read just before and just after (the server goes on counting meanwhile).
    assert total(before.people) <= total(body["people"]) <= total(after.people)
    for window in body["windows"]:
        assert window["start"] % 60 == 0 and window["start"] >= since - 60
        assert window["compliance"] is None or 0 <= window["compliance"] <= 1
    assert body["window_s"] == 10.0
    assert httpx.get(f"{url}/v1/cameras/nope/report", headers=AUTH, timeout=30).status_code == 404


def test_events_older_than_the_retention_are_deleted(server):
    ids = {e["id"] for e in httpx.get(f"{server['url']}/v1/events", params={"camera": "door", "limit": 1000},
                                      headers=AUTH, timeout=30).json()["events"]}
    assert server["recent"] in ids and server["old"] not in ids
    with sqlite3.connect(server["db"]) as db:
        old_windows = db.execute("SELECT COUNT(*) FROM windows w JOIN runs r ON r.id = w.run_id "
                                 "WHERE r.run = 'oldrun'").fetchone()[0]
    assert old_windows == 0


def test_an_rtsp_camera_that_drops_shows_reconnecting_and_comes_back(server, rtsp):
    url = server["url"]
    wait_until(lambda: cameras(url)["door"]["status"] == "live", "the door camera live")
    rtsp.kill()
    dropped = wait_until(lambda: (lambda c: c if c["door"]["status"] == "reconnecting" else None)(cameras(url)),
                         "the door camera reconnecting", timeout=60)
    assert dropped["hall"]["status"] == "live"  # the other camera goes on
    rtsp.start()
    back = wait_until(lambda: (lambda c: c if c["door"]["status"] == "live" else None)(cameras(url)),
                      "the door camera live again", timeout=180)
    assert back["door"]["run"] == dropped["door"]["run"]  # the same run goes on: the source reconnected
    frames = back["door"]["frames"]
    wait_until(lambda: cameras(url)["door"]["frames"] > frames + 3, "new frames from the door camera")
    assert cameras(url)["door"]["reconnects"] >= 1


# -- the parts, without a server --

def test_the_fair_gate_gives_the_detector_to_whoever_waited_first():
    from maskwatch.serve.cameras import FairGate

    gate, order, done = FairGate(), [], threading.Event()

    def camera(name: str) -> None:
        while not done.is_set():
            with gate:
                order.append(name)
                if len(order) >= 40:
                    done.set()
                # Hold the detector until the other camera queues behind: a plain lock would now let this
                # thread take it again at once (and can: it never has to wait), the gate must not.
                deadline = time.monotonic() + 5
                while not done.is_set() and gate.waiting < 1 and time.monotonic() < deadline:
                    time.sleep(0.001)

    threads = [threading.Thread(target=camera, args=(name,)) for name in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    turns = order[2:40]
    assert all(x != y for x, y in zip(turns, turns[1:])), order


def test_a_camera_of_the_server_runs_the_video_path_of_watch_through_the_gate(data_dir):
    """Each camera's detector is the shared one behind the fair gate: the pipeline must still see its scale
    policy and head, to choose the scale from the previous faces and reuse settled faces' classes, with every
    call to the networks taking its turn."""
    from maskwatch.data.images import read_image
    from maskwatch.detector import Detector
    from maskwatch.serve.cameras import FairGate, TakingTurns
    from maskwatch.video.frame_detector import VideoDetector

    class CountingGate(FairGate):
        turns = 0

        def __enter__(self):
            CountingGate.turns += 1
            return super().__enter__()

    shipped = Detector.load(threads=2)  # --scale auto, as cameras run
    gated = TakingTurns(shipped, CountingGate())
    direct, through_gate = VideoDetector(shipped, 0.1, 0.2), VideoDetector(gated, 0.1, 0.2)
    assert through_gate.chooser is not None and through_gate.cache is not None
    image = read_image(data_dir / "images" / "maksssksksss0.jpg")
    for time_s in (0.0, 0.5):  # the second look reuses the first's settled classes
        a, b = direct(image, time_s), through_gate(image, time_s)
        assert np.allclose(a.xyxy, b.xyxy) and np.allclose(a.confidence, b.confidence)
    assert CountingGate.turns >= 2 and through_gate.scales == direct.scales
    with pytest.raises(AttributeError):
        gated.session  # nothing else of the detector is reachable around the gate


def test_a_file_as_a_camera_plays_on_repeat_until_stopped(crossing_clip):
    from maskwatch.video.sources import LoopingSource, open_source

    source = open_source(str(crossing_clip), loop=True)
    assert isinstance(source, LoopingSource) and source.live and source.size == (480, 320)
    frames = []
    stopper = None
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 75 and stopper is None:  # 70 frames in the clip: this is the second pass
            stopper = threading.Thread(target=source.stop)
            stopper.start()
        assert len(frames) < 200, "stop() did not end the frames"
    source.close()
    assert source.loops >= 1
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b.time_s > a.time_s for a, b in zip(frames, frames[1:]))
    assert all(f.received_at is not None for f in frames)


def test_serve_options_that_cannot_work_are_refused_with_the_fix(tmp_path, crossing_clip):
    from maskwatch.serve.cameras import setup_from_options

    def refused(*cameras: str, config: Path | None = None, **options) -> str:
        with pytest.raises(MaskwatchError) as info:
            setup_from_options(list(cameras), config, options.pop("db", None), options.pop("retention", None),
                               **options)
        return str(info.value)

    assert "NAME=SOURCE" in refused("door")
    assert "no such video file" in refused(f"door={tmp_path / 'missing.mp4'}")
    assert "camera name 'front door'" in refused("front door=0")
    assert "already a camera named 'door'" in refused("door=0", "door=1")
    assert "every (--every) is 0; expected a whole number, 1 or more" in refused("door=0", every=0)
    assert "--retention-days" in refused("door=0", retention=0)
    config = tmp_path / "cameras.yaml"
    config.write_text(f"cameras:\n  a: {{source: '{crossing_clip}', db: {tmp_path}/a.sqlite}}\n"
                      f"  b: {{source: '{crossing_clip}', db: {tmp_path}/b.sqlite}}\n")
    assert "give --db" in refused(config=config)
    setup = setup_from_options(["door=0"], config, tmp_path / "one.sqlite", 7, blur_faces=True)
    assert [c.name for c in setup.cameras] == ["a", "b", "door"]
    assert all(c.db == tmp_path / "one.sqlite" and c.blur_faces and c.out is None for c in setup.cameras)
    # From the command line: one clear line, no traceback.
    result = subprocess.run([sys.executable, "-m", "maskwatch.cli", "serve", "--camera", "door"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "NAME=SOURCE" in result.stderr and "Traceback" not in result.stderr


def test_blur_faces_blurs_every_face_in_the_cameras_pictures(data_dir, tmp_path, detector):
    from maskwatch.serve.cameras import CameraRegistry, CameraSetup
    from maskwatch.video.config import CameraConfig

    face = face_crop(data_dir / "images" / "maksssksksss343.jpg", (85, 131, 232, 284), size=160)
    still = np.full((320, 480, 3), (150, 160, 165), np.uint8)
    still[80:240, 160:320] = face
    clip = write_clip([still] * 20, tmp_path / "still.avi", fps=10, codec="MJPG")
    faces = detector(still, min_score=0.4)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.xyxy[0].astype(int)
    dx, dy = (x2 - x1) // 5, (y2 - y1) // 5
    inner = (slice(y1 + dy, y2 - dy), slice(x1 + dx, x2 - dx))  # inside the drawn box and its label

    setup = CameraSetup([CameraConfig("sharp", str(clip), db=tmp_path / "ev.sqlite", scale="1"),
                         CameraConfig("blurred", str(clip), db=tmp_path / "ev.sqlite", scale="1", blur_faces=True)],
                        tmp_path / "ev.sqlite", threads=2)
    registry = CameraRegistry(setup)
    registry.start()
    try:
        for worker in registry.workers.values():
            wait_until(lambda: worker.view.stats.get("detected_frames", 0) >= 3 and worker.board.latest,
                       f"frames of the {worker.name} camera")
        pictures = {name: cv2.imdecode(np.frombuffer(worker.board.latest.jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
                    for name, worker in registry.workers.items()}
    finally:
        registry.stop()
    sharpness = {name: cv2.Laplacian(picture[inner], cv2.CV_64F).var() for name, picture in pictures.items()}
    assert sharpness["blurred"] < 0.2 * sharpness["sharp"], sharpness
    assert all(w.status == "stopped" for w in registry.workers.values())
