"""The REST API on a real server over loopback."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import av
import httpx
import pytest

from clips import pan_frames, write_clip
from servers import running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("serve"), "--max-upload-mb", "3") as (url, _):
        yield url



@pytest.fixture(scope="module")
def clip(tmp_path_factory, photo) -> Path:
    frames = pan_frames(photo, size=(320, 240), frames=16, zoom=1.5)
    return write_clip(frames, tmp_path_factory.mktemp("clip") / "door.avi", fps=8, codec="MJPG")


def post(url: str, path: str, file: Path, name: str | None = None, **kwargs) -> httpx.Response:
    with file.open("rb") as f:
        return httpx.post(url + path, files={"file": (name or file.name, f)}, timeout=120, **kwargs)


def wait_for_job(url: str, job_id: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = httpx.get(f"{url}/v1/videos/{job_id}").json()
        if state["status"] in ("finished", "failed"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {state}")


def test_health_and_docs(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok", "model_loaded": True, "busy": 0}
    spec = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/detect", "/v1/annotate", "/v1/videos", "/v1/videos/{job_id}/result"} <= set(spec["paths"])
    assert {"200", "401", "413", "415", "422"} <= set(spec["paths"]["/v1/detect"]["post"]["responses"])
    assert {"200", "404", "409"} <= set(spec["paths"]["/v1/videos/{job_id}/result"]["get"]["responses"])
    docs = httpx.get(f"{server}/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text  # offline: its script and style come from the package
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in docs.text and httpx.get(f"{server}{asset}").status_code == 200


def test_every_refusal_is_one_sentence_and_the_schema_says_so(server, photo):
    """FastAPI's own 422 (a list) is a sentence like every other refusal, FastAPI's list kept as `errors`
    without the input (an upload would be echoed back); the schema describes the answers as they are."""
    for path, files, words in (("/v1/detect?conf=3", True, "query parameter conf: Input should be less than"),
                               ("/v1/detect", False, "form field file: Field required"),
                               ("/v1/events?limit=0&type=counts", False, "query parameter limit: Input should be")):
        response = (post(server, path, photo) if files else httpx.request("POST" if "detect" in path else "GET",
                                                                         server + path, timeout=30))
        body = response.json()
        assert response.status_code == 422 and body["detail"].startswith(words), body
        assert [set(error) for error in body["errors"]] == [{"type", "loc", "msg"}]
    text = httpx.post(f"{server}/v1/detect", data={"file": "photo.jpg"}, timeout=30)  # curl -F file=photo.jpg
    assert text.status_code == 422 and "form field file: expected a file, got text" in text.json()["detail"]
    assert httpx.head(f"{server}/healthz", timeout=30).status_code == 200  # (uptime monitors ask with HEAD)
    for status, path in ((404, "/v1/videos/" + "A" * 24), (404, "/v1/cameras/door"), (415, "/v1/detect"),
                         (404, "/v2/detect"), (405, "/v1/detect")):
        response = (post(server, path, Path(__file__)) if status == 415 else httpx.get(server + path, timeout=30))
        assert response.status_code == status and isinstance(response.json()["detail"], str), response.text
        assert response.json()["detail"] not in ("Not Found", "Method Not Allowed")  # a sentence, not two words
    spec = httpx.get(f"{server}/openapi.json").json()
    assert "HTTPValidationError" not in str(spec) and "securitySchemes" not in spec["components"]  # (no key here)
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method, status, answer in (("/v1/detect", "post", "422", "ErrorBody"),
                                         ("/v1/detect", "post", "200", "DetectResult"),
                                         ("/v1/videos/{job_id}", "get", "200", "VideoJob"),
                                         ("/v1/events", "get", "200", "EventPage"),
                                         ("/v1/cameras", "get", "200", "CameraList")):
        schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{answer}"}, (path, status)
    assert spec["paths"]["/v1/detect"]["post"]["responses"]["415"]["content"]["application/json"]["schema"] == error
    # Bytes are documented as bytes, and only the refusals a route can give are listed.
    for path, method, media in (("/v1/annotate", "post", "image/png"),
                                ("/v1/videos/{job_id}/result", "get", "video/mp4"),
                                ("/v1/cameras/{name}/snapshot.jpg", "get", "image/jpeg")):
        content = spec["paths"][path][method]["responses"]["200"]["content"]
        assert "application/json" not in content and content[media]["schema"]["format"] == "binary", path
    assert "X-Maskwatch-Counts" in spec["paths"]["/v1/annotate"]["post"]["responses"]["200"]["headers"]
    assert set(spec["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    assert "422" not in spec["paths"]["/v1/videos/{job_id}"]["get"]["responses"]
    assert "422" in spec["paths"]["/v1/events"]["get"]["responses"]


def test_detect_returns_the_predictions_format_and_counts(server, photo):
    body = post(server, "/v1/detect", photo).json()
    assert body["image"] == photo.name and (body["width"], body["height"]) == (400, 267)
    assert len(body["detections"]) >= 5
    assert set(body["detections"][0]) == {"bbox", "label", "score"}
    assert sum(body["counts"].values()) == len(body["detections"])
    assert set(body["counts"]) == {"with_mask", "without_mask", "mask_weared_incorrect"}
    assert body["compliance"] == body["counts"]["with_mask"] / len(body["detections"])
    every = post(server, "/v1/detect?conf=0.05&all_classes=true", photo).json()
    one = post(server, "/v1/detect?conf=0.05", photo).json()
    assert len(every["detections"]) > len(one["detections"])
    assert every["counts"] == one["counts"]  # people are counted once however many classes are listed
    two = httpx.post(server + "/v1/detect", timeout=120,
                     files=[("file", ("a.jpg", photo.read_bytes())), ("file", ("b.jpg", photo.read_bytes()))])
    assert two.status_code == 422 and "one file per request, got 2" in two.json()["detail"]


def test_annotate_returns_an_image_of_the_same_size(server, photo):
    import cv2
    import numpy as np

    response = post(server, "/v1/annotate?format=png", photo)
    assert response.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (267, 400, 3)
    assert "with_mask=" in response.headers["x-maskwatch-counts"]


def test_a_model_of_other_class_names_gets_its_compliance_and_an_ascii_counts_header(tmp_path, photo):
    """The page shows the server's compliance (it knows what the model's classes mean), and a class name outside
    Latin-1 is percent-encoded in the counts header (it was a 500)."""
    from urllib.parse import unquote

    from fastapi.testclient import TestClient

    from conftest import shipped_head_named
    from maskwatch import Detector
    from maskwatch.serve.app import Settings, create_app

    for classes in (["mask", "no_mask", "incorrect"], ["口罩", "no mask", "máscara mal"]):
        detector = Detector.load(shipped_head_named(tmp_path / classes[0], classes), threads=2)
        with TestClient(create_app(Settings(data_dir=tmp_path / classes[0] / "data"), detector=detector)) as client:
            body = client.post("/v1/detect", files={"file": (photo.name, photo.read_bytes())}).json()
            people = sum(body["counts"].values())
            assert set(body["counts"]) == set(classes) and people >= 5
            if classes[0] == "mask":
                assert body["compliance"] == body["counts"]["mask"] / people
            else:  # whether 口罩 is a mask, the server cannot tell
                assert body["compliance"] is None
            drawn = client.post("/v1/annotate", files={"file": (photo.name, photo.read_bytes())})
            assert drawn.status_code == 200
            header = drawn.headers["x-maskwatch-counts"]
            assert header.isascii() and dict(unquote(pair).split("=") for pair in header.split(",")) == {
                name: str(n) for name, n in body["counts"].items()}
            script = client.get("/static/classes.js").text  # the page's dots coloured by what the names mean
            if classes[0] == "mask":
                assert '[data-class=\\"incorrect\\"] .dot { background: rgb(255, 150, 0); }' in script
            else:
                assert '[data-class=\\"\\u53e3\\u7f69\\"] .dot { background: rgb(200, 200, 200); }' in script


def test_detect_can_also_return_the_drawn_image_from_the_same_detection(server, photo):
    import base64

    import cv2
    import numpy as np

    plain = post(server, "/v1/detect", photo).json()
    both = post(server, "/v1/detect?annotated=true", photo).json()
    prefix = "data:image/jpeg;base64,"
    assert "annotated_image" not in plain and both["annotated_image"].startswith(prefix)
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(both.pop("annotated_image")[len(prefix):]), np.uint8),
                         cv2.IMREAD_COLOR)
    assert drawn.shape == (267, 400, 3)
    assert both == plain
    original = cv2.imread(str(photo))
    assert (np.abs(drawn.astype(int) - original.astype(int)).max(axis=2) > 80).sum() > 500  # boxes were drawn


def test_content_is_checked_not_the_name(server, tmp_path):
    fake = tmp_path / "cat.jpg"
    fake.write_text("I am text, not a JPEG")
    response = post(server, "/v1/detect", fake)
    assert response.status_code == 415 and "not a readable image" in response.json()["detail"]
    assert post(server, "/v1/videos", fake, "movie.mp4").status_code == 415
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert post(server, "/v1/detect", empty).status_code == 422


def test_a_video_sent_as_a_photo_is_told_where_videos_go(server, clip):
    response = post(server, "/v1/detect", clip)
    assert response.status_code == 415 and "send videos to POST /v1/videos" in response.json()["detail"]


def test_a_photo_sent_as_a_video_is_told_where_photos_go(server, photo):
    response = post(server, "/v1/videos", photo)
    assert response.status_code == 415 and "send photos to POST /v1/detect" in response.json()["detail"]


def test_what_was_wrong_with_a_picture_that_still_reads_reaches_the_client(server, photo, tmp_path):
    """A damaged JPEG (grey where its data broke) and a TIFF of several pages were answered as if whole; the
    server's log, which the client never sees, was the only place that said so."""
    from PIL import Image

    whole = photo.read_bytes()
    middle = len(whole) // 2
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(whole[:middle] + bytes(range(256)) * 8 + whole[middle + 2048:])
    answer = post(server, "/v1/detect", damaged).json()
    assert len(answer["warnings"]) == 1 and "damaged.jpg: a JPEG file whose data is corrupt" in answer["warnings"][0]
    assert post(server, "/v1/detect", photo).json()["warnings"] == []
    drawn = post(server, "/v1/annotate", damaged)
    assert drawn.status_code == 200 and "a JPEG file whose data is corrupt" in drawn.headers["x-maskwatch-warnings"]
    pages = [Image.open(photo).convert("RGB")] * 2
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    assert "a TIFF of 2 pages; only the first is read" in post(server, "/v1/detect", tmp_path / "scan.tif").json()[
        "warnings"][0]
    svg = tmp_path / "logo.svg"  # a still picture FFmpeg reads and maskwatch does not: not sent to /v1/detect
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>')
    refused = post(server, "/v1/videos", svg)
    assert refused.status_code == 415 and "a still picture in a format maskwatch does not read" in \
        refused.json()["detail"]
    operations = [op["operationId"] for path in httpx.get(f"{server}/openapi.json").json()["paths"].values()
                  for op in path.values()]
    assert len(operations) == len(set(operations))  # (HEAD /healthz gave GET's id twice: generators stumble)


def test_uploads_over_the_limit_get_413(server, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (4 * 1024 * 1024))
    assert post(server, "/v1/detect", big).status_code == 413


def test_job_ids_are_random_and_paths_are_not_user_controlled(server, clip):
    for bad in ("abc", "..%2F..%2Fetc%2Fpasswd", "x" * 30, "../jobs.sqlite"):
        assert httpx.get(f"{server}/v1/videos/{bad}").status_code == 404
    # An upload's name is kept as a label only (its folders dropped); where the job's files go is the server's
    # choice, named by an id nobody can guess or pick.
    ids = [post(server, "/v1/videos", clip, "../../escape.avi").json()["id"] for _ in range(2)]
    assert ids[0] != ids[1] and all(re.fullmatch(r"[A-Za-z0-9_-]{24}", i) for i in ids), ids
    for job_id in ids:
        assert wait_for_job(server, job_id)["filename"] == "escape.avi"
        assert httpx.delete(f"{server}/v1/videos/{job_id}").status_code == 204


def test_video_job_runs_in_the_background_and_gives_a_playable_mp4(server, clip):
    submitted = post(server, "/v1/videos", clip)
    assert submitted.status_code == 202
    job = submitted.json()
    assert len(job["id"]) >= 20
    state = wait_for_job(server, job["id"])
    assert state["status"] == "finished" and state["progress"] == 1.0 and state["complete"] is True
    result = httpx.get(server + job["result_url"], timeout=60)
    assert result.headers["content-type"] == "video/mp4"
    path = Path(f"/tmp/{job['id']}.mp4")
    path.write_bytes(result.content)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == 16
    path.unlink()
    summary = httpx.get(server + job["summary_url"]).json()
    assert summary["frames"] == 16 and sum(summary["people"].values()) >= 1
    assert summary["camera"] == clip.stem  # named after the upload, as watch names a file's (it read "input")


def test_api_key_guards_everything_but_health(tmp_path, photo):
    with running_server(tmp_path, env={"MASKWATCH_API_KEY": "s3cret"}) as (url, _):
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert post(url, "/v1/detect", photo).status_code == 401
        assert post(url, "/v1/detect", photo, headers={"X-API-Key": "wrong"}).status_code == 401
        assert post(url, "/v1/detect", photo, headers={"X-API-Key": "s3cret"}).status_code == 200
        # Every route of the API, as the server lists them (with the key), refuses a request without it.
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]  # the description is open, the data is not
        routes = [(method, path.replace("{job_id}", "A" * 24).replace("{name}", "door"))
                  for path, methods in paths.items() if path.startswith("/v1/") for method in methods]
        assert len(routes) >= 10, routes
        for method, path in routes:
            assert httpx.request(method, url + path, timeout=30).status_code == 401, (method, path)


def test_a_restart_keeps_finished_results_and_marks_the_interrupted_job_failed(tmp_path, clip, photo):
    long_clip = write_clip(pan_frames(photo, size=(320, 240), frames=400, zoom=1.5), tmp_path / "long.avi", fps=8,
                           codec="MJPG")
    with running_server(tmp_path / "data") as (url, process):
        done = post(url, "/v1/videos", clip).json()
        assert wait_for_job(url, done["id"])["status"] == "finished"
        interrupted = post(url, "/v1/videos", long_clip).json()
        deadline = time.time() + 60
        while httpx.get(f"{url}/v1/videos/{interrupted['id']}").json()["frames_done"] == 0 and time.time() < deadline:
            time.sleep(0.3)
        process.send_signal(signal.SIGKILL)  # the server dies mid-job
        process.wait(timeout=10)
    with running_server(tmp_path / "data") as (url, _):
        assert httpx.get(f"{url}/v1/videos/{done['id']}").json()["status"] == "finished"
        assert httpx.get(url + done["result_url"]).status_code == 200
        state = httpx.get(f"{url}/v1/videos/{interrupted['id']}").json()
        assert state["status"] == "failed" and "server stopped" in state["message"]
        assert httpx.get(url + interrupted["result_url"]).status_code == 409
        # The uploads, videos of people's faces, are not kept once their job has ended, however it ended.
        jobs = tmp_path / "data" / "jobs"
        assert not (jobs / done["id"] / "input").exists() and (jobs / done["id"] / "result.mp4").is_file()
        assert not any((jobs / interrupted["id"]).glob("*.mp4")) and not (jobs / interrupted["id"] / "input").exists()
        # Without a key, a job's random id is what keeps its result from others: the jobs are not listed.
        refused = httpx.get(f"{url}/v1/videos")
        assert refused.status_code == 403 and "needs a server with --api-key" in refused.json()["detail"]
        # And a job's result can be deleted with everything kept for it.
        assert httpx.delete(f"{url}/v1/videos/{done['id']}").status_code == 204
        assert httpx.get(f"{url}/v1/videos/{done['id']}").status_code == 404 and not (jobs / done["id"]).exists()
        assert httpx.delete(f"{url}/v1/videos/{done['id']}").status_code == 404
