"""Face crops for the classification head: one function, used identically by training and inference.

A crop is a square around the face box, `context` times its longer side, resized to `size` pixels. The head
sees the same framing whatever the face size, which is what lets a model trained on small crowd faces
classify a face that fills a webcam frame.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 64
CROP_CONTEXT = 1.5


def crop_faces(image_bgr: np.ndarray, boxes_xyxy: np.ndarray, size: int = CROP_SIZE,
               context: float = CROP_CONTEXT) -> np.ndarray:
    """N x size x size x 3 uint8 BGR crops; areas outside the image are filled by edge replication."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    crops = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        side = max(x2 - x1, y2 - y1, 1.0) * context
        scale = size / side
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if scale < 0.5:  # big faces: cut and resize with area averaging so they are not aliased
            crops[i] = _shrink_crop(image_bgr, cx, cy, side, size)
            continue
        # Map the square [cx - side/2, cx + side/2] onto [0, size].
        matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]], np.float32)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crops[i] = cv2.warpAffine(image_bgr, matrix, (size, size), flags=interpolation,
                                  borderMode=cv2.BORDER_REPLICATE)
    return crops


def _shrink_crop(image_bgr: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    h, w = image_bgr.shape[:2]
    half = side / 2
    x1, y1, x2, y2 = int(np.floor(cx - half)), int(np.floor(cy - half)), int(np.ceil(cx + half)), int(np.ceil(cy + half))
    pad = [max(0, -y1), max(0, y2 - h), max(0, -x1), max(0, x2 - w)]
    region = image_bgr[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


def crops_to_blob(crops_bgr: np.ndarray) -> np.ndarray:
    """NCHW float32 RGB with ImageNet normalisation, the input of the head."""
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255
    blob = np.empty((len(crops_bgr), 3, *crops_bgr.shape[1:3]), np.float32)
    for channel in range(3):  # plane by plane, BGR -> RGB, into the NCHW array: 13x faster, the same float values
        np.subtract(crops_bgr[..., 2 - channel], mean[channel], out=blob[:, channel], dtype=np.float32)
        blob[:, channel] /= std[channel]
    return blob


# Box refinement: the head predicts the annotators' box from the face finder's box as
# (dx, dy) = centre shift / size, (dw, dh) = log size ratio, each divided by these scales.
DELTA_SCALES = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def encode_deltas(candidates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """What the head learns to predict: how to move each candidate box onto its target box (centre shift per size, log
    size ratio), divided by DELTA_SCALES."""
    cw, ch = candidates[:, 2] - candidates[:, 0], candidates[:, 3] - candidates[:, 1]
    cx, cy = candidates[:, 0] + cw / 2, candidates[:, 1] + ch / 2
    tw, th = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    tx, ty = targets[:, 0] + tw / 2, targets[:, 1] + th / 2
    deltas = np.stack([(tx - cx) / cw, (ty - cy) / ch, np.log(tw / cw), np.log(th / ch)], axis=1)
    return (deltas / DELTA_SCALES).astype(np.float32)


def decode_deltas(candidates: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """The boxes that `deltas` (the head's output) make of the candidates: encode_deltas undone, each side's change of
    size clipped to at most e^2 either way, so a wild prediction cannot blow a box up."""
    deltas = deltas * DELTA_SCALES
    cw, ch = candidates[:, 2] - candidates[:, 0], candidates[:, 3] - candidates[:, 1]
    cx, cy = candidates[:, 0] + cw / 2, candidates[:, 1] + ch / 2
    x, y = cx + deltas[:, 0] * cw, cy + deltas[:, 1] * ch
    w, h = cw * np.exp(np.clip(deltas[:, 2], -2, 2)), ch * np.exp(np.clip(deltas[:, 3], -2, 2))
    return np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=1).astype(np.float32)
