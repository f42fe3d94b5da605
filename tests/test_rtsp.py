"""Live RTSP for real on loopback: frames arrive, the newest frame is handed over, and a server that goes away
and comes back is reconnected to."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from servers import RtspCamera, free_port, gst_available


def start_server(port: int, photo: Path) -> subprocess.Popen:
    return RtspCamera(port, photo).start().process


def test_rtsp_stream_is_read_and_survives_the_server_going_away(photo):
    assert gst_available(), "needs Debian's gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-ugly"
    from maskwatch.video.sources import LiveSource

    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    server = start_server(port, photo)
    source = None
    try:
        source = LiveSource(url, backoff_s=(0.2, 1.0), open_timeout_s=5)
        assert source.size == (640, 480)
        frames = source.frames()
        first = [next(frames) for _ in range(5)]
        assert all(f.image.shape == (480, 640, 3) and f.image.std() > 10 for f in first)
        # A slow consumer gets the newest frame, not a backlog: after a pause the next frame is fresh.
        dropped = source.dropped
        time.sleep(1.5)  # about 15 frames arrive meanwhile (10 fps); the next one handed over is the newest
        assert next(frames).index == 5 and source.dropped >= dropped + 5
        server.kill()
        server.wait()
        time.sleep(1.0)
        server = start_server(port, photo)  # the camera comes back
        deadline = time.time() + 60
        while source.reconnects == 0 and time.time() < deadline:
            time.sleep(0.2)
        assert source.reconnects >= 1
        after = next(frames)
        assert after.image.shape == (480, 640, 3)
    finally:
        if source:
            source.close()
        server.kill()


def test_watch_on_rtsp_counts_people_and_stops_after_max_frames(detector, photo, tmp_path):
    assert gst_available()
    from maskwatch.video import VideoPipeline
    from maskwatch.video.pipeline import WatchOptions

    port = free_port()
    server = start_server(port, photo)
    try:
        pipeline = VideoPipeline(detector, WatchOptions(max_frames=8))
        summary = pipeline.run(f"rtsp://127.0.0.1:{port}/live", tmp_path / "live.mp4")
    finally:
        server.kill()
    assert summary.frames == 8 and summary.status == "finished"
    assert sum(summary.people.values()) >= 1


def test_watch_waits_for_a_camera_that_comes_up_after_it_started(photo, tmp_path):
    """A service may start before its camera has booted: with --wait-for-camera, `watch` tries again until the
    stream is up, then runs as usual."""
    assert gst_available()
    port = free_port()
    watch = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "watch", f"rtsp://127.0.0.1:{port}/live",
                              "--wait-for-camera", "120", "--max-frames", "5", "--db", str(tmp_path / "db.sqlite"),
                              "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        time.sleep(3)  # nothing listens yet: the first tries fail
        assert watch.poll() is None
        server = start_server(port, photo)
        out, err = watch.communicate(timeout=180)
    finally:
        watch.kill()
        if server:
            server.kill()
    assert watch.returncode == 0, err
    assert "cannot open the camera or stream" in err and "trying again" in err
    assert "5 frames" in out + err


def test_camera_credentials_never_show_in_what_is_shown_or_stored():
    from maskwatch.video.redact import without_password

    for given, shown in (("rtsp://admin:s3cret@cam:554/live?token=abc&channel=1",
                          "rtsp://admin:***@cam:554/live?token=***&channel=1"),
                         ("rtsp://TOKEN123@cam/live", "rtsp://***@cam/live"),  # a lone user part is often a token
                         ("http://cam/video.mjpg?user=u&password=p&pwd=q&apikey=k",
                          "http://cam/video.mjpg?user=u&password=***&pwd=***&apikey=***"),
                         ("rtsp://u:p@ss@[fe80::1]:8554/s", "rtsp://u:***@[fe80::1]:8554/s"),
                         ("http://cam/v?keyframe=1&author=a&access_token=t&x-api-key=k&accessToken=c&secretKey=s",
                          "http://cam/v?keyframe=1&author=a&access_token=***&x-api-key=***&accessToken=***"
                          "&secretKey=***"),  # (words that merely hold one are shown)
                         ("rtsp://cam/live", "rtsp://cam/live"), ("0", "0"), ("/videos/door.mp4", "/videos/door.mp4")):
        assert without_password(given) == shown
