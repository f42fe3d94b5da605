"""Shifted copies of validation images, for measuring robustness: close-ups, low light, haze and motion blur,
grey, heavy JPEG, and a scale sweep. Deterministic; boxes are transformed with the image.

Each shift returns a `Dataset` whose images are written to a folder, so the normal evaluation applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import supervision as sv

from maskwatch.data.dataset import DIFFICULT, Dataset, Sample, difficult_of
from maskwatch.data.images import annotated_image, write_image


def _write(image: np.ndarray, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    write_image(path, image, jpeg_quality=95)
    return path


def photometric(dataset: Dataset, out_dir: Path, change: Callable[[np.ndarray, np.random.Generator], np.ndarray],
                 seed: int = 0) -> Dataset:
    """The data set with `change` applied to each image (the boxes stay where they are), written as PNG: lossless, so
    the change is all that differs."""
    rng = np.random.default_rng(seed)
    samples = []
    for sample in dataset.samples:
        image = change(annotated_image(sample.image_path), rng)
        path = _write(image, out_dir, f"{sample.stem}.png")
        samples.append(Sample(path, sample.width, sample.height, sample.detections))
    return Dataset(dataset.classes, samples)


def low_light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darker (gamma 2.2, then 45 % of the level) with sensor noise (sigma 6 grey levels)."""
    dark = 255 * (image / 255.0) ** 2.2 * 0.45
    return np.clip(dark + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def haze_and_motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Halfway to a light grey (200), then a horizontal motion blur 7 px long."""
    hazy = image * 0.5 + 200 * 0.5
    k = 7
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1 / k
    return np.clip(cv2.filter2D(hazy.astype(np.float32), -1, kernel), 0, 255).astype(np.uint8)


def grey(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greyscale, kept in three channels (the models take BGR)."""
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def heavy_jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Through JPEG at quality 12."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 12])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def rescaled(dataset: Dataset, out_dir: Path, factor: float) -> Dataset:
    """The data set resized by `factor` (at least 8 px a side), its boxes scaled with the images."""
    samples = []
    for sample in dataset.samples:
        image = annotated_image(sample.image_path)
        w, h = max(8, round(sample.width * factor)), max(8, round(sample.height * factor))
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
        xyxy = sample.detections.xyxy * np.array([w / sample.width, h / sample.height] * 2, np.float32)
        path = _write(image, out_dir, f"{sample.stem}.jpg")
        samples.append(Sample(path, w, h, sv.Detections(xyxy=xyxy, class_id=sample.detections.class_id.copy(),
                                                         data={DIFFICULT: difficult_of(sample.detections)})))
    return Dataset(dataset.classes, samples)


def closeups(dataset: Dataset, out_dir: Path, size: tuple[int, int], min_face_px: float = 20,
             per_image: int = 2, seed: int = 0) -> Dataset:
    """Crops around single faces (the largest few per image) so the face fills 30-60 % of the frame width,
    resized to `size` (width, height): what a webcam at a door sees."""
    rng = np.random.default_rng(seed)
    out_w, out_h = size
    samples = []
    for sample in dataset.samples:
        boxes = sample.detections.xyxy
        widths = boxes[:, 2] - boxes[:, 0]
        order = [i for i in np.argsort(-widths) if widths[i] >= min_face_px][:per_image]
        if not order:
            continue
        image = annotated_image(sample.image_path)
        for i in order:
            x1, y1, x2, y2 = boxes[i]
            fill = rng.uniform(0.3, 0.6)
            crop_w = (x2 - x1) / fill
            crop_h = crop_w * out_h / out_w
            cx = (x1 + x2) / 2 + rng.uniform(-0.15, 0.15) * crop_w
            cy = (y1 + y2) / 2 + rng.uniform(-0.1, 0.1) * crop_h
            scale = out_w / crop_w
            matrix = np.array([[scale, 0, out_w / 2 - cx * scale], [0, scale, out_h / 2 - cy * scale]], np.float32)
            view = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            moved = boxes * scale + np.array([matrix[0, 2], matrix[1, 2]] * 2, np.float32)
            clipped = moved.copy()
            clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, out_w)
            clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, out_h)
            area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
            inside = area(clipped) >= 0.6 * area(moved)  # faces cut by the frame edge are left out of the truth
            path = _write(view, out_dir, f"{sample.stem}_face{i}_{out_w}x{out_h}.jpg")
            samples.append(Sample(path, out_w, out_h, sv.Detections(
                xyxy=clipped[inside].astype(np.float32), class_id=sample.detections.class_id[inside],
                data={DIFFICULT: difficult_of(sample.detections)[inside]})))
    return Dataset(dataset.classes, samples)


def shifted_sets(dataset: Dataset, out_dir: Path, scales: tuple[float, ...] = (0.5, 1.0, 2.0)) -> dict[str, Dataset]:
    """Every shift of the data set, by the name bench/robustness.py reports it under, the original first; each shift's
    images are written under out_dir (a scale of 1.0 would be the original: skipped)."""
    sets = {
        "original": dataset,
        "closeup 240x240": closeups(dataset, out_dir / "closeup240", (240, 240)),
        "closeup 640x480": closeups(dataset, out_dir / "closeup640", (640, 480)),
        "low light + noise": photometric(dataset, out_dir / "lowlight", low_light),
        "haze + motion blur": photometric(dataset, out_dir / "haze", haze_and_motion_blur),
        "greyscale": photometric(dataset, out_dir / "grey", grey),
        "JPEG q12": photometric(dataset, out_dir / "jpeg", heavy_jpeg),
    }
    for factor in scales:
        if factor != 1.0:
            sets[f"scale {factor:g}x"] = rescaled(dataset, out_dir / f"scale{factor:g}", factor)
    return sets


def zero_shot_faces(finder, policy) -> Callable[[np.ndarray], sv.Detections]:
    """The reference: the face finder alone (no head), its boxes labelled 'face', for face-only AP."""
    from maskwatch.predictions import detections_from_labels

    def predict(image: np.ndarray) -> sv.Detections:
        faces = finder(image, policy)
        return detections_from_labels(faces.xyxy, ["face"] * len(faces), faces.confidence, ["face"])

    return predict
