"""COCO metrics of predictions against a ground-truth data set, with faster-coco-eval (pycocotools to
cross-check). Class schemes: 3class as annotated, 2class (mask / no_mask), or face (every class as one: detection alone)."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, get_args

import numpy as np

from maskwatch.classes import (MASK_CLASSES, TO_TWO_CLASSES, TWO_CLASSES, WITH_MASK, WITHOUT_MASK, WRONG_MASK,
                               label_map_hint, meaning_of)
from maskwatch.data.coco import to_coco_dict
from maskwatch.data.dataset import Dataset, on_faces_not_scored
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import ImagePredictions, scores_of, stem_in
from maskwatch.thresholds import NOT_SCORED_IOU

# faster-coco-eval logs its whole summary at INFO; our report carries the numbers.
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)

Scheme = Literal["3class", "2class", "face"]
SCHEMES: tuple[str, ...] = get_args(Scheme)

SUMMARY_NAMES = ["mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large",
                 "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large"]


def scheme_classes(scheme: str, dataset_classes: list[str], say: bool = False) -> tuple[list[str],
                                                                                   Callable[[str], str]]:
    """Class list and label mapping of an evaluation scheme."""
    if scheme == "3class":
        return list(dataset_classes), lambda label: label
    if scheme == "2class":  # each class by what it means (mask / no_mask, another tool's `incorrect`: no_mask)
        unknown = [c for c in dataset_classes if meaning_of(c) is None]
        if unknown:
            raise MaskwatchError(f"2class needs classes that say whether a mask is worn ({', '.join(MASK_CLASSES)}, "
                                 f"{', '.join(TWO_CLASSES)} or names that say it); the data's {unknown} say nothing "
                                 f"of a mask: rename them with --label-map OLD=NEW, or leave their boxes out with "
                                 f"OLD=")
        read = {c: TO_TWO_CLASSES[meaning_of(c)] for c in dataset_classes
                if c not in MASK_CLASSES and c not in TWO_CLASSES}
        if read and say:
            logging.getLogger(__name__).warning("2class reads the ground truth's %s by what the names say",
                                                ", ".join(f"{c!r} as {two}" for c, two in read.items()))

        def two_of(label: str) -> str:
            meaning = meaning_of(label)
            return label if label in TWO_CLASSES or meaning is None else TO_TWO_CLASSES[meaning]
        return list(TWO_CLASSES), two_of
    if scheme == "face":
        return ["face"], lambda label: "face"
    raise MaskwatchError(f"unknown class scheme {scheme!r}; use {', '.join(SCHEMES)}")


@dataclass
class CocoResult:
    """What evaluate_coco measured: COCO's summary and AP per class, and COCOeval's precision array with its IoU and
    recall thresholds (for the precision-recall curves)."""

    summary: dict[str, float]
    per_class: dict[str, dict[str, float]]
    classes: list[str]
    precision: np.ndarray  # [iou, recall, class, area, maxdet] as COCOeval computes it
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    folded: int = 0  # boxes scored as part of another: one face's copies in classes the scheme folds together


def coco_inputs(gt: Dataset, predictions: list[ImagePredictions], scheme: Scheme = "3class", say: bool = True):
    """The ground truth as a COCO dict, the predictions as COCO results (one face's copies folded, fold_copies) and
    the scheme's classes; `say`: how 2class read names that are not maskwatch's (once per evaluation: its other
    passes are quiet)."""
    gt_dict, results, labels, classes = _scored_boxes(gt, predictions, scheme, say)
    return gt_dict, fold_copies(results, labels, scheme), classes


def _scored_boxes(gt: Dataset, predictions: list[ImagePredictions], scheme: Scheme, say: bool):
    """coco_inputs before folding, with each result's label as predicted."""
    classes, label_of = scheme_classes(scheme, gt.classes, say)
    gt_dict = to_coco_dict(gt, classes, label_of)
    id_of_name = {im["file_name"]: im["id"] for im in gt_dict["images"]}
    id_of_stem = {Path(name).stem: i for name, i in id_of_name.items()}  # (Sample.stem)
    results, labels, read_by_name = [], [], {}
    for pred in predictions:
        name = pred.image.replace("\\", "/").rsplit("/", 1)[-1]
        image_id = id_of_name.get(name) or id_of_stem.get(stem_in(pred.image, id_of_stem))
        if image_id is None:
            continue  # predictions for images outside the ground truth do not count
        scores = scores_of(pred.detections)
        # A box on a region --label-map left out is neither right nor wrong (difficult faces: COCO's iscrowd).
        left_out = on_faces_not_scored(pred.detections.xyxy, gt.samples[image_id - 1], NOT_SCORED_IOU,
                                       difficult=False)
        for (x1, y1, x2, y2), label, score in zip(pred.detections.xyxy[~left_out],
                                                 [lb for lb, out in zip(pred.labels, left_out) if not out],
                                                 scores[~left_out]):
            mapped = label_of(label)
            if mapped not in classes:
                raise MaskwatchError(f"prediction label {label!r} for {pred.image} is not one of the ground truth's "
                                     f"classes {classes}" + _mismatch_hint(predictions, classes, label_of, scheme))
            if scheme == "2class" and mapped != label and label not in MASK_CLASSES and label not in TWO_CLASSES:
                read_by_name[label] = mapped  # (another model's name, read by what it says; face: any label is one)
            results.append({"image_id": image_id, "category_id": classes.index(mapped) + 1,
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(score)})
            labels.append(label)
    if read_by_name and say:
        logging.getLogger(__name__).warning("2class reads the predictions' %s by what the names say",
                                            ", ".join(f"{c!r} as {two}" for c, two in sorted(read_by_name.items())))
    return gt_dict, results, labels, classes


def fold_copies(results: list[dict], labels: list[str], scheme: Scheme) -> list[dict]:
    """Under 2class and face, one face's boxes in several classes that the scheme folds into one (its exact box
    listed with_mask and without_mask under face; without_mask and mask_weared_incorrect under 2class) as one box,
    their scores added (at most 1): what a model listing every class of a face (`detect`, COCO's way) says of the
    folded class, the detector's own face score. Scored apart, the copies after the first would each be a false
    positive. The same box listed twice under the same label stays two boxes, as 3class scores it."""
    if scheme == "3class":
        return results
    folded: list[dict] = []
    labels_of: list[set[str]] = []
    first_of: dict[tuple, list[int]] = {}  # (image, class, box): the folded boxes there
    for result, label in zip(results, labels):
        key = (result["image_id"], result["category_id"], *result["bbox"])
        into = next((i for i in first_of.get(key, []) if label not in labels_of[i]), None)
        if into is None:
            first_of.setdefault(key, []).append(len(folded))
            folded.append(dict(result))
            labels_of.append({label})
        else:
            folded[into]["score"] = min(1.0, folded[into]["score"] + result["score"])
            labels_of[into].add(label)
    return folded


def _mismatch_hint(predictions: list[ImagePredictions], classes: list[str], label_of: Callable[[str], str],
                   scheme: str) -> str:
    """How to make predictions and ground truth name the same classes: rename the predictions' labels to the ground
    truth's class of the same meaning (--label-map renames both sides), the ground truth's to the mask classes,
    or score mask against no mask."""
    strays = sorted({label for pred in predictions for label in pred.labels if label_of(label) not in classes})
    pairs = {}
    for label in strays:
        same = [c for c in classes if meaning_of(c) is not None and meaning_of(c) == meaning_of(label)]
        if len(same) == 1:
            pairs[label] = same[0]
    gt_hint = label_map_hint(c for c in classes if c not in MASK_CLASSES) if set(strays) <= set(MASK_CLASSES) else ""
    if gt_hint:  # (maskwatch's own names predicted: the ground truth's renamed to them)
        hint = f"; if the ground truth names the mask classes otherwise, rename them: {gt_hint}"
    elif pairs and len(pairs) == len(strays):
        renames = " ".join(f"--label-map {shlex.quote(f'{old}={new}')}" for old, new in pairs.items())
        hint = f"; if they mean the same, rename the predictions' labels: {renames}"
    else:  # (names that say nothing of a mask, or no class of theirs: only the user knows which is which)
        unread = [label for label in strays if label not in pairs]
        renames = [f"--label-map {shlex.quote(f'{old}={new}')}" for old, new in pairs.items()]
        renames += [f"--label-map {shlex.quote(f'{label}=CLASS')}" for label in unread]
        hint = (f"; if they name the same classes otherwise, rename the predictions' labels to the ground truth's: "
                f"{' '.join(renames)} (CLASS one of {', '.join(classes)}; it renames both sides)") if strays else ""
    two_sided = {meaning_of(c) for c in [*classes, *strays]} <= {WITH_MASK, WITHOUT_MASK, WRONG_MASK}
    if scheme == "3class" and two_sided and set(strays) <= set(TWO_CLASSES) | set(MASK_CLASSES) and (
            set(classes) <= set(TWO_CLASSES) | set(MASK_CLASSES)):
        if WRONG_MASK not in {meaning_of(c) for c in classes} and (
                WRONG_MASK in {meaning_of(s) for s in strays} or set(strays) & set(MASK_CLASSES)):
            # (a mask/no_mask ground truth counts masks worn wrongly as no mask: renamed, they would be scored
            # as without_mask and the model's mask_weared_incorrect as wrong)
            return ("; the ground truth has no class for a mask worn wrongly, so score mask against no mask: "
                    "--scheme 2class" + hint.replace("; if", " (or, if", 1) + (")" if hint else ""))
        hint += "; or score mask against no mask, which both sides can say: --scheme 2class"
    return hint


def _per_class(precision: np.ndarray, classes: list[str]) -> dict[str, dict[str, float]]:
    def mean_valid(a: np.ndarray) -> float:
        a = a[a > -1]
        return float(a.mean()) if a.size else float("nan")

    return {name: {"AP": mean_valid(precision[:, :, k, 0, -1]), "AP50": mean_valid(precision[0, :, k, 0, -1]),
                   "AP75": mean_valid(precision[5, :, k, 0, -1])}
            for k, name in enumerate(classes)}


def evaluate_coco(gt: Dataset, predictions: list[ImagePredictions], scheme: Scheme = "3class",
                  engine: Literal["faster", "pycocotools"] = "faster", say: bool = True) -> CocoResult:
    """COCO's numbers (summary: mAP, mAP50, ...; per_class AP, AP50, AP75) of predictions, matched to the
    ground truth's images by file name; images without predictions count as images where nothing was found
    (score `gt.subset(...)` to leave them out; write_report warns about that and more)."""
    gt_dict, predicted, labels, classes = _scored_boxes(gt, predictions, scheme, say)
    results = fold_copies(predicted, labels, scheme)
    if engine == "faster":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        if not results:
            coco_dt.dataset = {"images": gt_dict["images"], "annotations": [], "categories": gt_dict["categories"]}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(v) if v >= 0 else math.nan for v in evaluator.stats[:12]]  # COCO's -1: no box of that size
    precision = np.asarray(evaluator.eval["precision"])
    return CocoResult(dict(zip(SUMMARY_NAMES, stats)), _per_class(precision, classes), classes, precision,
                      np.asarray(evaluator.params.iouThrs), np.asarray(evaluator.params.recThrs),
                      folded=len(predicted) - len(results))
