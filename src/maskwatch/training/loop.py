"""`maskwatch train`: a plain loop in the style of torchvision's references/detection.

Face candidates are found once per image (cached); each epoch draws crops of matched candidates, jittered
ground-truth boxes (rare classes more often) and background candidates, trains the head, and scores the whole
detector on the validation images with COCO mAP. Checkpoints every epoch; early stop; resume.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from maskwatch.crops import CROP_CONTEXT, CROP_SIZE, crop_faces, crops_to_blob
from maskwatch.data import Dataset, load_dataset
from maskwatch.data.images import read_image
from maskwatch.data.split import read_list, split_dataset
from maskwatch.detector import HeadConfig, assemble_detections
from maskwatch.errors import MaskwatchError
from maskwatch.evaluation.coco_metrics import evaluate_coco
from maskwatch.face_finder import ScalePolicy
from maskwatch.models.crop_head import CropHead, export_onnx
from maskwatch.predictions import ImagePredictions
from maskwatch.training.augment import augment_crop
from maskwatch.training.candidates import (NEGATIVE_IOU, POSITIVE_IOU, Example, find_candidates,
                                           jittered_ground_truth, match_candidates)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: Path
    out: Path
    val_split: Path | None = None
    epochs: int = 12
    batch_size: int | None = None  # None: the architecture's own (64 crops; 8 windows for one-stage)
    lr: float | None = None  # None: 2e-3 for the crop head; 1e-3 for one-stage
    weight_decay: float = 1e-4
    patience: int = 4
    seed: int = 0
    crop_size: int = CROP_SIZE
    crop_context: float = CROP_CONTEXT
    negatives_per_positive: float = 0.6
    jitter_copies: float = 2.0  # jittered copies of each ground-truth box of the commonest class
    balance_classes: bool = True  # rarer classes more often / weighted higher; off only to measure its effect
    candidate_upscale_to: tuple[int, ...] = (800,)  # upscaled face-finder passes that make training candidates
    positive_iou: float = POSITIVE_IOU
    negative_iou: float = NEGATIVE_IOU
    arch: str = "two-stage"  # or "one-stage" (training/onestage.py)
    quick: bool = False
    resume: bool = False
    threads: int | None = None
    label_map: dict[str, str] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_for_training(dataset: Dataset, cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    if cfg.val_split:
        val_stems = set(read_list(cfg.val_split))
        unknown = val_stems - {s.stem for s in dataset.samples}
        if unknown:
            raise MaskwatchError(f"{cfg.val_split}: {len(unknown)} names not in the data set, e.g. {sorted(unknown)[:3]}")
        train_stems = [s.stem for s in dataset.samples if s.stem not in val_stems]
    else:
        split = split_dataset(dataset, 0.15, cfg.seed)
        train_stems, val_stems = split.train, set(split.val)
    train, val = dataset.subset(train_stems), dataset.subset(val_stems)
    if cfg.quick:  # a few images, enough to see the loss fall
        train.samples, val.samples = train.samples[:16], val.samples[:6]
    return train, val


def copies_per_class(train: Dataset, base: float, balance: bool = True) -> np.ndarray:
    """Repeat-factor sampling: a class with a fraction f of the boxes gets base * sqrt(f_max / f) copies."""
    counts = np.array([max(1, c) for c in train.class_counts().values()], np.float64)
    factor = np.sqrt(counts.max() / counts) if balance else np.ones_like(counts)
    return np.round(base * factor).astype(int)


def rarest_class(train: Dataset) -> int:
    return int(np.argmin(list(train.class_counts().values())))


def class_balance(train: Dataset, power: float = 0.25, balance: bool = True) -> tuple[np.ndarray, torch.Tensor]:
    """For whole-image training: image sampling weights (repeat factor of the rarest class an image holds) and
    class loss weights ((n_max / n) ** power); all ones without `balance`."""
    counts = np.array([max(1, c) for c in train.class_counts().values()], np.float64)
    ratio = counts.max() / counts if balance else np.ones_like(counts)
    repeat = np.sqrt(ratio)
    weights = np.array([max([1.0, *repeat[s.detections.class_id]]) for s in train.samples])
    class_weights = torch.tensor(ratio ** power, dtype=torch.float32)
    return weights / weights.sum(), class_weights


def resume(cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, list[dict], float]:
    """Start epoch, history and best score: from OUT/last.pt with --resume, else a fresh start."""
    last_path = cfg.out / "last.pt"
    if not (cfg.resume and last_path.is_file()):
        return 0, [], -1.0
    state = torch.load(last_path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"resumed from {last_path} at epoch {state['epoch']}")
    return state["epoch"], state["history"], state["best"]


def checkpoint(cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer, history: list[dict],
               row: dict, best: float, **extra) -> float:
    """Save OUT/last.pt (to resume) and, when the epoch is the best so far by mAP@.5, OUT/best.pt; returns the best."""
    if row["val_mAP50"] > best:
        best = row["val_mAP50"]
        torch.save({"model": model.state_dict(), "epoch": row["epoch"], **extra}, cfg.out / "best.pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": row["epoch"],
                "history": history + [row], "best": best, **extra}, cfg.out / "last.pt")
    return best


def record_epoch(history: list[dict], row: dict, cfg: TrainConfig, rarest: str) -> bool:
    """Log one epoch (stdout, history.csv, history.png); True when it is time to stop early."""
    history.append(row)
    log.info("epoch %d: loss %.3f, val mAP50 %.3f, mAP %.3f", row["epoch"], row["loss"], row["val_mAP50"], row["val_mAP"])
    print(f"epoch {row['epoch']}: loss {row['loss']:.3f} val mAP@.5 {row['val_mAP50']:.3f} "
          f"mAP@[.5:.95] {row['val_mAP']:.3f} AP@.5 {rarest} {row['val_AP50_rarest']:.3f} "
          f"({row['seconds']:.0f} s)", flush=True)
    with (cfg.out / "history.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    plot_history(history, cfg.out / "history.png")
    scores = [h["val_mAP50"] for h in history]
    if len(scores) - 1 - int(np.argmax(scores)) >= cfg.patience:
        print(f"early stop: no gain in validation mAP@.5 for {cfg.patience} epochs")
        return True
    return False


def epoch_examples(train: Dataset, matched: dict[str, tuple[list[Example], list[Example]]],
                   copies: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> list[Example]:
    examples, negatives = [], []
    for sample in train.samples:
        positives, negs = matched[sample.stem]
        examples += positives
        examples += jittered_ground_truth(sample.stem, sample.detections, copies, rng, cfg.positive_iou)
        negatives += negs
    n_neg = min(len(negatives), int(cfg.negatives_per_positive * len(examples)))
    if n_neg:
        examples += [negatives[i] for i in rng.choice(len(negatives), n_neg, replace=False)]
    order = rng.permutation(len(examples))
    return [examples[i] for i in order]


def batch_tensors(batch: list[Example], images: dict[str, np.ndarray], cfg: TrainConfig,
                  rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    crops, deltas = [], []
    for ex in batch:
        crop = crop_faces(images[ex.stem], ex.box[None], cfg.crop_size, cfg.crop_context)[0]
        d = ex.deltas.copy()
        if rng.random() < 0.5:  # mirror the face: the horizontal shift changes sign
            crop = crop[:, ::-1]
            d[0] = -d[0]
        crops.append(augment_crop(crop, rng))
        deltas.append(d)
    return (torch.from_numpy(crops_to_blob(np.stack(crops))), torch.tensor([ex.label for ex in batch]),
            torch.from_numpy(np.stack(deltas)))


@torch.no_grad()
def predict_with_head(model: CropHead, dataset: Dataset, images: dict[str, np.ndarray],
                      candidates: dict[str, np.ndarray], config: HeadConfig,
                      all_classes: bool = True) -> list[ImagePredictions]:
    import supervision as sv

    model.eval()
    predictions = []
    for sample in dataset.samples:
        cands = candidates[sample.stem]
        faces = sv.Detections(xyxy=cands[:, :4].copy(), confidence=cands[:, 4].copy(),
                              class_id=np.zeros(len(cands), int))
        if len(faces):
            blob = torch.from_numpy(crops_to_blob(crop_faces(images[sample.stem], faces.xyxy, config.crop_size,
                                                             config.crop_context)))
            logits, deltas = model(blob)
            probs, deltas = torch.softmax(logits, 1).numpy(), deltas.numpy()
        else:
            probs, deltas = np.zeros((0, len(config.classes) + 1)), np.zeros((0, 4))
        dets = assemble_detections(faces, probs, deltas, config, images[sample.stem].shape, 0.01, all_classes)
        predictions.append(ImagePredictions(sample.image_path.name, sample.width, sample.height, dets))
    return predictions


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(epochs, [h["loss"] for h in history], "o-", label="total")
    a.plot(epochs, [h["loss_cls"] for h in history], "o-", label="class")
    a.plot(epochs, [h["loss_box"] for h in history], "o-", label="box")
    a.set_xlabel("epoch"), a.set_title("training loss"), a.legend()
    for key in ("val_mAP50", "val_mAP", "val_AP50_rarest"):
        b.plot(epochs, [h[key] for h in history], "o-", label=key)
    b.set_xlabel("epoch"), b.set_title("validation (3-class COCO)"), b.legend(), b.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig) -> Path:
    """Train, keep the best epoch by validation mAP@.5 and export it; returns the ONNX path."""
    if cfg.arch == "one-stage":
        from maskwatch.training.onestage import train_one_stage

        return train_one_stage(cfg)
    if cfg.arch != "two-stage":
        raise MaskwatchError(f"--arch must be two-stage or one-stage, got {cfg.arch!r}")
    cfg.batch_size, cfg.lr = cfg.batch_size or 64, cfg.lr or 2e-3
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    if cfg.quick:
        cfg.epochs = min(cfg.epochs, 2)
    cfg.out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(cfg.data, label_map=cfg.label_map)
    train_set, val_set = split_for_training(dataset, cfg)
    log.info("training on %d images, validating on %d; classes %s", len(train_set), len(val_set), dataset.classes)
    images = {s.stem: read_image(s.image_path) for s in train_set.samples + val_set.samples}
    candidates = find_candidates(images, cfg.out / "candidates.npz",
                                 policy=ScalePolicy(upscale_to=tuple(cfg.candidate_upscale_to)))
    matched = {s.stem: match_candidates(s.stem, candidates[s.stem], s.detections, cfg.positive_iou, cfg.negative_iou)
               for s in train_set.samples}
    copies = copies_per_class(train_set, cfg.jitter_copies, cfg.balance_classes)
    head_config = HeadConfig(classes=list(dataset.classes), crop_size=cfg.crop_size, crop_context=cfg.crop_context)

    model = CropHead(len(dataset.classes), pretrained=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, history, best = resume(cfg, model, optimizer)
    rarest = rarest_class(train_set)

    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng(cfg.seed * 1000 + epoch)
        examples = epoch_examples(train_set, matched, copies, cfg, rng)
        steps = math.ceil(len(examples) / cfg.batch_size)
        model.train()
        sums = {"loss": 0.0, "loss_cls": 0.0, "loss_box": 0.0}
        started = time.time()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for step in bar:
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * (epoch * steps + step) / (cfg.epochs * steps)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, labels, deltas = batch_tensors(examples[step * cfg.batch_size:(step + 1) * cfg.batch_size], images, cfg, rng)
            logits, predicted = model(x)
            loss_cls = F.cross_entropy(logits, labels, label_smoothing=0.05)
            positive = labels > 0
            loss_box = (F.smooth_l1_loss(predicted[positive], deltas[positive], beta=0.5)
                        if positive.any() else predicted.sum() * 0)
            loss = loss_cls + loss_box
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key, value in (("loss", loss), ("loss_cls", loss_cls), ("loss_box", loss_box)):
                sums[key] += value.item()
            bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}")
        result = evaluate_coco(val_set, predict_with_head(model, val_set, images, candidates, head_config))
        row = {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}, "lr": lr,
               "val_mAP50": result.summary["mAP50"], "val_mAP": result.summary["mAP"],
               "val_AP50_rarest": result.per_class[dataset.classes[rarest]]["AP50"],
               "seconds": time.time() - started}
        best = checkpoint(cfg, model, optimizer, history, row, best, config=asdict(head_config))
        if record_epoch(history, row, cfg, dataset.classes[rarest]):
            break

    model.load_state_dict(torch.load(cfg.out / "best.pt", map_location="cpu", weights_only=False)["model"])
    onnx_path = export_onnx(model, cfg.out / "model" / "mask_head.onnx", cfg.crop_size)
    head_config.write(onnx_path.with_suffix(".json"), trained_on=str(cfg.data), best_val_mAP50=best,
                      val_images=[s.stem for s in val_set.samples])
    return onnx_path
