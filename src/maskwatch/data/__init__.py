"""Data sets: one `Dataset` type, readers and writers for VOC, YOLO, COCO and TFRecord, splits and stats."""

from maskwatch.data.dataset import Dataset, Sample
from maskwatch.data.formats import FORMATS, detect_format, load_dataset, save_dataset

__all__ = ["Dataset", "Sample", "FORMATS", "detect_format", "load_dataset", "save_dataset"]
