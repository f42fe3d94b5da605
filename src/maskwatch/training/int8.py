"""What the 8-bit copies are calibrated on (models/quantize.py does the quantising): training photos and face
pictures only, never validation data, drawn the same way every time so that a file can be made again.

Used by tools/quantize_models.py for the shipped model and by `maskwatch train` for a trained head, which it
writes beside the float one (`model/mask_head-int8.onnx`; `--model RUN/model/mask_head-int8.onnx` runs it with
the 8-bit face finder).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from maskwatch.crops import crop_faces, crops_to_blob
from maskwatch.detector import Detector, int8_twin
from maskwatch.face_finder import finder_input
from maskwatch.models.quantize import quantize_face_finder, quantize_head
from maskwatch.thresholds import CALIBRATION_FACE_SCORE, MIN_FACE_SCORE

HEAD_BATCH = 64  # crops per calibration batch (the percentile calibration stacks batches: all of one size)


def draw(stems: list[str]) -> tuple[list[str], list[str]]:
    """Which training photos calibrate what (seeded, from the sorted names): 50 for the face finder, 40 for the
    head (a second shuffle of the first)."""
    drawn = sorted(stems)
    random.Random(0).shuffle(drawn)
    for_finder = drawn[:50]
    random.Random(1).shuffle(drawn)
    return for_finder, drawn[:40]


def finder_calibration(photos: list[np.ndarray], pictures: list[np.ndarray]) -> list[np.ndarray]:
    """Each photo at 1x and 2x, each face picture at most 480 px long."""
    blobs = [finder_input(photo, scale)[0] for photo in photos for scale in (1.0, 2.0)]
    return blobs + [finder_input(im, min(1.0, 480 / max(im.shape[:2])))[0] for im in pictures]


def head_calibration(detector: Detector, photos: list[np.ndarray], pictures: list[np.ndarray]) -> list[np.ndarray]:
    """Crops of what the head sees at run time: the face finder's candidates (score >= MIN_FACE_SCORE, at most 12
    per photo) and the clear faces (>= CALIBRATION_FACE_SCORE, at most 2) of the pictures, shuffled (seeded), in
    batches of one size."""
    config = detector.config
    crops = []
    for photo in photos:
        faces = detector.find_faces(photo)
        faces = faces[faces.confidence >= MIN_FACE_SCORE]
        crops.append(crop_faces(photo, faces.xyxy[:12], config.crop_size, config.crop_context))
    for image in pictures:
        faces = detector.find_faces(image)
        faces = faces[faces.confidence >= CALIBRATION_FACE_SCORE]
        crops.append(crop_faces(image, faces.xyxy[:2], config.crop_size, config.crop_context))
    crops = np.concatenate(crops)
    np.random.default_rng(0).shuffle(crops)
    crops = crops[:max(HEAD_BATCH, len(crops) // HEAD_BATCH * HEAD_BATCH)]
    return [crops_to_blob(crops[i:i + HEAD_BATCH]) for i in range(0, len(crops), HEAD_BATCH)]


def write_int8_head(head: Path, photos: list[np.ndarray], pictures: list[np.ndarray], out: Path | None = None,
                    threads: int | None = None) -> Path:
    """The 8-bit copy of a trained head (float `head` with its JSON beside it), calibrated on training photos and
    face pictures; written beside it unless `out`."""
    detector = Detector(head, threads=threads)  # (not Detector.load: a --quick run's head, train says so itself)
    target = out or int8_twin(head)
    quantize_head(head, target, head_calibration(detector, photos, pictures))
    return target


def write_int8_finder(finder: Path, photos: list[np.ndarray], pictures: list[np.ndarray], out: Path) -> Path:
    """The 8-bit copy of the face finder, calibrated on training photos and face pictures, written to `out`;
    tools/quantize_models.py makes the shipped one."""
    quantize_face_finder(finder, out, finder_calibration(photos, pictures))
    return out
