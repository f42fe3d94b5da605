"""`maskwatch train --arch one-stage`: fine-tune CenterFace end to end into a 3-class detector (CenterNet losses).

Each step takes random square windows of the training images at a random scale (native 0.7x to 2.5x, the range
the face finder's 1x and upscaled passes see) and, now and then, a window zoomed onto one face so that it
fills much of the frame (the webcam look the crowd photos lack). Each epoch exports the network and scores it
with the very detector that ships it (OneStageDetector, onnxruntime), so the epoch kept is the one that is best
as used.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from maskwatch.data import Dataset, load_dataset
from maskwatch.data.images import read_image
from maskwatch.detector import ONE_STAGE, OneStageDetector, ScoringConfig
from maskwatch.evaluation.coco_metrics import evaluate_coco
from maskwatch.face_finder import STRIDE
from maskwatch.models.onestage import OneStageNet, export_onnx
from maskwatch.predictions import ImagePredictions
from maskwatch.training.augment import augment_scene
from maskwatch.training.loop import (TrainConfig, checkpoint, class_balance, rarest_class, record_epoch, resume,
                                     seed_everything, split_for_training)


@dataclass
class OneStageRecipe:
    batch_size: int = 8
    window: int = 384  # training windows, pixels
    lr: float = 1e-3  # heads; the pretrained trunk learns at lr * trunk_lr_factor
    trunk_lr_factor: float = 0.25
    warmup_steps: int = 50
    scale_range: tuple[float, float] = (0.7, 2.5)  # times native size
    # Windows zoomed onto one face, to this height. Wider (0.3, up to 340 px, the size of a face in a 640x480
    # close-up) was measured worse: close-up face AP50 0.713 vs 0.748, val mAP@.5 0.656 vs 0.703.
    zoom_prob: float = 0.2
    zoom_face_px: tuple[float, float] = (48.0, 256.0)


def sample_window(image: np.ndarray, boxes: np.ndarray, recipe: OneStageRecipe,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A window of the image at a random scale; returns the window and the boxes (window pixels) whose centre
    lies inside it, with their indices."""
    h, w = image.shape[:2]
    size = recipe.window
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
    sigma = (2 * radius + 1) / 6
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heat.shape
    top, bottom, left, right = min(y, radius), min(h - y, radius + 1), min(x, radius), min(w - x, radius + 1)
    region = heat[y - top:y + bottom, x - left:x + right]
    np.maximum(region, g[radius - top:radius + bottom, radius - left:radius + right], out=region)


def window_targets(boxes: np.ndarray, labels: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """CenterNet targets at stride 4: face heatmap, and per face its cell, log size (h, w), offset (y, x), label."""
    cells = size // STRIDE
    heat = np.zeros((cells, cells), np.float32)
    bh, bw = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    gy = (boxes[:, 1] + boxes[:, 3]) / 2 / STRIDE - 0.5  # the decoder adds the half cell back
    gx = (boxes[:, 0] + boxes[:, 2]) / 2 / STRIDE - 0.5
    # Nearest cell, offset in [-0.5, 0.5]: the convention CenterFace's pretrained offset head follows.
    iy, ix = np.clip(np.rint(gy), 0, cells - 1).astype(int), np.clip(np.rint(gx), 0, cells - 1).astype(int)
    for y, x, h, w in zip(iy, ix, bh, bw):
        draw_gaussian(heat, y, x, gaussian_radius(h / STRIDE, w / STRIDE))
    return {"heat": heat, "cell": iy * cells + ix, "size": np.log(np.stack([bh, bw], 1) / STRIDE).astype(np.float32),
            "offset": np.stack([gy - iy, gx - ix], 1).astype(np.float32), "label": labels.astype(int)}


def make_batch(samples: list, images: dict[str, np.ndarray], recipe: OneStageRecipe,
               rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    windows, heats, rows = [], [], {"batch": [], "cell": [], "size": [], "offset": [], "label": []}
    for b, sample in enumerate(samples):
        boxes = sample.detections.xyxy.astype(np.float32)
        window, moved, index = sample_window(images[sample.stem], boxes, recipe, rng)
        labels = sample.detections.class_id[index]
        if rng.random() < 0.5:
            window = window[:, ::-1]
            moved = np.stack([recipe.window - moved[:, 2], moved[:, 1], recipe.window - moved[:, 0], moved[:, 3]], 1)
        windows.append(augment_scene(np.ascontiguousarray(window), rng))
        targets = window_targets(moved, labels, recipe.window)
        heats.append(targets.pop("heat"))
        rows["batch"].append(np.full(len(moved), b))
        for key, value in targets.items():
            rows[key].append(value)
    x = torch.from_numpy(np.stack(windows)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32))  # RGB 0..255
    out = {key: torch.from_numpy(np.concatenate(value)) for key, value in rows.items()}
    out["heat"] = torch.from_numpy(np.stack(heats))[:, None]
    return x, out


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of faces."""
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos = torch.log(pred) * (1 - pred) ** 2 * positive
    neg = torch.log(1 - pred) * pred ** 2 * (1 - target) ** 4 * (1 - positive)
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def _gather(maps: torch.Tensor, batch: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    return maps.flatten(2)[batch, :, cell]  # (faces, channels)


def losses(outputs: tuple[torch.Tensor, ...], targets: dict[str, torch.Tensor],
           class_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    face, classes, size, offset = outputs
    loss_face = focal_loss(face, targets["heat"])
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


def export_model(net: OneStageNet, classes: list[str], path: Path, **extra) -> Path:
    export_onnx(net, path)
    ScoringConfig(classes=list(classes), arch=ONE_STAGE).write(path.with_suffix(".json"), **extra)
    return path


def validate(onnx_path: Path, val_set: Dataset, images: dict[str, np.ndarray], threads: int | None):
    detector = OneStageDetector(onnx_path, threads=threads)
    predictions = [ImagePredictions(s.image_path.name, s.width, s.height,
                                    detector(images[s.stem], min_score=0.01, all_classes=True))
                   for s in val_set.samples]
    return evaluate_coco(val_set, predictions)


def train_one_stage(cfg: TrainConfig, recipe: OneStageRecipe | None = None) -> Path:
    """Train, keep the best epoch by validation mAP@.5 and export it; returns the ONNX path."""
    recipe = recipe or OneStageRecipe()
    recipe.batch_size, recipe.lr = cfg.batch_size or recipe.batch_size, cfg.lr or recipe.lr
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    if cfg.quick:
        cfg.epochs, recipe.window, recipe.warmup_steps = min(cfg.epochs, 2), 256, 2
    cfg.out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(cfg.data, label_map=cfg.label_map)
    train_set, val_set = split_for_training(dataset, cfg)
    print(f"one-stage: training on {len(train_set)} images, validating on {len(val_set)}; classes {dataset.classes}")
    images = {s.stem: read_image(s.image_path) for s in train_set.samples + val_set.samples}
    image_weights, class_weights = class_balance(train_set, balance=cfg.balance_classes)
    rarest = rarest_class(train_set)

    net = OneStageNet(len(dataset.classes))
    head_params = [p for m in net.heads() for p in m.parameters()]
    optimizer = torch.optim.AdamW([{"params": net.trunk.parameters(), "lr_factor": recipe.trunk_lr_factor},
                                   {"params": head_params, "lr_factor": 1.0}], lr=recipe.lr, weight_decay=1e-4)
    start_epoch, history, best = resume(cfg, net, optimizer)

    steps = math.ceil(len(train_set) / recipe.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        order = rng.choice(len(train_set), size=steps * recipe.batch_size, p=image_weights)
        net.train()
        for module in net.trunk.modules():  # batches of 8 windows: keep CenterFace's batch-norm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        sums = {"loss": 0.0, "loss_face": 0.0, "loss_cls": 0.0, "loss_box": 0.0}
        started = time.time()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for step in bar:
            done = epoch * steps + step
            lr = recipe.lr * 0.5 * (1 + math.cos(math.pi * done / (cfg.epochs * steps)))
            lr *= min(1.0, (done + 1) / recipe.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_factor"]
            batch = [train_set.samples[i] for i in order[step * recipe.batch_size:(step + 1) * recipe.batch_size]]
            x, targets = make_batch(batch, images, recipe, rng)
            parts = losses(net(x), targets, class_weights)
            loss = parts["loss_face"] + parts["loss_cls"] + parts["loss_box"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key, value in (("loss", loss), *parts.items()):
                sums[key] += value.item()
            bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}")
        net.eval()
        onnx_path = export_model(net, dataset.classes, cfg.out / "epoch.onnx")
        result = validate(onnx_path, val_set, images, cfg.threads)
        row = {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}, "lr": lr,
               "val_mAP50": result.summary["mAP50"], "val_mAP": result.summary["mAP"],
               "val_AP50_rarest": result.per_class[dataset.classes[rarest]]["AP50"],
               "seconds": time.time() - started}
        best = checkpoint(cfg, net, optimizer, history, row, best, classes=dataset.classes, recipe=asdict(recipe))
        if record_epoch(history, row, cfg, dataset.classes[rarest]):
            break

    net.load_state_dict(torch.load(cfg.out / "best.pt", map_location="cpu", weights_only=False)["model"])
    net.eval()
    for scratch in ("epoch.onnx", "epoch.json"):
        (cfg.out / scratch).unlink(missing_ok=True)
    return export_model(net, dataset.classes, cfg.out / "model" / "onestage.onnx", trained_on=str(cfg.data),
                        best_val_mAP50=best, val_images=[s.stem for s in val_set.samples], recipe=asdict(recipe))
