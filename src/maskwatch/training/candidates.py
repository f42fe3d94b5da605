"""Face candidates for training the head: the face finder's own boxes on each image, matched to ground truth,
so the head learns on exactly what it will see at inference (plus jittered ground-truth boxes)."""

from __future__ import annotations

import hashlib
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv
from tqdm import tqdm

from maskwatch.crops import encode_deltas
from maskwatch.face_finder import FaceFinder, ScalePolicy
from maskwatch.whole_file import written_whole

# Candidates overlapping a face this much are taught its class and box: CenterFace draws boxes in another
# style (centred higher, other aspect), so many true faces overlap their annotation only 0.3-0.5.
POSITIVE_IOU = 0.3
NEGATIVE_IOU = 0.2
log = logging.getLogger(__name__)


def find_candidates(images: dict[str, np.ndarray], cache: Path, finder: FaceFinder | None = None,
                    policy: ScalePolicy | None = None) -> dict[str, np.ndarray]:
    """stem -> (N, 5) boxes + face score, computed once and cached in an .npz under the image's name and a digest
    of its pixels: a run folder used again for another data set whose images share names (0001.jpg) finds them
    again rather than train on the other set's boxes."""
    try:
        cached: dict[str, np.ndarray] = dict(np.load(cache)) if cache.is_file() else {}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:  # (cut short: found again, not a traceback each run)
        log.warning("%s: unreadable (%s); the face candidates are found again", cache, exc)
        cached = {}
    keys = {stem: f"{stem}@{hashlib.blake2b(image.tobytes(), digest_size=8).hexdigest()}"
            for stem, image in images.items()}
    missing = [stem for stem in images if keys[stem] not in cached]
    if missing:
        finder = finder or FaceFinder()
        for stem in tqdm(missing, desc="finding face candidates", unit="img"):
            faces = finder(images[stem], policy or ScalePolicy(coarse_first=None))
            cached[keys[stem]] = np.concatenate([faces.xyxy, faces.confidence[:, None]], axis=1).astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(cache, f".{cache.name}.partial.npz") as partial:  # (numpy adds .npz to other names)
            np.savez_compressed(partial, **{key: cached[key] for key in keys.values()})  # this set's only
    return {stem: cached[keys[stem]] for stem in images}


@dataclass
class Example:
    """One crop to learn from: which image, which box, its class (0 = background) and box target. `image` is set
    for pictures made on the fly (synthetic faces); otherwise the crop comes from the training image `stem`."""

    stem: str
    box: np.ndarray
    label: int
    deltas: np.ndarray
    image: np.ndarray | None = None


def match_candidates(stem: str, candidates: np.ndarray, gt: sv.Detections, positive_iou: float = POSITIVE_IOU,
                     negative_iou: float = NEGATIVE_IOU, left_out: np.ndarray | None = None,
                     ) -> tuple[list[Example], list[Example]]:
    """Positives (IoU >= positive_iou with a face: its class + 1 and box deltas) and negatives (< negative_iou
    with every face, and with every box --label-map left out: what that holds is no known background)."""
    boxes = candidates[:, :4]
    if left_out is not None and len(left_out) and len(boxes):
        on_left_out = sv.box_iou_batch(boxes, left_out).max(axis=1) >= negative_iou
        near_face = (sv.box_iou_batch(boxes, gt.xyxy).max(axis=1) >= positive_iou if len(gt)
                     else np.zeros(len(boxes), dtype=bool))
        boxes = boxes[~on_left_out | near_face]
    if len(boxes) == 0:
        return [], []
    if len(gt) == 0:
        return [], [Example(stem, b, 0, np.zeros(4, np.float32)) for b in boxes]
    iou = sv.box_iou_batch(boxes, gt.xyxy)
    best = iou.argmax(axis=1)
    best_iou = iou.max(axis=1)
    positives, negatives = [], []
    deltas = encode_deltas(boxes, gt.xyxy[best])
    for i, box in enumerate(boxes):
        if best_iou[i] >= positive_iou:
            positives.append(Example(stem, box, int(gt.class_id[best[i]]) + 1, deltas[i]))
        elif best_iou[i] < negative_iou:
            negatives.append(Example(stem, box, 0, np.zeros(4, np.float32)))
    return positives, negatives


def jittered_ground_truth(stem: str, gt: sv.Detections, copies_per_class: np.ndarray,
                          rng: np.random.Generator, min_iou: float = POSITIVE_IOU) -> list[Example]:
    """Ground-truth boxes moved and resized at random (IoU >= min_iou kept): more positives, rare classes more
    often."""
    examples = []
    for box, cid in zip(gt.xyxy, gt.class_id):
        w, h = box[2] - box[0], box[3] - box[1]
        for _ in range(int(copies_per_class[cid])):
            cx = (box[0] + box[2]) / 2 + rng.uniform(-0.2, 0.2) * w
            cy = (box[1] + box[3]) / 2 + rng.uniform(-0.25, 0.15) * h  # CenterFace errs upwards
            s, a = np.exp(rng.uniform(-0.3, 0.3)), np.exp(rng.uniform(-0.2, 0.2))
            nw, nh = w * s * a, h * s / a
            moved = np.array([[cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2]], np.float32)
            if sv.box_iou_batch(moved, box[None])[0, 0] >= min_iou:
                examples.append(Example(stem, moved[0], int(cid) + 1, encode_deltas(moved, box[None])[0]))
    return examples
