"""The mask head's answers kept between video frames: a face is looked at until its class is settled (a few looks
in a row agree), then again only when its box moved a lot or a while has passed. In a crowd the head's two looks
per face cost as much as the face finder; most faces in a video stand or walk slowly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import supervision as sv

from maskwatch.video.realtime import REALTIME, RealtimeSettings

SAME_FACE_IOU = 0.3  # a candidate overlapping a face of the previous detection this much is that face

# (image, face candidates) -> (class probabilities with background first, final boxes), one row per candidate
Look = Callable[[np.ndarray, sv.Detections], tuple[np.ndarray, np.ndarray]]


@dataclass
class _Face:
    box: np.ndarray  # the candidate's box in the latest detection
    looked_box: np.ndarray  # the candidate's box when the head last looked
    probs: np.ndarray
    offsets: np.ndarray  # final box minus candidate box, in candidate widths / heights
    label: int  # argmax of probs (0: not a face)
    looks: int  # looks in a row that gave this label
    looked_s: float


def offsets_of(candidates: np.ndarray, final: np.ndarray) -> np.ndarray:
    """How the head moved each candidate's box (final minus candidate, in candidate widths and heights), kept so that a
    reused answer moves with the face (boxes_from)."""
    size = np.maximum(np.tile(candidates[:, 2:] - candidates[:, :2], 2), 1e-3)
    return (final - candidates) / size


def boxes_from(candidates: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Final boxes for candidates from stored offsets (offsets_of undone): the head's last answer, on the face where it
    is now."""
    return candidates + offsets * np.tile(candidates[:, 2:] - candidates[:, :2], 2)


class HeadCache:
    """The head's answers for faces that have settled (the same place and look as when the head last saw them),
    so a still face is not classified again on every frame."""

    def __init__(self, settings: RealtimeSettings = REALTIME):
        self.settings = settings
        self.faces: list[_Face] = []
        self.looked = self.reused = 0  # candidates sent to the head, and answered from the cache

    def clear(self) -> None:
        """Forget every face (a scene cut: the next candidates are other people)."""
        self.faces = []

    def answers(self, image: np.ndarray, candidates: sv.Detections, time_s: float,
                look: Look) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities and final boxes for every candidate: from the cache where the face is settled and
        still, else from `look` (the head), in one batch."""
        n = len(candidates)
        previous = self._match(candidates.xyxy)
        todo = [i for i in range(n) if not self._reusable(previous[i], candidates.xyxy[i], time_s)]
        probs = np.zeros((n, 0), np.float32)
        boxes = np.zeros((n, 4), np.float32)
        if todo:
            new_probs, new_boxes = look(image, candidates[np.array(todo)])
            probs = np.zeros((n, new_probs.shape[1]), np.float32)
            probs[todo], boxes[todo] = new_probs, new_boxes
        faces = []
        for i in range(n):
            box, old = candidates.xyxy[i].copy(), previous[i]
            if i in todo:
                row = probs[i]
                label = int(np.argmax(row))
                looks = old.looks + 1 if old is not None and old.label == label else 1
                offsets = offsets_of(box[None], boxes[i][None])[0]
                faces.append(_Face(box, box, row, offsets, label, looks, time_s))
            else:
                if probs.shape[1] == 0:
                    probs = np.zeros((n, len(old.probs)), np.float32)
                probs[i], boxes[i] = old.probs, boxes_from(box[None], old.offsets[None])[0]
                old.box = box
                faces.append(old)
        self.faces = faces
        self.looked += len(todo)
        self.reused += n - len(todo)
        return probs, boxes

    def _match(self, boxes: np.ndarray) -> list[_Face | None]:
        """Each candidate's face of the previous detection (greedy on IoU), or None."""
        matched: list[_Face | None] = [None] * len(boxes)
        if not self.faces or not len(boxes):
            return matched
        iou = sv.box_iou_batch(boxes, np.stack([f.box for f in self.faces]))
        taken: set[int] = set()
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            if iou[i, j] < SAME_FACE_IOU:
                break
            if matched[i] is None and j not in taken:
                matched[i] = self.faces[j]
                taken.add(j)
        return matched

    def _reusable(self, face: _Face | None, box: np.ndarray, time_s: float) -> bool:
        s = self.settings
        if face is None or face.looks < s.settle_looks or time_s - face.looked_s >= s.reclassify_s:
            return False
        return float(sv.box_iou_batch(box[None], face.looked_box[None])[0, 0]) >= s.reclassify_iou
