"""Extra training faces from a folder per class of face pictures, such as face-crops-2class (with_mask/,
without_mask/): big, sharp, varied faces that the crowd photos lack.

The pictures have no boxes, so the face finder finds the face in each (with its five landmarks, which the
synthesis of masks worn wrongly needs). A picture counts only when it holds one clear face: a confident face and
no other confident face of comparable size (a whole photo of several people cannot say which of them the folder's
label is about). Results are cached (cache.py) per picture and face finder, so later runs do not search again.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maskwatch.cache import cache_dir, file_key
from maskwatch.classes import DROP_LABEL, class_meaning, label_map_hint, meaning_of
from maskwatch.data.images import IMAGE_SUFFIXES, read_image
from maskwatch.errors import MaskwatchError
from maskwatch.face_finder import CENTERFACE_PATH, LANDMARKS, FaceFinder
from maskwatch.thresholds import PICTURE_CANDIDATE_SCORE, PICTURE_FACE_SCORE

log = logging.getLogger(__name__)

# Another confident face at least this fraction of the best one's area makes the picture ambiguous.
RIVAL_AREA = 0.25
# Tight crops cut the face at the picture's edge; a replicated border gives the face finder the context it needs.
BORDER = 0.3


@dataclass
class FacePicture:
    """An extra training picture and its one clear face, as the face finder found it (the landmarks are for the
    synthesis of masks worn wrongly)."""

    path: Path
    label: int  # class index in the training classes
    box: np.ndarray  # the face finder's box, xyxy pixels of the picture
    landmarks: np.ndarray  # eyes, nose tip, mouth corners: x, y pairs


def list_face_pictures(folder: Path, classes: list[str],
                       label_map: dict[str, str] | None = None) -> list[tuple[Path, int]]:
    """(picture, class index) for every image in folder/<class name>/, the folder names renamed by the data
    set's --label-map (a folder it maps to nothing is left out); other folder names are an error."""
    folder = Path(folder)
    label_map = label_map or {}
    if not folder.is_dir():
        raise MaskwatchError(f"--extra-faces {folder}: not a folder (expected one sub-folder per class)")
    subfolders = [p for p in sorted(folder.iterdir()) if p.is_dir() and label_map.get(p.name) != DROP_LABEL]
    # A folder of the mask class another name stands for (with_mask/ for a data set's `mask`): that class.
    read = {p.name: class_meaning(classes, meaning_of(p.name)) for p in subfolders if p.name not in label_map
            and p.name not in classes and meaning_of(p.name) is not None}
    label_map = {**{name: cls for name, cls in read.items() if cls is not None}, **label_map}
    if any(cls is not None for cls in read.values()):
        print(f"--extra-faces {folder}: " + ", ".join(f"{name}/ taken as {cls}" for name, cls in read.items()
                                                      if cls is not None) + " (what the names mean)")
    unknown = [p.name for p in subfolders if label_map.get(p.name, p.name) not in classes]
    if unknown or not subfolders:
        hint = label_map_hint(unknown)
        leave_out = " ".join(f"--label-map {shlex.quote(name + '=')}" for name in unknown)
        raise MaskwatchError(f"--extra-faces {folder}: sub-folders must be named after classes {classes}, or say "
                             f"which they are (with_mask/ for a class `mask`); found {[p.name for p in subfolders]}"
                             + (f": rename them, or map them as the data set's labels: {hint}" if hint else "")
                             + (f"; {leave_out} leaves {', '.join(unknown)} out" if unknown else ""))
    return [(path, classes.index(label_map.get(sub.name, sub.name))) for sub in subfolders
            for path in sorted(sub.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]


def find_face(finder: FaceFinder, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The one clear face of a picture (box, landmarks), or None."""
    h, w = image.shape[:2]
    pad = int(BORDER * max(h, w))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    scale = 1.0 if max(h, w) >= 200 else 2.0  # small pictures: faces of a few dozen pixels are found better at 2x
    faces = finder.at_scale(padded, scale, min_score=PICTURE_CANDIDATE_SCORE, landmarks=True)
    if len(faces) == 0:
        return None
    faces = faces.with_nms(threshold=0.5, class_agnostic=True)  # neighbouring peaks of one face are one face
    faces = faces[np.argsort(-faces.confidence)]
    if faces.confidence[0] < PICTURE_FACE_SCORE:
        return None
    areas = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
    if ((faces.confidence[1:] >= PICTURE_FACE_SCORE) & (areas[1:] >= RIVAL_AREA * areas[0])).any():
        return None
    return faces.xyxy[0] - pad, faces.data[LANDMARKS][0] - pad


def load_face_pictures(folder: Path, classes: list[str], finder: FaceFinder | None = None,
                       limit: int | None = None, label_map: dict[str, str] | None = None) -> list[FacePicture]:
    """Every picture with one clear face (or `limit` pictures spread over the set)."""
    items = list_face_pictures(folder, classes, label_map)
    if limit:
        items = items[::max(1, len(items) // limit)]
    # "upright": the boxes were found on pictures turned as their EXIF says (older caches: as stored)
    cache = cache_dir("face_pictures") / f"{file_key(finder.path if finder else CENTERFACE_PATH)}-upright.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    keys = {path: file_key(path) for path, _ in items}
    missing = [path for path, _ in items if keys[path] not in cached]
    if missing:
        finder = finder or FaceFinder()
        for path in tqdm(missing, desc="finding faces in the extra pictures", unit="img"):
            try:
                found = find_face(finder, read_image(path))
            except MaskwatchError as exc:
                log.warning("%s", exc)
                found = None
            cached[keys[path]] = None if found is None else [found[0].tolist(), found[1].tolist()]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached))
    pictures = [FacePicture(path, label, np.array(cached[keys[path]][0], np.float32),
                            np.array(cached[keys[path]][1], np.float32))
                for path, label in items if cached.get(keys[path])]
    kept = Counter(classes[p.label] for p in pictures)
    print(f"extra faces from {folder}: {len(pictures)} of {len(items)} pictures hold one clear face "
          f"({', '.join(f'{k} {v}' for k, v in sorted(kept.items()))})")
    return pictures
