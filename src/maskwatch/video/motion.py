"""Motion gating: a frame that looks like the last detected one needs no new detection (Frigate runs its detector
only where motion is). Frames are compared small and blurred, which costs well under a millisecond and ignores
sensor noise and compression shimmer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from maskwatch.video.realtime import REALTIME, RealtimeSettings


def changed_share(a: np.ndarray, b: np.ndarray, delta: float) -> float:
    """Share of pixels whose grey level differs by more than `delta` between two same-sized frames."""
    return float((cv2.absdiff(a, b) > delta).mean())


@lru_cache(maxsize=8)
def hanning_window(shape: tuple[int, ...]) -> np.ndarray:
    """The window phase correlation weighs a frame of this shape by (read only)."""
    return cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)


@dataclass(frozen=True)
class PictureShift:
    """What whole_picture_shift found: the shift, phase correlation's confidence in it, and how much change it leaves
    unexplained."""

    dx: float  # in pixels of the small frames
    dy: float
    peak: float  # phase correlation's peak, 0-1: low when nothing in the two frames moved together
    unexplained: float | None  # share of pixels still changed after the shift; None: moved too far to tell


def whole_picture_shift(reference: np.ndarray, current: np.ndarray, delta: float) -> PictureShift:
    """The shift that best maps `reference` onto `current` (phase correlation) and the share of pixels still
    changed after it, counted where both frames show the same part of the scene (no shift, and every pixel, when
    it is under half a pixel; not counted when the picture moved a quarter of its size or more)."""
    reference, current = reference.astype(np.float32), current.astype(np.float32)
    # (copies: OpenCV applies the window to its inputs in place, and `reference` is shifted below)
    (dx, dy), peak = cv2.phaseCorrelate(reference.copy(), current.copy(), hanning_window(current.shape))
    if abs(dx) < 0.5 and abs(dy) < 0.5:
        return PictureShift(0.0, 0.0, peak, changed_share(current, reference, delta))
    margin = int(np.ceil(max(abs(dx), abs(dy)))) + 1  # the strip that came into view has no reference
    if 4 * margin >= min(current.shape):
        return PictureShift(dx, dy, peak, None)
    moved = cv2.warpAffine(reference, np.float32([[1, 0, dx], [0, 1, dy]]), (current.shape[1], current.shape[0]),
                           borderMode=cv2.BORDER_REPLICATE)
    inner = (slice(margin, -margin), slice(margin, -margin))
    return PictureShift(dx, dy, peak, changed_share(current[inner], moved[inner], delta))


class MotionGate:
    """Says whether a frame changed enough since the last detected one to need a detection (`moved`), comparing small,
    blurred grey copies."""

    def __init__(self, settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.reference: np.ndarray | None = None  # the last detected frame, small, grey and blurred

    def small(self, image_bgr: np.ndarray) -> np.ndarray:
        """The frame as compared here (and by CameraMotion): grey, `motion_width` wide, blurred."""
        h, w = image_bgr.shape[:2]
        width = min(w, self.settings.motion_width)
        height = max(1, round(h * width / w))
        grey = cv2.cvtColor(cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def changed_share(self, small: np.ndarray) -> float:
        """Share of pixels of `small` (from `small()`) that changed since the reference (1.0 when there is none)."""
        if self.reference is None or small.shape != self.reference.shape:
            return 1.0
        return changed_share(small, self.reference, self.settings.motion_pixel_delta)

    def moved(self, small: np.ndarray) -> bool:
        return self.changed_share(small) >= self.settings.motion_share

    def detected(self, small: np.ndarray) -> None:
        """The detector ran on this frame: later frames are compared with it."""
        self.reference = small
