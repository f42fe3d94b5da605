"""The live-camera page in a real browser (Debian's Chromium, headless, driven by Playwright), on a server started
from a config file with a real RTSP camera and a video file played on repeat (with zones, a line and a webhook):
the key is asked for, both cameras update, an unmasked person raises an alert in the list (with a blurred snapshot
only where snapshots are on) and at the webhook, the zones and the chart are shown, the page fits a phone, and a
camera that drops shows "reconnecting" and comes back on its own."""

from __future__ import annotations

import json
import time

import pytest

from browsers import ARTIFACTS
from servers import WebhookReceiver, free_port, running_server, wait_until

KEY = "page-key-456"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    hook = WebhookReceiver(free_port(), tmp_path_factory.mktemp("hook") / "posts.jsonl").start()
    yield hook
    hook.kill()


@pytest.fixture(scope="module")
def server(rtsp, crossing_clip, receiver, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard")
    config = folder / "cameras.yaml"
    config.write_text(f"""
defaults:
  scale: 1
  window: 2
cameras:
  door:
    source: {rtsp.url}
  hall:
    source: {crossing_clip}
    event_snapshots: true
    webhooks: [{receiver.url}]
    zones: {{counter: [260,10, 470,10, 470,310, 260,310]}}
    lines: {{door: "240,0,240,320"}}
""")
    with running_server(folder / "data", "--config", str(config), "--db", str(folder / "events.sqlite"),
                        "--api-key", KEY) as (url, _):
        yield url


def open_page(browser, url: str, width: int = 1100, height: int = 900, with_key: bool = True):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{url}/cameras")
    if with_key:
        page.wait_for_selector("#key:not([hidden])", timeout=30_000)
        page.fill("#apikey", KEY)
        page.click("#key button")
    return page


def tile_picture(page, name: str) -> bytes:
    return page.locator(f".tile[data-camera={name}] img").screenshot()


def test_the_page_asks_for_the_key_and_shows_nothing_without_it(browser, server):
    page = open_page(browser, server, with_key=False)
    page.wait_for_selector("#key:not([hidden])", timeout=30_000)
    time.sleep(2)  # a few refreshes: none may show a camera
    assert page.locator(".tile").count() == 0
    page.fill("#apikey", "not-the-key")
    page.click("#key button")
    page.wait_for_selector("#key:not([hidden])", timeout=30_000)  # asked again, saying the key was refused
    page.wait_for_function("document.querySelector('#banner').textContent.includes('That API key is not accepted')")
    assert page.locator(".tile").count() == 0
    page.close()


def test_a_camera_name_the_server_does_not_have_is_said_not_shown_as_another(browser, server):
    page = open_page(browser, server)
    page.wait_for_selector(".tile[data-camera=door]", timeout=60_000)
    page.goto(f"{server}/cameras#/camera/nope")  # (the key stays for the tab)
    page.wait_for_function("document.querySelector('#d-overlay').textContent.includes('no camera of that name')",
                           timeout=30_000)
    assert page.inner_text("#d-name") == "nope" and "door, hall" in page.inner_text("#d-overlay")
    assert page.locator("#d-counts tbody tr").count() == 0
    page.close()


def test_both_cameras_update_on_the_grid(browser, server):
    page = open_page(browser, server)
    for name in ("door", "hall"):
        page.wait_for_selector(f".tile[data-camera={name}] .badge.live", timeout=180_000)
        page.wait_for_function(f"document.querySelector('.tile[data-camera={name}] img').naturalWidth > 0",
                               timeout=60_000)
    first = {name: tile_picture(page, name) for name in ("door", "hall")}
    for name in ("door", "hall"):  # a later snapshot shows another picture
        wait_until(lambda: tile_picture(page, name) != first[name], f"the {name} tile change", timeout=90)
    people = page.locator(".tile[data-camera=hall] .people span")
    assert people.count() == 3
    assert "wear a mask correctly" in page.inner_text(".tile[data-camera=hall] .info")
    assert "detecting" in page.inner_text(".tile[data-camera=door] .rates")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_grid.png"))
    page.close()


def test_an_unmasked_person_raises_an_alert_in_the_camera_view(browser, server, receiver):
    page = open_page(browser, server)
    page.wait_for_selector(".tile[data-camera=hall]", timeout=180_000)
    page.click(".tile[data-camera=hall]")
    page.wait_for_selector("#detail-view:not([hidden])")
    alert = page.wait_for_selector("#events li.alert", timeout=180_000)
    assert "no mask" in alert.inner_text()
    # Snapshots are on for this camera: the alert carries the (blurred) face.
    assert alert.query_selector("img") is not None
    # The camera's webhook from the config got the same event.
    alert_id = alert.get_attribute("data-id")
    receiver.wait_for(lambda posts: any(json.loads(p["body"])["id"] == alert_id for p in posts),
                      "the alert shown on the page")
    # The live stream plays, and each frame's delay from the camera to the page is measured.
    page.wait_for_function("document.querySelector('#d-image').naturalWidth === 480", timeout=60_000)
    page.wait_for_function("window.maskwatchLatency.length >= 3", timeout=60_000)
    page.wait_for_function("document.querySelector('#d-rates').textContent.includes('delay')", timeout=30_000)
    # The zone and the line, with their counts; the chart gets its first points.
    page.wait_for_selector("#d-zones [data-zone=counter]", timeout=30_000)
    assert "line door" in page.inner_text("#d-zones")
    page.wait_for_selector("#chart circle", timeout=90_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_camera.png"), full_page=True)
    # The other camera has no snapshots: its events carry no picture.
    page.goto(f"{server}/cameras#/camera/door")
    page.wait_for_selector("#events li", timeout=120_000)
    assert page.locator("#events img").count() == 0
    page.close()


def test_the_page_fits_a_phone(browser, server):
    page = open_page(browser, server, width=390, height=844)
    page.wait_for_selector(".tile[data-camera=door] .badge.live", timeout=180_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click(".tile[data-camera=door]")
    page.wait_for_function("document.querySelector('#d-image').naturalWidth === 640", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.querySelector('#d-image').getBoundingClientRect().width") <= 390
    page.close()


def test_a_camera_that_drops_shows_reconnecting_and_comes_back(browser, server, rtsp):
    page = open_page(browser, server)
    page.wait_for_selector(".tile[data-camera=door] .badge.live", timeout=180_000)
    rtsp.kill()
    page.wait_for_selector(".tile[data-camera=door] .badge.reconnecting", timeout=60_000)
    assert page.is_visible(".tile[data-camera=door] .overlay")
    assert page.locator(".tile[data-camera=hall] .badge.live").count() == 1
    rtsp.start()
    page.wait_for_selector(".tile[data-camera=door] .badge.live", timeout=180_000)
    assert not page.is_visible(".tile[data-camera=door] .overlay")
    page.close()
