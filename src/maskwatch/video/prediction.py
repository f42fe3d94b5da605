"""Where the tracked faces are between two detections: each box moves on at its track's velocity, measured between
its last detections (a constant-velocity guess, as the tracker's own Kalman filter makes). Boxes that merely
stayed where they were found lag behind a walking face by up to the detection interval."""

from __future__ import annotations

import numpy as np
import supervision as sv

from maskwatch.video.realtime import REALTIME, RealtimeSettings

VELOCITY_SMOOTHING = 0.5  # weight of the newest measured velocity


class BoxPredictor:
    def __init__(self, size: tuple[int, int], settings: RealtimeSettings = REALTIME):
        self.width, self.height = size
        self.settings = settings
        self.last = sv.Detections.empty()
        self.last_s = 0.0
        self.velocity: dict[int, np.ndarray] = {}  # pixels per second of x1, y1, x2, y2, per track id
        self._seen: dict[int, tuple[float, np.ndarray]] = {}

    def detected(self, tracked: sv.Detections, time_s: float) -> None:
        """The tracked faces of a detection frame: their velocities are updated."""
        seen, velocity = {}, {}
        if len(tracked) and tracked.tracker_id is not None:
            for tid, box in zip(tracked.tracker_id, tracked.xyxy):
                tid = int(tid)
                if tid < 0:
                    continue
                seen[tid] = (time_s, box.astype(np.float32))
                if tid in self._seen:
                    then, old = self._seen[tid]
                    if 0 < time_s - then <= self.settings.max_velocity_gap_s:
                        measured = (box - old) / (time_s - then)
                        before = self.velocity.get(tid)
                        velocity[tid] = measured if before is None else (
                            VELOCITY_SMOOTHING * measured + (1 - VELOCITY_SMOOTHING) * before)
        self._seen, self.velocity = seen, velocity
        self.last, self.last_s = tracked, time_s

    def hold(self) -> None:
        """Nothing moved since the last detection (motion gating): its boxes stay where they are."""
        self.velocity = {}

    def at(self, time_s: float) -> sv.Detections:
        """The faces of the last detection, moved on to `time_s`."""
        last = self.last
        if not len(last) or not self.settings.predict_boxes or last.tracker_id is None or not self.velocity:
            return last
        elapsed = min(max(0.0, time_s - self.last_s), self.settings.max_detect_gap_s)
        shift = np.array([self.velocity.get(int(t), np.zeros(4)) for t in last.tracker_id], np.float32) * elapsed
        xyxy = last.xyxy + shift
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, self.width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, self.height)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)  # moved out of the picture: gone
        moved = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=last.confidence, class_id=last.class_id,
                              tracker_id=last.tracker_id, data=dict(last.data))
        return moved[keep] if not keep.all() else moved
