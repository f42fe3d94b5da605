"""`maskwatch detect`: images, folders, list files in (data/inputs.py), annotated images and JSONL predictions
out; a bad file is reported and skipped, the rest goes on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from maskwatch.annotate import annotate
from maskwatch.data.images import annotated_copy_name, read_image, save_annotated_copy
from maskwatch.data.inputs import CopiesRecord, copy_names, output_names
from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import ImagePredictions, best_class_per_face, class_names_of, write_predictions
from maskwatch.thresholds import FOR_METRICS, FOR_PEOPLE


@dataclass
class DetectSummary:
    """What `maskwatch detect` did, for the CLI to say when it ends: images read, inputs that failed and copies not
    written (said together, not as they happen), and faces per class as drawn (one box per face)."""

    images: int = 0
    failed: list[str] = field(default_factory=list)  # unreadable inputs
    not_written: list[str] = field(default_factory=list)  # annotated copies that could not be written
    counts: Counter = field(default_factory=Counter)
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM: what was done is kept (whole lines, whole copies)


def detect_images(detector: Detector, paths: list[Path], out_dir: Path | None, min_score: float,
                  draw_score: float, all_classes: bool, summary: DetectSummary) -> Iterator[ImagePredictions]:
    """Predictions for each readable image; annotated copies (boxes scored >= draw_score) into out_dir, under the
    input's own name and format (inputs that share a name keep enough of their folders to differ; a format OpenCV
    does not write, such as HEIC, gets .jpg added: data.images.save_annotated_copy; no two copies share a name:
    data.inputs.copy_names); out_dir is made only when there is something to put in it."""
    names = output_names(paths)
    copies = copy_names(names) if out_dir else names
    record = CopiesRecord(out_dir) if out_dir else None  # (which files are ours: the next run writes over only them)
    for path, name, copy in tqdm(list(zip(paths, names, copies)), desc="detecting", unit="img",
                                 disable=len(paths) < 2):
        try:
            image = read_image(path)
        except MaskwatchError as exc:  # said once, with the others, when the run ends (the CLI lists them)
            summary.failed.append(f"{exc}")
            continue
        detections = detector(image, min_score=min_score, all_classes=all_classes)
        summary.images += 1
        shown = best_class_per_face(detections[detections.confidence >= draw_score] if len(detections) else detections)
        summary.counts.update(str(n) for n in class_names_of(shown, detector.classes))
        if out_dir:
            try:
                record.add(out_dir / annotated_copy_name(copy))  # (before: a run stopped while writing owns it)
                save_annotated_copy(out_dir, copy, annotate(image, shown, detector.classes))
            except MaskwatchError as exc:  # said when the run ends; the predictions and counts stand
                summary.not_written.append(str(exc))
        yield ImagePredictions(name, image.shape[1], image.shape[0], detections)


def run_detect(detector: Detector, images: list[Path], out_dir: Path | None, json_out: Path | None,
               min_score: float = FOR_METRICS.min_score, draw_score: float = FOR_PEOPLE.min_score,
               all_classes: bool = FOR_METRICS.all_classes) -> DetectSummary:
    """The predictions follow FOR_METRICS by default (they are what `evaluate` scores); the drawn image and the
    counts always show one box per face, its best class. images: from data.inputs.collect_images, gathered by
    the caller before the model loads, so a wrong input is said at once."""
    summary = DetectSummary()
    if not json_out:  # only the drawing and the counts are kept: the low tail need not be classified
        min_score = max(min_score, draw_score)
    stream = detect_images(detector, images, out_dir, min_score, draw_score, all_classes, summary)
    try:
        if json_out:
            write_predictions(stream, json_out)
        else:
            for _ in stream:
                pass
    except KeyboardInterrupt:  # (the predictions file is closed whole on the way out)
        summary.interrupted = True
    return summary
