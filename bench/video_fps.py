"""End-to-end video speed: decode + detect + track + draw + H.264 encode, frames per second.

    .venv/bin/python bench/video_fps.py [--frames 90] [--model runs/NAME]

Clips are made from a validation photo (a pan at 640x480 and 1920x1080). Prints a table per setting.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import pan_frames, write_clip  # noqa: E402
from maskwatch.detector import Detector  # noqa: E402
from maskwatch.video.pipeline import VideoPipeline, WatchOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--photo", type=Path, default=ROOT / "src" / "maskwatch" / "samples" / "crowd.jpg")
    parser.add_argument("--model", default=None, help="a trained model or run folder (default: shipped)")
    args = parser.parse_args()
    settings = [("640x480", "auto", 1), ("640x480", "1", 1), ("640x480", "1", 3),
                ("1920x1080", "auto", 1), ("1920x1080", "0.5", 1), ("1920x1080", "0.5", 3)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for size, zoom in (("640x480", 2.0), ("1920x1080", 5.0)):
            w, h = map(int, size.split("x"))
            clips[size] = write_clip(pan_frames(args.photo, (w, h), args.frames, zoom), Path(tmp) / f"{size}.avi",
                                     fps=30, codec="MJPG")
        for size, scale, every in settings:
            detector = Detector.load(args.model, threads=2, scale=scale)
            summary = VideoPipeline(detector, WatchOptions(every=every)).run(str(clips[size]), Path(tmp) / "out.mp4")
            rows.append((size, scale, every, summary.frames, summary.fps))
            print(f"{size} scale {scale} every {every}: {summary.fps:.1f} frames/s", flush=True)
    print("| clip | --scale | --every | frames | end-to-end frames/s |\n|---|---|---|---|---|")
    for size, scale, every, frames, fps in rows:
        print(f"| {size} | {scale} | {every} | {frames} | {fps:.1f} |")


if __name__ == "__main__":
    main()
