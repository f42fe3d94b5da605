"""Where faces are lost, by their height: recall at IoU 0.5 of the detector (the default, every class listed) and
of the face finder's own candidates, on both validation sets, per band of annotated face height (pixels).

    .venv/bin/python bench/recall_by_size.py [--model shipped|runs/NAME]

Says which faces the detector misses (tiny crowd faces, big web faces) before anyone trains for them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import supervision as sv

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import validation_set  # noqa: E402
from maskwatch.data.images import annotated_image  # noqa: E402
from maskwatch.detector import Detector  # noqa: E402
from maskwatch.thresholds import FOR_METRICS  # noqa: E402

BANDS = (0, 10, 15, 20, 30, 50, 100, 10_000)


def best_iou(truth: np.ndarray, found: sv.Detections) -> np.ndarray:
    return sv.box_iou_batch(truth, found.xyxy).max(axis=1) if len(found) and len(truth) else np.zeros(len(truth))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a trained model or run folder [default: the shipped one]")
    args = parser.parse_args()
    detector = Detector.load(args.model, threads=2)
    print("| set | face height px | faces | recall@.5 detector | recall@.5 face finder's candidates |")
    print("|---|---|---|---|---|")
    for name in ("andrewmvd", "jolignier"):
        total, found, candidates = (np.zeros(len(BANDS) - 1) for _ in range(3))
        for sample in validation_set(name).samples:
            image = annotated_image(sample.image_path)
            truth = sample.detections.xyxy
            band = np.digitize(truth[:, 3] - truth[:, 1], BANDS) - 1
            hit = best_iou(truth, detector(image, min_score=FOR_METRICS.min_score, all_classes=True)) >= 0.5
            seen = best_iou(truth, detector.find_faces(image)) >= 0.5
            np.add.at(total, band, 1)
            np.add.at(found, band, hit)
            np.add.at(candidates, band, seen)
        for i in range(len(BANDS) - 1):
            label = f"{BANDS[i]}-{BANDS[i + 1]}" if BANDS[i + 1] < 10_000 else f">= {BANDS[i]}"
            n = max(total[i], 1)
            print(f"| {name} | {label} | {int(total[i])} | {found[i] / n:.2f} | {candidates[i] / n:.2f} |")


if __name__ == "__main__":
    main()
