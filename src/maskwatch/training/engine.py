"""`maskwatch train`: one engine for every model kind, in the spirit of torchvision's references/detection.

`fit` loads and splits the data, asks the kind's recipe (model_kinds.py) for its model, batches and losses, and
runs the same loop for all: `train_one_epoch` under one cosine schedule, then `evaluate`, which exports the
epoch's model to ONNX and scores it with the very detector that would ship it (face finder, scale policy and
all). The best epoch by validation mAP@.5 is kept (or, with keep="last", the end of the schedule); every epoch
leaves a checkpoint to resume from.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from maskwatch.data import Dataset, load_dataset
from maskwatch.data.formats import dataset_folder
from maskwatch.data.images import annotated_image
from maskwatch.data.inputs import check_output_folder, check_outside_images
from maskwatch.data.split import listed_names, split_dataset, usable_declared_side, without_test_side
from maskwatch.detector import Detector  # (each epoch is scored by the detector exactly as it will ship it)
from maskwatch.errors import MaskwatchError, name_some
from maskwatch.evaluation.coco_metrics import CocoResult, evaluate_coco
from maskwatch.file_lock import FileLock, LockHeld
from maskwatch.model_kinds import TWO_STAGE, kind_of
from maskwatch.predictions import ImagePredictions
from maskwatch.run_folder import BEST, HISTORY, HISTORY_PLOT, LAST, MODEL, REPLACED, RUN_FILES, TRAIN_LOCK
from maskwatch.thresholds import FOR_METRICS
from maskwatch.training.balance import rarest_class
from maskwatch.whole_file import written_whole

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One training run's settings, one per option of `maskwatch train` (cli.train builds it); the exported model keeps
    most of them (`train_options`)."""

    data: Path
    out: Path
    val_split: Path | None = None
    arch: str = TWO_STAGE
    epochs: int = 12
    batch_size: int | None = None  # None: the recipe's own
    lr: float | None = None  # None: the recipe's own
    weight_decay: float = 1e-4
    patience: int = 4  # with keep="best": stop after this many epochs without a better validation mAP@.5
    keep: str = "best"  # "best": the epoch with the best validation mAP@.5; "last": the end of the schedule
    seed: int = 0
    balance_classes: bool = True  # rarer classes more often / weighted higher; off only to measure its effect
    extra_faces: Path | None = None  # a folder per class of face pictures (two-stage)
    synthetic_wrong: int = 0  # composites of a mask worn below the nose / on the chin per epoch (two-stage)
    device: str = "auto"  # auto, cpu or cuda
    val_every: int = 1  # validate every N epochs and always after the last (validation can cost more than a GPU epoch)
    quick: bool = False
    resume: bool = False
    overwrite: bool = False  # replace an earlier run in `out` (else refused: it may be an hour of training)
    threads: int | None = None
    label_map: dict[str, str] = field(default_factory=dict)
    classes: list[str] | None = None  # the only labels accepted (--classes); None learns them from the data
    fmt: str | None = None  # the data set's format where the files do not tell it (--format)
    allow_outside_images: bool = False  # follow image paths that lead out of the data set's folder
    recipe: dict[str, Any] = field(default_factory=dict)  # the recipe's own settings, by name (experiments)


class Recipe(ABC):
    """What a model kind brings to the engine: a model, its batches and losses, and how it ships."""

    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 0
    takes_face_pictures = False  # --extra-faces and --synthetic-wrong (crops of faces: the two-stage head's)

    def __init__(self, cfg: TrainConfig, train_set: Dataset, val_set: Dataset, images: dict[str, np.ndarray]):
        self.cfg, self.train_set, self.val_set, self.images = cfg, train_set, val_set, images
        self.classes = list(train_set.classes)
        type(self).check_settings(cfg)
        for name, value in cfg.recipe.items():
            setattr(self, name, value)
        for name, value in (type(self).quick_settings() if cfg.quick else {}).items():
            setattr(self, name, value)
        self.batch_size = cfg.batch_size or self.batch_size
        self.lr = cfg.lr or self.lr
        self.model: torch.nn.Module = self.build_model()

    @classmethod
    def check_settings(cls, cfg: TrainConfig) -> None:
        """Refuse a setting the recipe does not have, or a value it cannot train with, before any data is read
        (a wrong option should not cost the minutes of loading)."""
        for name in cfg.recipe:
            if not hasattr(cls, name):
                raise MaskwatchError(f"--{name.replace('_', '-')} is not a setting of --arch {cfg.arch} (the "
                                     f"{cls.__name__} recipe); leave it out")
        if (cfg.extra_faces or cfg.synthetic_wrong) and not cls.takes_face_pictures:
            given = " and ".join(o for o, v in (("--extra-faces", cfg.extra_faces),
                                                ("--synthetic-wrong", cfg.synthetic_wrong)) if v)
            raise MaskwatchError(f"{given}: face pictures are for --arch two-stage (its head learns from face crops); "
                                 f"--arch {cfg.arch} does not use them: leave them out")
        if cfg.synthetic_wrong < 0:
            raise MaskwatchError(f"--synthetic-wrong is a count of composites per epoch: 0 or more, not "
                                 f"{cfg.synthetic_wrong}")
        if cfg.batch_size is not None and cfg.batch_size < 1:
            raise MaskwatchError(f"--batch-size must be at least 1, not {cfg.batch_size}")
        if cfg.lr is not None and not (math.isfinite(cfg.lr) and cfg.lr > 0):
            raise MaskwatchError(f"--lr must be a positive number, not {cfg.lr}")

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """Settings --quick changes (smaller windows, a shorter warm-up), over the recipe's own and cfg.recipe's."""
        return {}

    @abstractmethod
    def build_model(self) -> torch.nn.Module: ...

    def param_groups(self) -> list[dict]:
        """Parameter groups, each with an `lr_factor` on the schedule's rate."""
        return [{"params": list(self.model.parameters()), "lr_factor": 1.0}]

    def train_mode(self, epoch: int) -> None:
        """Put the model in training mode for this epoch (a recipe may keep parts frozen in some epochs)."""
        self.model.train()

    @abstractmethod
    def epoch(self, epoch: int, rng: np.random.Generator) -> list[Any]:
        """The epoch's batches as cheap descriptions (e.g. lists of examples); `make_batch` builds each."""

    @abstractmethod
    def make_batch(self, spec: Any, rng: np.random.Generator) -> Any:
        """CPU tensors of one batch; the engine moves them to the device."""

    @abstractmethod
    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Named loss terms of one batch; the engine minimises their sum."""

    @abstractmethod
    def export(self, folder: Path, **extra) -> Path:
        """Write the model as it ships (ONNX + JSON config) into folder; return the ONNX path."""

    def export_int8(self, model_path: Path, photos: dict[str, np.ndarray]) -> Path | None:
        """An 8-bit copy of the exported model beside it, calibrated on training `photos` (by stem); None where the
        kind has none."""
        return None

    def shipping_model(self) -> torch.nn.Module:
        """A CPU copy in eval mode, for export (the model itself may be on a GPU)."""
        import copy

        return copy.deepcopy(self.model).to("cpu").eval()

    def settings(self) -> dict[str, Any]:
        """What the recipe was run with (its class-level settings as this run set them), for the checkpoint and
        the model's JSON."""
        return type(self).settings_for(self.cfg)

    @classmethod
    def settings_for(cls, cfg: TrainConfig) -> dict[str, Any]:
        """The recipe's settings a run of `cfg` has (its class-level ones, cfg.recipe's, --batch-size and --lr),
        known before anything is read: what --resume must find unchanged."""
        names = {name for kind in cls.__mro__ if kind is not object for name, value in vars(kind).items()
                 if not name.startswith("_") and not callable(value)
                 and not isinstance(value, (property, classmethod, staticmethod))}
        values = {name: cfg.recipe.get(name, getattr(cls, name)) for name in sorted(names)}
        values |= cls.quick_settings() if cfg.quick else {}
        values |= {"batch_size": cfg.batch_size or values["batch_size"], "lr": cfg.lr or values["lr"]}
        return {name: asdict(v) if is_dataclass(v) else v for name, v in values.items()}


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators with --seed, for what draws from them (a new layer's initial
    weights, dropout) rather than from an epoch's own generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """auto: the GPU where torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise MaskwatchError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise MaskwatchError("--device cuda: torch sees no CUDA GPU here; use --device cpu (or auto)")
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch moved to `device`, its tensors however nested in dicts, lists and tuples (other values as they are): a
    recipe's batch is whatever its `losses` takes."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@dataclass
class CosineSchedule:
    """Cosine decay from the base rate to zero over the whole run (epochs may differ in length), after a linear
    warm-up over the first steps."""

    base_lr: float
    epochs: int
    warmup_steps: int = 0

    def __call__(self, epoch: int, step: int, steps: int) -> float:
        progress = min(1.0, (epoch + step / max(1, steps)) / max(1, self.epochs))
        lr = self.base_lr * 0.5 * (1 + math.cos(math.pi * progress))
        done = epoch * steps + step
        return lr * min(1.0, (done + 1) / self.warmup_steps) if self.warmup_steps else lr


def autocast(device: torch.device):
    """Mixed precision where it is safe: bfloat16 on GPUs that have it; full precision on the CPU."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(recipe: Recipe, optimizer: torch.optim.Optimizer, schedule: CosineSchedule, epoch: int,
                    device: torch.device, rng: np.random.Generator, total_epochs: int) -> dict[str, float]:
    """One pass over the recipe's batches; returns the mean of each loss term (and their sum, "loss")."""
    recipe.train_mode(epoch)
    specs = recipe.epoch(epoch, rng)
    sums: dict[str, float] = {}
    bar = tqdm(specs, desc=f"epoch {epoch + 1}/{total_epochs}", unit="batch")
    done, lr = 0, 0.0
    for step, spec in enumerate(bar):
        lr = schedule(epoch, step, len(specs))
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_factor", 1.0)
        batch = to_device(recipe.make_batch(spec, rng), device)
        with autocast(device):
            parts = recipe.losses(batch)
        loss = sum(parts.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in (("loss", loss), *parts.items()):
            sums[key] = sums.get(key, 0.0) + float(value.item())
        done = step + 1
        bar.set_postfix(loss=f"{sums['loss'] / done:.3f}")
    return {key: value / max(1, done) for key, value in sums.items()} | {"lr": lr}


def evaluate(model_path: Path, val_set: Dataset, images: dict[str, np.ndarray] | None = None,
             threads: int | None = None) -> CocoResult:
    """Score an exported model exactly as it ships: Detector.load, all classes listed, COCO metrics. `images`:
    the decoded images by stem (training keeps them in memory); None reads each from disk in turn."""
    detector = Detector.load(model_path, threads=threads)
    predictions = [ImagePredictions(s.image_path.name, s.width, s.height,
                                    detector(images[s.stem] if images is not None else annotated_image(s.image_path),
                                             min_score=FOR_METRICS.min_score, all_classes=FOR_METRICS.all_classes))
                   for s in val_set.samples]
    return evaluate_coco(val_set, predictions)


def scores_of(result: CocoResult) -> dict[str, float]:
    """The scores kept of a validation: mAP@.5, mAP@[.5:.95] and AP@.5 per class ("AP50 with_mask" ...)."""
    return {"mAP50": result.summary["mAP50"], "mAP": result.summary["mAP"],
            **{f"AP50 {name}": v["AP50"] for name, v in result.per_class.items()}}


def warn_unseen_classes(train: Dataset) -> list[str]:
    """Classes without a training box (a category the file lists but no box uses, or one only the validation side
    holds): said, since the model then learns never to predict them. Returns them."""
    unseen = [name for name, n in train.class_counts().items() if not n]
    if unseen:
        log.warning("no training box of %s: the model learns never to predict %s (leave a class out with "
                    "--label-map NAME=, or add examples)", ", ".join(unseen), "it" if len(unseen) == 1 else "them")
    return unseen


def split_for_training(dataset: Dataset, cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation sides: the images --val-split lists, else the validation side the data set declares,
    else split_dataset's; a declared test side is on neither. --quick keeps 16 and 6 images."""
    data = Path(cfg.data)
    dataset = without_test_side(dataset, data)  # a Roboflow export's test/ folder: neither learnt nor chosen on
    if cfg.val_split:
        val_stems = set(listed_names(dataset, cfg.val_split))
        train_stems = [s.stem for s in dataset.samples if s.stem not in val_stems]
    elif (declared := usable_declared_side(dataset, data)) is not None:  # the sides convert --val wrote
        listed, val_stems = declared
        print(f"validating on the {len(val_stems)} images {listed} names (--val-split to choose others)")
        train_stems = [s.stem for s in dataset.samples if s.stem not in val_stems]
    else:
        split = split_dataset(dataset, seed=cfg.seed)
        train_stems, val_stems = split.train, set(split.val)
    train, val = dataset.subset(train_stems), dataset.subset(val_stems)
    if cfg.quick:  # a few images, enough to see the loss fall
        train.samples, val.samples = train.samples[:16], val.samples[:6]
    check_sides(train, val, len(dataset))
    return train, val


def check_sides(train: Dataset, val: Dataset, total: int) -> None:
    """Training needs images on both sides: one to learn from, one to score each epoch on; and a face to find
    among the validation images (without one, no epoch has a score, and none can be kept as the best)."""
    if not train.samples or not val.samples:
        raise MaskwatchError(f"{total} usable image(s) gave {len(train)} to train on and {len(val)} to validate on: "
                             f"training needs at least one on each side (annotate more images, or name the "
                             f"validation images with --val-split)")
    if not val.num_boxes - val.num_difficult:
        raise MaskwatchError(f"the {len(val)} validation image(s) hold no face to find (difficult ones are not scored) "
                             f"({name_some([s.stem for s in val.samples])}): no epoch could be scored; validate on "
                             f"images with annotated faces (--val-split)")


def read_images(train: Dataset, val: Dataset) -> tuple[Dataset, Dataset, dict[str, np.ndarray]]:
    """Every image of both sides, decoded once; one that cannot be read (truncated, corrupt) is left out of its
    side with a warning naming it, and training goes on with the rest."""
    images, unreadable = {}, []
    for sample in tqdm(train.samples + val.samples, desc="reading images", unit="img"):
        try:
            images[sample.stem] = annotated_image(sample.image_path)
        except MaskwatchError as exc:
            unreadable.append(str(exc))
    if unreadable:
        log.warning("%d image(s) cannot be read and are left out: %s", len(unreadable), name_some(unreadable, 3))
        train, val = train.subset(set(images) & {s.stem for s in train.samples}), \
            val.subset(set(images) & {s.stem for s in val.samples})
        check_sides(train, val, len(images))
    return train, val, images


def check_run_folder(cfg: TrainConfig) -> list[str]:
    """--resume needs a run to go on with; without it an earlier run in OUT is kept unless --overwrite says
    otherwise (it may be an hour of training, and `runs/train` is every plain command's default). Returns what
    an earlier run left there."""
    check_output_folder(cfg.out)
    if cfg.resume and not (cfg.out / LAST).is_file():
        raise MaskwatchError(f"{cfg.out}: nothing to resume (no {LAST} there: no epoch of a run in this folder "
                             f"finished); without --resume a new run starts")
    aside = cfg.out / REPLACED
    if aside.is_symlink() or (aside.exists() and not aside.is_dir()):
        raise MaskwatchError(f"{aside} is not a folder: it is where --overwrite keeps the run it replaces until the "
                             f"new one has its model; move it away")
    earlier = [name for name in (MODEL, *RUN_FILES, REPLACED) if (cfg.out / name).exists()]
    if not cfg.resume and earlier and not cfg.overwrite:
        resumable = "--resume goes on with it, " if (cfg.out / LAST).is_file() else ""
        raise MaskwatchError(f"{cfg.out} holds an earlier run ({', '.join(earlier)}); {resumable}--overwrite "
                             f"replaces it, another --out keeps both")
    return earlier


def run_lock(out: Path) -> FileLock:
    """The run folder's lock, held while a training writes there: a second `train` into it is refused (once its
    data is read: the folder is made only then)."""
    try:
        return FileLock(out / TRAIN_LOCK)
    except LockHeld as held:
        raise MaskwatchError(f"{out}: another training ({held.owner}) is writing there; wait for it to end, or give "
                             f"this one another --out") from None
    except OSError as exc:
        raise MaskwatchError(f"{out}: cannot write there ({exc})") from None


def check_out_beside_data(cfg: TrainConfig) -> None:
    """Refuse an --out that is the data set's own folder (the run's val.txt would replace one its split names)
    or a folder its load searches for pictures (the run's plots would be read as pictures of it next time)."""
    if not Path(cfg.data).exists():
        return  # (the load says so)
    data = Path(cfg.data).resolve()
    if Path(cfg.out).resolve() in (data, data.parent if data.is_file() else data):  # (a COCO file's own folder)
        raise MaskwatchError(f"--out {cfg.out} is the data set's own folder: the run's files (val.txt, checkpoints, "
                             f"plots) would mix with its files; give the run a folder of its own (e.g. runs/NAME)")
    check_outside_images(cfg.out, cfg.data, cfg.fmt)


def set_earlier_run_aside(out: Path) -> None:
    """--overwrite: the earlier run's model and files move to OUT/replaced/ (deleted once the new run has its
    model), so a new run stopped early loses nothing finished. An earlier run without a model (itself stopped
    early) is deleted, and an older finished run already set aside stays."""
    files = [out / name for name in (MODEL, *RUN_FILES, "val.txt") if (out / name).exists()]
    if (out / MODEL).is_dir():
        shutil.rmtree(out / REPLACED, ignore_errors=True)  # (check_run_folder: a plain folder, if there)
        (out / REPLACED).mkdir()
        for path in files:
            path.rename(out / REPLACED / path.name)
        log.warning("%s: the earlier run there is replaced (--overwrite); it waits in %s until this one has its "
                    "model", out, out / REPLACED)
        return
    for path in files:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    log.warning("%s: the earlier run there, which had no model, is replaced (--overwrite)", out)


def run_identity(cfg: TrainConfig, train_set: Dataset, val_set: Dataset) -> dict[str, Any]:
    """What a checkpoint must share with the command that resumes it: the data, classes and split."""
    import hashlib

    digest = hashlib.sha256()
    for side in (train_set, val_set):  # (the boxes and labels: a set edited since, under the same names, differs)
        for sample in sorted(side.samples, key=lambda s: s.stem):
            digest.update(f"{sample.stem}|{np.round(sample.detections.xyxy, 2).tolist()}|"
                          f"{side.labels_of(sample)}|{sample.left_out!r}\n".encode())
    return {"data": str(Path(cfg.data).resolve()), "classes": list(train_set.classes),
            "train_images": sorted(s.stem for s in train_set.samples),
            "val_images": sorted(s.stem for s in val_set.samples), "annotations": digest.hexdigest()}


# What a resumed run may change: how long it goes on and how it is watched, not what it learns or how.
RESUMABLE_CHANGES = frozenset({"epochs", "patience", "keep", "val_every", "device", "data", "val_split", "fmt",
                               "allow_outside_images"})  # (the data's and split's identity is checked apart)


def training_options(cfg: TrainConfig) -> dict[str, Any]:
    """The run's options as the model's JSON records them (`train_options`)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()
            if k not in ("out", "resume", "overwrite", "threads", "recipe")}


def changed_settings(state: dict, cfg: TrainConfig, settings: dict[str, Any]) -> list[str]:
    """What would make a resumed run other than the one it goes on with: a recipe setting (--crop-size, --lr) or
    an option (--seed, --extra-faces) other than the checkpoint's, each as "NAME THEN there, NOW now"."""
    changed = [f"{name} {state['settings'][name]!r} there, {value!r} now" for name, value in settings.items()
               if name in state.get("settings", {}) and state["settings"][name] != value]
    options = training_options(cfg)
    changed += [f"{name} {state['options'][name]!r} there, {options[name]!r} now" for name in options
                if name in state.get("options", {}) and name not in RESUMABLE_CHANGES
                and name not in settings and state["options"][name] != options[name]]
    return changed


def resumable_checkpoint(cfg: TrainConfig, identity: dict[str, Any], settings: dict[str, Any]) -> dict | None:
    """With --resume, OUT/last.pt, loaded once: it must be of this model kind, data, classes, split and settings
    (its weights would be exported as a model of this data, trained so); checked before the images are read and
    anything is written. None without --resume."""
    if not cfg.resume:
        return None
    last_path = cfg.out / LAST
    state = torch.load(last_path, map_location="cpu", weights_only=False)
    if state.get("arch", cfg.arch) != cfg.arch:
        raise MaskwatchError(f"{last_path} holds a {state['arch']} model; resume with --arch {state['arch']}")
    saved = state.get("identity", identity)  # (checkpoints from before it was saved: not checked)
    differs = {"classes": "other classes", "train_images": "other training images",
               "val_images": "other validation images",  # (not the path: a data set moved or copied is the same)
               "annotations": "other boxes or labels (the annotations were edited since)"}
    for key, what in differs.items():
        if key in saved and saved.get(key) != identity[key]:  # (older checkpoints: what they hold)
            detail = f" ({', '.join(saved[key])} there, {', '.join(identity[key])} now)" if key == "classes" else ""
            data = f", from {saved['data']}" if saved.get("data") != identity["data"] else ""
            raise MaskwatchError(f"{last_path} was trained with {what}{detail}{data}; resume with the command "
                                 f"that started it (same --data, --val-split, --seed, --quick, --label-map, --classes)")
    changed = changed_settings(state, cfg, settings)
    if changed:
        raise MaskwatchError(f"{last_path} was trained with other settings ({'; '.join(changed)}); resume with the "
                             f"command that started it (a resumed run may change only --epochs, --patience, --keep, "
                             f"--val-every and --device), or start a new run")
    return state


def resume(cfg: TrainConfig, state: dict | None, model: torch.nn.Module,
           optimizer: torch.optim.Optimizer) -> tuple[int, list[dict], float]:
    """Start epoch, history and best score: from the checkpoint resumable_checkpoint gave, else a fresh start."""
    if state is None:
        return 0, [], -1.0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "rng" in state:  # (dropout draws from torch's generator: resumed, the run goes on as it would have)
        restore_rng(state["rng"])
    print(f"resumed from {cfg.out / LAST} at epoch {state['epoch']}")
    started_for = state.get("epochs", cfg.epochs)
    if state.get("stopped_early") and early_stop_due(state["history"], cfg):
        log.warning(f"{cfg.out}: the run stopped early at epoch {state['epoch']} (no gain for --patience "
                    f"{cfg.patience}): no more are trained, and its model is exported from the checkpoint (a larger "
                    f"--patience goes on)")
        return max(cfg.epochs, state["epoch"]), state["history"], state["best"]
    if cfg.epochs <= state["epoch"]:
        log.warning(f"{cfg.out}: the run has done {state['epoch']} epochs, --epochs {cfg.epochs}: no more are "
                    f"trained, and its model is exported from the checkpoint")
    elif started_for != cfg.epochs:  # the cosine schedule is laid over --epochs: another count moves the rate
        change = ("its learning rate goes back up, to where a run of that length would be" if cfg.epochs > started_for
                  else "its learning rate falls faster from here")
        log.warning(f"{cfg.out}: the run was started for {started_for} epochs and goes on for {cfg.epochs}: {change} "
                    f"(the schedule is laid over --epochs)")
    return state["epoch"], state["history"], state["best"]


def checkpoint(cfg: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer, history: list[dict],
               row: dict, best: float, **extra) -> float:
    """Save OUT/last.pt (to resume: with the random generators' states, and whether the run stops early here)
    and, when the epoch is the best so far by mAP@.5, OUT/best.pt; returns the best. An epoch that was not
    validated (mAP NaN) is never the best."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if row["val_mAP50"] > best:
        best = row["val_mAP50"]
        save_whole({"model": state, "epoch": row["epoch"], "arch": cfg.arch, **extra}, cfg.out / BEST)
    save_whole({"model": state, "optimizer": optimizer.state_dict(), "epoch": row["epoch"], "arch": cfg.arch,
                "history": history + [row], "best": best, "epochs": cfg.epochs, "rng": rng_state(),
                "options": training_options(cfg), **extra}, cfg.out / LAST)
    return best


def save_whole(state: dict, path: Path) -> None:
    """torch.save to a file beside `path`, then renamed over it: a run stopped (Ctrl-C) or crashing while it saves
    keeps the previous checkpoint whole, where writing in place left a truncated one that cannot be resumed."""
    with written_whole(path) as partial:
        torch.save(state, partial)


def rng_state() -> dict[str, Any]:
    """The global random generators' states (torch's drives dropout), for a resumed run to go on as the run would."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}  # (a CPU run: none)


def restore_rng(saved: dict[str, Any]) -> None:
    """The global random generators as rng_state saved them (a GPU's where as many GPUs are seen)."""
    random.setstate(saved["python"])
    np.random.set_state(saved["numpy"])
    torch.set_rng_state(saved["torch"])
    if saved.get("cuda") and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(saved["cuda"])


def epochs_since_best(history: list[dict]) -> int:
    """Epochs after the one with the best validation mAP@.5 (the first of equals)."""
    scores = np.array([h["val_mAP50"] for h in history], dtype=float)
    return len(scores) - 1 - int(np.nanargmax(scores))


def early_stop_due(history: list[dict], cfg: TrainConfig) -> bool:
    """With keep="best": whether the last epoch was validated and --patience epochs have passed since the best
    score (epochs not validated decide nothing: with --val-every they would stop a run that was not scored)."""
    if cfg.keep != "best" or not history or math.isnan(history[-1]["val_mAP50"]):
        return False
    return epochs_since_best(history) >= cfg.patience


def record_epoch(history: list[dict], row: dict, cfg: TrainConfig, rarest: str) -> None:
    """Log one epoch (stdout, history.csv, history.png)."""
    history.append(row)
    validated = "not validated" if math.isnan(row["val_mAP50"]) else (
        f"val mAP@.5 {row['val_mAP50']:.3f} mAP@[.5:.95] {row['val_mAP']:.3f} AP@.5 {rarest} "
        + ("- (no such face in validation)" if math.isnan(row["val_AP50_rarest"]) else f"{row['val_AP50_rarest']:.3f}"))
    left = cfg.epochs - row["epoch"]
    remaining = left * float(np.mean([h["seconds"] for h in history]))
    eta = (f"; about {math.ceil(remaining / 60)} min" if remaining >= 90 else f"; about {math.ceil(remaining)} s")
    eta = f"{eta} left for the other {left} epoch(s)" if left else ""
    print(f"epoch {row['epoch']}: loss {row['loss']:.3f} {validated} ({row['seconds']:.0f} s{eta})", flush=True)
    with (cfg.out / HISTORY).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    plot_history(history, cfg.out / HISTORY_PLOT)


def plot_history(history: list[dict], path: Path) -> None:
    """The losses and validation scores per epoch as a figure, rewritten after every epoch."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.8))
    a, b = fig.subplots(1, 2)
    for key in [k for k in history[0] if k == "loss" or k.startswith("loss_")]:
        a.plot(epochs, [h[key] for h in history], "o-", label=key.removeprefix("loss_") if key != "loss" else "total")
    a.set_xlabel("epoch"), a.set_title("training loss"), a.legend()
    for key in ("val_mAP50", "val_mAP", "val_AP50_rarest"):
        b.plot(epochs, [h[key] for h in history], "o-", label=key)
    b.set_xlabel("epoch"), b.set_title("validation (3-class COCO)"), b.legend(), b.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def fit(cfg: TrainConfig) -> Path:
    """Train a model of kind cfg.arch, keep the best epoch by validation mAP@.5 (or the last) and export it;
    returns its ONNX."""
    if cfg.keep not in ("best", "last"):
        raise MaskwatchError(f"--keep must be 'best' or 'last', not {cfg.keep!r}")
    if cfg.val_every < 1:
        raise MaskwatchError(f"--val-every must be at least 1, not {cfg.val_every}")
    if cfg.epochs < 1:
        raise MaskwatchError(f"--epochs must be at least 1, not {cfg.epochs}")
    if cfg.keep == "best" and cfg.patience < 1:
        raise MaskwatchError(f"--patience must be at least 1 epoch, not {cfg.patience}")
    if cfg.resume and cfg.overwrite:
        raise MaskwatchError("--resume goes on with the run in --out, --overwrite replaces it: give one of them")
    cfg.data = dataset_folder(Path(cfg.data))  # (a YOLO set's data.yaml: its folder, where its sides are named)
    if cfg.quick:  # (before the recipe checks its settings against the epochs: --probe-epochs 3 --quick is refused)
        if cfg.epochs > 2 and cfg.epochs != TrainConfig.epochs:
            log.warning("--quick trains 2 epochs, not --epochs %d", cfg.epochs)
        cfg.epochs = min(cfg.epochs, 2)
    recipe_type = kind_of(cfg.arch).load_recipe()
    recipe_type.check_settings(cfg)
    check_out_beside_data(cfg)
    earlier = check_run_folder(cfg)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    dataset = load_dataset(cfg.data, cfg.fmt, classes=cfg.classes, label_map=cfg.label_map,  # type: ignore[arg-type]
                           allow_outside_images=cfg.allow_outside_images)
    if not sum(dataset.class_counts().values()):
        raise MaskwatchError(f"{cfg.data}: no box with a usable label to learn from (warnings above say why)")
    if cfg.classes is None:
        print(f"classes of {cfg.data}: {', '.join(dataset.classes)} (fix the list with --classes)")
    train_set, val_set = split_for_training(dataset, cfg)
    identity = run_identity(cfg, train_set, val_set)
    resumed = resumable_checkpoint(cfg, identity, recipe_type.settings_for(cfg))
    train_set, val_set, images = read_images(train_set, val_set)
    cfg.out.mkdir(parents=True, exist_ok=True)  # only once the data is known to be usable
    with run_lock(cfg.out):  # (two trainings into one folder would write over each other's checkpoints)
        print(f"{cfg.arch}: training on {len(train_set)} images, validating on {len(val_set)} ({device}); "
              f"classes {dataset.classes}")
        warn_unseen_classes(train_set)
        recipe: Recipe = recipe_type(cfg, train_set, val_set, images)
        if not cfg.resume and earlier:  # (--overwrite, once nothing before the first epoch can fail; a two-stage head
            set_earlier_run_aside(cfg.out)  # left beside a one-stage model would be what --model loads)
        (cfg.out / "val.txt").write_text("".join(f"{s.stem}\n" for s in val_set.samples))  # for detect --list
        recipe.model.to(device)
        optimizer = torch.optim.AdamW(recipe.param_groups(), lr=recipe.lr, weight_decay=cfg.weight_decay)
        start_epoch, history, best = resume(cfg, resumed, recipe.model, optimizer)
        schedule = CosineSchedule(recipe.lr, cfg.epochs, recipe.warmup_steps)
        rarest = dataset.classes[rarest_class(train_set)]
        epoch_dir = cfg.out / "epoch"

        for epoch in range(start_epoch, cfg.epochs):
            started = time.time()
            rng = np.random.default_rng(cfg.seed * 1000 + epoch)
            losses = train_one_epoch(recipe, optimizer, schedule, epoch, device, rng, cfg.epochs)
            recipe.model.eval()
            scores = {"val_mAP50": math.nan, "val_mAP": math.nan, "val_AP50_rarest": math.nan}
            val_scores = None
            if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                val_scores = scores_of(evaluate(recipe.export(epoch_dir), val_set, images, cfg.threads))
                scores = {"val_mAP50": val_scores["mAP50"], "val_mAP": val_scores["mAP"],
                          "val_AP50_rarest": val_scores[f"AP50 {rarest}"]}
            row = {"epoch": epoch + 1, **losses, **scores, "seconds": time.time() - started}
            stop = early_stop_due(history + [row], cfg)
            best = checkpoint(cfg, recipe.model, optimizer, history, row, best, settings=recipe.settings(),
                              val_scores=val_scores, identity=identity, stopped_early=stop)
            record_epoch(history, row, cfg, rarest)
            if stop:
                print(f"early stop: no gain in validation mAP@.5 for {epochs_since_best(history)} epochs "
                      f"(--patience {cfg.patience})")
                break

        state = torch.load(cfg.out / f"{cfg.keep}.pt", map_location="cpu", weights_only=False)
        recipe.model.load_state_dict(state["model"])
        recipe.model.eval()
        shutil.rmtree(epoch_dir, ignore_errors=True)
        kept = next(h for h in history if h["epoch"] == state["epoch"])
        options = training_options(cfg)
        # The kept epoch's validation per class, from its checkpoint (so a resumed run has it too): whoever needs the
        # model's scores on its validation images reads them instead of predicting again.
        path = recipe.export(cfg.out / MODEL, trained_on=str(cfg.data), kept=cfg.keep, epoch=state["epoch"],
                             val_mAP50=kept["val_mAP50"], val_images=[s.stem for s in val_set.samples],
                             train_options=options, recipe=recipe.settings(), val_scores=state.get("val_scores"))
        int8 = recipe.export_int8(path, {s.stem: images[s.stem] for s in train_set.samples})
        if int8 is not None:
            print(f"8-bit copy (faster on CPUs with 8-bit dot products): --model {int8}")
        if cfg.overwrite or cfg.resume:  # this run (or the one it goes on with) replaced it, and now has its model
            shutil.rmtree(cfg.out / REPLACED, ignore_errors=True)
        return path
