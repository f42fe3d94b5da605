"""Another tool's predictions as a COCO results list, read into the project's predictions: the file pycocotools'
`loadRes` takes, `[{"image_id": 1, "category_id": 2, "bbox": [x, y, width, height], "score": 0.9}, ...]`, which
mmdetection (`--format-only`), detectron2 (`coco_instances_results.json`) and YOLO's `val --save-json` write.

Its ids mean nothing alone: they are read in the ground truth's COCO file (its images' file names and sizes, its
categories' names). An image_id the file does not hold, given as text (YOLO writes the image's stem), names the image
by its stem. COCO's rule holds: an image without results is an image where nothing was found.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from maskwatch.data.coco import find_coco_json, roboflow_sides
from maskwatch.data.dataset import text_encoding_of
from maskwatch.data.formats import detect_format
from maskwatch.errors import MaskwatchError, name_some
from maskwatch.predictions import ImagePredictions, record_to_predictions

RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


def is_coco_results(path: Path) -> bool:
    """Whether a predictions file is a JSON array (a COCO results list) rather than JSON Lines."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(4096)
    try:
        text = head.decode(text_encoding_of(head[:2]), errors="ignore")
    except LookupError:
        return False
    return text.lstrip().startswith("[")


def ground_truth_coco_file(gt: Path, fmt: str | None) -> Path:
    """The COCO file whose ids a results list uses: the ground truth's own; refused for other formats, whose
    images have no ids, and for a folder of several COCO files (Roboflow's sides each number their images from 1)."""
    gt = Path(gt)
    if (fmt or detect_format(gt)) != "coco":
        raise MaskwatchError(f"a COCO results list names images and classes by the ids of a COCO ground truth; "
                             f"{gt} is not a COCO data set. Score it against the COCO file its ids come from, or "
                             f"write the predictions as JSON Lines with file names (`maskwatch detect --json-out`'s "
                             f"format)")
    sides = roboflow_sides(gt)
    if len(sides) > 1:
        raise MaskwatchError(f"{gt} holds several COCO files ({', '.join(sorted(sides))}), each with its own image "
                             f"ids: give --gt the file the results' ids come from")
    return find_coco_json(gt)


def read_coco_results(path: Path, coco_file: Path, classes: list[str] | tuple[str, ...]) -> list[ImagePredictions]:
    """The results list at `path` as one ImagePredictions per image of `coco_file` (those without results empty),
    each box checked as a predictions line's is; an id the ground truth does not know is refused, naming it."""
    path = Path(path)
    data = path.read_bytes()
    try:
        results = json.loads(data.decode(text_encoding_of(data[:2])))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaskwatchError(f"{path}: not a valid JSON array ({exc})") from None
    coco = json.loads(coco_file.read_bytes())
    try:
        images = {int(im["id"]): im for im in coco["images"]}
        names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise MaskwatchError(f"{coco_file}: not a valid COCO file ({exc})") from None
    by_stem = {Path(str(im.get("file_name", ""))).stem: i for i, im in images.items()}
    boxes: dict[int, list[dict]] = defaultdict(list)
    unknown_images: list[str] = []
    for index, result in enumerate(results if isinstance(results, list) else [results]):
        where = f"{path}: result {index}"
        if not isinstance(result, dict) or any(key not in result for key in RESULT_KEYS):
            raise MaskwatchError(f"{where}: not a COCO result; expected "
                                 f'{{"image_id": ..., "category_id": ..., "bbox": [x, y, width, height], '
                                 f'"score": ...}} (a detection box, not a segmentation)')
        image_id = _image_id(result["image_id"], images, by_stem)
        if image_id is None:
            unknown_images.append(str(result["image_id"]))
            continue
        try:
            category = names[int(result["category_id"])]
        except (KeyError, TypeError, ValueError):
            raise MaskwatchError(f"{where}: category_id {json.dumps(result['category_id'])} is not one of "
                                 f"{coco_file}'s categories ({', '.join(f'{i}: {n}' for i, n in names.items())})"
                                 ) from None
        bbox = result["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise MaskwatchError(f"{where}: bbox {json.dumps(bbox)} is not 4 numbers [x, y, width, height]")
        x, y, w, h = bbox
        boxes[image_id].append({"bbox": [x, y, x + w, y + h], "label": category, "score": result["score"]})
    if unknown_images:
        raise MaskwatchError(f"{path}: {len(unknown_images)} result(s) name images that {coco_file} does not hold "
                             f"(image_id {name_some(sorted(set(unknown_images)))}): the results' ids come from "
                             f"another COCO file")
    return [record_to_predictions({"image": str(image.get("file_name", "")), "width": image.get("width", 0),
                                   "height": image.get("height", 0), "detections": boxes.get(image_id, [])},
                                  classes, f"{path}: results of image_id {image_id}")
            for image_id, image in images.items()]


def _image_id(value, images: dict[int, dict], by_stem: dict[str, int]) -> int | None:
    """The ground truth's id of a result's image_id: the id itself, or (given as text, as YOLO writes it) the image
    of that stem."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        if int(value) in images:
            return int(value)
    if isinstance(value, (str, int)):
        return by_stem.get(str(value))
    return None
