"""5-fold cross-validation of a training recipe on the training set, for decisions that hinge on the rare class.

    .venv/bin/python bench/rare_class_cv.py --variant base="" \
        --variant synthetic="--extra-faces ../shared/datasets/face-crops-2class --synthetic-wrong 1200" \
        [--folds 5] [--epochs 6] [--out out/cv]

The 20 mask_weared_incorrect faces of one validation split move its AP by 5 points each; the 113 of the whole
training set, spread over 5 folds (duplicate groups kept together, classes spread evenly: data/split.py
`k_folds`), do not. Each variant (a name and `maskwatch train` options) is trained once per fold on the other
four folds and scored on its fold with the detector as it ships (all classes listed). Prints per-fold AP@.5 of
each class and mAP@.5, then mean and standard deviation per variant; writes OUT/cv.json. Each training keeps its
best epoch by its fold's mAP@.5, as `maskwatch train` does. With --also-jolignier each fold's model is also
scored on jolignier-val (measuring only), which gives that set's numbers a spread too.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
from typer.main import get_command

from maskwatch.cli import app
from maskwatch.data import load_dataset
from maskwatch.data.split import k_folds

ROOT = Path(__file__).resolve().parents[1]


def train_fold(options: list[str], data: Path, val_list: Path, out: Path, epochs: int, threads: int) -> dict:
    """Train through the CLI (exactly the user's command) and read the best epoch's row from history.csv."""
    import csv

    args = ["train", "--data", str(data), "--val-split", str(val_list), "--out", str(out), "--epochs", str(epochs),
            "--patience", str(epochs), "--threads", str(threads), *options]
    if (out / "last.pt").is_file():
        args.append("--resume")
    if not (out / "model").is_dir():
        get_command(app).main(args, standalone_mode=False)
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return max(rows, key=lambda r: float(r["val_mAP50"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help='NAME="train options" (repeatable)')
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "cv")
    parser.add_argument("--also-jolignier", action="store_true", help="score every fold's model on jolignier-val too")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    jolignier = load_dataset(ROOT / ".." / "shared" / "datasets" / "jolignier-val") if args.also_jolignier else None
    folds = k_folds(dataset, args.folds)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for spec in args.variant:
        name, _, options = spec.partition("=")
        for k, split in enumerate(folds):
            val_list = args.out / f"fold{k}.txt"
            val_list.write_text("".join(s + "\n" for s in split.val))
            best = train_fold(shlex.split(options), args.data, val_list, args.out / name / f"fold{k}", args.epochs,
                              args.threads)
            detector_dir = args.out / name / f"fold{k}"
            scores = score_fold(detector_dir, dataset, split.val)
            if jolignier is not None:
                scores |= {f"jolignier {key}": v for key, v in
                           score_fold(detector_dir, jolignier, [s.stem for s in jolignier.samples]).items()}
            scores["best_epoch"] = int(best["epoch"])
            results.setdefault(name, []).append(scores)
            print(f"{name} fold {k}: " + " ".join(f"{key} {v:.3f}" for key, v in scores.items() if key != "best_epoch"),
                  flush=True)
    keys = [k for k in results[next(iter(results))][0] if k != "best_epoch"]
    print("\n| variant | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, rows in results.items():
        cells = [f"{np.mean([r[k] for r in rows]):.3f} ± {np.std([r[k] for r in rows]):.3f}" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    (args.out / "cv.json").write_text(json.dumps(results, indent=2))


def score_fold(run: Path, dataset, val_stems: list[str]) -> dict[str, float]:
    from maskwatch.data.images import read_image
    from maskwatch.detector import Detector
    from maskwatch.evaluation import evaluate_coco
    from maskwatch.predictions import ImagePredictions

    val = dataset.subset(val_stems)
    detector = Detector.load(run, threads=2)
    predictions = [ImagePredictions(s.image_path.name, s.width, s.height,
                                    detector(read_image(s.image_path), min_score=0.01, all_classes=True))
                   for s in val.samples]
    result = evaluate_coco(val, predictions)
    return {"mAP50": result.summary["mAP50"], **{f"AP50 {c}": v["AP50"] for c, v in result.per_class.items()}}


if __name__ == "__main__":
    main()
