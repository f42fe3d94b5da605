"""Test clips made from real training photos: a camera panning across a crowd photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def pan_frames(photo: Path, size: tuple[int, int] = (640, 480), frames: int = 45, zoom: float = 2.0) -> list[np.ndarray]:
    image = cv2.imread(str(photo))
    big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    w, h = size
    if big.shape[1] < w or big.shape[0] < h:
        big = cv2.resize(big, (max(w, big.shape[1]), max(h, big.shape[0])))
    xs = np.linspace(0, big.shape[1] - w, frames).astype(int)
    y = (big.shape[0] - h) // 2
    return [big[y:y + h, x:x + w].copy() for x in xs]


def write_clip(frames: list[np.ndarray], path: Path, fps: float = 15.0, codec: str = "mp4v") -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
