"""`maskwatch train --arch one-stage`: fine-tune CenterFace end to end into a 3-class detector (CenterNet losses).

Each step takes random square windows of the training images at a random scale (native 0.7x to 2.5x, the range
the face finder's 1x and upscaled passes see) and, now and then, a window zoomed onto one face so that it
fills much of the frame (the webcam look the crowd photos lack). Each epoch exports the network and scores it
with the very detector that ships it (OneStageDetector, onnxruntime), so the epoch kept is the one that is best
as used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from maskwatch.face_finder import STRIDE
from maskwatch.model_config import ScoringConfig
from maskwatch.model_kinds import KINDS, ONE_STAGE
from maskwatch.models.onestage import OneStageNet, export_onnx
from maskwatch.training.augment import augment_scene
from maskwatch.training.balance import class_balance
from maskwatch.training.engine import Recipe


@dataclass
class Windows:
    """How training windows are cut from the images."""

    size: int = 384  # pixels
    scale_range: tuple[float, float] = (0.7, 2.5)  # times native size
    # Windows zoomed onto one face, to this height. Wider (0.3, up to 340 px, the size of a face in a 640x480
    # close-up) was measured worse: close-up face AP50 0.713 vs 0.748, val mAP@.5 0.656 vs 0.703.
    zoom_prob: float = 0.2
    zoom_face_px: tuple[float, float] = (48.0, 256.0)


def sample_window(image: np.ndarray, boxes: np.ndarray, recipe: Windows,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A window of the image at a random scale; returns the window and the boxes (window pixels) whose centre
    lies inside it, with their indices."""
    h, w = image.shape[:2]
    size = recipe.size
    if len(boxes) and rng.random() < recipe.zoom_prob:
        i = int(rng.integers(len(boxes)))
        face_h = max(boxes[i, 3] - boxes[i, 1], 1.0)
        scale = rng.uniform(*recipe.zoom_face_px) / face_h
        cx, cy = (boxes[i, 0] + boxes[i, 2]) / 2 * scale, (boxes[i, 1] + boxes[i, 3]) / 2 * scale
        x0, y0 = cx - rng.uniform(0.25, 0.75) * size, cy - rng.uniform(0.25, 0.75) * size
    else:
        scale = math.exp(rng.uniform(*np.log(recipe.scale_range)))
        x0 = rng.uniform(min(0.0, w * scale - size), max(0.0, w * scale - size))
        y0 = rng.uniform(min(0.0, h * scale - size), max(0.0, h * scale - size))
    matrix = np.array([[scale, 0, -x0], [0, scale, -y0]], np.float32)
    window = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    moved = boxes * scale - np.array([x0, y0, x0, y0], np.float32)
    centres = (moved[:, :2] + moved[:, 2:]) / 2
    inside = np.nonzero((centres >= 0).all(1) & (centres < size).all(1))[0]
    moved = moved[inside].clip(0, size)
    big_enough = (moved[:, 2] - moved[:, 0] >= 2) & (moved[:, 3] - moved[:, 1] >= 2)
    return window, moved[big_enough], inside[big_enough]


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> int:
    """CenterNet's radius: how far a centre may move and its box still overlap the truth by `min_overlap`."""
    a1, b1, c1 = 1, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return max(0, int(min(r1, r2, r3)))


def draw_gaussian(heat: np.ndarray, y: int, x: int, radius: int) -> None:
    """Stamp a face's peak on the heatmap in place, at row y and column x: a Gaussian of `radius` (sigma a sixth of its
    width), the higher value kept where faces overlap (CenterNet's rule)."""
    sigma = (2 * radius + 1) / 6
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heat.shape
    top, bottom, left, right = min(y, radius), min(h - y, radius + 1), min(x, radius), min(w - x, radius + 1)
    region = heat[y - top:y + bottom, x - left:x + right]
    np.maximum(region, g[radius - top:radius + bottom, radius - left:radius + right], out=region)


def window_targets(boxes: np.ndarray, labels: np.ndarray, size: int,
                   ignore: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """CenterNet targets at stride 4: face heatmap, and per face its cell, log size (h, w), offset (y, x), label;
    `care`: 0 on the cells of `ignore` boxes (left out by --label-map OLD=: what they hold is still in the
    window) away from any face, where the heatmap's loss is not taken, 1 elsewhere."""
    cells = size // STRIDE
    heat = np.zeros((cells, cells), np.float32)
    bh, bw = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    gy = (boxes[:, 1] + boxes[:, 3]) / 2 / STRIDE - 0.5  # the decoder adds the half cell back
    gx = (boxes[:, 0] + boxes[:, 2]) / 2 / STRIDE - 0.5
    # Nearest cell, offset in [-0.5, 0.5]: the convention CenterFace's pretrained offset head follows.
    iy, ix = np.clip(np.rint(gy), 0, cells - 1).astype(int), np.clip(np.rint(gx), 0, cells - 1).astype(int)
    for y, x, h, w in zip(iy, ix, bh, bw):
        draw_gaussian(heat, y, x, gaussian_radius(h / STRIDE, w / STRIDE))
    care = np.ones((cells, cells), np.float32)
    for x1, y1, x2, y2 in np.asarray(ignore if ignore is not None else [], np.float32).reshape(-1, 4):
        rows = slice(int(max(y1, 0) // STRIDE), int(np.ceil(y2 / STRIDE)))
        care[rows, int(max(x1, 0) // STRIDE):int(np.ceil(x2 / STRIDE))] = 0
    care[heat > 0] = 1  # a labelled face inside an ignored box is still taught
    return {"heat": heat, "care": care, "cell": iy * cells + ix,
            "size": np.log(np.stack([bh, bw], 1) / STRIDE).astype(np.float32),
            "offset": np.stack([gy - iy, gx - ix], 1).astype(np.float32), "label": labels.astype(int)}


def make_batch(samples: list, images: dict[str, np.ndarray], recipe: Windows,
               rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One batch: a window of each sample (flipped half the time, then augment_scene) as RGB 0..255 NCHW, and the
    CenterNet targets, each face's with its batch index; boxes left out by --label-map OLD= only mark cells the heatmap
    loss skips."""
    windows, heats, cares, rows = [], [], [], {"batch": [], "cell": [], "size": [], "offset": [], "label": []}
    for b, sample in enumerate(samples):
        boxes = sample.detections.xyxy.astype(np.float32)
        every_box = np.concatenate([boxes, sample.left_out.astype(np.float32)])  # (left out: regions to ignore)
        window, moved, index = sample_window(images[sample.stem], every_box, recipe, rng)
        if rng.random() < 0.5:
            window = window[:, ::-1]
            moved = np.stack([recipe.size - moved[:, 2], moved[:, 1], recipe.size - moved[:, 0], moved[:, 3]], 1)
        windows.append(augment_scene(np.ascontiguousarray(window), rng))
        labelled = index < len(boxes)
        targets = window_targets(moved[labelled], sample.detections.class_id[index[labelled]], recipe.size,
                                 ignore=moved[~labelled])
        heats.append(targets.pop("heat"))
        cares.append(targets.pop("care"))
        rows["batch"].append(np.full(int(labelled.sum()), b))
        for key, value in targets.items():
            rows[key].append(value)
    x = torch.from_numpy(np.stack(windows)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32))  # RGB 0..255
    out = {key: torch.from_numpy(np.concatenate(value)) for key, value in rows.items()}
    out["heat"] = torch.from_numpy(np.stack(heats))[:, None]
    out["care"] = torch.from_numpy(np.stack(cares))[:, None]
    return x, out


def focal_loss(logits: torch.Tensor, target: torch.Tensor, care: torch.Tensor | None = None) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of faces; `care` 0 leaves a cell out."""
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos = torch.log(pred) * (1 - pred) ** 2 * positive
    neg = torch.log(1 - pred) * pred ** 2 * (1 - target) ** 4 * (1 - positive)
    if care is not None:
        neg = neg * care
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def _gather(maps: torch.Tensor, batch: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    return maps.flatten(2)[batch, :, cell]  # (faces, channels)


def losses(outputs: tuple[torch.Tensor, ...], targets: dict[str, torch.Tensor],
           class_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss terms: focal loss on the face heatmap, class cross-entropy at each face's cell and its 4 neighbours (the
    peak may land a cell off), L1 on size and offset; with no face in the batch the last two are zeros tied to the
    outputs."""
    face, classes, size, offset = outputs
    loss_face = focal_loss(face, targets["heat"], targets.get("care"))
    if len(targets["batch"]) == 0:
        zero = classes.sum() * 0 + size.sum() * 0 + offset.sum() * 0
        return {"loss_face": loss_face, "loss_cls": zero, "loss_box": zero}
    batch, cell, cells = targets["batch"], targets["cell"], classes.shape[-1]
    # The class is read at the heatmap peak, which may land a cell off the centre: teach the 4 neighbours too.
    y, x = cell // cells, cell % cells
    neighbour_logits = [_gather(classes, batch, (y + dy).clamp(0, cells - 1) * cells + (x + dx).clamp(0, cells - 1))
                        for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))]
    loss_cls = F.cross_entropy(torch.cat(neighbour_logits), targets["label"].repeat(5), weight=class_weights,
                               label_smoothing=0.05)
    loss_box = (F.l1_loss(_gather(size, batch, cell), targets["size"])
                + F.l1_loss(_gather(offset, batch, cell), targets["offset"]))
    return {"loss_face": loss_face, "loss_cls": loss_cls, "loss_box": loss_box}


class OneStageRecipe(Recipe):
    """The one-stage alternative's training: CenterFace itself fine-tuned to give a class at each face, on windows
    cut from the training photos (faster at run time, less accurate: model card)."""

    batch_size = 8
    lr = 1e-3  # heads; the pretrained trunk learns at lr * trunk_lr_factor
    warmup_steps = 50
    trunk_lr_factor: float = 0.25
    windows: Windows = Windows()

    @classmethod
    def quick_settings(cls) -> dict:
        return {"windows": replace(cls.windows, size=256), "warmup_steps": 2}

    def build_model(self) -> torch.nn.Module:
        self.image_weights, self.class_weights = class_balance(self.train_set, balance=self.cfg.balance_classes)
        return OneStageNet(len(self.classes))

    def param_groups(self) -> list[dict]:
        net = self.model
        head_params = [p for m in net.heads() for p in m.parameters()]
        return [{"params": list(net.trunk.parameters()), "lr_factor": self.trunk_lr_factor},
                {"params": head_params, "lr_factor": 1.0}]

    def train_mode(self, epoch: int) -> None:
        self.model.train()
        for module in self.model.trunk.modules():  # batches of 8 windows: keep CenterFace's batch-norm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()

    def epoch(self, epoch: int, rng: np.random.Generator) -> list[list]:
        steps = math.ceil(len(self.train_set) / self.batch_size)
        order = rng.choice(len(self.train_set), size=steps * self.batch_size, p=self.image_weights)
        return [[self.train_set.samples[i] for i in order[k * self.batch_size:(k + 1) * self.batch_size]]
                for k in range(steps)]

    def make_batch(self, spec: list, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return make_batch(spec, self.images, self.windows, rng)

    def losses(self, batch: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        x, targets = batch
        outputs = tuple(o.float() for o in self.model(x))
        return losses(outputs, targets, self.class_weights.to(x.device))

    def export(self, folder: Path, **extra) -> Path:
        path = export_onnx(self.shipping_model(), folder / KINDS[ONE_STAGE].model_file)
        ScoringConfig(classes=list(self.classes), arch=ONE_STAGE).write(path.with_suffix(".json"), **extra)
        return path
