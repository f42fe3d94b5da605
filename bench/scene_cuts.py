"""Scene cuts told from pans: how many switches between two photos `video/scene_cut.py` sees, and how many frame
pairs of pans it wrongly calls a change.

    .venv/bin/python bench/scene_cuts.py [--pairs 150] [--seed 0]

- Cuts: random pairs of photos of the training set (andrewmvd's) and of jolignier-val, each
  resized to 640x480, the second following the first (what an edited video or a camera switched to another view
  shows). A cut should be seen in every pair.
- Pans: tests/clips.py's pan over a photo enlarged 2x, crossing it in 45, 15 and 8 frames (the last: 14 % of the
  frame's width per frame, a whip pan), and in 3 frames enlarged 3x (shifts too far to check); zooms from 1x to
  2x in 30, 10 and 5 frames; over 6 random training photos. No pan or zoom frame should be a change.
- A door-camera clip of 4 photos (tests/clips.py): 3 switches between photos, and 4 times the blurred empty
  doorway turning into the sharp photo (the clip's way of bringing people in: a new picture too, in tone alike).
Columns: pairs whose pixels changed enough to be looked at (`cut_changed_share`); pairs whose grey histograms
correlate at most `cut_histogram_corr` (the rule before the shift test: alone, it misses photos alike in tone);
pairs `SceneCuts.changed` calls a change (the rule as it ships); the pairs whose best shift is too far to check
(a quarter of the picture) and the range of their phase-correlation peaks, which `cut_max_shift_peak` splits
(a whip pan's frames moved together: a clear peak; two photos: noise).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from clips import door_frames, pan_frames  # noqa: E402

from maskwatch.video.motion import MotionGate, changed_share, whole_picture_shift  # noqa: E402
from maskwatch.video.realtime import REALTIME  # noqa: E402
from maskwatch.video.scene_cut import SceneCuts, histogram_correlation  # noqa: E402

SHARED = ROOT / ".." / "shared" / "datasets"


def row(name: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> str:
    small, cuts = MotionGate().small, SceneCuts()
    looked = tone = called = 0
    far_peaks = []  # phase-correlation peaks of the pairs whose shift is too far to check
    for a, b in pairs:
        sa, sb = small(a), small(b)
        if changed_share(sa, sb, REALTIME.motion_pixel_delta) >= REALTIME.cut_changed_share:
            looked += 1
            tone += histogram_correlation(sa, sb) <= REALTIME.cut_histogram_corr
        called += cuts.changed(sa, sb)
        shift = whole_picture_shift(sa, sb, REALTIME.motion_pixel_delta)
        if shift.unexplained is None:
            far_peaks.append(shift.peak)
    peaks = f"{len(far_peaks)}: {min(far_peaks):.2f} - {max(far_peaks):.2f}" if far_peaks else "0"
    return f"| {name} | {len(pairs)} | {looked} | {tone} | {called} | {peaks} |"


def zoom_frames(path: Path, frames: int, to: float = 2.0) -> list[np.ndarray]:
    """A camera zooming into the middle of a photo, from 1x to `to` in `frames` frames."""
    image = photo(path)
    h, w = image.shape[:2]
    out = []
    for zoom in np.geomspace(1.0, to, frames):
        cw, ch = int(w / zoom), int(h / zoom)
        x, y = (w - cw) // 2, (h - ch) // 2
        out.append(cv2.resize(image[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR))
    return out


def photo(path: Path) -> np.ndarray:
    return cv2.resize(cv2.imread(str(path)), (640, 480), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=150, help="random photo pairs per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    training = sorted((SHARED / "face-mask-voc" / "images").glob("*.jpg"))
    jolignier = sorted((SHARED / "jolignier-val" / "images").glob("*.jpg"))
    print("| frame pairs | pairs | changed enough to look | histograms apart (rule before) "
          "| changes called (rule now) | shifts too far to check: count, peaks |")
    print("|---|---|---|---|---|---|")
    for name, photos in (("cut: training photo to photo", training), ("cut: jolignier-val photo to photo", jolignier)):
        print(row(name, [tuple(photo(p) for p in rng.sample(photos, 2)) for _ in range(args.pairs)]), flush=True)
    panned = rng.sample(training, 6)
    for steps in (45, 15, 8):
        pairs = [pair for p in panned for frames in [pan_frames(p, frames=steps)] for pair in zip(frames, frames[1:])]
        print(row(f"pan: {steps} frames across each of 6 photos", pairs), flush=True)
    pairs = [pair for p in panned for frames in [pan_frames(p, frames=3, zoom=3.0)] for pair in zip(frames, frames[1:])]
    print(row("pan: 3 frames across each of 6 photos enlarged 3x", pairs), flush=True)
    for steps in (30, 10, 5):
        pairs = [pair for p in panned for frames in [zoom_frames(p, steps)] for pair in zip(frames, frames[1:])]
        print(row(f"zoom: 1x to 2x in {steps} frames, 6 photos", pairs), flush=True)
    door = door_frames(rng.sample(training, 4), (640, 480), fps=30, seconds=8)
    print(row("door clip of 4 photos (3 switches, 4 blur-to-sharp)", list(zip(door, door[1:]))), flush=True)


if __name__ == "__main__":
    main()
