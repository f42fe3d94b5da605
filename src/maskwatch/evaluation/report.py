"""The evaluation report: COCO numbers as JSON, a PR curve per class and a confusion matrix, as PNGs."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import supervision as sv

from maskwatch.classes import MASK_CLASSES, TWO_CLASSES, label_map_hint
from maskwatch.data.dataset import Dataset, difficult_of, on_faces_not_scored
from maskwatch.data.images import upright_to_stored
from maskwatch.errors import MaskwatchError, name_some
from maskwatch.evaluation.coco_metrics import CocoResult, Scheme, evaluate_coco, scheme_classes
from maskwatch.predictions import (ImagePredictions, best_class_per_face, class_names_of, detections_from_labels,
                                   stem_in)
from maskwatch.thresholds import CONFUSION_IOU, CONFUSION_MIN_SCORE, NOT_SCORED_IOU

log = logging.getLogger(__name__)


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], title: str, path: Path) -> Path:
    """Counts of faces, the ground truth's class down, the predicted one across ("background": no face there, or
    none found), darker for more."""
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted"), ax.set_ylabel("ground truth"), ax.set_title(title, fontsize=12)
    for (row, column), n in np.ndenumerate(counts):
        ax.text(column, row, str(n), ha="center", va="center",
                color="white" if n > counts.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_pr_curves(result: CocoResult, out_dir: Path, boxes: dict[str, int] | None = None) -> list[Path]:
    """One PNG per class: precision against recall at IoU 0.5 and 0.75 (COCO's 101-point interpolation); the
    title says how many annotated boxes the curve rests on (an AP of 1.0 from 2 boxes says little)."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    paths = []
    for k, name in enumerate(result.classes):
        fig = Figure(figsize=(5, 4.2))
        ax = fig.subplots()
        for iou in (0.5, 0.75):
            precision = result.precision[int(np.argmin(np.abs(result.iou_thresholds - iou))), :, k, 0, -1]
            ap = f"AP {precision[precision > -1].mean():.3f}" if (precision > -1).any() else "no ground truth"
            ax.plot(result.recall_thresholds, np.where(precision > -1, precision, np.nan), label=f"IoU {iou}: {ap}")
        ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        count = f"\n({boxes.get(name, 0)} annotated boxes)" if boxes is not None else ""  # (one line is cut)
        ax.set_title(f"PR curve: {name}{count}", fontsize=11), ax.legend(loc="lower left"), ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"pr_{name}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths




def confusion_matrix(gt: Dataset, predictions: list[ImagePredictions], scheme: Scheme,
                     score_threshold: float, iou_threshold: float = CONFUSION_IOU) -> sv.ConfusionMatrix:
    """Faces scored at least `score_threshold`, matched to the ground truth at `iou_threshold`, each face listed
    once per class judged by its best class; detections on faces the scoring leaves out (NOT_SCORED_IOU) and
    difficult faces are left out of it."""
    classes, label_of = scheme_classes(scheme, gt.classes)
    stems = {s.stem for s in gt.samples}
    by_name = {stem_in(p.image, stems): p for p in predictions}
    preds, targets = [], []
    for sample in gt.samples:
        difficult = difficult_of(sample.detections)
        target_labels = [label_of(label) for label, d in zip(gt.labels_of(sample), difficult) if not d]
        targets.append(detections_from_labels(sample.detections.xyxy[~difficult], target_labels,
                                              np.ones(len(target_labels)), classes))
        pred = by_name.get(sample.stem)
        if pred is None:
            preds.append(detections_from_labels(np.zeros((0, 4)), [], np.zeros(0), classes))
            continue
        found = pred.detections
        found = found[~on_faces_not_scored(found.xyxy, sample, NOT_SCORED_IOU)]  # neither right nor wrong
        # A face listed once per class (detect's default, what mAP rewards) is judged by its best class: else the
        # matcher, which prefers a box of the annotated class, would take a weaker box of that class under a low
        # threshold, and call the face right and its best class's box a false positive.
        found = best_class_per_face(found[found.confidence >= score_threshold]) if len(found) else found
        labels = [label_of(str(lb)) for lb in class_names_of(found, gt.classes)] if len(found) else []
        preds.append(detections_from_labels(found.xyxy, labels, found.confidence, classes))
    return sv.ConfusionMatrix.from_detections(preds, targets, classes, conf_threshold=score_threshold,
                                              iou_threshold=iou_threshold)


def images_without_predictions(gt: Dataset, predictions: list[ImagePredictions]) -> list[str]:
    """Stems of ground-truth images no predictions line names: they score as images where nothing was found."""
    stems = {s.stem for s in gt.samples}
    predicted = {stem_in(p.image, stems) for p in predictions}
    return [s.stem for s in gt.samples if s.stem not in predicted]


def check_some_image_matched(gt: Dataset, predictions: list[ImagePredictions], where: str,
                             images: str = "the ground truth") -> None:
    """Refuse predictions none of whose lines names an image of the ground truth (an empty file, images renamed,
    lines of another data set): scored, every face would count as missed, and mAP 0 would read as a model that
    finds nothing rather than as files that do not match."""
    if not len(gt) or len(images_without_predictions(gt, predictions)) < len(gt):
        return
    if not predictions:
        raise MaskwatchError(f"{where}: no predictions line in it (an empty file?); nothing to score")
    raise MaskwatchError(f"{where}: none of its {len(predictions)} line(s) names an image of {images} (they "
                         f"name {name_some(sorted(p.image for p in predictions))}; its images are "
                         f"{name_some(sorted(s.image_path.name for s in gt.samples))}); lines are matched to images "
                         f"by file name, as `detect` writes them")


def predictions_in_stored_pixels(gt: Dataset,
                                 predictions: list[ImagePredictions]) -> tuple[list[ImagePredictions], int]:
    """Predictions of photos with an EXIF rotation moved from the upright picture they were made on (`detect`,
    `batch` and the API turn photos upright) to the stored pixels the annotations are read in; the count moved.
    A line of another size than the upright picture is left as it is (prediction_problems names it)."""
    samples = {s.stem: s for s in gt.samples}
    moved, count = [], 0
    for p in predictions:
        sample = samples.get(stem_in(p.image, samples))
        if sample is None or sample.orientation == 1:
            moved.append(p)
            continue
        upright = (sample.height, sample.width) if sample.orientation >= 5 else (sample.width, sample.height)
        if (p.width, p.height) != upright:
            moved.append(p)
            continue
        detections = deepcopy(p.detections)
        if len(detections):
            detections.xyxy = upright_to_stored(detections.xyxy, sample.orientation, sample.width, sample.height)
        moved.append(replace(p, width=sample.width, height=sample.height, detections=detections))
        count += 1
    return moved, count


def prediction_problems(gt: Dataset, predictions: list[ImagePredictions], scheme: Scheme = "3class") -> list[str]:
    """What in the predictions would skew the numbers without stopping the scoring, each said once: an image
    with more than one line (its boxes all count), predictions made on another size of the picture (boxes are
    compared in the annotation's pixels), lines for images the ground truth lacks (left out), ground-truth
    classes no prediction uses (each scores AP 0 in the mean)."""
    problems = []
    samples = {s.stem: s for s in gt.samples}
    lines = Counter(stem_in(p.image, samples) for p in predictions)
    doubled = [stem for stem, n in lines.items() if n > 1 and stem in samples]
    if doubled:
        problems.append(f"{len(doubled)} image(s) have more than one line ({name_some(doubled)}): the boxes of every "
                        f"line count, so repeated boxes are false positives")
    resized = []
    for p in predictions:
        sample = samples.get(stem_in(p.image, samples))
        if sample is not None and p.width and p.height and (p.width, p.height) != (sample.width, sample.height):
            resized.append(f"{p.image}: {p.width}x{p.height}, annotated {sample.width}x{sample.height}")
    if resized:
        problems.append(f"{len(resized)} prediction line(s) were made on a picture of another size "
                        f"({name_some(resized, 3)}); boxes are compared in the annotation's pixels, so they will "
                        f"not match: predict on the annotated images themselves (photos with an EXIF rotation: "
                        f"`maskwatch evaluate` moves predictions made upright, as detect makes them, to the stored "
                        f"pixels; in Python, evaluation.report.predictions_in_stored_pixels)")
    unsized = [p.image for p in predictions if (sample := samples.get(stem_in(p.image, samples))) is not None
               and sample.orientation != 1 and not (p.width and p.height)]
    if unsized:
        problems.append(f"{len(unsized)} prediction line(s) for photos with an EXIF rotation give no picture size "
                        f"({name_some(unsized, 3)}): their boxes are taken as drawn on the stored pixels, so boxes "
                        f"drawn on the photo turned upright will not match")
    unknown = sorted({p.image for p in predictions if stem_in(p.image, samples) not in samples})
    if unknown and len(unknown) < len(predictions):
        problems.append(f"{len(unknown)} line(s) name images that are not in the ground truth ({name_some(unknown)}); "
                        f"left out")
    _, label_of = scheme_classes(scheme, gt.classes)  # as scored: under 2class, a class folded into another
    predicted = {label_of(label) for p in predictions for label in p.labels}
    unused = Counter()
    for name, n in gt.class_counts().items():
        if n and label_of(name) not in predicted:
            unused[label_of(name)] += n
    if predicted and unused:
        stray = [name for name in unused if name not in MASK_CLASSES and name not in TWO_CLASSES]
        problems.append(f"the ground truth's class(es) {', '.join(f'{k!r} ({v} box(es))' for k, v in unused.items())} "
                        f"are never predicted: each scores AP 0 and lowers the mean" +
                        (f"; {', '.join(map(repr, stray))} is not a mask class: rename it with "
                         f"{label_map_hint(stray) or '--label-map OLD=NEW'}, "
                         f"or pass --classes to refuse labels outside a list" if stray else ""))
    return problems


@contextmanager
def warnings_said() -> Iterator[list[str]]:
    """The warnings maskwatch logs meanwhile (a predictions line left out as broken, a --label-map key used by
    neither side), for write_report's `said`: a report read later says what its run said."""
    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler, logger = Collect(logging.WARNING), logging.getLogger("maskwatch")
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


def write_report(gt: Dataset, predictions: Iterable[ImagePredictions], out_dir: Path, scheme: Scheme = "3class",
                 score_threshold: float = CONFUSION_MIN_SCORE, cross_check: bool = False,
                 inputs: dict | None = None, warn: bool = True, said: Iterable[str] = ()) -> dict:
    """inputs: what was scored (the ground truth and predictions files, options), recorded in report.json.
    What would skew the numbers (prediction_problems, images without predictions) is in report["warnings"],
    and logged unless `warn` is False (the CLI says it itself, before scoring); `said`: warnings said already
    while the inputs were read (warnings_said), recorded first."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = list(predictions)  # (read_predictions yields them: each step below reads them all)
    check_some_image_matched(gt, predictions, "the predictions")
    earlier = list(dict.fromkeys(said))
    warnings = earlier + prediction_problems(gt, predictions, scheme)
    missing = images_without_predictions(gt, predictions)
    if missing:
        warnings.append(f"{len(missing)} of {len(gt)} image(s) have no predictions ({name_some(missing)}); they "
                        f"count as images where nothing was found (to score only the predicted images: `evaluate "
                        f"--only-predicted`, or gt.subset(their stems) in Python)")
    for warning in warnings[len(earlier):] if warn else ():
        log.warning(warning)
    with warnings_said() as scoring:  # (how 2class read other names, said as it scores)
        result = evaluate_coco(gt, predictions, scheme)
    warnings += [w for w in scoring if w not in warnings]
    stems = {s.stem for s in gt.samples}
    report: dict = {"scheme": scheme, "images": len(gt), "ground_truth_boxes": gt.num_boxes,
                    "difficult_boxes": gt.num_difficult,  # neither found nor missed
                    "predicted_boxes": sum(len(p.detections) for p in predictions  # (of the images scored)
                                           if stem_in(p.image, stems) in stems),
                    **({"folded_boxes": result.folded} if scheme != "3class" else {}),  # (fold_copies)
                    "summary": result.summary, "per_class": result.per_class, **({"inputs": inputs} if inputs else {}),
                    "warnings": warnings}
    classes, label_of = scheme_classes(scheme, gt.classes)
    boxes = Counter(label_of(label) for s in gt.samples
                    for label, hard in zip(gt.labels_of(s), difficult_of(s.detections)) if not hard)
    report["boxes_per_class"] = {name: boxes.get(name, 0) for name in classes}
    if cross_check:
        check = evaluate_coco(gt, predictions, scheme, engine="pycocotools", say=False)
        report["pycocotools_summary"] = check.summary
        report["max_difference_vs_pycocotools"] = max(  # (both undefined: equal; one undefined: as far as can be)
            (abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
             for a, b in ((result.summary[k], check.summary[k]) for k in result.summary)
             if math.isfinite(a) or math.isfinite(b)), default=0.0)
    matrix = confusion_matrix(gt, predictions, scheme, score_threshold)
    report["confusion_matrix"] = {"score_threshold": score_threshold, "iou_threshold": CONFUSION_IOU,
                                  "labels": list(matrix.classes) + ["background"],
                                  "rows_are": "ground truth", "matrix": matrix.matrix.astype(int).tolist()}
    plot_confusion_matrix(report["confusion_matrix"]["matrix"], report["confusion_matrix"]["labels"],
                          f"confusion matrix ({scheme}, score >= {score_threshold})", out_dir / "confusion_matrix.png")
    report["pr_curves"] = [p.name for p in plot_pr_curves(result, out_dir, report["boxes_per_class"])]  # beside it
    for stale in set(_earlier_pr_curves(out_dir)) - set(report["pr_curves"]):  # another scheme's, run here before:
        (out_dir / stale).unlink(missing_ok=True)  # they would read as this report's
    (out_dir / "report.json").write_text(json.dumps(strict_json(report), indent=2, allow_nan=False))
    return report


def _earlier_pr_curves(out_dir: Path) -> list[str]:
    """The PR plots an earlier report in the folder wrote (plain file names only: nothing outside it is touched)."""
    try:
        names = json.loads((out_dir / "report.json").read_text()).get("pr_curves", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and n == Path(n).name and n.startswith("pr_")]


def strict_json(value):
    """NaN as null (a class without ground truth has no AP), so report.json is JSON every parser reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
