"""5-fold cross-validation of a training recipe on the training set, for decisions that hinge on the rare class.

    .venv/bin/python bench/rare_class_cv.py --variant base="" \
        --variant synthetic="--extra-faces ../shared/datasets/face-crops-2class --synthetic-wrong 1200" \
        [--common "--keep last"] [--folds 5] [--fold K ...] [--jobs N] [--epochs 6] [--out out/cv] \
        [--also-jolignier]

The 20 mask_weared_incorrect faces of one validation split move its AP by 5 points each; the 113 of the whole
training set, spread over 5 folds (duplicate groups kept together, classes spread evenly: data/split.py
`k_folds`), do not. Each variant (a name and `maskwatch train` options) is trained once per fold on the other
four folds and scored on its fold with the detector as it ships (all classes listed). Prints per-fold AP@.5 of
each class and mAP@.5, then mean and standard deviation per variant; writes OUT/cv.json. Each training keeps
what its options say (`--keep best`, the default, picks the best epoch by its own fold). With --also-jolignier
each fold's model is also scored on jolignier-val (measuring only), which gives that set's numbers a spread too.
A fold's scores are kept in OUT/NAME/foldK/scores.json and its model in OUT/NAME/foldK/model, so folds can run in
parallel processes (--fold K, or --jobs N to start them: --job-threads each, for a GPU machine with many cores)
or on another machine, and a later call only adds what is missing.

--export EXPORT="train options" scores choices made when a model is exported, not trained, on the same trainings:
each fold's last checkpoint exported again with these options (e.g. `--finetuned-share 1`: the backbone as
trained, without the shipped mix with ImageNet's) into OUT/NAME@EXPORT/foldK, scored on its fold by predicting
again (the checkpoint's validation was of the first export; its JSON's val_scores still are) and listed as its
own row. Needs `--keep last`.

The figures in the model card. v6.2's recipe against v4's crop size (64 px), each exported with and without the
mix (8 epochs, to fit the lent GPU machine's time; one run per variant, 5 processes of 3 threads on 16 cores):

    --variant v6="--extra-faces ../shared/datasets/face-crops-2class --synthetic-wrong 1200 --crop-size 80" \
    --variant v4="--extra-faces ../shared/datasets/face-crops-2class --synthetic-wrong 1200 --crop-size 64" \
    --export unmixed="--finetuned-share 1" --common "--device cuda --keep last --val-every 8" --epochs 8 \
    --jobs 5 --job-threads 3

The synthetic-composite decision: `--variant extras="--extra-faces ../shared/datasets/face-crops-2class"
--variant synthetic="--extra-faces ../shared/datasets/face-crops-2class --synthetic-wrong 1200" --common "--device
cuda --keep last --val-every 8" --epochs 8 --jobs 10`. Both then `--also-jolignier` on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from typer.main import get_command

from maskwatch.cli import app
from maskwatch.data import load_dataset
from maskwatch.data.split import k_folds
from maskwatch.model_kinds import model_in

ROOT = Path(__file__).resolve().parents[1]


def train_fold(options: list[str], data: Path, val_list: Path, out: Path, epochs: int, threads: int) -> int:
    """Train through the CLI (exactly the user's command), unless the run has its model; returns the kept epoch."""
    args = ["train", "--data", str(data), "--val-split", str(val_list), "--out", str(out), "--epochs", str(epochs),
            "--patience", str(epochs), "--threads", str(threads), *options]
    if (out / "last.pt").is_file():
        args.append("--resume")
    if not (out / "model").is_dir():
        get_command(app).main(args, standalone_mode=False)
    return int(model_config(out)["epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help='NAME="train options" (repeatable)')
    parser.add_argument("--common", default="", help='train options for every variant, e.g. "--device cuda"')
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", type=int, action="append",
                        help="only this fold (repeatable; runs of other folds can go on in parallel processes)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="train this many folds at once, each in its own process with --job-threads threads")
    parser.add_argument("--job-threads", type=int, default=1, help="threads of each of the --jobs processes")
    parser.add_argument("--export", action="append", default=[],
                        help='EXPORT="train options": each fold\'s training exported again with these (repeatable)')
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "cv")
    parser.add_argument("--also-jolignier", action="store_true", help="score every fold's model on jolignier-val too")
    args = parser.parse_args()
    if args.export and not all("--keep last" in f"{spec} {args.common}" for spec in args.variant):
        parser.error("--export re-exports each fold's last checkpoint: give every variant --keep last "
                     "(in --common or its options)")
    if args.jobs > 1 and not args.fold:
        train_in_parallel(args)
    dataset = load_dataset(args.data)
    jolignier = load_dataset(ROOT / ".." / "shared" / "datasets" / "jolignier-val") if args.also_jolignier else None
    folds = k_folds(dataset, args.folds)
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.variant:
        name, _, options = spec.partition("=")
        for k, split in enumerate(folds):
            if args.fold and k not in args.fold:
                continue
            run = args.out / name / f"fold{k}"
            run.mkdir(parents=True, exist_ok=True)
            val_list = run / "val_images.txt"  # one per run: parallel processes never write the same file
            val_list.write_text("".join(s + "\n" for s in split.val))
            kept_epoch = train_fold(shlex.split(options) + shlex.split(args.common), args.data, val_list, run,
                                    args.epochs, args.threads)
            # The fold's scores: training validated its kept epoch on this fold; else predict again.
            score_run(run, name, k, lambda: validation_scores(run) or score_fold(run, dataset, split.val, args.threads),
                      kept_epoch, jolignier, args.threads)
            for export in args.export:
                export_name, _, export_options = export.partition("=")
                export_run = args.out / f"{name}@{export_name}" / f"fold{k}"
                export_again(run, export_run, shlex.split(options) + shlex.split(args.common)
                             + shlex.split(export_options), args.data, args.epochs, args.threads)
                score_run(export_run, f"{name}@{export_name}", k,
                          lambda: score_fold(export_run, dataset, split.val, args.threads),
                          kept_epoch, jolignier, args.threads)
    names = [spec.partition("=")[0] for spec in args.variant]
    summarise(args.out, names + [f"{n}@{e.partition('=')[0]}" for n in names for e in args.export], args.folds)


def score_run(run: Path, name: str, fold: int, fold_scores: Callable[[], dict[str, float]], kept_epoch: int,
              jolignier, threads: int) -> None:
    """RUN/scores.json: its fold's scores (fold_scores() when not there yet) and, with a jolignier data set, that
    set's; kept, so a later call adds jolignier's without training or predicting the fold again. Printed."""
    path = run / "scores.json"
    scores = json.loads(path.read_text()) if path.is_file() else {}
    if "mAP50" not in scores:
        scores = fold_scores() | {"kept_epoch": kept_epoch}
    if jolignier is not None and "jolignier mAP50" not in scores:
        scores |= {f"jolignier {key}": v for key, v in
                   score_fold(run, jolignier, [s.stem for s in jolignier.samples], threads).items()}
    path.write_text(json.dumps(scores, indent=2))
    print(f"{name} fold {fold}: " + " ".join(f"{key} {v:.3f}" for key, v in scores.items() if key != "kept_epoch"),
          flush=True)


def export_again(run: Path, export_run: Path, options: list[str], data: Path, epochs: int, threads: int) -> None:
    """The fold's last checkpoint (and its cached face candidates) in a folder of its own, exported through the
    CLI's --resume of a finished run with the given options."""
    if (export_run / "model").is_dir():
        return
    export_run.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "candidates.npz", "val_images.txt"):
        if (run / name).is_file():
            shutil.copy2(run / name, export_run / name)
    train_fold(options, data, export_run / "val_images.txt", export_run, epochs, threads)


def train_in_parallel(args: argparse.Namespace) -> None:
    """Every (variant, fold) in its own process (this script with --fold K), at most args.jobs at once; their
    logs go to OUT/NAME/foldK/log.txt. The caller then scores what they left."""
    queue = [(spec, k) for spec in args.variant for k in range(args.folds)]
    running: list[subprocess.Popen] = []
    env = os.environ | {"OMP_NUM_THREADS": str(args.job_threads)}
    while queue or running:
        while queue and len(running) < args.jobs:
            spec, k = queue.pop(0)
            run = args.out / spec.partition("=")[0] / f"fold{k}"
            run.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, __file__, "--variant", spec, "--common", args.common, "--data", str(args.data),
                       "--folds", str(args.folds), "--fold", str(k), "--epochs", str(args.epochs),
                       "--threads", str(args.job_threads), "--out", str(args.out),
                       *[option for export in args.export for option in ("--export", export)]]
            with (run / "log.txt").open("w") as log:
                running.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
        time.sleep(1)
        running = [p for p in running if p.poll() is None]


def summarise(out: Path, names: list[str], folds: int) -> None:
    """Mean and standard deviation over the folds scored so far (by this process or others); OUT/cv.json."""
    results = {name: [json.loads(p.read_text()) for k in range(folds)
                      if (p := out / name / f"fold{k}" / "scores.json").is_file()] for name in names}
    results = {name: rows for name, rows in results.items() if rows}
    if not results:
        return
    keys = [k for k in next(iter(results.values()))[0] if k != "kept_epoch"]
    print("\n| variant | folds | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys))
    for name, rows in results.items():
        cells = [f"{np.mean([r.get(k, np.nan) for r in rows]):.3f} ± {np.std([r.get(k, np.nan) for r in rows]):.3f}"
                 for k in keys]
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    (out / "cv.json").write_text(json.dumps(results, indent=2))


def validation_scores(run: Path) -> dict[str, float] | None:
    """The scores `maskwatch train` stored with the model it kept (its validation images are the fold's)."""
    return model_config(run).get("val_scores")


def model_config(run: Path) -> dict:
    """The JSON beside the model a run kept, of whichever kind."""
    return json.loads(model_in(run).with_suffix(".json").read_text())


def score_fold(run: Path, dataset, val_stems: list[str], threads: int) -> dict[str, float]:
    """The fold's model on these images as it ships (training's own `evaluate` and `scores_of`)."""
    from maskwatch.training.engine import evaluate, scores_of

    return scores_of(evaluate(run, dataset.subset(val_stems), threads=threads))


if __name__ == "__main__":
    main()
