"""maskwatch's command line: one command per verb; user errors print one clear line, no traceback."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Collection, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maskwatch.data.formats import FORMATS
from maskwatch.data.images import IMAGE_MODES
from maskwatch.data.split import VAL_FRACTION
from maskwatch.errors import MaskwatchError, install_hint, one_line
from maskwatch.evaluation.coco_metrics import SCHEMES
from maskwatch.limits import (API_KEY_ENV, MAX_UPLOAD_MB, SERVE_DATA_DIR, SERVE_MAX_QUEUE, SERVE_WORKERS,
                              WEBHOOK_SECRET_ENV, WEBHOOK_TIMEOUT_S)
from maskwatch.model_kinds import KINDS, TWO_STAGE
from maskwatch.thresholds import CONFUSION_MIN_SCORE, FOR_METRICS, FOR_PEOPLE

# Plain help (rich_markup_mode=None): typer's rich help prints a `<bool>` type after on/off flags, which reads as if
# `--quick` took a value.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Find faces and tell whether they wear a mask, wear it wrongly, or wear none.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Inspect and split annotated data sets.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        import onnxruntime

        from maskwatch.version import __version__

        typer.echo(f"maskwatch {__version__} (onnxruntime {onnxruntime.__version__})")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                          help="Print maskwatch's version and exit.")) -> None:
    """Find faces and tell whether they wear a mask, wear it wrongly, or wear none."""

def one_of(names) -> str:
    """The metavar of an option that takes one of a few words, as click writes a choice: [a|b|c]."""
    return f"[{'|'.join(names)}]"


LabelMapOption = typer.Option(None, "--label-map", metavar="OLD=NEW",
                              help="Rename labels while reading, OLD=NEW (repeatable); OLD= (nothing after the =) "
                                   "leaves OLD's boxes out.")
ClassesOption = typer.Option(None, "--classes", metavar="NAMES",
                             help="The only labels accepted, comma-separated (e.g. with_mask,without_mask,"
                                  "mask_weared_incorrect); any other label stops the load. Default: learnt from "
                                  "the data and printed.")
AllowOutsideOption = typer.Option(False, "--allow-outside-images",
                                  help="Read images that the annotations place outside the data set's folder "
                                       "(VOC <path>, COCO file_name); by default they are skipped.")
FormatOption = typer.Option(None, "--format", metavar=one_of(FORMATS),
                            help="voc, yolo, coco or tfrecord, if not detected from the files.")
ModelOption = typer.Option(None, "--model", help="A trained model: its .onnx file or the folder `maskwatch train` "
                                                 "wrote; `shipped` (the default); or `shipped-int8`, the shipped "
                                                 "model in 8 bits (faster on "
                                                 "CPUs with 8-bit dot products; README) [default: the shipped "
                                                 "model].")
ThreadsOption = typer.Option(None, "--threads", min=1, metavar="N",
                             help="CPU threads for the detector [default: onnxruntime's choice, one per core].")
ListOption = typer.Option(None, "--list", help="Keep only the images named in this file (paths, file names or "
                                               "stems, one per line, as `data split` writes).")
INPUTS_HELP = "Images, folders (searched recursively), .txt files listing image paths, or quoted globs ('a/**/*.jpg')."


def _load(path: Path, fmt: Optional[str], label_map: Optional[list[str]], classes: Optional[str] = None,
          allow_outside_images: bool = False, check_pixels: bool = False, labels_elsewhere: Collection[str] = ()):
    """The data set, its problems said; check_pixels: also leave out (and name) images whose pixel data is damaged
    (`data stats`, `convert`: a load reads headers only); labels_elsewhere: what else --label-map renames
    (evaluate's predictions)."""
    from maskwatch.classes import MASK_CLASSES, TWO_CLASSES, meaning_of, parse_class_list, parse_label_map
    from maskwatch.data import load_dataset

    fixed = parse_class_list(classes)
    dataset = load_dataset(path, fmt, classes=fixed, label_map=parse_label_map(label_map),
                           allow_outside_images=allow_outside_images, labels_elsewhere=labels_elsewhere)
    if check_pixels:
        dataset = dataset.without_damaged_images()
    if dataset.problems:
        console.print(f"[yellow]{len(dataset.problems)} problem(s) while reading {escape(str(path))} (see warnings "
                      f"above); the rest was loaded[/yellow]", highlight=False, soft_wrap=True)
    if fixed is None:
        console.print(f"classes of {escape(str(path))}: {escape(', '.join(dataset.classes))} (fix the list with "
                      f"--classes)", highlight=False, soft_wrap=True)
    read = {c: meaning_of(c) for c in dataset.classes if c not in (*MASK_CLASSES, *TWO_CLASSES) and meaning_of(c)}
    if read and not set(dataset.classes) & set(MASK_CLASSES):  # (a set of one's own names: README, Data formats)
        console.print("read by what the names say: " + escape(", ".join(f"{c} = {m}" for c, m in read.items())),
                      highlight=False, soft_wrap=True)
    return dataset


def _people_text(people: dict[str, int]) -> str:
    """People per class as `watch` and `report` print them: the mask classes in their order, zeros included (a
    database holds only the classes someone was counted in)."""
    from maskwatch.classes import classes_to_list

    names = classes_to_list(people)
    return ", ".join(f"{name} {people.get(name, 0)}" for name in names) or "none"


@app.command(short_help="Convert a data set between VOC, YOLO, COCO and TFRecord.")
def convert(src: Path = typer.Argument(..., help="Data set to read (format detected).", metavar="SRC"),
            dst: Path = typer.Argument(..., help="Folder to write.", metavar="DST"),
            to: str = typer.Option(..., "--to", metavar=one_of(FORMATS), help="voc, yolo, coco or tfrecord."),
            source_format: Optional[str] = typer.Option(None, "--from", "--format", metavar=one_of(FORMATS),
                                                        help="Format of SRC, if not detected."),
            images: str = typer.Option("hardlink", "--images", metavar=one_of(IMAGE_MODES),
                                       help="How images go beside the labels: hardlink (no extra space; a copy "
                                            "where links are not possible), copy, or symlink (absolute links to "
                                            "SRC: the folder then only works where SRC is). TFRecord embeds them."),
            val: Optional[float] = typer.Option(None, "--val", help="Also write train and val sides: this share of "
                                                                    "the images to val, grouped and stratified as "
                                                                    "`data split` does (not with --split)."),
            split: Optional[Path] = typer.Option(None, "--split", help="Also write train and val sides: val = the "
                                                                       "images named in this list (as `data split` "
                                                                       "writes val.txt; not with --val)."),
            seed: int = typer.Option(0, "--seed", help="Seed of the --val split."),
            shards: int = typer.Option(1, "--shards", help="TFRecord: cut each record file into this many shards."),
            label_map: Optional[list[str]] = LabelMapOption, classes: Optional[str] = ClassesOption,
            allow_outside_images: bool = AllowOutsideOption) -> None:
    """Convert a data set between Pascal VOC, YOLO, COCO and TFRecord (+ label_map.pbtxt). The output folder stands
    on its own: images beside the labels, no absolute paths, readable by other tools."""
    from maskwatch.data import save_dataset
    from maskwatch.data.formats import FORMATS, check_save_options, dataset_folder, detect_format
    from maskwatch.data.inputs import check_output_folder
    from maskwatch.data.split import (check_val_fraction, declared_test_side, split_around, split_dataset,
                                      split_from_list, usable_declared_side)

    if val is not None and split is not None:
        raise MaskwatchError("give --val or --split, not both")
    if val is not None:
        check_val_fraction(val)
    if to not in FORMATS:  # before the (long) load
        raise MaskwatchError(f"unknown format {to!r} for --to; use one of {', '.join(FORMATS)}")
    if not src.exists():  # (said before what is wrong with DST)
        raise MaskwatchError(f"{src}: no such file or folder")
    if source_format is None:  # (a folder that holds no data set: said first; the load then takes what was found)
        source_format = detect_format(dataset_folder(src))
    source_folder = src.resolve() if src.is_dir() else src.resolve().parent
    if dst.resolve() == source_folder or dst.resolve() in source_folder.parents:
        raise MaskwatchError(f"{dst}: the output folder holds the data set being read; write to a new folder")
    if src.is_dir() and source_folder in dst.resolve().parents:  # the copy would be read with the source next time
        raise MaskwatchError(f"{dst}: the output folder is inside the data set being read; write it elsewhere")
    check_save_options(dst, to, images, shards)
    check_output_folder(dst, "DST")
    dataset = _load(src, source_format, label_map, classes, allow_outside_images, check_pixels=True)
    sides = split_from_list(dataset, split) if split else split_dataset(dataset, val, seed) if val is not None else None
    folder = dataset_folder(src)
    if sides is None and (declared := usable_declared_side(dataset, folder, "it is written without sides")):
        listed, val_stems = declared  # the source's own train / val sides: kept, unless it has a test side too
        test, named_by = declared_test_side(dataset, folder)
        if test:  # (which would join the train side: written with the others, said)
            typer.echo(f"note: {named_by} names train, val and test sides; sides are written only with --val or "
                       f"--split (the {len(test)} test images among the others)")
        else:
            sides = split_around(dataset, val_stems)
            typer.echo(f"keeping the train / val sides {listed} names (--val or --split chooses others)")
    save_dataset(dataset, dst, to, images, sides, shards)  # type: ignore[arg-type]  # (stopped: nothing half-written)
    typer.echo(f"wrote {len(dataset)} images, {dataset.num_boxes} boxes as {to} to {dst}" +
               (f" (train {len(sides.train)}, val {len(sides.val)} images)" if sides else ""))


@data_app.command("stats", short_help="Counts per class and box sizes, as a table and a figure.")
def data_stats(path: Path = typer.Argument(..., help="Data set folder or file.", metavar="DATASET"),
               fmt: Optional[str] = FormatOption,
               plot: Path = typer.Option(Path("out/data_stats.png"), help="Where to write the figure (its suffix "
                                                                         "picks the format: .png, .jpg, .svg, .pdf)."),
               problems: Path = typer.Option(Path("out/data_problems.txt"), "--problems",
                                             help="Where to write every problem met while reading, if any (an "
                                                  "earlier run's file is removed when there are none; the console "
                                                  "shows the first few of each kind)."),
               label_map: Optional[list[str]] = LabelMapOption, classes: Optional[str] = ClassesOption,
               allow_outside_images: bool = AllowOutsideOption) -> None:
    """Counts per class, images per class and box sizes, as a table and a PNG figure; every problem met while
    reading, in a text file."""
    import numpy as np

    from maskwatch.data.stats import dataset_stats, plot_stats

    dataset = _load(path, fmt, label_map, classes, allow_outside_images, check_pixels=True)
    if dataset.problems:
        problems.parent.mkdir(parents=True, exist_ok=True)
        problems.write_text("".join(f"{problem}\n" for problem in dataset.problems))
        typer.echo(f"every problem ({len(dataset.problems)}): {problems}")
    else:  # an earlier read's list would read as this one's
        problems.unlink(missing_ok=True)
    stats = dataset_stats(dataset)
    typer.echo(f"{path}: {stats.images} images, {stats.boxes} boxes")  # its own line: a long path would cut a title
    table = Table()
    for column in ("class", "boxes", "images", "width min / median / max (px)"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, count in stats.boxes_per_class.items():
        w = stats.box_widths[name]
        widths = f"{w.min():.0f} / {np.median(w):.0f} / {w.max():.0f}" if len(w) else "-"
        table.add_row(name, str(count), str(stats.images_per_class[name]), widths)
    Console().print(table)
    if stats.difficult_boxes:
        typer.echo(f"{stats.difficult_boxes} box(es) marked difficult (counted above; `evaluate` neither finds nor "
                   f"misses them)")
    typer.echo(f"figure: {plot_stats(stats, plot)}")


@data_app.command("split", short_help="Stratified train/validation split, duplicates kept together.")
def data_split(path: Path = typer.Argument(..., help="Data set folder or file to split.", metavar="DATASET"),
               val: float = typer.Option(VAL_FRACTION, "--val", help="Share of the images that go to validation."),
               seed: int = typer.Option(0, "--seed", help="Another seed gives another split of the same data."),
               out: Path = typer.Option(Path("out/split"), "--out", help="Folder for train.txt and val.txt."),
               fmt: Optional[str] = FormatOption, label_map: Optional[list[str]] = LabelMapOption,
               classes: Optional[str] = ClassesOption, allow_outside_images: bool = AllowOutsideOption) -> None:
    """Deterministic, stratified validation split; near-duplicate images stay on one side. Writes OUT/train.txt
    and OUT/val.txt (one image stem per line) for `train --val-split`, `evaluate --split` and `detect --list`."""
    from maskwatch.data.inputs import check_output_folder
    from maskwatch.data.split import check_val_fraction, split_dataset, usable_declared_side, without_test_side

    check_val_fraction(val)
    check_output_folder(out)
    dataset = without_test_side(_load(path, fmt, label_map, classes, allow_outside_images), path)
    if (declared := usable_declared_side(dataset, path)) is not None:
        typer.echo(f"note: {declared[0]} names its own {len(declared[1])} validation images, which `train --data "
                   f"{path}` validates on; this split is another (give it with --val-split)")
    split = split_dataset(dataset, val, seed)
    train_path, val_path = split.write(out)
    for name, stems in (("train", split.train), ("val", split.val)):
        counts = dataset.subset(stems).class_counts()
        typer.echo(f"{name}: {len(stems)} images; boxes " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    typer.echo(f"wrote {train_path} and {val_path}")


@app.command(short_help="Train a mask detector on annotated images.")
def train(data: Path = typer.Option(..., "--data", help="Annotated data set (any supported format; a YOLO set "
                                                        "also by its data.yaml)."),
          out: Path = typer.Option(Path("runs/train"), "--out", help="Run folder: checkpoints, history, model/."),
          val_split: Optional[Path] = typer.Option(None, "--val-split",
                                                   help="List of validation images (as `data split` writes) "
                                                        "[default: the val side --data names, as `convert --val` "
                                                        "writes it (VOC ImageSets/Main/val.txt, YOLO val.txt, "
                                                        "COCO instances_val.json, TFRecord val.tfrecord) or a "
                                                        "YOLO data.yaml's `val:` "
                                                        "names (a Roboflow export's valid/; its test/ is left out); "
                                                        f"else a {VAL_FRACTION:.0%} split, seed --seed]."),
          arch: str = typer.Option(TWO_STAGE, "--arch", metavar=one_of(KINDS),
                                   help="two-stage: a crop head behind the shipped face finder (what ships); "
                                        "one-stage: CenterFace itself fine-tuned to find and classify."),
          extra_faces: Optional[Path] = typer.Option(
              None, "--extra-faces", help="Two-stage: also learn from a folder per class of face pictures "
                                          "(e.g. face-crops-2class/with_mask, without_mask); no boxes needed."),
          synthetic_wrong: int = typer.Option(
              0, "--synthetic-wrong", help="Two-stage, with --extra-faces: this many composites per epoch of a mask "
                                           "pasted below the nose or on the chin (mask_weared_incorrect) or over "
                                           "the nose (with_mask)."),
          crop_size: Optional[int] = typer.Option(
              None, "--crop-size", metavar="PIXELS",
              help="Two-stage: the side of the face crops the head looks at [default: 64]; bigger sees more detail "
                   "and costs more per face (at least 32)."),
          finetuned_share: Optional[float] = typer.Option(
              None, "--finetuned-share", metavar="SHARE",
              help="Two-stage: the exported head's backbone is this share of the trained weights, the rest the "
                   "ImageNet ones it started from (WiSE-FT) [default: 0.9, measured better on both validation "
                   "sets]; 1 exports it as trained (above 0, at most 1)."),
          backbone_lr_factor: Optional[float] = typer.Option(
              None, "--backbone-lr-factor", metavar="FACTOR",
              help="Two-stage: the pretrained backbone learns at the learning rate times this, the new class and "
                   "box layers at the learning rate (above 0, at most 1) [default: the recipe's]."),
          probe_epochs: Optional[int] = typer.Option(
              None, "--probe-epochs", metavar="N",
              help="Two-stage: for the first N epochs only the new class and box layers learn, on the pretrained "
                   "backbone's features as they are (linear probing, then fine-tuning) [default: 0]."),
          epochs: int = typer.Option(12, "--epochs", help="Passes over the training images."),
          batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per training step [default: "
                                                                              "64 crops (two-stage) / 8 windows "
                                                                              "(one-stage)]."),
          lr: Optional[float] = typer.Option(None, help="Learning rate [default: 0.002 (two-stage) / 0.001 "
                                                        "(one-stage)]."),
          seed: int = typer.Option(0, "--seed", help="Seeds the split, sampling and augmentation."),
          patience: int = typer.Option(4, "--patience", help="Stop after this many epochs without a better mAP "
                                                              "(with --keep best; decided when an epoch is "
                                                              "validated)."),
          keep: str = typer.Option("best", "--keep", metavar=one_of(("best", "last")),
                                   help="best: export the epoch with the best validation mAP@.5; last: the end of "
                                        "the learning-rate schedule (no early stop; steadier when the validation "
                                        "set is small, e.g. 20 faces of a rare class)."),
          balance_classes: bool = typer.Option(True, "--balance-classes/--no-balance-classes",
                                               help="Show rarer classes more often (and weigh them higher)."),
          device: str = typer.Option("auto", "--device", metavar=one_of(("auto", "cpu", "cuda")),
                                     help="auto (a GPU where torch sees one, else the CPU), cpu or cuda."),
          val_every: int = typer.Option(1, "--val-every",
                                        help="Validate every N epochs and after the last (on a GPU validation can "
                                             "take longer than the epoch; --keep best picks among these)."),
          quick: bool = typer.Option(False, "--quick", help="A few images, 2 epochs: checks the pipeline."),
          resume: bool = typer.Option(False, "--resume", help="Go on from OUT/last.pt (after Ctrl-C or a crash): "
                                                               "the same command, plus --resume."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run in OUT (without it, "
                                                                    "an OUT holding a run is refused)."),
          threads: Optional[int] = typer.Option(None, "--threads", min=1, metavar="N",
                                                help="CPU threads for torch [default: all cores]."),
          label_map: Optional[list[str]] = LabelMapOption, classes: Optional[str] = ClassesOption,
          fmt: Optional[str] = FormatOption, allow_outside_images: bool = AllowOutsideOption) -> None:
    """Train a mask detector; writes OUT/model/mask_head.onnx and its 8-bit copy mask_head-int8.onnx (two-stage),
    or OUT/model/onestage.onnx."""
    try:
        from maskwatch.run_folder import HISTORY, HISTORY_PLOT, LAST, MODEL, REPLACED
        from maskwatch.training.engine import TrainConfig, fit
    except ImportError as exc:
        first = "`pip install torch --index-url https://download.pytorch.org/whl/cpu` (the CPU build), then "
        raise MaskwatchError(f"training needs torch ({exc}): "
                             f"{install_hint('train', checkout='make install-train', first=first)}") from exc
    from shlex import quote

    from maskwatch.classes import parse_class_list, parse_label_map
    from maskwatch.data import detect_format

    config = TrainConfig(data=data, out=out, val_split=val_split, arch=arch, epochs=epochs, batch_size=batch_size,
                         lr=lr, seed=seed, patience=patience, keep=keep, quick=quick, balance_classes=balance_classes,
                         extra_faces=extra_faces, synthetic_wrong=synthetic_wrong, device=device, val_every=val_every,
                         resume=resume, overwrite=overwrite, threads=threads,
                         recipe={k: v for k, v in (("crop_size", crop_size), ("finetuned_share", finetuned_share),
                                                   ("backbone_lr_factor", backbone_lr_factor),
                                                   ("probe_epochs", probe_epochs)) if v is not None},
                         label_map=parse_label_map(label_map), classes=parse_class_list(classes), fmt=fmt,
                         allow_outside_images=allow_outside_images)
    started = time.time()
    try:
        onnx_path = fit(config)
    except KeyboardInterrupt:
        ours = (out / LAST).is_file() and (out / LAST).stat().st_mtime >= started  # (not an earlier run's)
        if ours or (resume and (out / LAST).is_file()):
            again = ("the same command" if resume else "the same command with --resume instead of --overwrite"
                     if overwrite else "the same command with --resume")
            typer.echo(f"\ninterrupted: the epochs finished are kept in {out / LAST}; {again} goes on from "
                       f"there", err=True)
        elif overwrite and (out / LAST).is_file():
            typer.echo(f"\ninterrupted before this run's first epoch ended: the earlier run in {out} is as it was; "
                       f"the same command starts again", err=True)
        else:
            typer.echo("\ninterrupted before the first epoch ended: nothing to resume; the same command starts "
                       "again", err=True)
        if (out / REPLACED / MODEL).is_dir():
            typer.echo(f"the run --overwrite replaces is kept in {out / REPLACED} (its model: --model "
                       f"{out / REPLACED}) until this one has its model", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"model: {onnx_path}\nlog: {out / HISTORY} and {out / HISTORY_PLOT}")
    if quick:
        typer.echo("(--quick: a check of the pipeline on a few images, not a model to use)")
    typer.echo(f"use it: maskwatch detect PHOTOS --model {quote(str(out))}")
    reading = [f"--label-map {quote(m)}" for m in label_map or []]  # how evaluate reads the set as train did
    if classes:
        reading.append(f"--classes {quote(classes)}")
    if fmt:
        reading.append(f"--format {fmt}")
    if allow_outside_images:
        reading.append("--allow-outside-images")
    data = config.data  # (fit made a data.yaml path its folder)
    try:
        kind = fmt or detect_format(data)
    except MaskwatchError:
        kind = None
    if kind == "tfrecord":  # its images are inside the records: detect cannot read them there
        typer.echo(f"score it on its validation images: its mAP per epoch is in {out / HISTORY}; to score "
                   f"it with evaluate, write the records out as files first (maskwatch convert {quote(str(data))} "
                   f"FOLDER --to voc), then detect and evaluate on FOLDER")
        return
    typer.echo(f"score it on its validation images: maskwatch detect {quote(str(data))} --list "
               f"{quote(str(out / 'val.txt'))} --model {quote(str(out))} --no-images --json-out "
               f"{quote(str(out / 'val.jsonl'))}, then maskwatch evaluate --gt {quote(str(data))} --pred "
               f"{quote(str(out / 'val.jsonl'))} --only-predicted" + "".join(f" {r}" for r in reading))


@app.command(short_help="COCO mAP, per-class AP, PR curves, confusion matrix.")
def evaluate(gt: Path = typer.Option(..., "--gt", help="Ground-truth data set."),
             pred: Path = typer.Option(..., "--pred", help="Predictions: JSON Lines (detect --json-out), the "
                                                           "results folder of `maskwatch batch`, or another "
                                                           "tool's COCO results list (against a COCO --gt)."),
             scheme: str = typer.Option("3class", "--scheme", metavar=one_of(SCHEMES),
                                        help="3class (each class its own AP), 2class (mask worn well against "
                                             "no mask, a mask worn wrongly counting as none) or face (any face, "
                                             "whatever its class)."),
             fmt: Optional[str] = FormatOption, label_map: Optional[list[str]] = LabelMapOption,
             classes: Optional[str] = ClassesOption,
             out: Path = typer.Option(Path("out/eval"), "--out", help="Folder for report.json and the plots."),
             score_threshold: float = typer.Option(CONFUSION_MIN_SCORE, "--score-threshold",
                                                   help="Lowest score that counts in the confusion matrix."),
             split: Optional[Path] = typer.Option(None, "--split", help="Only the images in this list file."),
             only_predicted: bool = typer.Option(False, "--only-predicted",
                                                 help="Score only the images that have a line in --pred (by "
                                                      "default the others count as images where nothing was "
                                                      "found)."),
             allow_outside_images: bool = AllowOutsideOption,
             results_ids: str = typer.Option("auto", "--results-ids", metavar="auto|id|stem",
                                             help="A COCO results list's image_id: the --gt file's image ids "
                                                  "(mmdetection, detectron2), image stems (YOLO's val "
                                                  "--save-json), or auto: the one under which every result names "
                                                  "an image (refused where both do, differently)."),
             cross_check: bool = typer.Option(False, "--cross-check",
                                              help="Also compute with pycocotools (installed apart: pip install "
                                                   "pycocotools).")) -> None:
    """COCO mAP, per-class AP, PR curves and a confusion matrix of predictions against ground truth."""
    import importlib.util
    from functools import partial

    import numpy as np

    from maskwatch.classes import DROP_LABEL, MASK_CLASSES, parse_label_map
    from maskwatch.data.inputs import check_outside_images, check_output_folder
    from maskwatch.data.split import listed_names
    from maskwatch.thresholds import check_score
    from maskwatch.errors import name_some
    from maskwatch.evaluation import write_report
    from maskwatch.evaluation.coco_metrics import SCHEMES, coco_inputs
    from maskwatch.evaluation.coco_results import (IMAGE_ID_READINGS, ground_truth_coco_file, is_coco_results,
                                                   read_coco_results)
    from maskwatch.evaluation.report import (check_some_image_matched, images_without_predictions,
                                             prediction_problems, predictions_in_stored_pixels, warnings_said)
    from maskwatch.predictions import (ImagePredictions, detections_from_labels, read_predictions, relabelled,
                                       stem_in)

    if classes in SCHEMES:  # what --classes meant before it named the class list
        console.print(f"[yellow]--classes {classes} is now --scheme {classes}[/yellow]")
        scheme, classes = classes, None
    if scheme not in SCHEMES:  # before the (long) load
        raise MaskwatchError(f"unknown --scheme {scheme!r}; use {', '.join(SCHEMES)}")
    check_score(score_threshold, "--score-threshold")
    check_output_folder(out)
    check_outside_images(out, gt, fmt)
    # With --label-map, the predictions are read (once) before the ground truth: a key may rename only their labels
    # (another tool's `Mask`), which the load must not call unused. Else the ground truth's problems come first.
    if cross_check and importlib.util.find_spec("pycocotools") is None:  # (before the load, not a traceback after)
        raise MaskwatchError("--cross-check computes the numbers again with pycocotools, which maskwatch does not "
                             "install: `pip install pycocotools` (`make install-dev` has it), or leave it out")
    if results_ids not in IMAGE_ID_READINGS:
        raise MaskwatchError(f"--results-ids must be one of {', '.join(IMAGE_ID_READINGS)}, not {results_ids!r}")
    coco_results = is_coco_results(pred)  # (another tool's: its ids are those of the ground truth's COCO file)
    read_pred = (partial(read_coco_results, pred, ground_truth_coco_file(gt, fmt), image_ids=results_ids)
                 if coco_results else partial(read_predictions, pred))  # (called with the class list)
    with warnings_said() as said:  # (recorded in report.json with the warnings said below)
        read = list(read_pred(())) if label_map else None
        predicted = sorted({label for item in read for label in item.labels}) if read else ()
        dataset = _load(gt, fmt, label_map, classes, allow_outside_images, labels_elsewhere=predicted)
        boxes = dataset.class_counts()
        absent = [c for c in MASK_CLASSES if not boxes.get(c)]  # not listed, or listed (a YOLO classes.txt) unused
        if classes is None and scheme != "face" and absent and set(dataset.classes) <= set(MASK_CLASSES):
            # A small or filtered mask data set without some class: the model still predicts all three.
            dataset = dataset.with_classes(list(MASK_CLASSES))
            if scheme == "3class":  # (2class merges the mask classes anyway: the note would contradict it)
                console.print(f"scored with the three mask classes; {escape(str(gt))} has no {', '.join(absent)} (left "
                              f"out of the mean AP)", highlight=False, soft_wrap=True)
        renaming = parse_label_map(label_map)
        predictions = list(relabelled(read, dataset.classes, renaming) if read is not None
                           else read_pred(dataset.classes))  # (the same renaming as the ground truth's)
        astray = [f"{old}={new}" for old, new in renaming.items()
                  if old in predicted and new != DROP_LABEL and new not in dataset.classes]
        if scheme == "3class" and astray:  # (a typo on the right: the hint would be to rename the typo, in a circle)
            raise MaskwatchError(f"--label-map {', '.join(astray)}: the name after = must be a class of {gt} "
                                 f"({', '.join(dataset.classes)}); the predictions' labels are renamed to it")
        predictions, turned = predictions_in_stored_pixels(dataset, predictions)
        if turned:
            console.print(f"{turned} photo(s) carry an EXIF rotation: their predictions, made on the photo turned "
                          f"upright (as detect does), are moved to the stored pixels the boxes are read in",
                          highlight=False, soft_wrap=True)
        check_some_image_matched(dataset, predictions, str(pred))  # (before the warnings: about nothing otherwise)
        if not any(len(p.detections) for p in predictions):
            what = "no detection left after --label-map" if label_map else "no detection at all"
            said.append(f"{pred} holds {what}: every face counts as missed, and every score is 0 (detect writes "
                        f"faces scored >= 0.01 unless --conf says otherwise)")
            console.print(f"[yellow]{escape(said[-1])}[/yellow]", highlight=False, soft_wrap=True)
        if split:
            known = {s.stem for s in dataset.samples}
            dataset = dataset.subset(listed_names(dataset, split))
            chosen = {s.stem for s in dataset.samples}
            predictions = [p for p in predictions if stem_in(p.image, known) in chosen]  # the others': not strays
            if len(dataset) and not predictions:  # (lines matched the whole ground truth: the split is what misses)
                raise MaskwatchError(f"{pred}: none of its lines names an image of --split {split}; nothing to score")
        missing = images_without_predictions(dataset, predictions)
        if coco_results and missing and not only_predicted:  # COCO's rule: an image without results is one where
            nothing = detections_from_labels(np.zeros((0, 4)), [], np.zeros(0), dataset.classes)  # nothing was
            predictions += [ImagePredictions(s.image_path.name, s.width, s.height, nothing)  # found, not one
                            for s in dataset.samples if s.stem in set(missing)]  # left unscored
            missing = []
        if missing and only_predicted:  # (before the warnings: they are about the images scored)
            dataset = dataset.subset(set(s.stem for s in dataset.samples) - set(missing))
            console.print(f"scoring the {len(dataset)} image(s) with predictions; {len(missing)} without are left out")
        coco_inputs(dataset, predictions, scheme, say=False)  # type: ignore[arg-type]  # (unscorable labels first)
        for problem in prediction_problems(dataset, predictions, scheme):  # type: ignore[arg-type]
            console.print(f"[yellow]warning: {escape(problem)}[/yellow]", highlight=False, soft_wrap=True)
        if missing and not only_predicted:
            console.print(f"[yellow]warning: {len(missing)} of {len(dataset)} image(s) have no predictions in "
                          f"{escape(str(pred))} ({escape(name_some(missing))}); they count as images where nothing "
                          f"was found. Pass --only-predicted to score only the images with predictions.[/yellow]",
                          highlight=False,
                          soft_wrap=True)
        inputs = {"ground_truth": str(gt.resolve()), "predictions": str(pred.resolve()), "split": str(split) if split
                  else None, "only_predicted": only_predicted, "label_map": label_map or [], "classes": classes}
        report = write_report(dataset, predictions, out, scheme, score_threshold, cross_check,  # type: ignore[arg-type]
                              inputs, warn=False, said=said)  # said above
    typer.echo(f"{scheme}: {report['images']} images, {report['ground_truth_boxes']} boxes")  # (a table title
    table = Table()  # would be cut to the table's width)
    for column in ("metric", "value"):
        table.add_column(column)
    def number(value: float) -> str:  # "-": no ground-truth box of that size (COCO's -1) or class
        return f"{value:.4f}" if math.isfinite(value) else "-"

    for key, value in report["summary"].items():
        table.add_row(key, number(value))
    for name, values in report["per_class"].items():
        table.add_row(f"AP {name}", number(values["AP"]))
        table.add_row(f"AP50 {name}", number(values["AP50"]))
    if cross_check:
        table.add_row("max |faster - pycocotools|", f"{report['max_difference_vs_pycocotools']:.2e}")
    Console().print(table)
    class_ap = [values["AP"] for values in report["per_class"].values()]
    if not all(math.isfinite(v) for v in [*report["summary"].values(), *class_ap]):
        typer.echo("-: no ground-truth box of that size or class (null in report.json)")
    scored = sum(math.isfinite(v) for v in class_ap)
    if 0 < scored < len(class_ap):  # COCO's mean is over the classes with ground truth: say over how many
        typer.echo(f"mAP is the mean over the {scored} of {len(class_ap)} classes with ground-truth boxes here")
    if report["difficult_boxes"]:
        typer.echo(f"{report['difficult_boxes']} box(es) marked difficult (VOC <difficult>, COCO iscrowd): neither "
                   f"found nor missed, as in VOC's and COCO's own scoring")
    if report.get("folded_boxes"):
        typer.echo(f"{report['folded_boxes']} predicted box(es) were the same face's box in another class that "
                   f"{scheme} counts as one: scored as one box, their scores added")
    typer.echo(f"report: {out / 'report.json'}; plots in {out}")


@app.command(short_help="Detect masks in images, folders, lists and globs.")
def detect(inputs: list[str] = typer.Argument(..., help=INPUTS_HELP, metavar="INPUT"),
           only: Optional[Path] = ListOption,
           out: Path = typer.Option(Path("out/detect"), "--out", help="Folder for annotated images."),
           no_images: bool = typer.Option(False, "--no-images", help="Write no annotated images (only --json-out)."),
           json_out: Optional[Path] = typer.Option(None, "--json-out", help="Predictions as JSON Lines."),
           conf: float = typer.Option(FOR_METRICS.min_score, "--conf",
                                      help="Lowest score kept in the predictions (low: COCO mAP needs the tail); "
                                           "what is not kept is not drawn or counted either."),
           draw_conf: float = typer.Option(FOR_PEOPLE.min_score, "--draw-conf",
                                           help="Lowest score drawn on the images and counted."),
           scale: str = typer.Option("auto", "--scale", metavar="auto|auto-full|N",
                                     help="Input scale for the face finder: 'auto' (a half-scale look first, kept "
                                          "when its faces are big; else at most 960 px long, plus an upscaled pass "
                                          "when faces are small or a downscaled one when they are big), 'auto-full' "
                                          "(auto without the half-scale look: slower, better on small close-up "
                                          "images) or a number from 0.1 to 4, such as 0.5, 1 or 2."),
           flip: bool = typer.Option(False, "--flip", help="Also classify each face mirrored and average the two "
                                                           "looks: more accurate classes on crowd photos, about "
                                                           "half again the time (model card)."),
           all_classes: bool = typer.Option(FOR_METRICS.all_classes, "--all-classes/--best-class-only",
                                            help="Predictions: a box for every class a face scores >= --conf in "
                                                 "(what COCO mAP rewards), or only its best class. Drawn images "
                                                 "and counts always show the best class."),
           model: Optional[Path] = ModelOption, threads: Optional[int] = ThreadsOption) -> None:
    """Detect masked, unmasked and wrongly masked faces in images; write annotated copies and predictions."""
    from maskwatch.data.inputs import check_copies_apart, check_writable, collect_images, written_copies
    from maskwatch.detect import run_detect
    from maskwatch.detector import Detector
    from maskwatch.thresholds import check_score
    from maskwatch.predictions import check_predictions_path
    from maskwatch.stop_signals import restore_signals, stop_signals_as_interrupt

    conf, draw_conf = check_score(conf, "--conf"), check_score(draw_conf, "--draw-conf")  # before any work
    if not no_images and out.exists() and not out.is_dir():
        raise MaskwatchError(f"--out {out} is a file: annotated images go into a folder")
    written = None if no_images else written_copies(out)  # (the copies earlier runs wrote there: written over)
    images = collect_images(inputs, only, None if no_images else out, written)  # said before the model loads
    if not no_images:
        check_copies_apart(images, out, f"--out {out}", f"give another folder, e.g. --out {out / 'annotated'}",
                           written or set())
        check_writable(out, f"--out {out}")
    if json_out:
        check_predictions_path(json_out)
    detector = Detector.load(model, threads=threads, scale=scale, flip_test=flip or None)
    out = None if no_images else out
    previous = stop_signals_as_interrupt()  # SIGTERM as Ctrl-C: the predictions written so far are kept whole
    try:
        summary = run_detect(detector, images, out, json_out, conf, draw_conf, all_classes)
    finally:
        restore_signals(previous)
    if summary.images:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "no faces"
        typer.echo(f"{summary.images} image(s): {counts} (score >= {max(conf, draw_conf):g})")  # (--conf above:
        # what is not kept is neither drawn nor counted)
        if out:
            typer.echo(f"annotated images: {out}")
        if json_out:
            typer.echo(f"predictions: {json_out}")
        if not out and not json_out:
            typer.echo("nothing written (--no-images without --json-out): the counts above are the result",
                       err=True)
    if summary.not_written:  # (the predictions and counts of those images stand)
        typer.echo(f"{len(summary.not_written)} annotated image(s) could not be written:", err=True)
        for message in summary.not_written:
            typer.echo(f"  {message}", err=True)
    if summary.failed:
        typer.echo(f"{len(summary.failed)} file(s) could not be read:", err=True)
        for message in summary.failed:
            typer.echo(f"  {one_line(message)}", err=True)
        if not summary.images and not summary.interrupted:
            typer.echo("no image could be read", err=True)
            raise typer.Exit(1)
    if summary.interrupted:  # (Ctrl-C, SIGTERM: what was done is kept, in whole lines)
        kept = " and ".join(what for what, given in (("predictions", json_out), ("annotated images", out)) if given)
        typer.echo(f"interrupted after {summary.images + len(summary.failed)} of {len(images)} input(s)"
                   + (f": the {kept} above are of those only" if kept else "")
                   + "; the same command does them all", err=True)
        raise typer.Exit(130) from None


@app.command(short_help="Detect, track and count faces in a video or camera.")
def watch(source: Optional[str] = typer.Argument(None, metavar="SOURCE",
                                                 help="Video file, webcam index (0), rtsp:// or http:// URL, or a "
                                                      "folder of frames (or from --config)."),
          config: Optional[Path] = typer.Option(None, "--config", help="YAML file naming source, zones, lines and "
                                                                       "sinks per camera (see the README)."),
          camera: Optional[str] = typer.Option(None, "--camera", metavar="NAME",
                                               help="Which camera of --config (if it has several); else the camera "
                                                    "name in events."),
          out: Optional[Path] = typer.Option(None, "--out",
                                             help="Annotated H.264 MP4 to write (+ .json summary, .tracks.csv, "
                                                  ".zones.csv); "
                                                  "without it only the events database (--db) is written."),
          db: Optional[Path] = typer.Option(None, "--db",
                                            help="Events database (SQLite) [default: out/maskwatch.sqlite]."),
          retention_days: Optional[float] = typer.Option(
              None, "--retention-days", metavar="DAYS",
              help="Delete events and counts older than this many days from --db, at the start and every hour "
                   "(a camera watched as a service) [default: kept for ever]."),
          zone: Optional[list[str]] = typer.Option(None, "--zone", metavar="NAME=POINTS",
                                                   help="Count people in an area: NAME=x1,y1,x2,y2,x3,y3[,...] in "
                                                        "source pixels (repeatable)."),
          line: Optional[list[str]] = typer.Option(None, "--line", metavar="NAME=POINTS",
                                                   help="Count crossings each way: NAME=x1,y1,x2,y2 (repeatable)."),
          webhook: Optional[list[str]] = typer.Option(None, "--webhook", metavar="URL",
                                                      help="POST each event as JSON to this URL (repeatable)."),
          webhook_secret: Optional[str] = typer.Option(None, "--webhook-secret", metavar="SECRET",
                                                       envvar=WEBHOOK_SECRET_ENV,
                                                       help="Sign the bodies sent to the --webhook URLs "
                                                            "(HMAC-SHA256 in X-Maskwatch-Signature-256)."),
          webhook_timeout: Optional[float] = typer.Option(
              None, "--webhook-timeout", metavar="SECONDS",
              help="How long a --webhook receiver may take to answer an event before it is sent again (at most "
                   f"300) [default: {WEBHOOK_TIMEOUT_S:g}]."),
          mqtt: Optional[list[str]] = typer.Option(None, "--mqtt", metavar="URL",
                                                   help="Publish events: mqtt://[user:pass@]host[:port]/prefix "
                                                        "(repeatable)."),
          summary_every: Optional[float] = typer.Option(None, "--summary-every",
                                                        help="Seconds between `counts` events [default: 30]."),
          event_snapshots: bool = typer.Option(False, "--event-snapshots",
                                               help="Add a JPEG of the face to person events (blurred)."),
          keep_faces: bool = typer.Option(False, "--keep-faces", help="Snapshots not blurred."),
          every: Optional[int] = typer.Option(None, "--every", metavar="N",
                                              help="Detect on every Nth frame; track in between [default: as often "
                                                   "as the source's frame rate allows, and not on still frames]."),
          max_fps: Optional[float] = typer.Option(None, "--max-fps", help="Process at most this many frames/s: a "
                                                  "camera's frames in between are dropped, a file's all processed "
                                                  "at that pace."),
          max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after this many frames."),
          give_up_after: Optional[float] = typer.Option(
              None, "--give-up-after", metavar="SECONDS",
              help="A camera or stream that sends no frame this long ends the run (status ended_early) "
                   "[default: reconnect for ever; after 5 s without a frame a camera.down event says it is down]."),
          wait_for_camera: Optional[float] = typer.Option(
              None, "--wait-for-camera", metavar="SECONDS",
              help="A camera or stream that cannot be opened at the start is tried again this long (one that boots "
                   "after the machine) [default: 0, the error at once]."),
          blur_faces: bool = typer.Option(False, "--blur-faces", help="Blur every detected face (privacy)."),
          show: bool = typer.Option(False, "--show", help="Show a window (needs a display and GUI OpenCV)."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier video at --out (and its "
                                         ".json and .csv files); without it, an existing --out is refused (a "
                                         "camera's or stream's is kept aside, renamed with its time)."),
          window: Optional[float] = typer.Option(None, "--window", help="Seconds per counting window in the "
                                                                        "database [default: 10]."),
          scale: Optional[str] = typer.Option(None, "--scale", metavar="auto|auto-full|N",
                                              help="Face finder input scale: auto, auto-full (no half-scale look "
                                                   "first) or a number from 0.1 to 4 [default: auto]."),
          model: Optional[Path] = ModelOption, threads: Optional[int] = ThreadsOption) -> None:
    """Detect, track and count faces in a video, a camera or a stream; write an annotated video and events."""
    from tqdm import tqdm

    from maskwatch.detector import Detector
    from maskwatch.video.config import CameraConfig, WebhookConfig, load_camera
    from maskwatch.video.retention import Retention, check_retention_days
    from maskwatch.video.redact import without_password
    from maskwatch.video.zones import Line, Zone

    if webhook and os.environ.get(WEBHOOK_SECRET_ENV) == "" and webhook_secret is None:
        webhook_secret = ""  # (click reads a variable set to nothing as not set)
    if webhook and webhook_secret is not None and not webhook_secret.strip():  # (`--webhook-secret "$SECRET"`, unset)
        raise MaskwatchError(f"--webhook-secret (or {WEBHOOK_SECRET_ENV}) is empty: the events would go unsigned; "
                             "give the secret, or leave it out to send them unsigned on purpose")
    if config:
        setup = load_camera(config, camera)
    elif source is None:
        raise MaskwatchError("watch needs a SOURCE (a video file, webcam index, rtsp:// URL or folder) or --config")
    else:
        setup = CameraConfig(name=camera, source=source)
    setup = setup.with_overrides(
        source=source, out=out, db=db, every=every, max_fps=max_fps, max_frames=max_frames, window=window,
        give_up_after=give_up_after, wait_for_camera=wait_for_camera,
        summary_every=summary_every, scale=scale, model=model, blur_faces=blur_faces or None, show=show or None,
        event_snapshots=event_snapshots or None, keep_faces=keep_faces or None,
        zones=[Zone.parse(z) for z in zone] if zone else None, lines=[Line.parse(x) for x in line] if line else None,
        webhooks=[WebhookConfig(url, webhook_secret, *([] if webhook_timeout is None else [webhook_timeout]))
                  for url in webhook] if webhook else None, mqtt=mqtt or None)
    unsigned = [without_password(w.url) for w in setup.webhooks or [] if not w.secret]
    # A secret signs --webhook URLs only. Said when the config's webhooks go unsigned beside it, or when it was
    # given on the command line for nothing; from the environment alone it may be there for the config's
    # `${MASKWATCH_WEBHOOK_SECRET}` (the README's example) or for other cameras: not worth a word.
    from_environment = os.environ.get(WEBHOOK_SECRET_ENV) == webhook_secret
    if webhook_secret and not webhook and (unsigned or not from_environment):
        console.print(f"[yellow]warning: --webhook-secret / {WEBHOOK_SECRET_ENV} signs only the --webhook URLs "
                      "given with it; " + (f"the config's webhook(s) {', '.join(unsigned)} are sent unsigned: give "
                                            f"`secret:` beside their url" if unsigned else "none was given")
                      + "[/yellow]", highlight=False, soft_wrap=True)
    check_retention_days(retention_days)
    if retention_days is not None and setup.db is None:
        raise MaskwatchError("--retention-days needs an events database, and the config sets none (db: null): "
                             "give --db, or leave --retention-days out")
    pipeline = setup.pipeline(Detector.load(setup.model, threads=threads, scale=setup.scale))
    retention = Retention(pipeline.database, retention_days) if retention_days and pipeline.database else None
    bars: list[tqdm] = []  # made at the first frame, so an error about the input is not printed into a bar

    def progress(summary, expected):
        if retention is not None and not retention.started:  # (the run has begun: its inputs were fine)
            retention.start()
        if not bars:  # a live camera into a log (journald, docker): one line a minute, not ten a second
            quiet = expected is None and not sys.stderr.isatty()
            bars.append(tqdm(unit="frame", desc="watching", total=expected, mininterval=60 if quiet else 0.1))
        bars[0].total = expected
        bars[0].update(summary.frames - bars[0].n)

    try:
        summary = pipeline.run(setup.source, setup.out, progress, overwrite=overwrite, handle_signals=True)
    finally:
        if retention is not None:
            retention.stop()
        for bar in bars:
            bar.close()
    _say_what_watch_did(summary, setup.out, setup.db)


def _say_what_watch_did(summary, out: Path | None, db: Path | None) -> None:
    """The run's figures and where its outputs are; exit 1 where an output was lost or did not complete, or a
    live stream ended early (a service manager then starts it again)."""
    from maskwatch.video.sinks import DatabaseSink, SummaryFilesSink, VideoFileSink
    from maskwatch.video.summary import SUMMARY_JSON, TRACKS_CSV, ZONES_CSV

    people = _people_text(summary.people)
    compliance = f"{summary.compliance:.0%}" if summary.compliance is not None else "n/a"
    typer.echo(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s: "
               f"{summary.detected_frames} detected, {summary.tracked_frames} tracked-only, "
               f"{summary.dropped_frames} dropped); people: {people}; compliance {compliance}")
    if summary.scales:
        typer.echo("detections per face-finder scale: " + ", ".join(f"{k} x{v}" for k, v in summary.scales.items()))
    if summary.scene_cuts:
        typer.echo(f"{summary.scene_cuts} scene cut(s): tracks started afresh after each")
    for name, counts in summary.zones.items():
        typer.echo(f"zone {name}: " + ", ".join(f"{k} {v}" for k, v in counts["people"].items()))
    for name, counts in summary.lines.items():
        typer.echo(f"line {name}: in {counts['in']}, out {counts['out']}")
    if summary.message:
        typer.echo(f"{summary.status}: {summary.message}", err=True)
    gone: list[str] = []  # outputs deleted while the run wrote them (the folder removed): written into nothing

    def written(path: Path, sink: str) -> str:  # an output whose writing failed is not shown as written
        # (a summary whose writing failed was never made; the database and the video exist from the start)
        if sink == VideoFileSink.name and not summary.frames and not path.exists():
            return "none (no frame)"
        if not path.exists() and (sink not in summary.sink_failures or sink in (DatabaseSink.name, VideoFileSink.name)):
            gone.append(str(path))
            return f"{path} (deleted while it was written: nothing kept)"
        return f"{path} (incomplete: see below)" if sink in summary.sink_failures else str(path)

    if out:
        summaries = SummaryFilesSink.name
        typer.echo(f"video: {written(out, VideoFileSink.name)}  "
                   f"summary: {written(out.with_suffix(SUMMARY_JSON), summaries)}  "
                   f"tracks: {written(out.with_suffix(TRACKS_CSV), summaries)}"
                   + (f"  zones: {written(out.with_suffix(ZONES_CSV), summaries)}"
                      if summary.zones or summary.lines else ""))
    if db:
        typer.echo(f"events: {written(db, DatabaseSink.name)} (run {summary.run_id}); see `maskwatch report "
                   f"{db}`")
    for name, failure in summary.sink_failures.items():
        typer.echo(f"{name}: failed {failure['failures']} time(s); the first: {failure['first']}", err=True)
    if gone:
        typer.echo(f"error: deleted while this run wrote them (a folder removed?): {', '.join(gone)}", err=True)
        raise typer.Exit(1)
    if summary.failed_outputs:
        typer.echo(f"error: outputs that did not complete their work: {', '.join(summary.failed_outputs)} (see "
                   f"above)", err=True)
        raise typer.Exit(1)
    if summary.live and summary.status == "ended_early":  # a stream lost (--give-up-after) or changed: a service
        raise typer.Exit(1)  # manager's Restart=on-failure starts it again


@app.command(short_help="Summarise recorded runs: people, compliance, chart.")
def report(db: Path = typer.Argument(..., help="Events database written by `maskwatch watch`.", metavar="DB"),
           run: Optional[int] = typer.Option(None, "--run", help="Only this run: its number, as this table "
                                                                 "lists it and watch's end line says (run N); not "
                                                                 "the hex `run` of the events."),
           chart: Path = typer.Option(Path("out/compliance.png"), "--chart",
                                      help="Where to write the chart of compliance over time (PNG).")) -> None:
    """Summarise recorded runs: people per class, compliance, and a chart of compliance over time."""
    from maskwatch.video.report import plot_compliance, read_report

    if chart.exists() and chart.resolve() == db.resolve():
        raise MaskwatchError(f"--chart {chart} is the database being read; give the chart another name")
    if chart.suffix.lower() != ".png":
        raise MaskwatchError(f"--chart {chart}: the chart is a PNG; give a .png name (e.g. "
                             f"{chart.with_suffix('.png')})")
    result = read_report(db, run)
    table = Table(title=f"{db}: {len(result.runs)} run(s)")
    outages = any(r.get("camera_outages") for r in result.runs)  # (a column only where a camera went down)
    for column in ("run", "source", "frames", "status", *(["camera outages"] if outages else [])):
        table.add_column(column)
    for r in result.runs:
        table.add_row(str(r["id"]), str(r["source"]), str(r["frames"]), str(r["status"]),
                      *([str(r.get("camera_outages", 0))] if outages else []))
    Console().print(table)
    people = _people_text(result.people)
    compliance = f"{result.compliance:.0%}" if result.compliance is not None else "n/a"
    typer.echo(f"people: {people}; compliance {compliance}")
    for name, zone in result.zones.items():
        entered = ", ".join(f"{k} {v}" for k, v in sorted(zone["people"].items()) if v)
        share = zone["compliance"]
        typer.echo(f"zone {name}: " + (entered or "nobody entered") +
                   (f"; compliance {share:.0%}" if share is not None else ""))
    for name, counts in result.lines.items():
        typer.echo(f"line {name}: in {counts['in']}, out {counts['out']}")
    typer.echo(f"chart: {plot_compliance(result, chart)}")
    from maskwatch.video.store import tidy_wal

    tidy_wal(db)  # report only reads: leave no -wal / -shm files beside a database nobody writes


@app.command(short_help="Serve the web page, live cameras and the JSON API.")
def serve(host: str = typer.Option("127.0.0.1", "--host", metavar="HOST",
                                   help="Address to listen on (0.0.0.0: every interface)."),
          port: int = typer.Option(8000, "--port", help="TCP port to listen on."),
          allowed_host: Optional[list[str]] = typer.Option(
              None, "--allowed-host", metavar="NAME",
              help="Listening on loopback, answer for this name too (a reverse proxy on this machine that passes "
                   "the public Host header on; '*': any); only loopback names otherwise (repeatable)."),
          data_dir: Path = typer.Option(SERVE_DATA_DIR, "--data-dir", help="Where jobs and results are kept."),
          max_upload_mb: float = typer.Option(MAX_UPLOAD_MB, "--max-upload-mb", help="Larger uploads get 413."),
          api_key: Optional[str] = typer.Option(None, "--api-key", envvar=API_KEY_ENV, metavar="KEY",
                                                help="Require this key (X-API-Key header) on every route but "
                                                     "/healthz, the pages and the API's description (/docs)."),
          workers: int = typer.Option(SERVE_WORKERS, "--workers", show_default=False,
                                      help="Threads that decode and detect images [default: one per core, "
                                           "at least 2]."),
          max_queue: int = typer.Option(SERVE_MAX_QUEUE, "--max-queue",
                                        help="Requests that may wait for a worker; more get 503."),
          camera: Optional[list[str]] = typer.Option(None, "--camera", metavar="NAME=SOURCE",
                                                     help="A live camera on the page, NAME=SOURCE: rtsp:// or http:// "
                                                          "URL, webcam index, or a video file (played on repeat) "
                                                          "(repeatable)."),
          config: Optional[Path] = typer.Option(None, "--config", help="Cameras from a YAML file (as watch --config)."),
          db: Optional[Path] = typer.Option(None, "--db", help="The cameras' events database (default: the config's, "
                                                              "else out/maskwatch.sqlite)."),
          retention_days: Optional[float] = typer.Option(None, "--retention-days",
                                                         help="Delete events and counts older than this many days "
                                                              "[default: kept for ever]."),
          keep_results_days: Optional[float] = typer.Option(
              None, "--keep-results-days", metavar="DAYS",
              help="Delete uploaded videos' results (they show faces) this many days after their job ended "
                   "[default: kept until DELETE /v1/videos/ID]."),
          blur_faces: bool = typer.Option(False, "--blur-faces", help="Blur every face in the cameras' pictures."),
          event_snapshots: bool = typer.Option(False, "--event-snapshots",
                                               help="Keep a JPEG of the face (blurred) with person events."),
          every: Optional[int] = typer.Option(None, "--every", min=1, metavar="N",
                                              help="Cameras detect on every Nth frame [default: as often as their "
                                                   "frame rate allows, as watch does]."),
          scale: Optional[str] = typer.Option(None, "--scale", metavar="auto|auto-full|N",
                                              help="Cameras' face finder scale: auto, auto-full or a number from 0.1 "
                                                   "to 4 [default: auto]."),
          model: Optional[Path] = ModelOption,
          threads: Optional[int] = typer.Option(None, "--threads", min=1, metavar="N",
                                                help="CPU threads for the detector [default: the cores this "
                                                     "process may use, as its CPU affinity says].")) -> None:
    """Serve the web page (/), the live cameras (/cameras) and the JSON API (/v1/..., docs at /docs)."""
    try:
        from maskwatch.serve.app import Settings, serve as run_server
        from maskwatch.serve.cameras import setup_from_options
    except ImportError as exc:
        raise MaskwatchError(f"serving needs the serve extra ({exc}): {install_hint('serve')}") from exc
    cameras = setup_from_options(camera, config, db, retention_days, threads, blur_faces=blur_faces or None,
                                 event_snapshots=event_snapshots or None, every=every, scale=scale, model=model)
    if api_key is None and os.environ.get(API_KEY_ENV) == "":  # (typer reads an empty variable as unset)
        api_key = ""  # refused by Settings: an empty key must not make an open server without a word
    settings = Settings(data_dir=data_dir, max_upload_mb=max_upload_mb, api_key=api_key, threads=threads,
                        model=model, workers=workers, max_queue=max_queue, cameras=cameras,
                        keep_results_days=keep_results_days)
    run_server(host, port, settings, tuple(allowed_host or ()))


FAILED_SHOWN = 10  # batch names this many unreadable files; the rest are in the results


@app.command(short_help="Detect on many images, locally or on Ray; resumable.")
def batch(inputs: list[str] = typer.Argument(..., help=INPUTS_HELP, metavar="INPUT"),
          only: Optional[Path] = ListOption,
          out: Path = typer.Option(Path("out/batch"), "--out", help="Results folder (Parquet parts)."),
          engine: str = typer.Option("local", "--engine", metavar=one_of(("local", "ray")), help="local or ray."),
          address: Optional[str] = typer.Option(None, "--address", metavar="ADDRESS",
                                                help="Ray cluster, from one of its nodes: auto or HEAD:6379 "
                                                     "[default: RAY_ADDRESS if set, else a local Ray of this "
                                                     "run]."),
          actors: int = typer.Option(2, "--actors", min=1, metavar="N", help="Ray: detector actors (one model each)."),
          conf: float = typer.Option(FOR_PEOPLE.min_score, "--conf", help="Lowest score kept (one box per face)."),
          annotate: bool = typer.Option(False, "--annotate", help="Also write annotated images to OUT/annotated."),
          verbose: bool = typer.Option(False, "--verbose", help="Show Ray's own logs and progress bars."),
          model: Optional[Path] = ModelOption,
          threads: Optional[int] = typer.Option(None, "--threads", min=1, metavar="N",
                                                help="CPU threads for the detector: the local engine's [default: "
                                                     "onnxruntime's choice, one per core], or each Ray actor's "
                                                     "[default: 1; an actor takes one CPU of the cluster].")) -> None:
    """Detect on many images, locally or on a Ray cluster; resumable, one Parquet row per image. A second run with
    the same --out skips the images done and tries the failed ones again; Ctrl-C keeps the rows written."""
    from maskwatch.batch.run import run_batch
    from maskwatch.stop_signals import restore_signals, stop_signals_as_interrupt

    previous = stop_signals_as_interrupt()  # SIGTERM too: the rows done so far are written before it ends
    try:
        summary = run_batch(inputs, out, engine, address, conf, annotate, str(model) if model else None, actors,
                            threads, only, verbose)
    finally:
        restore_signals(previous)
    rows = summary.rows
    typer.echo(f"{summary.inputs} inputs: {summary.processed} processed now, {summary.skipped} done before; "
               f"{rows} rows in {out} ({len(summary.failed)} of these inputs with errors)")
    if summary.failed:
        typer.echo(f"{len(summary.failed)} file(s) could not be read (the next run tries them again):", err=True)
        for path, error in list(summary.failed.items())[:FAILED_SHOWN]:
            typer.echo(f"  {one_line(error)}" if error.startswith(path) else f"  {one_line(f'{path}: {error}')}",
                       err=True)
        if len(summary.failed) > FAILED_SHOWN:
            typer.echo(f"  and {len(summary.failed) - FAILED_SHOWN} more (the rows' `error` column)", err=True)
    if summary.interrupted:
        typer.echo(f"interrupted: the {rows} rows in {out} are kept; the same command goes on from there", err=True)
        raise typer.Exit(130)
    if summary.inputs and len(summary.failed) == summary.inputs:
        typer.echo("no image could be read", err=True)
        raise typer.Exit(1)


def main() -> None:
    """The `maskwatch` command (pyproject's script): a MaskwatchError is one red line and exit 2, not a traceback; a
    Ctrl-C (or SIGTERM, SIGHUP) that no command handled is said as "interrupted"."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from maskwatch.stop_signals import stop_signals_as_interrupt

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    stop_signals_as_interrupt()  # SIGTERM and SIGHUP stop every command as Ctrl-C does (what it finished is kept;
    try:  # a half-written folder removed; exit 130); a command with more to finish installs its own
        with logging_redirect_tqdm():  # a warning goes on its own line above a progress bar, not glued to it
            app()
    except MaskwatchError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SystemExit as exc:  # Typer turns Ctrl-C into a silent exit 130: say it, unless the command said more
        if exc.code == 130 and _raised_by_ctrl_c(exc):
            console.print("interrupted", highlight=False)
        raise


def _raised_by_ctrl_c(exc: BaseException) -> bool:
    """Whether an exception's chain holds a KeyboardInterrupt that nobody handled: a command that handles one
    itself (train, batch, watch) says what was kept and raises `typer.Exit(130) from None`, which ends the chain."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False


if __name__ == "__main__":
    main()
