"""Synthetic faces for the rare class: a mask worn below the nose or on the chin.

The training set has 113 such faces, all small; on big, sharp faces the head reads a mask under the nose as a mask
worn well. Here the lower half of a masked face (picture B) is pasted onto an unmasked face (picture A), aligned
by the face finder's landmarks, from a line that is either below A's nose tip (`nose`: the nose shows, the class
mask_weared_incorrect), below A's mouth (`chin`: also wrong) or between A's eyes and nose tip (`right`: the nose
is covered, with_mask). The `right` composites carry the same pasting seams as the wrong ones, so the head cannot
learn the seam: it has to look at where the mask sits relative to the nose.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.training.face_pictures import FacePicture

KINDS = ("nose", "chin", "right")
# Share of each kind among composites: most real wrongly-worn masks sit under the nose.
KIND_WEIGHTS = (0.45, 0.2, 0.35)


def _points(landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(landmarks, np.float32).reshape(5, 2)  # left eye, right eye, nose tip, mouth left, mouth right


def composite(base: np.ndarray, base_face: FacePicture, masked: np.ndarray, masked_face: FacePicture, kind: str,
              rng: np.random.Generator) -> np.ndarray | None:
    """The base picture with the masked face's lower part pasted from a line set by `kind`; None if the faces
    cannot be aligned."""
    a, b = _points(base_face.landmarks), _points(masked_face.landmarks)
    matrix, _ = cv2.estimateAffinePartial2D(b[[0, 1, 3, 4]], a[[0, 1, 3, 4]])  # eyes and mouth corners
    if matrix is None:
        return None
    h, w = base.shape[:2]
    warped = cv2.warpAffine(masked, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    x1, y1, x2, y2 = base_face.box
    eyes_y, nose, mouth_y = (a[0, 1] + a[1, 1]) / 2, a[2], (a[3, 1] + a[4, 1]) / 2
    face_h = y2 - y1
    if kind == "right":
        top = eyes_y + rng.uniform(0.35, 0.6) * (nose[1] - eyes_y)
    elif kind == "nose":
        top = nose[1] + rng.uniform(0.1, 0.45) * (mouth_y - nose[1])
    elif kind == "chin":
        top = mouth_y + rng.uniform(0.15, 0.5) * (y2 - mouth_y)
    else:
        raise ValueError(f"unknown composite kind {kind!r}")
    # The pasted region: below a line bent up at the nose, inside an ellipse around the lower face.
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    half_w = max((x2 - x1) / 2, 1.0)
    line = top + rng.uniform(0.0, 0.12) * face_h * ((xs - nose[0]) / half_w) ** 2
    inside = (((xs - (x1 + x2) / 2) / (half_w * rng.uniform(1.0, 1.15))) ** 2
              + ((ys - top) / (y2 + 0.08 * face_h - top + 1)) ** 2) <= 1
    region = ((ys >= line) & inside).astype(np.float32)
    k = max(1, int(0.03 * face_h)) * 2 + 1
    region = cv2.GaussianBlur(region, (k, k), 0)[..., None]
    return (base * (1 - region) + warped * region).astype(np.uint8)


def pick_kind(rng: np.random.Generator) -> str:
    """A composite's kind, drawn by KIND_WEIGHTS (most real wrongly worn masks sit under the nose)."""
    return KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
