"""COCO JSON: one file with images, annotations (xywh) and categories."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

from maskwatch.version import __version__
from maskwatch.data.dataset import Dataset, DatasetBuilder, difficult_of
from maskwatch.data.images import place_images
from maskwatch.errors import MaskwatchError

if TYPE_CHECKING:
    from maskwatch.data.dataset import Split

COCO_FILE = "annotations.json"
def side_file(side: str) -> str:
    """The file of one side of a split beside the whole set's annotations.json, as `convert --val` writes it."""
    return f"instances_{side}.json"


ROBOFLOW_FILE = "_annotations.coco.json"  # Roboflow's COCO export: one per side, train/, valid/ and test/
log = logging.getLogger(__name__)


def roboflow_sides(path: Path) -> dict[str, Path]:
    """The COCO file of each side of a Roboflow-style export (`train/_annotations.coco.json`, `valid/...`), by
    folder name; empty when the folder holds COCO files of its own (they are read instead)."""
    if not path.is_dir() or any(path.glob("*.json")) or any(path.glob("annotations/*.json")):
        return {}
    return {f.parent.name: f for f in sorted(path.glob(f"*/{ROBOFLOW_FILE}"))}


def coco_side_stems(path: Path, side: str) -> list[str] | None:
    """The image stems of one side (`valid`, `val`, `test`) of a Roboflow-style COCO export; None without it."""
    sides = roboflow_sides(path)
    if side not in sides:
        return None
    try:
        return [Path(str(im["file_name"])).stem for im in json.loads(sides[side].read_bytes())["images"]]
    except (ValueError, KeyError, TypeError) as exc:  # (ValueError: bad JSON, or bytes in no Unicode encoding)
        raise MaskwatchError(f"{sides[side]}: not a valid COCO file ({exc})") from exc


def find_coco_json(path: Path) -> Path:
    """The COCO file a path names: the file itself, or the folder's annotations.json, else its first .json (by name,
    then under annotations/); with several and no annotations.json, a warning says which one is read."""
    if path.is_file():
        return path
    candidates = [path / COCO_FILE, *sorted(path.glob("*.json")), *sorted(path.glob("annotations/*.json"))]
    found = list(dict.fromkeys(c for c in candidates if c.is_file()))
    if not found:
        raise MaskwatchError(f"{path}: no COCO .json file found")
    if len(found) > 1 and found[0].name != COCO_FILE:  # e.g. instances_train.json and instances_val.json
        log.warning("%s holds %d COCO files (%s); reading %s only: give a file's path to read another",
                    path, len(found), ", ".join(str(f.relative_to(path)) for f in found), found[0].relative_to(path))
    return found[0]


def read_coco(path: Path, images_dir: Path | None = None, classes: list[str] | None = None,
              label_map: dict[str, str] | None = None, dataset_root: Path | None = None,
              allow_outside_images: bool = False) -> Dataset:
    """dataset_root: the data set's folder (default: the JSON's folder, or the one above annotations/); images
    outside it are skipped unless allow_outside_images. A folder of Roboflow-style sides (train/, valid/, test/,
    each with its _annotations.coco.json) is read whole, as its YOLO export is: train leaves its test side out
    and validates on its valid side (data/split.py)."""
    path = Path(path)
    files = list(roboflow_sides(path).values()) or [find_coco_json(path)]
    if dataset_root is None and len(files) > 1:
        dataset_root = path
    elif dataset_root is None:
        folder = files[0].parent
        dataset_root = folder.parent if folder.name.lower() == "annotations" else folder
    builder = DatasetBuilder(classes if classes is not None else None, label_map, root=dataset_root,
                             allow_outside=allow_outside_images)
    for json_path in files:
        _add_coco_file(builder, json_path, images_dir)
    return builder.build(str(path if len(files) > 1 else files[0]))


def _check_unique_ids(json_path: Path, coco: dict) -> None:
    """Refuse a file in which two images or two categories share an id (two exports merged by hand, each counting
    from 1): annotations name them by id, so their boxes would land on the wrong image or class, unsaid."""
    for key, what, name_key in (("images", "image", "file_name"), ("categories", "category", "name")):
        seen: dict[int, list[str]] = {}
        for item in coco[key]:
            seen.setdefault(int(item["id"]), []).append(str(item.get(name_key, "?")))
        shared = {i: names for i, names in seen.items() if len(names) > 1}
        if shared:
            i, names = next(iter(shared.items()))
            raise MaskwatchError(f"{json_path}: {len(shared)} {what} id(s) are used more than once (id {i}: "
                                 f"{', '.join(names[:3])}); annotations name {key} by id, so their boxes cannot be "
                                 f"told apart. Give each {what} its own id (files merged by hand: renumber one "
                                 f"before merging)")


def _add_coco_file(builder: DatasetBuilder, json_path: Path, images_dir: Path | None) -> None:
    try:
        coco = json.loads(json_path.read_bytes())  # (bytes: UTF-8 or -16, as json detects)
        categories = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
        parents = {str(c.get("supercategory")) for c in coco["categories"]  # (a category that names itself
                   if str(c.get("supercategory")) != str(c["name"])}  # its supercategory groups nothing)
        images = {int(im["id"]): im for im in coco["images"]}
        annotations = coco.get("annotations", [])
        used = {int(a["category_id"]) for a in annotations if isinstance(a, dict) and "category_id" in a}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MaskwatchError(f"{json_path}: not a valid COCO file ({exc})") from exc
    _check_unique_ids(json_path, coco)
    # A category that only groups others (Roboflow's first, named after the project: `faces`, the supercategory
    # of the real classes) and labels no box is no class: kept, it would be an empty class of its own.
    categories = {i: name for i, name in categories.items() if i in used or name not in parents}
    builder.declare_classes([categories[cat_id] for cat_id in sorted(categories)])
    boxes_by_image: dict[int, list] = {image_id: [] for image_id in images}
    for index, ann in enumerate(annotations):
        where = f"{json_path}: annotation {ann.get('id', index) if isinstance(ann, dict) else index}"
        try:
            if not isinstance(ann, dict) or not ann.get("bbox"):
                raise ValueError("it has no bbox (a segmentation-only annotation?)")
            x, y, w, h = (float(v) for v in ann["bbox"])
            if int(ann.get("category_id", -1)) not in categories:
                raise ValueError(f"its category_id {ann.get('category_id')!r} is not among the file's categories")
            if int(ann.get("image_id", -1)) not in boxes_by_image:
                raise ValueError(f"its image_id {ann.get('image_id')!r} is not among the file's images")
            label = categories[int(ann["category_id"])]
            boxes_by_image[int(ann["image_id"])].append((x, y, x + w, y + h, label, bool(ann.get("iscrowd", 0))))
        except (KeyError, TypeError, ValueError) as exc:
            reason = exc if isinstance(exc, ValueError) and str(exc).startswith("it") else f"it is malformed ({exc})"
            builder.problem(f"{where}: {reason}; skipped")
    # The COCO layouts met in practice: images/ beside the file, the file among its images (Roboflow), and
    # COCO's own annotations/instances_val2017.json beside val2017/.
    side = json_path.parent.parent / json_path.stem.removeprefix("instances_")
    folders = [d for d in (images_dir, json_path.parent / "images", json_path.parent,
                           json_path.parent.parent / "images", side) if d is not None]

    def located(name: str) -> tuple[Path | None, bool]:
        """The file a file_name names, in the first folder that has it; else by its base name alone (a path of
        the machine that wrote the file: /home/me/masks/images/x.jpg, C:\\data\\x.jpg), said by the flag."""
        found = next((f / name for f in folders if (f / name).is_file()), None)
        if found is None and "\\" in name and not PureWindowsPath(name).anchor:  # (sub\x.jpg: relative, from Windows)
            posix = name.replace("\\", "/")
            found = next((f / posix for f in folders if (f / posix).is_file()), None)
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        if found is None and base != name:
            by_base = next((f / base for f in folders if (f / base).is_file()), None)
            return by_base, by_base is not None
        return found, False

    names = [str(image.get("file_name", "")) for image in images.values()]
    if names and not any(located(name)[0] for name in names):
        raise MaskwatchError(f"{json_path}: none of its {len(names)} images (e.g. {names[0]}) is in "
                             f"{', '.join(str(f.absolute()) for f in dict.fromkeys(folders))}, by that name or its "
                             f"file name alone: put them in images/ beside the file, or give the file inside the "
                             f"images' folder")
    # Where a missing image was looked for: the folder its file_name works from for the images found.
    home = next((f for name in names for f in folders if (f / name).is_file()), folders[0])
    by_base_name: list[str] = []
    for image_id, image in images.items():
        name = str(image.get("file_name", ""))
        where = f"{json_path}: image {name}"
        try:
            width, height = int(image.get("width", 0)), int(image.get("height", 0))
        except (TypeError, ValueError, OverflowError) as exc:
            builder.problem(f"{where}: width and height must be whole numbers ({exc}); skipped")
            continue
        image_path, elsewhere = located(name)
        if elsewhere:
            by_base_name.append(name)
        builder.add(image_path or home / name, width, height, boxes_by_image[image_id], where)
    if by_base_name:
        log.warning("%s: %d file_name(s) are paths elsewhere (e.g. %s); found by their file name in the folders "
                    "searched", json_path, len(by_base_name), by_base_name[0])


def write_coco(dataset: Dataset, out_dir: Path, images: str = "hardlink", split: "Split | None" = None) -> None:
    """images/ and annotations.json (every image, file names relative to images/); with a split also
    instances_train.json and instances_val.json over the same images/ folder."""
    place_images([s.image_path for s in dataset.samples], out_dir / "images", images, dataset.turned_images)
    (out_dir / COCO_FILE).write_text(json.dumps(to_coco_dict(dataset)))
    for name, part in split.parts(dataset) if split else []:
        (out_dir / side_file(name)).write_text(json.dumps(to_coco_dict(part)))


def to_coco_dict(dataset: Dataset, classes: list[str] | None = None, label_of=None) -> dict:
    """The COCO dict of a dataset; evaluation uses it too, with another class list and a label mapping."""
    classes = classes or dataset.classes
    label_of = label_of or (lambda label: label)
    images, annotations = [], []
    for image_id, sample in enumerate(dataset.samples, 1):
        images.append({"id": image_id, "file_name": sample.image_path.name,
                       "width": sample.width, "height": sample.height})
        for (x1, y1, x2, y2), label, difficult in zip(sample.detections.xyxy, dataset.labels_of(sample),
                                                      difficult_of(sample.detections)):
            w, h = float(x2 - x1), float(y2 - y1)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": classes.index(label_of(label)) + 1,
                                "bbox": [float(x1), float(y1), w, h], "area": w * h,
                                "iscrowd": int(difficult)})  # COCO's way to say: neither found nor missed
    categories = [{"id": i + 1, "name": name, "supercategory": "face"} for i, name in enumerate(classes)]
    # info and licenses are optional in practice but read by pycocotools' COCO.info() and some loaders.
    info = {"description": "faces with mask labels, written by maskwatch", "version": __version__,
            "year": int(time.strftime("%Y")), "date_created": time.strftime("%Y-%m-%d"), "contributor": "", "url": ""}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
