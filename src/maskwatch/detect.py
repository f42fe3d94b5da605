"""`maskwatch detect`: images and folders in, annotated images and JSONL predictions out; a bad file is
reported and skipped, the rest goes on."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
from tqdm import tqdm

from maskwatch.annotate import annotate
from maskwatch.data.images import IMAGE_SUFFIXES, list_images, read_image
from maskwatch.detector import Detector, best_class_per_face
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import ImagePredictions, write_predictions

log = logging.getLogger(__name__)


def collect_images(inputs: list[Path]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = list_images(item)
            if not found:
                log.warning("%s: no images (%s) in this folder", item, ", ".join(IMAGE_SUFFIXES))
            paths += found
        elif item.exists():
            paths.append(item)
        else:
            raise MaskwatchError(f"{item}: no such file or folder")
    return paths


@dataclass
class DetectSummary:
    images: int = 0
    failed: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def detect_images(detector: Detector, paths: list[Path], out_dir: Path | None, min_score: float,
                  draw_score: float, all_classes: bool, summary: DetectSummary) -> Iterator[ImagePredictions]:
    """Predictions for each readable image; annotated copies (boxes scored >= draw_score) into out_dir."""
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(paths, desc="detecting", unit="img", disable=len(paths) < 2):
        try:
            image = read_image(path)
        except MaskwatchError as exc:
            log.error("%s", exc)
            summary.failed.append(f"{exc}")
            continue
        detections = detector(image, min_score=min_score, all_classes=all_classes)
        summary.images += 1
        shown = best_class_per_face(detections[detections.confidence >= draw_score] if len(detections) else detections)
        summary.counts.update(str(n) for n in shown.data.get("class_name", []))
        if out_dir:
            cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), annotate(image, shown, detector.classes),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
        yield ImagePredictions(path.name, image.shape[1], image.shape[0], detections)


def run_detect(detector: Detector, inputs: list[Path], out_dir: Path | None, json_out: Path | None,
               min_score: float = 0.01, draw_score: float = 0.4, all_classes: bool = True) -> DetectSummary:
    """all_classes: the predictions list every class a face scores >= min_score in (what COCO mAP rewards);
    the drawn image and the counts always show one box per face, its best class."""
    summary = DetectSummary()
    stream = detect_images(detector, collect_images(inputs), out_dir, min_score, draw_score, all_classes, summary)
    if json_out:
        write_predictions(stream, json_out)
    else:
        for _ in stream:
            pass
    return summary
