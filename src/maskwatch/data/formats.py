"""Pick the right reader or writer for a path, so callers say `load_dataset(path)` and nothing more."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Literal

from maskwatch.data.coco import read_coco, roboflow_sides, write_coco
from maskwatch.data.dataset import Dataset
from maskwatch.data.images import check_image_mode, list_images
from maskwatch.data.tfrecord import check_shards, is_record_file, read_tfrecord, write_tfrecord
from maskwatch.data.voc import read_voc, write_voc
from maskwatch.data.yolo import CLASS_FILES, DATA_YAML, read_yolo, write_yolo
from maskwatch.errors import MaskwatchError

if TYPE_CHECKING:
    from maskwatch.data.dataset import Split

Format = Literal["voc", "yolo", "coco", "tfrecord"]
log = logging.getLogger(__name__)
FORMATS: tuple[str, ...] = ("voc", "yolo", "coco", "tfrecord")


def detect_format(path: Path) -> Format:
    """The format of a data set from its files: a .json file or a folder with one (COCO; or with train/, valid/
    and test/ folders of one each, as Roboflow exports it), .tfrecord files
    (TFRecord), .txt labels with data.yaml, classes.txt or obj.names (YOLO), .xml annotations (VOC)."""
    if path.is_file():
        if path.suffix == ".json":
            return "coco"
        if is_record_file(path):
            return "tfrecord"
        raise MaskwatchError(f"{path}: cannot tell the data format of this file; pass --format")
    if not path.is_dir():
        raise MaskwatchError(f"{path}: no such file or folder")
    found: list[Format] = []  # in the order they are preferred
    if any((path / name).is_file() for name in CLASS_FILES):
        found.append("yolo")
    if any(is_record_file(p) for p in path.iterdir()):
        found.append("tfrecord")
    if any(path.glob("*.json")) or any(path.glob("annotations/*.json")) or roboflow_sides(path):
        found.append("coco")
    if any(path.glob("*.xml")) or any(path.glob("annotations/**/*.xml")) or any(path.glob("Annotations/**/*.xml")):
        found.append("voc")
    if not found:
        raise MaskwatchError(f"{path}: found no VOC XML, YOLO data.yaml/classes.txt/obj.names, COCO JSON or "
                             f"TFRecord{_what_is_there(path)}")
    if len(found) > 1:
        log.warning("%s holds annotations in several formats (%s); reading it as %s: pass --format to read another",
                    path, ", ".join(found), found[0])
    return found[0]


def _what_is_there(path: Path) -> str:
    """A hint for a folder in no known layout: images without annotations, or a YOLO set without its names."""

    images = list_images(path)
    if not images:
        return ""
    if any(path.rglob("*.txt")):
        return (f" ({len(images)} image(s) and .txt files: a YOLO set needs its class names, one per line, in "
                f"classes.txt at its top)")
    return f" ({len(images)} image(s) but no annotations: label them first)"


def _voc_annotations_dir(path: Path) -> Path:
    for name in ("annotations", "Annotations"):
        if (path / name).is_dir() and any((path / name).rglob("*.xml")):
            return path / name
    return path


def folders_read_for_images(path: Path, fmt: str | None = None) -> list[Path]:
    """The folders a load of this data set searches for pictures: what is written there (plots, copies) joins the
    data set the next time. YOLO reads every picture under its folder (one without labels: a background image); VOC
    looks through its image folders for pictures no XML names (each then said as a problem); COCO and TFRecord read
    only the pictures their files name."""
    fmt = fmt or detect_format(path)
    root = dataset_folder(path)
    if fmt == "yolo":
        return [root]
    if fmt == "voc" and root.is_dir():
        return [root / "images", root / "JPEGImages"]
    return []


def dataset_folder(path: Path) -> Path:
    """The data set a path names: a YOLO set's folder where the path is its data.yaml (as Ultralytics takes it),
    else the path itself."""
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        if path.name != DATA_YAML:  # the reader takes the class names and sides from FOLDER/data.yaml
            raise MaskwatchError(f"{path}: a YOLO data set is read from its folder, whose data.yaml names the "
                                 f"classes; name this file data.yaml (or copy it so), then give {path.parent}")
        return path.parent
    return path


def load_dataset(path: str | Path, fmt: Format | None = None, classes: list[str] | None = None,
                 label_map: dict[str, str] | None = None, allow_outside_images: bool = False,
                 labels_elsewhere: Collection[str] = ()) -> Dataset:
    """Read a data set in any supported format; problems are logged and kept in `Dataset.problems`.

    classes: the only labels accepted (others stop the load); None learns them from the data.
    allow_outside_images: follow image paths (VOC <path>, COCO file_name) that lead out of the data set's
    folder; by default such images are skipped with a warning.
    labels_elsewhere: labels the same label_map is also for (evaluate's predictions): keys for them are used."""
    path = dataset_folder(Path(path))
    fmt = fmt or detect_format(path)
    if fmt == "voc":
        root = path if path.is_dir() else path.parent
        dataset = read_voc(_voc_annotations_dir(path), classes=classes, label_map=label_map, dataset_root=root,
                           allow_outside_images=allow_outside_images)
    elif fmt == "yolo":
        dataset = read_yolo(path, classes=classes, label_map=label_map)
    elif fmt == "coco":
        dataset = read_coco(path, classes=classes, label_map=label_map, allow_outside_images=allow_outside_images)
    elif fmt == "tfrecord":
        dataset = read_tfrecord(path, classes=classes, label_map=label_map)
    else:
        raise MaskwatchError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    unused = [old for old in label_map or {} if old not in dataset.labels_read | set(labels_elsewhere)]
    if unused:  # a misspelt key (Helmet= for helmet) would otherwise change nothing, silently
        problem = (f"{path}: --label-map names {', '.join(repr(u) for u in unused)}, which no box or class list "
                   f"here uses (labels: {', '.join(sorted(dataset.labels_read)) or 'none'})"
                   + (f", nor a prediction (labels: {', '.join(sorted(labels_elsewhere))})" if labels_elsewhere
                      else ""))
        log.warning("%s", problem)
        dataset.problems.append(problem)
    return dataset


def check_save_options(out_dir: Path, fmt: str, images: str = "hardlink", shards: int = 1) -> None:
    """What save_dataset cannot write, refused before a data set is loaded (convert checks first)."""
    if fmt not in FORMATS:
        raise MaskwatchError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_image_mode(images)
    if fmt != "tfrecord" and shards != 1:
        raise MaskwatchError("--shards is for tfrecord only")
    check_shards(shards)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise MaskwatchError(f"{out_dir}: the output folder is not empty; choose a new folder or empty it first")


def save_dataset(dataset: Dataset, out_dir: str | Path, fmt: Format, images: str = "hardlink",
                 split: Split | None = None, shards: int = 1) -> None:
    """Write a data set other tools can open from any place: images beside the labels (`images`: hardlink, copy
    or symlink; TFRecord embeds them), no absolute paths; with a split, train and val sides (see each writer).
    Only into a new or empty folder: old files would mix with the new (a second record, stale labels)."""
    out_dir = Path(out_dir)
    check_save_options(out_dir, fmt, images, shards)
    writers = {"voc": write_voc, "yolo": write_yolo, "coco": write_coco}
    existed = out_dir.is_dir()
    try:
        if fmt == "tfrecord":
            write_tfrecord(dataset, out_dir, split, shards)
        else:
            writers[fmt](dataset, out_dir, images, split)
    except BaseException:  # half a data set is worse than none, and would block the same command run again
        if existed:
            for child in out_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
