"""Photometric augmentation of face crops: the looks users' cameras give that the crowd photos lack
(low light with noise, haze, motion blur, grey, heavy JPEG, low resolution)."""

from __future__ import annotations

import cv2
import numpy as np


def augment_crop(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A training crop given a random few of the looks the module docstring lists; none moves the face, so its class and
    box targets stay true."""
    img = crop.astype(np.float32)
    if rng.random() < 0.3:  # resolution loss: faces seen at a few pixels
        size = crop.shape[0]
        small = int(rng.integers(max(6, size // 6), size))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size))
    if rng.random() < 0.8:  # brightness, contrast, colour balance
        img = img * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
        img = img * rng.uniform(0.85, 1.15, size=3)
    if rng.random() < 0.15:  # low light: dark, gamma, sensor noise
        img = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(1.5, 2.5) * rng.uniform(0.3, 0.7)
        img = img + rng.normal(0, rng.uniform(2, 10), img.shape)
    if rng.random() < 0.1:  # haze: blend towards a bright grey
        alpha = rng.uniform(0.3, 0.65)
        img = img * (1 - alpha) + rng.uniform(170, 240) * alpha
    if rng.random() < 0.1:  # motion blur
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1 / k
        matrix = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1)
        kernel = cv2.warpAffine(kernel, matrix, (k, k))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    elif rng.random() < 0.15:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.1:
        grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(10, 40))])
        out = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return out


def augment_scene(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighter photometric changes for whole training scenes of the one-stage model (no resolution loss: the
    scale jitter already covers it)."""
    img = image.astype(np.float32)
    if rng.random() < 0.8:
        img = img * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
        img = img * rng.uniform(0.85, 1.15, size=3)
    if rng.random() < 0.1:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.1:
        img = img + rng.normal(0, rng.uniform(2, 8), img.shape)
    if rng.random() < 0.1:
        grey = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
