"""What is in a data set: boxes and images per class, box sizes; as a table and a figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.data.dataset import Dataset


@dataclass
class DatasetStats:
    """What `maskwatch data stats` shows of a data set: boxes and images per class and each class's box widths in
    pixels; the boxes marked difficult are counted apart too."""

    images: int
    boxes: int
    boxes_per_class: dict[str, int]
    images_per_class: dict[str, int]
    box_widths: dict[str, np.ndarray]
    difficult_boxes: int = 0  # marked hard to judge: evaluate neither finds nor misses them

    def as_dict(self) -> dict:
        widths = {c: {"min": float(w.min()), "median": float(np.median(w)), "max": float(w.max())}
                  for c, w in self.box_widths.items() if len(w)}
        return {"images": self.images, "boxes": self.boxes, "boxes_per_class": self.boxes_per_class,
                "images_per_class": self.images_per_class, "box_width_px": widths,
                "difficult_boxes": self.difficult_boxes}


def dataset_stats(dataset: Dataset) -> DatasetStats:
    """Count a data set's boxes and images per class, and gather each class's box widths."""
    images_per_class = {c: 0 for c in dataset.classes}
    widths: dict[str, list[float]] = {c: [] for c in dataset.classes}
    for sample in dataset.samples:
        labels = dataset.labels_of(sample)
        for label in set(labels):
            images_per_class[label] += 1
        for (x1, _, x2, _), label in zip(sample.detections.xyxy, labels):
            widths[label].append(float(x2 - x1))
    return DatasetStats(len(dataset), dataset.num_boxes, dataset.class_counts(), images_per_class,
                        {c: np.asarray(w) for c, w in widths.items()}, dataset.num_difficult)


def plot_stats(stats: DatasetStats, path: Path) -> Path:
    """The stats as one figure (boxes per class, images per class, box widths on a log scale), written to `path`;
    returns it."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    from maskwatch.classes import colour_of

    def colour(c: str) -> tuple[float, float, float]:
        b, g, r = colour_of(c)
        return r / 255, g / 255, b / 255

    classes = list(stats.boxes_per_class)
    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    axes[0].bar(classes, [stats.boxes_per_class[c] for c in classes], color=[colour(c) for c in classes])
    axes[0].set_title(f"boxes per class ({stats.boxes} in all)")
    axes[1].bar(classes, [stats.images_per_class[c] for c in classes], color=[colour(c) for c in classes])
    axes[1].set_title(f"images containing the class ({stats.images} images)")
    all_widths = np.concatenate([w for w in stats.box_widths.values() if len(w)] or [np.zeros(1)])
    bins = np.logspace(0, np.log10(max(all_widths.max(), 2)), 30)
    for c in classes:
        if len(stats.box_widths[c]):
            axes[2].hist(stats.box_widths[c], bins=bins, alpha=0.6, label=c, color=colour(c))
    axes[2].set_xscale("log")
    axes[2].set_xlabel("box width (px)")
    axes[2].set_title("box width histogram")
    if any(len(stats.box_widths[c]) for c in classes):  # (no box: no legend to draw, matplotlib warns)
        axes[2].legend()
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
