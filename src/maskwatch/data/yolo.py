"""YOLO txt: one `class xc yc w h` line per box (0..1), classes from data.yaml, classes.txt or obj.names.

Lines of Ultralytics' other label kinds are read as Ultralytics reads them for detection: a segmentation polygon
(`class x1 y1 x2 y2 ...`) as its bounding box, a prediction line with a score after the box as the box."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from maskwatch.data.dataset import Dataset, DatasetBuilder, from_normalised, read_text_file
from maskwatch.data.images import list_images, place_images
from maskwatch.errors import MaskwatchError, name_some

if TYPE_CHECKING:
    from maskwatch.data.dataset import Split

log = logging.getLogger(__name__)


DATA_YAML = "data.yaml"  # Ultralytics' file of classes and sides (the one this writer writes)
CLASS_FILES = (DATA_YAML, "classes.txt", "obj.names")  # Ultralytics, labelImg / Roboflow, Darknet / CVAT YOLO 1.1


def read_yolo_classes(root: Path) -> list[str]:
    """The class names in label-index order: data.yaml's `names` (a list, or a mapping with every index from 0), else
    classes.txt or obj.names, one name per line."""
    yaml_path = root / CLASS_FILES[0]
    lists = [root / name for name in CLASS_FILES[1:]]  # the files of one name per line
    txt_path = next((p for p in lists if p.is_file()), lists[0])
    if yaml_path.is_file():
        try:
            config = yaml.safe_load(read_text_file(yaml_path))
        except yaml.YAMLError as exc:
            raise MaskwatchError(f"{yaml_path}: unparsable YAML ({exc})") from exc
        names = config.get("names") if isinstance(config, dict) else None
        if isinstance(names, dict) and all(isinstance(k, int) or str(k).isdigit() for k in names):
            indices = sorted(int(k) for k in names)
            if indices != list(range(len(indices))):  # a gap would shift every later class onto another's lines
                missing = sorted(set(range(max(indices) + 1)) - set(indices))
                raise MaskwatchError(f"{yaml_path}: 'names' numbers its classes {', '.join(map(str, indices))}, "
                                     f"without {', '.join(map(str, missing[:5]))}: a label line's class index is "
                                     f"a position in the list of names, so every index from 0 needs a name (as "
                                     f"Ultralytics requires); name the missing ones, or renumber the names and "
                                     f"the label lines")
            return _said_if_lists_disagree([str(names[k]) for k in sorted(names, key=int)], yaml_path, txt_path)
        if isinstance(names, list) and all(isinstance(n, (str, int, float)) for n in names):
            return _said_if_lists_disagree([str(n) for n in names], yaml_path, txt_path)
        raise MaskwatchError(f"{yaml_path}: 'names' must be a list of class names (names: [with_mask, "
                             f"without_mask]) or a mapping from class index to name (names: {{0: with_mask}}); "
                             f"found {type(names).__name__}: {str(names)[:80]!r}")
    if txt_path.is_file():
        return _names_in(txt_path)
    raise MaskwatchError(f"{root}: a YOLO data set needs classes.txt, data.yaml or obj.names listing the class "
                         f"names")


def _names_in(txt_path: Path) -> list[str]:
    return [line.strip() for line in read_text_file(txt_path).splitlines() if line.strip()]


def _said_if_lists_disagree(names: list[str], yaml_path: Path, txt_path: Path) -> list[str]:
    """data.yaml's names, with a warning where a classes.txt (or obj.names) beside it lists others: maskwatch writes
    both, and an edit to the one not read would otherwise change nothing, unsaid."""
    if txt_path.is_file():
        listed = _names_in(txt_path)
        if listed != names:
            log.warning("%s names the classes %s but %s %s; data.yaml's are used (as Ultralytics reads them): edit "
                        "it, or remove it to use %s", yaml_path, ", ".join(names), txt_path.name,
                        ", ".join(listed) or "none", txt_path.name)
    return names


POLYGON = "polygon"
SCORED = "scored"


def parse_line(line: str) -> tuple[int, tuple[float, float, float, float], str | None]:
    """Class index, normalised (x1, y1, x2, y2) and the kind of line when it is not a plain box (POLYGON, SCORED),
    or ValueError saying what is wrong with it."""
    values = line.split()
    try:
        cls, numbers = float(values[0]), [float(v) for v in values[1:]]
    except (ValueError, IndexError):
        raise ValueError("expected 'class xc yc w h' (numbers)") from None
    if not cls.is_integer():
        raise ValueError(f"class index {values[0]!r} is not a whole number")
    kind = None
    if len(numbers) in (4, 5):
        xc, yc, w, h = numbers[:4]
        box = (xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2)
        kind = SCORED if len(numbers) == 5 else None
    elif len(numbers) >= 6 and len(numbers) % 2 == 0:
        xs, ys = numbers[0::2], numbers[1::2]
        box, kind = (min(xs), min(ys), max(xs), max(ys)), POLYGON
    else:
        raise ValueError(f"expected 'class xc yc w h' (or a polygon 'class x1 y1 x2 y2 x3 y3 ...'), got "
                         f"{len(numbers)} numbers after the class")
    if max((abs(v) for v in (numbers if kind == POLYGON else numbers[:4]) if math.isfinite(v)), default=0) > 1.5:
        raise ValueError("coordinates above 1: YOLO labels give fractions of the image's width and height (0..1), "
                         "not pixels")
    return int(cls), box, kind


def _label_path(image_path: Path, root: Path) -> Path:
    """Ultralytics layout (images/ -> labels/) first, then a .txt beside the image."""
    rel = image_path.relative_to(root)
    parts = ["labels" if p == "images" else p for p in rel.parts]
    mirrored = root.joinpath(*parts).with_suffix(".txt")
    return mirrored if mirrored.is_file() else image_path.with_suffix(".txt")


def read_yolo(root: Path, classes: list[str] | None = None, label_map: dict[str, str] | None = None) -> Dataset:
    """A YOLO folder (Ultralytics' images/ and labels/, or each .txt beside its image). An image without a label file is
    read as one without faces (YOLO's convention) and said, as are polygons and scored lines."""
    file_classes = read_yolo_classes(root)
    builder = DatasetBuilder(classes, label_map)
    builder.declare_classes(file_classes)
    used: set[Path] = set()
    kinds: dict[str, list[str]] = {POLYGON: [], SCORED: []}
    unlabelled: list[Path] = []
    for image_path in list_images(root):
        label_path = _label_path(image_path, root)
        labelled = label_path.is_file()
        if not labelled:
            unlabelled.append(image_path)
        used.add(label_path.resolve())
        try:
            width, height = builder.stored_size(image_path)
        except MaskwatchError as exc:
            builder.problem(f"{exc}; skipped")
            continue
        boxes = []
        try:
            lines = read_text_file(label_path).splitlines() if labelled else []
        except MaskwatchError as exc:  # its boxes unknown: left out, not taken for an image without faces
            builder.problem(f"{exc}; its image is skipped")
            continue
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{label_path}:{number}"
            try:
                cls_index, (x1, y1, x2, y2), kind = parse_line(line)
            except ValueError as exc:
                builder.problem(f"{where}: {exc}: {line.strip()[:80]!r}; skipped")
                continue
            if not 0 <= cls_index < len(file_classes):
                builder.problem(f"{where}: class index {cls_index} not in the {len(file_classes)} classes; skipped")
                continue
            if kind:
                kinds[kind].append(where)
            boxes.append((from_normalised(x1, width), from_normalised(y1, height),
                          from_normalised(x2, width), from_normalised(y2, height), file_classes[cls_index]))
        builder.add(image_path, width, height, boxes, str(label_path))
    if unlabelled:  # YOLO's convention for background pictures, but as often labels that were forgotten
        log.warning("%s: %d image(s) without a label file, read as pictures without faces (YOLO's convention for "
                    "background images; their faces would be learnt as background and counted as false detections): "
                    "%s; label them, or move them out if they do show faces", root, len(unlabelled),
                    name_some(unlabelled))
    if kinds[POLYGON]:
        log.warning("%s: %d segmentation polygon(s) read as their bounding boxes (%s)", root, len(kinds[POLYGON]),
                    name_some(kinds[POLYGON], 3))
    if kinds[SCORED]:
        log.warning("%s: %d line(s) with a sixth number, read as a box and a score that is ignored (%s): are these "
                    "predictions rather than labels?", root, len(kinds[SCORED]), name_some(kinds[SCORED], 3))
    orphans = sorted(p for p in (root / "labels").rglob("*.txt") if p.resolve() not in used
                     and p.name != "classes.txt") \
        if (root / "labels").is_dir() else []
    if orphans:
        builder.problem(f"{root}: {len(orphans)} label file(s) without an image under images/, skipped: "
                        f"{name_some(orphans)}", always=True)
    return builder.build(str(root))


def write_yolo(dataset: Dataset, out_dir: Path, images: str = "hardlink", split: "Split | None" = None) -> None:
    """Ultralytics layout: images/, labels/, classes.txt and data.yaml; with a split, train.txt and val.txt list
    the images (./images/x.jpg, relative to the list) and data.yaml points at them. data.yaml has no `path:`:
    Ultralytics then takes the folder of data.yaml as the root, so the folder can move."""
    if dataset.num_difficult:
        log.warning("%d box(es) marked difficult are written as ordinary boxes: YOLO labels have no such flag",
                    dataset.num_difficult)
    place_images([s.image_path for s in dataset.samples], out_dir / "images", images, dataset.turned_images)
    labels_dir = out_dir / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    for sample in dataset.samples:
        lines = []
        for (x1, y1, x2, y2), cid in zip(sample.detections.xyxy, sample.detections.class_id):
            xc, yc = (x1 + x2) / 2 / sample.width, (y1 + y2) / 2 / sample.height
            w, h = (x2 - x1) / sample.width, (y2 - y1) / sample.height
            lines.append(f"{int(cid)} {xc:.8f} {yc:.8f} {w:.8f} {h:.8f}")
        (labels_dir / f"{sample.stem}.txt").write_text("".join(line + "\n" for line in lines))
    (out_dir / "classes.txt").write_text("".join(c + "\n" for c in dataset.classes))
    lists = {"train": "images", "val": "images"}
    for name, part in split.parts(dataset) if split else []:
        (out_dir / f"{name}.txt").write_text("".join(f"./images/{s.image_path.name}\n" for s in part.samples))
        lists[name] = f"{name}.txt"
    data_yaml = {**lists, "nc": len(dataset.classes), "names": dict(enumerate(dataset.classes))}
    (out_dir / DATA_YAML).write_text(yaml.safe_dump(data_yaml, sort_keys=False))
