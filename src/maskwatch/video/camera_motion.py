"""How far the whole picture moved since the last detection: a camera panning, tilting or shaking (a phone video,
a PTZ camera). Between detections every box moves with it, and the tracker matches faces in the scene's own
coordinates, so a pan of 30 px between two detections does not break every track (ByteTrack matches on overlap,
and a 20-px crowd face moved 30 px no longer overlaps itself).

Phase correlation of small grey frames finds the dominant shift in a fraction of a millisecond. It is believed
only when it explains the change: after shifting, the frames must differ in far fewer pixels than before (a
person walking past a fixed camera also shifts something, but shifting the whole picture by their step does not
make the rest of it match)."""

from __future__ import annotations

import numpy as np

from maskwatch.video.motion import changed_share, whole_picture_shift
from maskwatch.video.realtime import REALTIME, RealtimeSettings


class CameraMotion:
    """Follows how the whole picture moves from one detection to the next, and where the latest detected picture lies
    relative to the first (`offset`): the coordinates the tracker matches faces in."""

    def __init__(self, frame_size: tuple[int, int], settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.frame_width = frame_size[0]
        self.reference: np.ndarray | None = None  # the last detected frame, small and grey (float32)
        self.offset = np.zeros(2, np.float32)  # where the last detected picture lies relative to the first (px)

    def shift(self, small: np.ndarray) -> np.ndarray:
        """(dx, dy) in frame pixels by which the picture moved since the last detection; zeros when it did not
        move as a whole (or compensation is off)."""
        none = np.zeros(2, np.float32)
        if not self.settings.compensate_camera or self.reference is None or small.shape != self.reference.shape:
            return none
        shift = whole_picture_shift(self.reference, small, self.settings.motion_pixel_delta)
        if shift.unexplained is None or (shift.dx, shift.dy) == (0.0, 0.0):
            return none
        before = changed_share(small.astype(np.float32), self.reference, self.settings.motion_pixel_delta)
        if before < self.settings.motion_share or shift.unexplained > self.settings.camera_residual * before:
            return none
        return np.float32([shift.dx, shift.dy]) * (self.frame_width / small.shape[1])

    def detected(self, small: np.ndarray, shift: np.ndarray) -> None:
        """The detector ran on this frame, which lies `shift` from the previous detected one."""
        self.offset = self.offset + shift
        self.reference = small.astype(np.float32)
