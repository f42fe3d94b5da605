"""How far the whole picture moved since the last detection: a camera panning, tilting or shaking (a phone video,
a PTZ camera). Between detections every box moves with it, and the tracker matches faces in the scene's own
coordinates, so a pan of 30 px between two detections does not break every track (ByteTrack matches on overlap,
and a 20-px crowd face moved 30 px no longer overlaps itself).

Phase correlation of small grey frames finds the dominant shift in a fraction of a millisecond. It is believed
only when it explains the change: after shifting, the frames must differ in far fewer pixels than before (a
person walking past a fixed camera also shifts something, but shifting the whole picture by their step does not
make the rest of it match)."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.video.motion import changed_share
from maskwatch.video.realtime import REALTIME, RealtimeSettings


class CameraMotion:
    def __init__(self, frame_size: tuple[int, int], settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.frame_width = frame_size[0]
        self.reference: np.ndarray | None = None  # the last detected frame, small and grey (float32)
        self.window: np.ndarray | None = None
        self.offset = np.zeros(2, np.float32)  # where the last detected picture lies relative to the first (px)

    def shift(self, small: np.ndarray) -> np.ndarray:
        """(dx, dy) in frame pixels by which the picture moved since the last detection; zeros when it did not
        move as a whole (or compensation is off)."""
        none = np.zeros(2, np.float32)
        if not self.settings.compensate_camera or self.reference is None or small.shape != self.reference.shape:
            return none
        current = small.astype(np.float32)
        if self.window is None:
            self.window = cv2.createHanningWindow((small.shape[1], small.shape[0]), cv2.CV_32F)
        # (copies: OpenCV applies the window to its inputs in place)
        (dx, dy), _response = cv2.phaseCorrelate(self.reference.copy(), current.copy(), self.window)
        if abs(dx) < 0.5 and abs(dy) < 0.5:
            return none
        delta = self.settings.motion_pixel_delta
        before = changed_share(current, self.reference, delta)
        moved = cv2.warpAffine(self.reference, np.float32([[1, 0, dx], [0, 1, dy]]), (small.shape[1], small.shape[0]),
                               borderMode=cv2.BORDER_REPLICATE)
        margin = int(np.ceil(max(abs(dx), abs(dy)))) + 1  # the strip that came into view has no reference
        if 4 * margin >= min(small.shape):
            return none  # half the picture is new: too far to tell (the next detection starts afresh)
        inner = (slice(margin, -margin), slice(margin, -margin))
        after = changed_share(current[inner], moved[inner], delta)
        if before < self.settings.motion_share or after > self.settings.camera_residual * before:
            return none
        return np.float32([dx, dy]) * (self.frame_width / small.shape[1])

    def detected(self, small: np.ndarray, shift: np.ndarray) -> None:
        """The detector ran on this frame, which lies `shift` from the previous detected one."""
        self.offset = self.offset + shift
        self.reference = small.astype(np.float32)
