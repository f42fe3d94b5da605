"""Live cameras in the server: frames/s of each camera and the delay from a frame to the page, two cameras at
640x480.

    .venv/bin/python bench/cameras.py [--seconds 60] [--fps 15] [--scale S] [--every N] [--screenshot PNG]

Starts a real RTSP camera on loopback (gst-rtsp-server playing a pan across a crowd photo; needs the system
packages of `make test`) and a video file of another pan played on repeat, both 640x480 at --fps, serves them
with `maskwatch serve`, opens each camera's live view in headless Chromium (two tabs), waits for a warm-up, then
measures for --seconds:

- frames/s shown and detections/s of each camera (its frames and detected frames over the period, from
  GET /v1/cameras), with the source's frame rate;
- the delay from a frame reaching the server (X-Frame-Time: when the source handed it over, decoded) to its being
  decoded in the page's <img> (the page records each one): median and 95th percentile. The camera's own encoder
  and the RTSP hop before the server are not in it.

Prints a table (and the load average, since the cameras share the CPU with whatever else runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from browsers import chromium  # noqa: E402
from clips import pan_frames, write_clip, write_pan_jpegs  # noqa: E402
from servers import RtspCamera, free_port, running_server  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "face-mask-voc" / "images"
KEY = "bench-key"


def cameras(url: str) -> dict[str, dict]:
    return {c["name"]: c for c in httpx.get(f"{url}/v1/cameras", headers={"X-API-Key": KEY}, timeout=30)
            .json()["cameras"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def small_png(path: Path) -> None:
    """256 colours, dithered: a third of the size, for the README."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--fps", type=int, default=15, help="frame rate of both sources")
    parser.add_argument("--scale", default=None, help="the cameras' --scale [default: the server's, auto]")
    parser.add_argument("--every", type=int, default=None,
                        help="the cameras' --every [default: the server's, as often as the frame rate allows]")
    parser.add_argument("--screenshot", type=Path, default=None, help="also save the grid of cameras as a PNG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rtsp = RtspCamera(free_port(), write_pan_jpegs(DATA / "maksssksksss657.jpg", tmp / "rtsp", frames=60),
                          fps=args.fps).start()
        clip = write_clip(pan_frames(DATA / "maksssksksss0.jpg", size=(640, 480), frames=60), tmp / "hall.avi",
                          fps=args.fps, codec="MJPG")
        try:
            with running_server(tmp / "data", "--camera", f"door={rtsp.url}", "--camera", f"hall={clip}",
                                *(("--scale", args.scale) if args.scale else ()),
                                *(("--every", str(args.every)) if args.every else ()), "--db", str(tmp / "ev.sqlite"),
                                "--api-key", KEY) as (url, _), chromium() as browser:
                pages = {}
                for name in ("door", "hall"):
                    page = browser.new_page(viewport={"width": 1000, "height": 800})
                    page.goto(f"{url}/cameras")
                    page.evaluate(f"sessionStorage.setItem('maskwatch.key', '{KEY}')")
                    page.goto(f"{url}/cameras#/camera/{name}")
                    page.reload()
                    pages[name] = page
                for name, page in pages.items():
                    page.wait_for_function("window.maskwatchLatency.length > 0", timeout=180_000)
                time.sleep(args.warmup)
                start, before = time.time(), cameras(url)
                time.sleep(args.seconds)
                end, after = time.time(), cameras(url)
                load = os.getloadavg()
                rows = []
                for name, page in pages.items():
                    delays = [x["latency"] * 1000 for x in page.evaluate("window.maskwatchLatency")
                              if start <= x["at"] <= end]
                    span = end - start
                    rows.append((name, "RTSP (loopback)" if name == "door" else "file on repeat",
                                 after[name]["source_fps"],
                                 (after[name]["frames"] - before[name]["frames"]) / span,
                                 (after[name]["detected_frames"] - before[name]["detected_frames"]) / span,
                                 len(delays) / span, statistics.median(delays) if delays else float("nan"),
                                 percentile(delays, 0.95) if delays else float("nan")))
                if args.screenshot:
                    grid = browser.new_page(viewport={"width": 720, "height": 430})
                    grid.goto(f"{url}/cameras")
                    grid.evaluate(f"sessionStorage.setItem('maskwatch.key', '{KEY}')")
                    grid.reload()
                    grid.wait_for_function("[...document.querySelectorAll('.tile img')].length == 2 && "
                                           "[...document.querySelectorAll('.tile img')].every(i => i.naturalWidth)",
                                           timeout=60_000)
                    time.sleep(2)
                    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    grid.screenshot(path=str(args.screenshot))
                    small_png(args.screenshot)
        finally:
            rtsp.kill()
    print(f"2 cameras at 640x480, {args.fps} frames/s each, --scale {args.scale or 'auto (default)'} --every "
          f"{args.every or 'by the frame rate (default)'}, "
          f"{args.seconds:.0f} s measured after {args.warmup:.0f} s; load average {load[0]:.1f}")
    print("| camera | source | source frames/s | frames/s shown | detections/s | frames/s on the page | "
          "delay p50 ms | delay p95 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kind, source_fps, fps, detections, painted, p50, p95 in rows:
        print(f"| {name} | {kind} | {source_fps:.0f} | {fps:.1f} | {detections:.1f} | {painted:.1f} | {p50:.0f} | "
              f"{p95:.0f} |")


if __name__ == "__main__":
    main()
