"""Accuracy and speed of detectors on both validation sets, in one table.

    .venv/bin/python bench/accuracy.py [--model shipped|shipped-int8|face-finder|runs/NAME ...] [--scale auto ...]
                                       [--set andrewmvd --set jolignier] [--best-class] [--policy NAME=VALUE ...]

Sets: `andrewmvd` is the validation split of the training set (splits/face-mask-voc/val.txt: 114 crowd photos,
677 faces); `jolignier` is ../shared/datasets/jolignier-val (403 web and news photos, 997 bigger faces, other
annotators; for measuring only). `face-finder` is the zero-shot face finder alone (CenterFace under the same
scale policy, no head): its face AP is the floor the detector must not fall below.

Columns: 3-class mAP@.5 and mAP@[.5:.95], AP@.5 per class, 2-class AP@.5 (mask / no mask), face AP@.5 and
AP@[.5:.95] (class-agnostic), ms per image (onnxruntime, warm, --threads), and ms for one 640x480 frame (median
of 20, the first image of the set resized). Predictions list every class a face scores >= 0.01 in (what
`maskwatch detect` writes); --best-class adds rows with one box per face. Writes out/bench/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from maskwatch.data import Dataset, load_dataset
from maskwatch.data.images import annotated_image
from maskwatch.data.split import read_list
from maskwatch.detector import Detector
from maskwatch.evaluation import evaluate_coco
from maskwatch.evaluation.shifts import zero_shot_faces
from maskwatch.face_finder import FaceFinder, ScalePolicy
from maskwatch.predictions import ImagePredictions
from maskwatch.thresholds import FOR_METRICS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "datasets"
FACE_FINDER = "face-finder"


def validation_set(name: str) -> Dataset:
    if name == "andrewmvd":
        return load_dataset(SHARED / "face-mask-voc").subset(read_list(ROOT / "splits" / "face-mask-voc" / "val.txt"))
    if name == "jolignier":
        return load_dataset(SHARED / "jolignier-val")
    raise SystemExit(f"unknown set {name!r}: andrewmvd or jolignier")


def zero_shot(policy: ScalePolicy, threads: int):
    """The face finder alone (face AP only), called like a detector."""
    predict = zero_shot_faces(FaceFinder(threads=threads), policy)
    return lambda image, **_: predict(image)


def policy_of(scale: str, overrides: list[str]) -> ScalePolicy:
    """The scale policy with NAME=VALUE overrides (to measure the defaults against other settings)."""
    policy = ScalePolicy.parse(scale)
    for item in overrides:
        name, _, value = item.partition("=")
        if not hasattr(policy, name):
            raise SystemExit(f"--policy {item}: ScalePolicy has no {name!r}")
        current = getattr(policy, name)
        setattr(policy, name, tuple(int(v) for v in value.split(",")) if isinstance(current, tuple) else float(value))
    return policy


def run(model: str, scale: str, dataset: Dataset, set_name: str, all_classes: bool, threads: int,
        images: list[np.ndarray], overrides: list[str], adjust: Callable[[Detector], None] | None = None) -> dict:
    """One row: `model` on `dataset`; `adjust` changes the loaded detector first (bench/variants.py)."""
    policy = policy_of(scale, overrides)
    if model == FACE_FINDER:
        detector = zero_shot(policy, threads)
    else:
        detector = Detector.load(None if model == "shipped" else model, threads=threads)
        detector.policy = policy
        if adjust is not None:
            adjust(detector)
    detector(images[0])  # warm up
    predictions, started = [], time.perf_counter()
    for sample, image in zip(dataset.samples, images):
        detections = detector(image, min_score=FOR_METRICS.min_score, all_classes=all_classes)
        predictions.append(ImagePredictions(sample.image_path.name, sample.width, sample.height, detections))
    ms_per_image = (time.perf_counter() - started) / len(images) * 1000
    frame = cv2.resize(images[0], (640, 480))
    timings = []
    for _ in range(20):
        t = time.perf_counter()
        detector(frame)
        timings.append((time.perf_counter() - t) * 1000)
    face = evaluate_coco(dataset, predictions, "face")
    row = {"model": model, "scale": scale, "set": set_name, "all_classes": all_classes, "images": len(dataset),
           "boxes": dataset.num_boxes, "face_AP50": face.summary["mAP50"], "face_AP": face.summary["mAP"],
           "ms_per_image": ms_per_image, "ms_640x480": float(np.median(timings))}
    if model != FACE_FINDER:
        three, two = evaluate_coco(dataset, predictions, "3class"), evaluate_coco(dataset, predictions, "2class")
        row |= {"mAP50": three.summary["mAP50"], "mAP": three.summary["mAP"],
                "per_class_AP50": {k: v["AP50"] for k, v in three.per_class.items()},
                "per_class_AP": {k: v["AP"] for k, v in three.per_class.items()},
                "2class_AP50": two.summary["mAP50"]}
    return row


def table(rows: list[dict]) -> str:
    classes = next((list(r["per_class_AP50"]) for r in rows if "per_class_AP50" in r), [])
    header = ["model", "scale", "set", "boxes/face", "mAP@.5", "mAP@[.5:.95]", *[f"AP50 {c}" for c in classes],
              "2-class AP50", "face AP50", "face AP", "ms/img", "ms 640x480"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        scored = "mAP50" in r
        cells = [r["model"], r["scale"], r["set"], ("all classes" if r["all_classes"] else "best class") if scored else "-",
                 *([f"{r['mAP50']:.3f}", f"{r['mAP']:.3f}", *[f"{r['per_class_AP50'][c]:.3f}" for c in classes],
                    f"{r['2class_AP50']:.3f}"] if scored else ["-"] * (3 + len(classes))),
                 f"{r['face_AP50']:.3f}", f"{r['face_AP']:.3f}", f"{r['ms_per_image']:.0f}", f"{r['ms_640x480']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append",
                        help="'shipped', 'shipped-int8', 'face-finder' or a trained model / run folder "
                             "(repeatable); default shipped")
    parser.add_argument("--scale", action="append", help="auto, 1, 2 ... (repeatable); default auto")
    parser.add_argument("--set", action="append", choices=["andrewmvd", "jolignier"],
                        help="validation set (repeatable); default both")
    parser.add_argument("--best-class", action="store_true", help="also rows with one box per face")
    parser.add_argument("--policy", action="append", default=[],
                        help="override a ScalePolicy setting, NAME=VALUE (repeatable), e.g. max_side=1920")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "accuracy.json")
    args = parser.parse_args()
    rows = []
    for set_name in args.set or ["andrewmvd", "jolignier"]:
        dataset = validation_set(set_name)
        images = [annotated_image(s.image_path) for s in dataset.samples]
        for model in args.model or ["shipped"]:
            for scale in args.scale or ["auto"]:
                for all_classes in ([True, False] if args.best_class and model != FACE_FINDER else [True]):
                    rows.append(run(model, scale, dataset, set_name, all_classes, args.threads, images, args.policy))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
