"""The detector as the video pipeline runs it: one face-finder pass at the scale chosen from the faces of the
previous detections, and the mask head only for faces whose class is not settled (HeadCache). Results have the
detector's own form (sv.Detections with class names), so the tracker and the sinks do not know the difference."""

from __future__ import annotations

from collections import Counter

import numpy as np
import supervision as sv

from maskwatch.crops import decode_deltas
from maskwatch.detector import assemble_detections
from maskwatch.face_finder import AUTO
from maskwatch.video.head_cache import HeadCache
from maskwatch.video.realtime import REALTIME, RealtimeSettings
from maskwatch.video.scale_choice import ScaleChooser


class VideoDetector:
    """The detector as video runs it: the scale chosen from the previous frames (ScaleChooser), and the classes of
    settled faces reused (HeadCache)."""

    def __init__(self, detector, detect_conf: float, min_face_score: float,
                 settings: RealtimeSettings = REALTIME):
        self.detector = detector
        self.detect_conf, self.min_face_score = detect_conf, min_face_score
        policy = getattr(detector, "policy", None)
        auto = policy is not None and policy.mode == AUTO
        self.chooser = ScaleChooser(settings) if settings.choose_scale and auto else None
        two_stage = all(hasattr(detector, name) for name in ("find_faces", "refine", "config"))
        self.cache = HeadCache(settings) if settings.reuse_head and two_stage else None
        self.scales: Counter[str] = Counter()  # detections per face-finder scale

    def __call__(self, image: np.ndarray, time_s: float) -> sv.Detections:
        policy = getattr(self.detector, "policy", None)
        scale = self.chooser.scale_for(time_s, policy.first_pass_scale(image.shape)) if self.chooser else None
        shown = round(scale, 3) if isinstance(scale, float) else scale  # 960 / 1366 is 0.703, not 0.70278...
        self.scales[str(shown if shown is not None else policy.mode if policy else "default")] += 1
        if self.cache is None:
            detections = self.detector(image, min_score=self.detect_conf, min_face_score=self.min_face_score,
                                       scale=scale)
        else:
            faces = self.detector.find_faces(image, self.min_face_score, scale)
            probs, boxes = self.cache.answers(image, faces, time_s, self._look)
            final = sv.Detections(xyxy=boxes, confidence=faces.confidence, class_id=faces.class_id)
            detections = assemble_detections(final, probs, np.zeros((len(final), 4), np.float32),
                                             self.detector.config, image.shape, self.detect_conf)
        if self.chooser:
            self.chooser.observe(time_s, detections, scale)
        return detections

    @property
    def retry(self) -> bool:
        """The last detection lost faces at a downscale that finer looks had found: detect again on the next frame
        (at a finer scale) rather than wait for the schedule."""
        return self.chooser is not None and self.chooser.retry

    def new_scene(self) -> None:
        """A scene cut (video/scene_cut.py): the classes and face sizes of the last frames belong to another
        picture, so the next detection looks at every face afresh, under the still-image policy."""
        if self.cache is not None:
            self.cache.clear()
        if self.chooser is not None:
            self.chooser = ScaleChooser(self.chooser.settings)

    def _look(self, image: np.ndarray, faces: sv.Detections) -> tuple[np.ndarray, np.ndarray]:
        """The head's two looks (as the detector does): class probabilities and the final boxes."""
        refined, probs, deltas = self.detector.refine(image, faces)
        return probs, decode_deltas(refined.xyxy, deltas)
