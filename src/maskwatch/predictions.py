"""The project's one predictions format, JSON Lines, one image per line:
{"image": "x.jpg", "width": W, "height": H, "detections": [{"bbox": [x1, y1, x2, y2], "label": "with_mask", "score": 0.93}]}
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import supervision as sv

from maskwatch.classes import DROP_LABEL, MASK_CLASSES
from maskwatch.data.dataset import text_encoding_of
from maskwatch.data.images import stem_of
from maskwatch.errors import MaskwatchError, name_some
from maskwatch.thresholds import check_score

log = logging.getLogger(__name__)

# Optional column of detections: how sure the detector is that the box is a face at all, whatever its class
# (the head's probabilities of every face class together, with the face finder's score as in the class score).
# The tracker follows faces by it, so a face whose class is in doubt (two classes near half each) is still followed.
FACE_CONFIDENCE = "face_confidence"



def scores_of(detections: sv.Detections) -> np.ndarray:
    """Each detection's score; 1 where none is given (ground truth, a predictions file without scores)."""
    return detections.confidence if detections.confidence is not None else np.ones(len(detections))


def class_names_of(detections: sv.Detections, classes: list[str] | tuple[str, ...]) -> np.ndarray:
    """Each detection's class name: the one stored with it, else its class id's name in `classes`."""
    if "class_name" in detections.data:
        return detections.data["class_name"]
    return np.array([classes[int(c)] for c in detections.class_id], dtype=object)


def class_counts(detections: sv.Detections, classes: list[str] | tuple[str, ...]) -> dict[str, int]:
    """How many detections of each class of `classes` (0 where none), in that order: the counts of an image's
    faces wherever they are given (API, batch rows), from one box per face."""
    counts = Counter(str(name) for name in class_names_of(detections, classes)) if len(detections) else Counter()
    return {name: counts.get(name, 0) for name in classes}

@dataclass
class ImagePredictions:
    """One image's detections with its name and size; `to_record` is its line of a predictions file (and the detections
    of a batch row and of an API answer)."""

    image: str
    width: int
    height: int
    detections: sv.Detections  # class names in detections.data["class_name"]

    @property
    def labels(self) -> list[str]:
        if "class_name" not in self.detections.data and len(self.detections):  # (zip would drop every box)
            raise MaskwatchError(f"{self.image}: detections without class names (data['class_name']): build them "
                                 f"with predictions.detections_from_labels, or set data['class_name']")
        return [str(n) for n in self.detections.data.get("class_name", [])]

    def to_record(self) -> dict:
        d = self.detections
        scores = scores_of(d)
        # (boxes to 1/1000 px: rounded to 1/100, the same detections scored face AP@.5 0.878 instead of 0.874 on the
        # andrewmvd split, unrounded, as bench/accuracy.py scores them; to 1/1000, the same as unrounded)
        dets = [{"bbox": [round(float(v), 3) for v in box], "label": label, "score": round(float(score), 5)}
                for box, label, score in zip(d.xyxy, self.labels, scores)]
        if d.tracker_id is not None:
            for det, tid in zip(dets, d.tracker_id):
                det["track_id"] = int(tid)
        return {"image": self.image, "width": self.width, "height": self.height, "detections": dets}


def detections_from_labels(xyxy: np.ndarray, labels: list[str], scores: np.ndarray,
                           classes: list[str] | tuple[str, ...]) -> sv.Detections:
    """Build Detections that carry both class ids (for supervision's tools) and names (for people)."""
    if len(xyxy) == 0:
        return sv.Detections(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32),
                             class_id=np.zeros(0, int), data={"class_name": np.array([], dtype=str)})
    ids = np.array([list(classes).index(label) if label in classes else -1 for label in labels], dtype=int)
    return sv.Detections(xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
                         confidence=np.asarray(scores, np.float32), class_id=ids,
                         data={"class_name": np.array(labels, dtype=str)})


def best_class_per_face(detections: sv.Detections) -> sv.Detections:
    """One box per face from all-classes output: the boxes of one face share their coordinates exactly, so a
    class-agnostic NMS at IoU 0.95 keeps its best class and leaves neighbouring faces alone."""
    if len(detections) < 2:
        return detections
    return detections.with_nms(threshold=0.95, class_agnostic=True)


def stem_in(name: str, stems) -> str:
    """The stem among `stems` (a data set's) that a predictions line's image `name` refers to: by the lists' rule,
    else its file name less its last suffix (x.mpo, which the lists' rule keeps whole); the first where neither
    is known."""
    stem = stem_of(name)
    if stem in stems:
        return stem
    whole = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return whole if whole in stems else stem


def record_to_predictions(record: dict, classes: list[str] | tuple[str, ...], where: str) -> ImagePredictions:
    """A predictions record read back (a JSONL line, a batch row's detections); `where` names it in errors. Every key is
    required, so a record of another format is refused rather than read as an image without faces."""
    try:  # every key named: a line of another format (boxes under another key, no scores) is refused, not read
        dets = record["detections"]  # as an image without faces, nor as boxes all scored 1 (mAP needs the order)
        if not isinstance(dets, list):
            raise TypeError(f"'detections' is a {type(dets).__name__}, not a list")
        odd = next((d["bbox"] for d in dets if not isinstance(d["bbox"], (list, tuple)) or len(d["bbox"]) != 4), None)
        if odd is not None:  # (the boxes are reshaped together: a 6-number box was read across boxes)
            raise ValueError(f"bbox {json.dumps(odd)} is not 4 numbers [x1, y1, x2, y2]")
        xyxy = np.array([d["bbox"] for d in dets], dtype=np.float32).reshape(-1, 4)
        labels = [str(d["label"]) for d in dets]
        scores = np.array([read_score(d["score"]) for d in dets], dtype=np.float32)
        inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
        if inverted.any():
            box = ", ".join(f"{v:g}" for v in xyxy[inverted.argmax()])
            raise ValueError(f"bbox [{box}] ends before it starts: boxes are [x1, y1, x2, y2] corners (written as "
                             f"x, y, width, height?)")
        return ImagePredictions(str(record["image"]), int(record.get("width", 0)), int(record.get("height", 0)),
                                detections_from_labels(xyxy, labels, scores, classes))
    except (KeyError, TypeError, ValueError) as exc:
        what = f"no {exc} key" if isinstance(exc, KeyError) else str(exc)
        raise MaskwatchError(f"{where}: not a predictions record ({what}); expected "
                             '{"image": ..., "detections": [{"bbox": [x1,y1,x2,y2], "label": ..., "score": ...}]}'
                             ) from exc


def read_score(value) -> float:
    """A detection's score: a number from 0 to 1, or one written as text ("0.93"); a NaN, a bool or a percentage
    would rank boxes wrongly."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    try:
        return check_score(number, "score")
    except MaskwatchError:
        raise ValueError(f"score {json.dumps(value)} is not a number from 0 to 1") from None


FORMAT_HINT = ('JSON Lines, one image per line: {"image": "x.jpg", "width": W, "height": H, "detections": '
               '[{"bbox": [x1, y1, x2, y2], "label": ..., "score": ...}]} (`maskwatch detect --json-out`), or the '
               'Parquet results of `maskwatch batch`')


def relabelled(items: Iterable[ImagePredictions], classes: list[str] | tuple[str, ...],
               label_map: dict[str, str] | None = None) -> Iterator[ImagePredictions]:
    """The same predictions with their labels renamed by label_map (OLD= leaves OLD's boxes out) and their class
    ids those of `classes` (predictions read before the classes were known: evaluate reads them once)."""
    label_map = label_map or {}
    for item in items:
        labels = [label_map.get(label, label) for label in item.labels]
        scores = scores_of(item.detections)
        kept = np.array([label != DROP_LABEL for label in labels], dtype=bool)  # --label-map OLD=
        yield ImagePredictions(item.image, item.width, item.height,
                               detections_from_labels(item.detections.xyxy[kept],
                                                      [label for label in labels if label != DROP_LABEL],
                                                      scores[kept], classes))


def read_predictions(path: Path, classes: list[str] | tuple[str, ...],
                     label_map: dict[str, str] | None = None) -> Iterator[ImagePredictions]:
    """Predictions from a JSON Lines file, or from `maskwatch batch` results (its folder or one .parquet part;
    rows with an error are images without predictions). label_map renames labels, as for the ground truth."""
    if label_map:
        yield from relabelled(read_predictions(path, classes), classes, label_map)
        return
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".parquet":
        yield from _read_batch_rows(path, classes)
        return
    if not path.is_file():
        raise MaskwatchError(f"{path}: no such predictions file")
    broken: list[int] = []  # lines past the first that are not JSON (a line cut short): said, left out
    with path.open("rb") as raw:
        head = raw.read(2)
    with path.open(encoding=text_encoding_of(head)) as f:  # (Windows PowerShell's `>` writes UTF-16)
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    if number == 1 and line.lstrip().startswith("["):
                        raise MaskwatchError(_array_message(path)) from exc
                    if number == 1:  # not a predictions file at all
                        raise MaskwatchError(f"{path}:{number}: not valid JSON ({exc}); expected {FORMAT_HINT}") \
                            from exc
                    log.warning("%s:%d: not valid JSON (%s); left out: its image counts as one without predictions "
                                "(with evaluate --only-predicted, it is not scored)", path, number, exc)
                    broken.append(number)
                    continue
                if isinstance(record, list):
                    raise MaskwatchError(_array_message(path))
                if not isinstance(record, dict):
                    raise MaskwatchError(f"{path}:{number}: a JSON {type(record).__name__}, not a predictions "
                                         f"record; expected {FORMAT_HINT}")
                yield record_to_predictions(record, classes, f"{path}:{number}")
        except UnicodeDecodeError as exc:
            raise MaskwatchError(f"{path}: not a text file; expected {FORMAT_HINT}") from exc
    if len(broken) > 1:
        log.warning("%s: %d lines left out as not valid JSON (lines %s)", path, len(broken),
                    name_some(map(str, broken)))


def _array_message(path: Path) -> str:
    return (f"{path}: a JSON array (a COCO results list?); expected {FORMAT_HINT}. `maskwatch evaluate` reads a "
            f"COCO results list against the COCO ground truth whose ids it uses")


def _read_batch_rows(path: Path, classes: list[str] | tuple[str, ...]) -> Iterator[ImagePredictions]:
    if path.is_dir() and not result_parts(path):
        raise MaskwatchError(f"{path}: no predictions file or `maskwatch batch` results (*.parquet) there; "
                             f"expected {FORMAT_HINT}")
    for row in read_results(path).to_pylist():
        if not row["error"]:
            record = {"image": row["path"], "width": row["width"], "height": row["height"],
                      "detections": json.loads(row["detections"])}
            yield record_to_predictions(record, classes, f"{path}: {row['path']}")


# `maskwatch batch` results: Parquet parts of one row per image, the detections as this module's records (JSON),
# and a count column per mask class (a model of other classes: each class counted in the column of the mask class
# its name stands for, classes.by_meaning; its own labels are in `detections`; every part of a folder has one
# schema); `annotated`: the image's annotated copy, relative to the folder (with --annotate).
ROW_FIELDS = ("path", "width", "height", "detections", "faces", *MASK_CLASSES, "error", "annotated", "file_size",
              "file_mtime_ns")  # (the file as it was read: a file changed since runs again; null before 2026-11-28)


def empty_row(path: str) -> dict:
    """A row of ROW_FIELDS for `path` before anything is known of it (no size, no face, no error)."""
    return {**dict.fromkeys(ROW_FIELDS), "path": path, "width": 0, "height": 0, "detections": "[]", "faces": 0,
            **dict.fromkeys(MASK_CLASSES, 0)}


def row_schema():
    """The one schema of every Parquet part, whichever engine wrote it and whether or not it holds an error:
    left to inference, a part without errors would store `error` as type null and no reader could join it to
    a part with errors."""
    import pyarrow as pa

    types = {"path": pa.string(), "width": pa.int64(), "height": pa.int64(), "detections": pa.string(),
             "error": pa.string(), "annotated": pa.string()}
    return pa.schema([(name, types.get(name, pa.int64())) for name in ROW_FIELDS])


def result_parts(folder: Path) -> list[Path]:
    """The Parquet parts of a `maskwatch batch` results folder, by name: files starting with `_` or `.` (its
    settings, a part being written) are not parts, as for any Parquet reader of the folder."""
    return sorted(p for p in Path(folder).glob("*.parquet") if not p.name.startswith(("_", ".")))


def in_row_schema(table):
    """A part's table in the row schema: the columns parts of older versions lack, empty there (`annotated`
    before 2026-11-27, `file_size` and `file_mtime_ns` before 2026-11-28), and `error` typed where an older
    part left it null."""
    import pyarrow as pa

    schema = row_schema()
    for name in ("annotated", "file_size", "file_mtime_ns"):
        if name not in table.column_names:
            table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names).cast(schema)


def read_results(out_dir: str | Path):
    """All rows of a `maskwatch batch` results folder (or one part) as a pyarrow Table in the row schema (parts
    of older versions, which may store `error` as type null or lack later columns, are brought to it; parts cut
    short are skipped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not Path(out_dir).exists():
        raise MaskwatchError(f"{out_dir}: no such results folder or file")
    parts = result_parts(out_dir) if Path(out_dir).is_dir() else [Path(out_dir)]
    if not parts:
        raise MaskwatchError(f"{out_dir}: no result files")
    tables = []
    for part in parts:
        try:
            tables.append(in_row_schema(pq.read_table(part)))
        except Exception as exc:  # a part cut short by a crash: its images run again on the next run
            log.warning("%s: unreadable result part (%s); skipped", part, exc)
    return pa.concat_tables(tables) if tables else row_schema().empty_table()


def check_predictions_path(path: str | Path) -> Path:
    """Where predictions are to be written, refused when it is a folder (checked before any work by callers)."""
    path = Path(path)
    if path.is_dir():
        raise MaskwatchError(f"{path} is a folder: name a file for the predictions, e.g. {path / 'predictions.jsonl'}")
    return path


def write_predictions(items: Iterable[ImagePredictions], path: str | Path) -> int:
    """JSON Lines, one image per line (an interrupted run keeps whole lines: the file is closed on the way out);
    a file that cannot be written (a folder of that name, a full disk) is a MaskwatchError naming it."""
    path = check_predictions_path(path)
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for item in items:
                f.write(json.dumps(item.to_record()) + "\n")
                count += 1
    except OSError as exc:
        raise MaskwatchError(f"{path}: cannot write the predictions ({exc.strerror or exc}); {count} line(s) "
                             f"were written before") from exc
    return count
