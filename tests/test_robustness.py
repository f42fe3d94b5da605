"""Regression check on shifted validation images (generous floors; the full table is bench/robustness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskwatch import Detector
from maskwatch.data import load_dataset
from maskwatch.data.images import read_image
from maskwatch.data.split import read_list
from maskwatch.evaluation import evaluate_coco
from maskwatch.evaluation.shifts import closeups, haze_and_motion_blur, low_light, photometric, zero_shot_faces
from maskwatch.face_finder import FaceFinder
from maskwatch.predictions import ImagePredictions

VAL = Path(__file__).resolve().parents[1] / "splits" / "face-mask-voc" / "val.txt"


@pytest.fixture(scope="module")
def val(data_dir):
    dataset = load_dataset(data_dir).subset(read_list(VAL))
    dataset.samples = dataset.samples[:25]
    return dataset


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(threads=2)


def face_ap50_and_predictions(dataset, predict) -> tuple[float, list[ImagePredictions]]:
    preds = [ImagePredictions(s.image_path.name, s.width, s.height, predict(read_image(s.image_path)))
             for s in dataset.samples]
    return evaluate_coco(dataset, preds, "face").summary["mAP50"], preds


def test_closeups_are_found_and_classified(val, detector, tmp_path):
    shifted = closeups(val, tmp_path / "closeups", (240, 240))
    assert len(shifted) >= 20
    ours, preds = face_ap50_and_predictions(shifted, lambda im: detector(im, min_score=0.01, all_classes=True))
    reference, _ = face_ap50_and_predictions(shifted, zero_shot_faces(FaceFinder(threads=2), detector.policy))
    two_class = evaluate_coco(shifted, preds, "2class").summary["mAP50"]
    assert ours >= 0.85 and ours >= reference - 0.02, (ours, reference)
    assert two_class >= 0.8


@pytest.mark.parametrize("change", [low_light, haze_and_motion_blur])
def test_fine_tuning_did_not_forget_how_to_find_faces(val, detector, tmp_path, change):
    shifted = photometric(val, tmp_path / change.__name__, change)
    ours, _ = face_ap50_and_predictions(shifted, lambda im: detector(im, min_score=0.01, all_classes=True))
    reference, _ = face_ap50_and_predictions(shifted, zero_shot_faces(FaceFinder(threads=2), detector.policy))
    assert ours >= reference - 0.02, (ours, reference)
