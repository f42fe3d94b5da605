"""People counted by `maskwatch watch` against the faces annotated in the photos a clip is made of.

    .venv/bin/python bench/video_people.py [--seconds-per-photo 2] [--activation 0.3 --activation 0.6]

Door-camera clips (as tests/clips.py makes them: for each photo the blurred empty doorway, then its people coming
closer, sensor noise) at 640x480 and 1920x1080, 30 fps, run as `maskwatch watch CLIP --out OUT.mp4` runs them by
default. Each photo's people are new people, so a perfect count is the photo's annotated faces, class by class.
- andrewmvd val: every photo of the validation split with 1-4 faces, each at least 60 px tall at 480 px (the split
  the shipped settings were chosen on).
- jolignier-val: its first photos by name with 1-4 faces, each at least 80 px tall at 480 px (measuring only: no
  setting is chosen on it; its annotators skipped some background faces, so a count above theirs can be right).
`--activation T` (repeatable): rows with the tracker's activation score set to T instead of
`thresholds.TRACK_ACTIVATION_SCORE`, to show what the threshold does.
Counts are totals per class, not people matched to faces one by one (a miss and a double count cancel). The
clips are built in memory (the 1080p one, 36 s, takes about 7 GB).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from accuracy import validation_set  # noqa: E402
from clips import door_frames, write_h264  # noqa: E402
from maskwatch.classes import is_unmasked  # noqa: E402
from maskwatch.detector import Detector  # noqa: E402
from maskwatch.thresholds import TRACK_ACTIVATION_SCORE  # noqa: E402
from maskwatch.video import pipeline as pipeline_module  # noqa: E402
from maskwatch.video.config import CameraConfig  # noqa: E402
from maskwatch.video.tracking import FaceTracker  # noqa: E402

FPS = 30.0
SIZES = {"640x480": (640, 480), "1080p": (1920, 1080)}


def door_photos(set_name: str, min_height_at_480: float, limit: int | None = None) -> tuple[list[Path], Counter]:
    """A validation set's photos by name that suit a door camera: landscape, 1-4 faces, each at least
    `min_height_at_480` px tall at 480 px; and their faces' classes. bench/speed.py's door clips use it too."""
    data = validation_set(set_name)
    photos, faces = [], Counter()
    for s in sorted(data.samples, key=lambda s: s.image_path.name):
        heights = (s.detections.xyxy[:, 3] - s.detections.xyxy[:, 1]) * 480 / s.height
        if 1 <= len(s.detections) <= 4 and 1.2 < s.width / s.height < 1.9 and heights.min() >= min_height_at_480:
            photos.append(s.image_path)
            faces.update(data.classes[c] for c in s.detections.class_id)
            if len(photos) == limit:
                break
    return photos, faces


def count_people(detector: Detector, clip: Path, folder: Path, activation: float) -> tuple[Counter, int]:
    """People counted per class, and the person.unmasked alerts raised."""
    # The pipeline builds its own tracker; a bench row with another activation score swaps the class it builds.
    pipeline_module.FaceTracker = partial(FaceTracker, min_confidence=activation)
    try:
        setup = CameraConfig(name="bench", source=str(clip), out=folder / "out.mp4", db=folder / "events.sqlite")
        summary = setup.pipeline(detector).run(setup.source, setup.out, overwrite=True)  # (one out.mp4, every row)
    finally:
        pipeline_module.FaceTracker = FaceTracker
    return Counter(summary.people), summary.events.get("person.unmasked", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-per-photo", type=float, default=2.0)
    parser.add_argument("--activation", type=float, action="append", default=[],
                        help="also a row with the tracker's activation score at this value (repeatable)")
    parser.add_argument("--model", default=None, help="a head's folder or ONNX file [default: the shipped one]")
    args = parser.parse_args()
    detector = Detector.load(args.model, threads=2)
    classes = list(detector.config.classes)
    sets = {"andrewmvd val": door_photos("andrewmvd", 60), "jolignier-val": door_photos("jolignier", 80, 18)}
    activations = [TRACK_ACTIVATION_SCORE] + [a for a in args.activation if a != TRACK_ACTIVATION_SCORE]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for set_name, (photos, faces) in sets.items():
            seconds = args.seconds_per_photo * len(photos)
            for size_name, size in SIZES.items():
                clip = write_h264(door_frames(photos, size, FPS, seconds), folder / "door.mp4", FPS)
                for activation in activations:
                    people, alerts = count_people(detector, clip, folder, activation)
                    rows.append((set_name, len(photos), size_name, activation, faces, people, alerts))
                    print(f"{set_name} {size_name} activation {activation}: {dict(people)} (faces {dict(faces)}), "
                          f"{alerts} alerts", file=sys.stderr, flush=True)
    print(f"\npeople counted by `maskwatch watch` on door clips ({args.seconds_per_photo:g} s per photo), "
          f"against the faces annotated")
    print("| photos | clip | tracker activation | faces annotated | people counted | "
          + " | ".join(f"{c} counted / annotated" for c in classes) + " | person.unmasked alerts / people counted "
          "unmasked |")
    print("|---|---|---|---|---|" + "---|" * len(classes) + "---|")
    for set_name, n, size_name, activation, faces, people, alerts in rows:
        default = " (default)" if activation == TRACK_ACTIVATION_SCORE else ""
        cells = " | ".join(f"{people[c]} / {faces[c]}" for c in classes)
        unmasked = sum(people[c] for c in classes if is_unmasked(c))
        print(f"| {set_name}, {n} | {size_name} | {activation:g}{default} | {sum(faces.values())} | "
              f"{sum(people.values())} | {cells} | {alerts} / {unmasked} |")


if __name__ == "__main__":
    main()
