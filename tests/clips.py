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


def walk_through_frames(faces: list[np.ndarray], size: tuple[int, int] = (480, 320), frames: int = 60,
                        start_frames: tuple[int, ...] = (0, 25), span: int = 30) -> list[np.ndarray]:
    """Faces (BGR crops) crossing a plain background one after another: each enters at the left at its start
    frame, walks right for `span` frames and leaves. People entering and leaving a door's view."""
    w, h = size
    clip = []
    for index in range(frames):
        frame = np.full((h, w, 3), (150, 160, 165), np.uint8)
        for face, start in zip(faces, start_frames):
            t = index - start
            if not 0 <= t < span:
                continue
            fh, fw = face.shape[:2]
            x = int(-fw + (w + fw) * t / (span - 1))
            y = (h - fh) // 2
            x1, x2 = max(0, x), min(w, x + fw)
            if x2 > x1:
                frame[y:y + fh, x1:x2] = face[:, x1 - x:x2 - x]
        clip.append(frame)
    return clip
