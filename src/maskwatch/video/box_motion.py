"""Where the tracked faces are between two detections: each box moves with the picture (a moving camera,
video/camera_motion.py) and on at its track's own velocity in the scene, measured between its last detections (a
constant-velocity guess, as the tracker's own Kalman filter makes). Boxes that merely stayed where they were
found lag behind a walking face by up to the detection interval."""

from __future__ import annotations

import numpy as np
import supervision as sv

from maskwatch.video.realtime import REALTIME, RealtimeSettings

VELOCITY_SMOOTHING = 0.5  # weight of the newest measured velocity


class BoxPredictor:
    """Moves the tracked boxes between detections: with the picture when the camera moves, and on at each track's
    own velocity."""

    def __init__(self, size: tuple[int, int], settings: RealtimeSettings = REALTIME):
        self.width, self.height = size
        self.settings = settings
        self.last = sv.Detections.empty()
        self.last_s = 0.0
        self.last_offset = np.zeros(2, np.float32)
        self.velocity: dict[int, np.ndarray] = {}  # pixels per second of x1, y1, x2, y2, per track id
        self._seen: dict[int, tuple[float, np.ndarray]] = {}

    def detected(self, tracked: sv.Detections, time_s: float, offset: np.ndarray | None = None) -> None:
        """The tracked faces of a detection frame, whose picture lies `offset` from the first frame's: their
        velocities in the scene are updated."""
        offset = np.zeros(2, np.float32) if offset is None else np.asarray(offset, np.float32)
        scene = np.tile(offset, 2)
        seen, velocity = {}, {}
        if len(tracked) and tracked.tracker_id is not None:
            for tid, box in zip(tracked.tracker_id, tracked.xyxy):
                tid = int(tid)
                if tid < 0:
                    continue
                seen[tid] = (time_s, (box - scene).astype(np.float32))
                if tid in self._seen:
                    then, old = self._seen[tid]
                    if 0 < time_s - then <= self.settings.max_velocity_gap_s:
                        measured = (seen[tid][1] - old) / (time_s - then)
                        before = self.velocity.get(tid)
                        velocity[tid] = measured if before is None else (
                            VELOCITY_SMOOTHING * measured + (1 - VELOCITY_SMOOTHING) * before)
        self._seen, self.velocity = seen, velocity
        self.last, self.last_s, self.last_offset = tracked, time_s, offset

    def hold(self) -> None:
        """Nothing moved since the last detection (motion gating): its boxes stay where they are."""
        self.velocity = {}

    def at(self, time_s: float, offset: np.ndarray | None = None) -> sv.Detections:
        """The faces of the last detection, moved on to `time_s`, when the picture lies `offset` from the first."""
        last = self.last
        if not len(last) or not self.settings.predict_boxes:
            return last
        moved_by = np.zeros(2, np.float32) if offset is None else np.asarray(offset, np.float32) - self.last_offset
        if not self.velocity and not moved_by.any():
            return last
        elapsed = min(max(0.0, time_s - self.last_s), self.settings.max_detect_gap_s)
        ids = last.tracker_id if last.tracker_id is not None else np.full(len(last), -1)
        own = np.array([self.velocity.get(int(t), np.zeros(4)) for t in ids], np.float32) * elapsed
        xyxy = last.xyxy + own + np.tile(moved_by, 2)
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, self.width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, self.height)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)  # moved out of the picture: gone
        moved = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=last.confidence, class_id=last.class_id,
                              tracker_id=last.tracker_id, data=dict(last.data))
        return moved[keep] if not keep.all() else moved
