"""What a person sees and counts at a score threshold: precision, recall and F1 of one box per face (its best
class), on both validation sets. Chooses thresholds.FOR_PEOPLE (the drawing / counting threshold, 0.4).

    .venv/bin/python bench/people_threshold.py [--model shipped|runs/NAME ...] [--threshold 0.3 ...]

A detection is right when it overlaps a ground-truth face at IoU >= 0.5 (each face matched once, highest scores
first) and its class is that face's; "face" columns ignore the class. Recall is over all ground-truth faces.
"""

from __future__ import annotations

import argparse

import numpy as np
import supervision as sv

from accuracy import validation_set
from maskwatch.data.images import annotated_image
from maskwatch.detector import Detector

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def matched(detector, dataset) -> tuple[np.ndarray, int]:
    """Per detection (score >= 0.05, best class per face): score, right class, right face; and the face count."""
    rows, faces = [], 0
    for sample in dataset.samples:
        found = detector(annotated_image(sample.image_path), min_score=0.05, all_classes=False)
        truth = sample.detections
        faces += len(truth)
        iou = sv.box_iou_batch(found.xyxy, truth.xyxy) if len(found) and len(truth) else None
        used: set[int] = set()
        for i in np.argsort(-found.confidence):
            j = int(np.argmax(iou[i])) if iou is not None else -1
            if j >= 0 and iou[i, j] >= 0.5 and j not in used:
                used.add(j)
                rows.append((found.confidence[i], found.class_id[i] == truth.class_id[j], True))
            else:
                rows.append((found.confidence[i], False, False))
    return np.array(rows, dtype=float).reshape(-1, 3), faces


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="'shipped' or a trained model / run folder (repeatable)")
    parser.add_argument("--threshold", action="append", type=float, help=f"default {THRESHOLDS}")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print("| model | set | threshold | precision | recall | F1 | face precision | face recall | face F1 | boxes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in args.model or ["shipped"]:
        detector = Detector.load(None if model == "shipped" else model, threads=args.threads)
        for set_name in ("andrewmvd", "jolignier"):
            rows, faces = matched(detector, validation_set(set_name))
            for threshold in args.threshold or THRESHOLDS:
                kept = rows[rows[:, 0] >= threshold]
                n = max(len(kept), 1)
                p, r = kept[:, 1].sum() / n, kept[:, 1].sum() / faces
                fp, fr = kept[:, 2].sum() / n, kept[:, 2].sum() / faces
                print(f"| {model} | {set_name} | {threshold:g} | {p:.3f} | {r:.3f} | {f1(p, r):.3f} | {fp:.3f} | "
                      f"{fr:.3f} | {f1(fp, fr):.3f} | {len(kept)} |", flush=True)


if __name__ == "__main__":
    main()
