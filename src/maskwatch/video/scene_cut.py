"""Scene cuts: an edited video (or a camera switched to another view) shows a new picture from one frame to the
next. Nothing learnt from the old picture may carry over: ByteTrack matches on overlap, so a new face where an
old one was would take over its id and its class vote, and the head's cache (video/head_cache.py) would answer
for it with the old face's settled class (measured: a bare face cut in where a masked one was was never counted
as unmasked). At a cut the people of the old picture leave, new faces start new tracks, the cached classes and
face sizes are forgotten, and the frame is detected at once.

A change is two consecutive frames (small and grey, as motion gating sees them) that differ in most pixels and
that no pan explains: either their grey-level histograms hardly correlate (a pan keeps the histogram, 0.95 or
more between frames of a fast pan on the test clips), or, where the tones are alike (two crowd photos: 36 of 150
switches between random training photos correlate above 0.5), the old frame moved as a whole (phase correlation,
as for camera motion) still leaves most pixels changed. A shift too far to check (a quarter of the picture)
is a whip pan only when the phase correlation has a clear peak (`cut_max_shift_peak`). bench/scene_cuts.py: 150
of 150 switches between training photos seen and 150 of 150 between jolignier-val photos (the histogram alone:
114 and 128; the far-shift peaks of those switches 0.23 at most), no frame of a pan (a photo crossed in 45, 15 or
8 frames) or a zoom (2x in 30 or 10 frames) taken for a change; a photo enlarged 3x crossed in 3 frames peaks at
0.19-0.48, and 3 of its 12 frame pairs are called changes (2 by the histogram alone, as before). A person
walking in changes few pixels. A change is a cut once the next frame confirms it (it looks like the changed
frame and not like the one before), so a flash or one bad frame of a stream does not end everyone's track. A
light switched on can still read as a cut (its people are then counted again), and so can a whip pan or zoom
(2x) of a few frames, or someone stepping up close enough to fill most of the picture and stand still; a slow
fade or dissolve is not seen as one."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.video.motion import changed_share, whole_picture_shift
from maskwatch.video.realtime import REALTIME, RealtimeSettings

HISTOGRAM_BINS = 32


def histogram_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two small grey frames' grey-level histograms: near 1 for the same picture moved."""
    histograms = [cv2.calcHist([image], [0], None, [HISTOGRAM_BINS], [0, 256]) for image in (a, b)]
    return float(cv2.compareHist(*histograms, cv2.HISTCMP_CORREL))


class SceneCuts:
    """Tells a scene cut (another picture: an edited clip, a camera switched) from motion, so that tracks start
    afresh after one instead of jumping to the new picture's faces."""

    def __init__(self, settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.previous: np.ndarray | None = None  # the previous frame as MotionGate.small() gives it
        self.before_change: np.ndarray | None = None  # the frame before an unconfirmed change

    def changed(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Whether b shows another picture than a (both from MotionGate.small())."""
        settings = self.settings
        delta = settings.motion_pixel_delta
        if a.shape != b.shape or changed_share(a, b, delta) < settings.cut_changed_share:
            return False
        if histogram_correlation(a, b) <= settings.cut_histogram_corr:
            return True  # other tones altogether
        # Alike in tone (two crowd photos often are): another picture unless moving the whole of the old one (a
        # pan) makes most of it match; a shift too far to check is a whip pan only if the frames moved together.
        shift = whole_picture_shift(a, b, delta)
        if shift.unexplained is None:
            return shift.peak < settings.cut_max_shift_peak
        return shift.unexplained >= settings.cut_changed_share

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
