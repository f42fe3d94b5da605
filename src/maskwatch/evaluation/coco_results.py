"""Another tool's predictions as a COCO results list, read into the project's predictions: the file pycocotools'
`loadRes` takes, `[{"image_id": 1, "category_id": 2, "bbox": [x, y, width, height], "score": 0.9}, ...]`, which
mmdetection (`--format-only`), detectron2 (`coco_instances_results.json`) and YOLO's `val --save-json` write.

Its ids mean nothing alone: they are read in the ground truth's COCO file (its images' file names and sizes, its
categories' names). mmdetection and detectron2 write the file's image ids; YOLO writes each image's stem (as a number
where the stem is one). `auto` takes the reading under which every result names an image of the file, and refuses
a file that both readings place, differently. Only images with results are returned: evaluate counts the others as
images where nothing was found (COCO's rule), unless --only-predicted leaves them out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal, get_args

from maskwatch.data.coco import roboflow_sides
from maskwatch.data.dataset import text_encoding_of
from maskwatch.data.formats import detect_format
from maskwatch.errors import MaskwatchError, name_some
from maskwatch.predictions import ImagePredictions, detections_from_labels, read_score

ImageIds = Literal["auto", "id", "stem"]
IMAGE_ID_READINGS: tuple[str, ...] = get_args(ImageIds)
RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


def is_coco_results(path: Path) -> bool:
    """Whether a predictions file is a JSON array (a COCO results list) rather than JSON Lines."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(4096)
    return head.decode(text_encoding_of(head[:2]), errors="ignore").lstrip().startswith("[")


def ground_truth_coco_file(gt: Path, fmt: str | None) -> Path:
    """The COCO file whose ids a results list uses: the ground truth's own, the one file of its folder (or of its one
    Roboflow side); refused for other formats, whose images have no ids, and for a folder of several COCO files
    (each numbers its images from 1: `convert --val` writes annotations.json and instances_val.json)."""
    gt = Path(gt)
    if (fmt or detect_format(gt)) != "coco":
        raise MaskwatchError(f"a COCO results list names images and classes by the ids of a COCO ground truth; "
                             f"{gt} is not a COCO data set. Score it against the COCO file its ids come from, or "
                             f"write the predictions as JSON Lines with file names (`maskwatch detect --json-out`'s "
                             f"format)")
    if gt.is_file():
        return gt
    files = list(roboflow_sides(gt).values()) or sorted({*gt.glob("*.json"), *gt.glob("annotations/*.json")})
    if len(files) != 1:
        raise MaskwatchError(f"{gt} holds {len(files)} COCO files ({name_some(str(f.relative_to(gt)) for f in files)}"
                             f"), each with its own image ids: give --gt the file the results' ids come from")
    return files[0]


def read_coco_results(path: Path, coco_file: Path, classes: list[str] | tuple[str, ...],
                      image_ids: ImageIds = "auto") -> list[ImagePredictions]:
    """The results list at `path` as one ImagePredictions per image of `coco_file` that has results; each result
    checked (its index named) and its ids read in the file (`image_ids`: the module docstring)."""
    path = Path(path)
    results = _json_of(path, "a JSON array (a COCO results list)")
    if not isinstance(results, list):
        raise MaskwatchError(f"{path}: a JSON {type(results).__name__}, not a COCO results list")
    coco = _json_of(coco_file, "a valid COCO file")
    try:
        images = {int(im["id"]): im for im in coco["images"]}
        names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise MaskwatchError(f"{coco_file}: not a valid COCO file ({exc})") from None
    for index, result in enumerate(results):
        _check_result(result, f"{path}: result {index}", names, coco_file)
    image_of = _image_reading(path, [r["image_id"] for r in results], images, image_ids, coco_file)
    boxes: dict[int, list] = defaultdict(list)
    for result in results:
        x, y, w, h = (float(v) for v in result["bbox"])
        boxes[image_of[_key(result["image_id"])]].append(([x, y, x + w, y + h], names[int(result["category_id"])],
                                                          read_score(result["score"])))
    return [ImagePredictions(str(images[i].get("file_name", "")), int(images[i].get("width", 0)),
                             int(images[i].get("height", 0)),
                             detections_from_labels([b for b, _, _ in found], [lb for _, lb, _ in found],
                                                    [s for _, _, s in found], classes))
            for i, found in boxes.items()]


def _json_of(path: Path, what: str):
    data = path.read_bytes()
    try:
        return json.loads(data.decode(text_encoding_of(data[:2])))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskwatchError(f"{path}: not {what} ({exc})") from None


def _check_result(result, where: str, names: dict[int, str], coco_file: Path) -> None:
    """One result as loadRes needs it: its keys, a category of the file, 4 numbers of box (no negative side), a
    score from 0 to 1; else a MaskwatchError naming it as written."""
    if not isinstance(result, dict) or any(key not in result for key in RESULT_KEYS):
        raise MaskwatchError(f'{where}: not a COCO result; expected {{"image_id": ..., "category_id": ..., '
                             f'"bbox": [x, y, width, height], "score": ...}} (a detection box, not a segmentation)')
    category = result["category_id"]
    if _integral(category) not in names:
        raise MaskwatchError(f"{where}: category_id {json.dumps(category)} is not one of {coco_file}'s categories "
                             f"({', '.join(f'{i}: {n}' for i, n in names.items())})")
    bbox = result["bbox"]
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
        raise MaskwatchError(f"{where}: bbox {json.dumps(bbox)} is not 4 numbers [x, y, width, height]")
    if bbox[2] < 0 or bbox[3] < 0:
        raise MaskwatchError(f"{where}: bbox {json.dumps(bbox)} has a negative width or height (COCO boxes are "
                             f"[x, y, width, height])")
    try:
        read_score(result["score"])
    except ValueError as exc:
        raise MaskwatchError(f"{where}: {exc}") from None


def _integral(value) -> int | None:
    """An id as a number: an int, a whole float (1.0, as pandas writes it) or digits as text; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _key(value) -> str:
    """A result's image_id as a dictionary key (1, 1.0 and "1" kept apart: they may be read differently)."""
    return json.dumps(value)


def _image_reading(path: Path, ids: list, images: dict[int, dict], reading: ImageIds,
                   coco_file: Path) -> dict[str, int]:
    """Each distinct image_id (by _key) to the ground truth's image id, read as the file's ids or as stems."""
    stems: dict[str, list[int]] = defaultdict(list)
    for image_id, image in images.items():
        stem = Path(str(image.get("file_name", "")).replace("\\", "/")).stem
        stems[stem].append(image_id)
        if stem.isdigit() and str(int(stem)) != stem:  # (000123.jpg: YOLO writes int(stem), 123)
            stems[str(int(stem))].append(image_id)
    distinct = {_key(v): v for v in ids}

    def as_id(value) -> int | None:
        number = _integral(value)
        return number if number in images else None

    def as_stem(value) -> int | None:
        number = _integral(value)
        text = str(number) if number is not None and not isinstance(value, str) else str(value)
        found = stems.get(text, [])
        return found[0] if len(found) == 1 else None

    readings = {name: {k: read(v) for k, v in distinct.items()} for name, read in (("id", as_id), ("stem", as_stem))}
    whole = [name for name, found in readings.items() if None not in found.values()]
    if reading != "auto":
        missing = [distinct[k] for k, v in readings[reading].items() if v is None]
        if missing:
            raise MaskwatchError(f"{path}: {len(missing)} image_id(s) name no image of {coco_file} read as "
                                 f"{'its ids' if reading == 'id' else 'image stems'} "
                                 f"({name_some(sorted(map(str, missing)))})")
        return readings[reading]
    if not whole:
        unknown = sorted(str(distinct[k]) for k in distinct
                         if readings["id"][k] is None and readings["stem"][k] is None)
        raise MaskwatchError(f"{path}: results name images that {coco_file} does not hold, by id or by stem "
                             f"(image_id {name_some(unknown or sorted(map(str, distinct.values())))}): the results' "
                             f"ids come from another COCO file")
    if len(whole) == 2 and readings["id"] != readings["stem"]:
        example = next(k for k in distinct if readings["id"][k] != readings["stem"][k])
        by_id, by_stem = images[readings["id"][example]], images[readings["stem"][example]]
        raise MaskwatchError(f"{path}: its image_ids read both as {coco_file}'s ids and as image stems, naming other "
                             f"images (image_id {distinct[example]}: id {readings['id'][example]} is "
                             f"{by_id.get('file_name')}, the stem is {by_stem.get('file_name')}): say which with "
                             f"--results-ids id (mmdetection, detectron2) or --results-ids stem (YOLO's val "
                             f"--save-json)")
    return readings[whole[0]]
