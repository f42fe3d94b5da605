"""Accuracy and speed of the shipped detector (or a trained one) on the validation split.

    .venv/bin/python bench/accuracy.py [--model runs/NAME] [--data ../shared/datasets/face-mask-voc]

Prints a table: model, input scale, 3-class mAP@.5 and mAP@[.5:.95], AP@.5 per class, 2-class and face AP@.5,
ms per image (onnxruntime, warm, 2 threads), and ms for a 640x480 frame. Writes out/bench/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data import load_dataset
from maskwatch.data.images import read_image
from maskwatch.data.split import read_list
from maskwatch.detector import Detector
from maskwatch.evaluation import evaluate_coco
from maskwatch.predictions import ImagePredictions

ROOT = Path(__file__).resolve().parents[1]


def run(model: str | None, scale: str, data: Path, val_list: Path, all_classes: bool, threads: int) -> dict:
    dataset = load_dataset(data)
    val = dataset.subset(read_list(val_list))
    detector = Detector.load(None if model in (None, "shipped") else model, threads=threads, scale=scale)
    images = [read_image(s.image_path) for s in val.samples]
    detector(images[0])  # warm up
    predictions, started = [], time.perf_counter()
    for sample, image in zip(val.samples, images):
        detections = detector(image, min_score=0.01, all_classes=all_classes)
        predictions.append(ImagePredictions(sample.image_path.name, sample.width, sample.height, detections))
    ms_per_image = (time.perf_counter() - started) / len(images) * 1000
    frame = cv2.resize(images[0], (640, 480))
    timings = []
    for _ in range(10):
        t = time.perf_counter()
        detector(frame)
        timings.append((time.perf_counter() - t) * 1000)
    three, two, face = (evaluate_coco(val, predictions, s) for s in ("3class", "2class", "face"))
    return {"model": model or "shipped", "scale": scale, "all_classes": all_classes, "images": len(val),
            "boxes": val.num_boxes, "mAP50": three.summary["mAP50"], "mAP": three.summary["mAP"],
            "per_class_AP50": {k: v["AP50"] for k, v in three.per_class.items()},
            "per_class_AP": {k: v["AP"] for k, v in three.per_class.items()},
            "2class_AP50": two.summary["mAP50"], "face_AP50": face.summary["mAP50"], "face_AP": face.summary["mAP"],
            "ms_per_image": ms_per_image, "ms_640x480": float(np.median(timings))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="'shipped', a trained model or run folder (two- or one-stage; repeatable); default shipped")
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    parser.add_argument("--val", type=Path, default=ROOT / "splits" / "face-mask-voc" / "val.txt")
    parser.add_argument("--scale", action="append", help="auto, 1, 2 ... (repeatable); default auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for model in args.model or [None]:
        for scale in args.scale or ["auto"]:
            for all_classes in (False, True):
                rows.append(run(model, scale, args.data, args.val, all_classes, args.threads))
    classes = list(rows[0]["per_class_AP50"])
    header = ["model", "scale", "boxes/face", "mAP@.5", "mAP@[.5:.95]", *[f"AP50 {c}" for c in classes],
              "2cl AP50", "face AP50", "ms/img", "ms 640x480"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        cells = [r["model"], r["scale"], "all classes" if r["all_classes"] else "best class", f"{r['mAP50']:.3f}",
                 f"{r['mAP']:.3f}", *[f"{r['per_class_AP50'][c]:.3f}" for c in classes], f"{r['2class_AP50']:.3f}",
                 f"{r['face_AP50']:.3f}", f"{r['ms_per_image']:.0f}", f"{r['ms_640x480']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
