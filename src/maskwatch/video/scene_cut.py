"""Scene cuts: an edited video (or a camera switched to another view) shows a new picture from one frame to the
next. Nothing learnt from the old picture may carry over: ByteTrack matches on overlap, so a new face where an
old one was would take over its id and its class vote, and the head's cache (video/head_cache.py) would answer
for it with the old face's settled class (measured: a bare face cut in where a masked one was was never counted
as unmasked). At a cut the people of the old picture leave, new faces start new tracks, the cached classes and
face sizes are forgotten, and the frame is detected at once.

A change is two consecutive frames (small and grey, as motion gating sees them) that differ in most pixels and
whose grey-level histograms hardly correlate: a pan moves many pixels but keeps the histogram (0.95 or more
between frames of a fast pan on the test clips), a person walking in changes few pixels, and a switch from one
photo to another gave 0.80-0.90 of the pixels and a correlation of 0.43 or less. A change is a cut once the
next frame confirms it (it looks like the changed frame and not like the one before), so a flash or one bad
frame of a stream does not end everyone's track. A light switched on can still read as a cut (its people are
then counted again), and a slow fade or dissolve is not seen as one."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.video.motion import changed_share
from maskwatch.video.realtime import REALTIME, RealtimeSettings

HISTOGRAM_BINS = 32


class SceneCuts:
    def __init__(self, settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.previous: np.ndarray | None = None  # the previous frame as MotionGate.small() gives it
        self.before_change: np.ndarray | None = None  # the frame before an unconfirmed change

    def changed(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether b shows another picture than a (both from MotionGate.small())."""
        settings = self.settings
        if a.shape != b.shape or changed_share(a, b, settings.motion_pixel_delta) < settings.cut_changed_share:
            return False
        histograms = [cv2.calcHist([image], [0], None, [HISTOGRAM_BINS], [0, 256]) for image in (a, b)]
        return cv2.compareHist(*histograms, cv2.HISTCMP_CORREL) <= settings.cut_histogram_corr

    def is_cut(self, small: np.ndarray) -> bool:
        """Whether a cut is confirmed at this frame (the change came one frame earlier); call once per frame."""
        previous, before, self.previous, self.before_change = self.previous, self.before_change, small, None
        if not self.settings.scene_cuts or previous is None:
            return False
        changed = self.changed(previous, small)
        if before is not None:
            if not changed:
                return self.changed(before, small)  # the new picture holds
            if not self.changed(before, small):
                return False  # back to the old picture: that frame was a glitch (a flash, a bad frame)
        if changed:
            self.before_change = previous
        return False
