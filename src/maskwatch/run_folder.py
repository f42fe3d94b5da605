"""The layout of a `maskwatch train` run folder, named once: training writes it (torch), while the detector and the
CLI read it (no torch), so the names live here rather than in either.

    OUT/model/        the exported model (ONNX + JSON): what `--model OUT` loads
    OUT/last.pt       the last epoch's checkpoint (`--resume`); OUT/best.pt, OUT/history.csv, OUT/history.png
    OUT/candidates.npz  the two-stage recipe's cached face-finder candidates
    OUT/replaced/     the run `--overwrite` replaces, kept until the new run has its model
    OUT/.train.lock   held while a training writes the folder
"""

from __future__ import annotations

from pathlib import Path

MODEL = "model"
LAST = "last.pt"
BEST = "best.pt"
HISTORY = "history.csv"
CANDIDATES = "candidates.npz"
REPLACED = "replaced"
HISTORY_PLOT = "history.png"
RUN_FILES = (LAST, BEST, HISTORY, HISTORY_PLOT)  # what a run's epochs leave beside model/
TRAIN_LOCK = ".train.lock"  # held while a training writes the folder (file_lock.FileLock)


def run_of(model_path: Path) -> Path:
    """The run folder a model file lies in (OUT for OUT/model/x.onnx), or its own folder."""
    return model_path.parent.parent if model_path.parent.name == MODEL else model_path.parent


def has_started(run: Path) -> bool:
    """Whether a run's training began in this folder (it may not have a model yet)."""
    return any((run / name).exists() for name in (LAST, CANDIDATES, HISTORY, REPLACED))
