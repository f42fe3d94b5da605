"""Scene cuts: an edited video (or a camera switched to another view) shows a new picture from one frame to the
next. Nothing learnt from the old picture may carry over: ByteTrack matches on overlap, so a new face where an
old one was would take over its id and its class vote, and the head's cache (video/head_cache.py) would answer
for it with the old face's settled class (measured: a bare face cut in where a masked one was was never counted
as unmasked). A cut starts fresh tracks, forgets the cached classes and face sizes, and is detected at once.

A cut is two consecutive frames (small and grey, as motion gating sees them) that differ in most pixels and
whose grey-level histograms hardly correlate: a pan moves most pixels but keeps the histogram (0.95 or more
between frames of a fast pan measured on the test clips), a person walking in changes few pixels, and a switch
from one photo to another gave 0.80-0.90 of the pixels and a correlation of 0.43 or less. A light switched on
can also read as a cut: its people then start new tracks."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.video.realtime import REALTIME, RealtimeSettings

HISTOGRAM_BINS = 32


class SceneCuts:
    def __init__(self, settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.previous: np.ndarray | None = None  # the previous frame as MotionGate.small() gives it

    def is_cut(self, small: np.ndarray) -> bool:
        """Whether `small` (this frame, from MotionGate.small()) starts a new scene; call once per frame."""
        previous, self.previous = self.previous, small
        if not self.settings.scene_cuts or previous is None or previous.shape != small.shape:
            return False
        changed = float((cv2.absdiff(small, previous) > self.settings.motion_pixel_delta).mean())
        if changed < self.settings.cut_changed_share:
            return False
        histograms = [cv2.calcHist([image], [0], None, [HISTOGRAM_BINS], [0, 256]) for image in (previous, small)]
        if cv2.compareHist(*histograms, cv2.HISTCMP_CORREL) > self.settings.cut_histogram_corr:
            return False
        return True
