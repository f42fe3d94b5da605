"""The web page in a real browser (Debian's Chromium, headless, driven by Playwright)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from browsers import ARTIFACTS
from clips import pan_frames, write_clip
from maskwatch.classes import CLASS_COLOURS_BGR, MASK_CLASSES, READABLE_NAMES
from servers import running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("web")) as (url, _):
        yield url


def counts_on_page(page) -> dict[str, int]:
    rows = page.locator(".counts tr")
    return {rows.nth(i).get_attribute("data-class"): int(rows.nth(i).locator("td.n").inner_text())
            for i in range(rows.count())}


def test_upload_an_image_and_see_the_result_on_a_phone_sized_screen(browser, server, photo):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.goto(server)
    page.wait_for_load_state("networkidle")  # (the page asks the server whether it needs a key: it does not)
    assert not page.is_visible("#apikey")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("img.annotated", timeout=60_000)
    page.wait_for_function("document.querySelector('img.annotated').naturalWidth > 0")
    assert page.evaluate("document.querySelector('img.annotated').naturalWidth") == 400
    # The counts name and colour each class as classes.py says (where the drawings take their colours).
    shown = page.evaluate("[...document.querySelectorAll('.counts tr')].map((row) => [row.dataset.class, "
                          "row.cells[0].textContent, getComputedStyle(row.querySelector('.dot')).backgroundColor])")
    assert shown == [[name, READABLE_NAMES[name], "rgb({2}, {1}, {0})".format(*CLASS_COLOURS_BGR[name])]
                     for name in MASK_CLASSES]
    # The image fits the phone's width: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    with photo.open("rb") as f:
        api = httpx.post(f"{server}/v1/detect", files={"file": (photo.name, f)}, timeout=60).json()
    assert counts_on_page(page) == api["counts"]
    assert sum(api["counts"].values()) > 0
    assert page.inner_text(".compliance").startswith(f"{round(100 * api['compliance'])}% wear a mask correctly")
    links = page.locator(".downloads a")
    assert links.count() == 2 and links.nth(0).get_attribute("download").endswith("_maskwatch.jpg")
    assert posts == [f"{server}/v1/detect?annotated=true"], "the photo is detected once"
    # The JSON offered for download is the API's answer, without the drawn image.
    with page.expect_download() as download:
        links.nth(1).click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert "annotated_image" not in saved and saved["counts"] == api["counts"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_image_phone.png"), full_page=True)
    page.close()


def test_upload_a_video_see_progress_then_it_plays(browser, server, photo, tmp_path):
    frames = pan_frames(photo, size=(320, 240), frames=12, zoom=1.5)
    clip = write_clip(frames, tmp_path / "door.avi", fps=6, codec="MJPG")
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server)
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("video.annotated", timeout=120_000)
    # Chromium decodes the H.264 result: it knows the duration and the frame size.
    page.wait_for_function("document.querySelector('video.annotated').readyState >= 1", timeout=30_000)
    assert page.evaluate("document.querySelector('video.annotated').videoWidth") == 320
    assert page.evaluate("document.querySelector('video.annotated').duration") == pytest.approx(2.0, abs=0.2)
    assert sum(counts_on_page(page).values()) >= 1
    assert "Done: 12 frames" in page.inner_text(".item .status")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_video.png"), full_page=True)
    # A reload (or the page closed and opened again in the tab) comes back to the job, its video shown on demand
    # (a reload does not download every remembered video again) ...
    page.reload()
    page.wait_for_selector("button.show", timeout=60_000)
    assert "Done: 12 frames" in page.inner_text(".item .status") and page.locator("video").count() == 0
    page.click("button.show")
    page.wait_for_selector("video.annotated", timeout=60_000)
    [job] = page.evaluate("JSON.parse(sessionStorage.getItem('maskwatch.jobs'))")
    assert httpx.get(server + job["status_url"], timeout=30).status_code == 200
    # ... and the annotated video, which shows faces, can be deleted from the server.
    page.click("button.delete")
    page.wait_for_function("document.querySelector('.item .status').textContent.startsWith('Deleted')",
                           timeout=30_000)
    assert httpx.get(server + job["status_url"], timeout=30).status_code == 404
    assert page.evaluate("sessionStorage.getItem('maskwatch.jobs')") == "[]"
    page.close()


def test_a_bad_file_shows_a_clear_error(browser, server, tmp_path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not an image at all")
    page = browser.new_page()
    page.goto(server)
    page.set_input_files("#file", str(fake))
    page.wait_for_function("document.querySelector('.item .error').textContent.length > 0", timeout=30_000)
    assert "415" in page.inner_text(".item .error") and "not a readable image" in page.inner_text(".item .error")
    page.close()


def test_several_files_each_get_their_result_and_a_bad_one_does_not_stop_the_others(browser, server, photo,
                                                                                     tmp_path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not an image at all")
    big = tmp_path / "big.png"  # several MB
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(photo)), (1600, 1068)) + np.random.default_rng(0).integers(
        0, 8, (1068, 1600, 3), dtype=np.uint8))
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server)
    page.evaluate("""window.said = []; new MutationObserver(() => document.querySelectorAll('.item .status')
        .forEach((s) => window.said.push(s.textContent))).observe(document.body, {subtree: true, childList: true,
        characterData: true})""")
    clip = write_clip(pan_frames(photo, size=(320, 240), frames=12, zoom=1.5), tmp_path / "door.avi", fps=6,
                      codec="MJPG")
    page.set_input_files("#file", [str(clip), str(photo), str(fake), str(big)])
    page.wait_for_selector("#download-all", timeout=120_000)  # (the video is followed meanwhile)
    items = page.locator(".item")
    assert [items.nth(i).locator("h2").inner_text() for i in range(4)] == [clip.name, photo.name, fake.name, big.name]
    assert items.nth(1).locator("img.annotated").count() == 1 and items.nth(3).locator("img.annotated").count() == 1
    assert "415" in items.nth(2).locator(".error").inner_text() and items.nth(2).locator("img").count() == 0
    with page.expect_download() as download:
        page.click("#download-all")
    answers = json.loads(Path(download.value.path()).read_text())
    assert [a["image"] for a in answers] == [photo.name, big.name]
    faces = sum(sum(a["counts"].values()) for a in answers)
    masked = sum(a["compliance"] * sum(a["counts"].values()) for a in answers)
    assert page.inner_text("#total").startswith(f"2 photos, {faces} face(s): {round(100 * masked / faces)}% wear a "
                                                f"mask correctly") and faces > 0
    # The upload's progress events reach the page (on loopback they come at 100 %, which says "Looking for faces").
    assert "Looking for faces…" in page.evaluate("window.said")
    # The next choice replaces the photos' sections but keeps the video job's, which the tab still remembers.
    page.wait_for_selector("video.annotated", timeout=120_000)
    page.set_input_files("#file", str(photo))
    page.wait_for_function("document.querySelectorAll('.item img.annotated').length === 1 && "
                           "document.querySelectorAll('.item').length === 2", timeout=60_000)
    assert page.locator(".item h2").all_inner_texts() == [clip.name, photo.name]
    page.click("button.forget")  # only from the page: the server keeps the job
    assert page.locator(".item h2").all_inner_texts() == [photo.name]
    assert page.evaluate("sessionStorage.getItem('maskwatch.jobs')") == "[]"
    page.close()


def test_the_api_docs_render_offline_from_the_package(browser, server):
    """/docs is Swagger UI from files in the package: every operation shows without any network but loopback."""
    page = browser.new_page()
    outside = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(server) else None)
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/v1/detect", "/v1/videos", "/v1/cameras/{name}/stream"} <= {path.strip() for path in shown}
    assert outside == []



def test_the_api_docs_of_a_keyed_server_open_and_send_the_key_given_to_authorize(browser, tmp_path):
    """A browser cannot send a header to open /docs: the page is open, and its Authorize button takes the key
    for the requests tried from it."""
    with running_server(tmp_path / "keyed", "--api-key", "s3cret") as (url, _):
        page = browser.new_page()
        page.goto(f"{url}/docs")
        cameras = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/v1/cameras")).first
        cameras.locator(".opblock-summary").click()
        cameras.locator(".try-out__btn").click()
        statuses = []
        page.on("response", lambda response: statuses.append(response.status) if "/v1/" in response.url else None)
        shown = "(code) => document.querySelector('.live-responses-table tbody .response-col_status')" \
                "?.textContent.trim() === code"
        cameras.locator(".execute").click()
        page.wait_for_function(shown, arg="401", timeout=30_000)
        page.locator("button.authorize").first.click()
        page.locator(".auth-container input").fill("s3cret")
        page.locator(".auth-btn-wrapper button.authorize").click()
        page.locator(".auth-btn-wrapper button.btn-done").click()
        cameras.locator(".execute").click()
        page.wait_for_function(shown, arg="200", timeout=30_000)
        assert statuses == [401, 200]
        page.close()


def test_a_server_with_an_api_key_asks_for_it_once_and_the_tab_keeps_it(browser, photo, tmp_path):
    with running_server(tmp_path / "keyed", "--api-key", "s3cret") as (url, _):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#apikey", state="visible")  # shown at once: the server answers 401
        page.set_input_files("#file", str(photo))
        page.wait_for_function("document.querySelector('#error').textContent.includes('needs its API key')")
        assert page.is_visible("#apikey")
        page.fill("#apikey", "not-the-key")
        page.dispatch_event("#apikey", "change")
        page.set_input_files("#file", str(photo))  # a key sent and refused: said as such, not as a missing one
        page.wait_for_function("document.querySelector('#error').textContent.includes('key is not accepted')")
        page.fill("#apikey", "s3cret")
        page.dispatch_event("#apikey", "change")
        page.set_input_files("#file", str(photo))  # the same file again: taken (the field was cleared)
        page.wait_for_selector("img.annotated", timeout=60_000)
        page.reload()  # the key stays for the tab (session storage, shared with the cameras page)
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("img.annotated", timeout=60_000)
        assert page.evaluate("sessionStorage.getItem('maskwatch.key')") == "s3cret"
        assert page.inner_text("#error") == ""
        # A video sent from elsewhere (another device, or a tab since closed): the server's list brings it in.
        clip = write_clip(pan_frames(photo, size=(320, 240), frames=6, zoom=1.5), tmp_path / "door.avi", fps=6,
                          codec="MJPG")
        with clip.open("rb") as file:
            sent = httpx.post(f"{url}/v1/videos", files={"file": ("from-my-phone.avi", file)},
                              headers={"X-API-Key": "s3cret"}, timeout=60).json()
        page.click("#server-jobs")
        page.wait_for_selector("button.show", timeout=120_000)
        assert page.locator(".item h2").all_inner_texts() == [photo.name, "from-my-phone.avi"]
        assert page.inner_text("#total") == "1 video job(s) kept on this server, 1 added below."
        assert [job["id"] for job in page.evaluate("JSON.parse(sessionStorage.getItem('maskwatch.jobs'))")] == [
            sent["id"]]
        page.click("#server-jobs")  # again: nothing added twice
        page.wait_for_function("document.querySelector('#total').textContent.includes('0 added')")
        assert page.locator(".item").count() == 2
        page.click("button.show")
        page.wait_for_selector("video.annotated", timeout=60_000)
        page.close()
