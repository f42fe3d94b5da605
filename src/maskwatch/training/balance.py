"""Class imbalance, in one place: the training set has 2922 with_mask, 666 without_mask and 113
mask_weared_incorrect faces. Rarer classes are shown more often (repeat-factor sampling) and, for whole-image
training, weighted higher in the loss; `--no-balance-classes` turns both off to measure what they buy."""

from __future__ import annotations

import numpy as np
import torch

from maskwatch.data import Dataset


def class_counts(train: Dataset) -> np.ndarray:
    """Boxes per class in class order, at least 1 each, so that the ratios taken of them never divide by zero (a class
    no box uses)."""
    return np.array([max(1, c) for c in train.class_counts().values()], np.float64)


def rarest_class(train: Dataset) -> int:
    """The class with the fewest boxes among those that have any (a class the file lists but no box uses would
    give a NaN score every epoch)."""
    counts = np.array(list(train.class_counts().values()), np.float64)
    return int(np.argmin(np.where(counts > 0, counts, np.inf)))


def copies_per_class(train: Dataset, base: float, balance: bool = True) -> np.ndarray:
    """Repeat-factor sampling of faces: a class with a fraction f of the boxes gets base * sqrt(f_max / f) copies."""
    counts = class_counts(train)
    factor = np.sqrt(counts.max() / counts) if balance else np.ones_like(counts)
    return np.round(base * factor).astype(int)


def class_balance(train: Dataset, power: float = 0.25, balance: bool = True) -> tuple[np.ndarray, torch.Tensor]:
    """For whole-image training: image sampling weights (repeat factor of the rarest class an image holds) and
    class loss weights ((n_max / n) ** power); all ones without `balance`."""
    counts = class_counts(train)
    ratio = counts.max() / counts if balance else np.ones_like(counts)
    repeat = np.sqrt(ratio)
    weights = np.array([max([1.0, *repeat[s.detections.class_id]]) for s in train.samples])
    class_weights = torch.tensor(ratio ** power, dtype=torch.float32)
    return weights / weights.sum(), class_weights
