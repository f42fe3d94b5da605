"""What both engines share: the one function that turns an image path into a result row, and the Parquet
results folder (which is also what makes a run resumable). The inputs come from data/inputs.py, as for detect."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

from maskwatch.annotate import annotate
from maskwatch.data.images import read_image, write_image
from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import ImagePredictions

log = logging.getLogger(__name__)

ROW_FIELDS = ("path", "width", "height", "detections", "faces", "with_mask", "without_mask",
              "mask_weared_incorrect", "error")


def row_schema():
    """The one schema of every Parquet part, whichever engine wrote it and whether or not it holds an error:
    left to inference, a part without errors would store `error` as type null and no reader could join it to
    a part with errors."""
    import pyarrow as pa

    types = {"path": pa.string(), "width": pa.int64(), "height": pa.int64(), "detections": pa.string(),
             "error": pa.string()}
    return pa.schema([(name, types.get(name, pa.int64())) for name in ROW_FIELDS])


def normalise_path(path: str) -> str:
    """The absolute path without `..` and links: an image is the same row however its path was typed."""
    return str(Path(os.path.expanduser(path)).resolve())


def detect_row(detector: Detector, path: str, conf: float, annotate_dir: Path | None = None,
               name: str | None = None) -> dict:
    """One result row; a bad input becomes a row with `error` set, never an exception. The annotated copy is
    written as annotate_dir/name (data.inputs.output_names: unique across the run)."""
    row: dict = {"path": path, "width": 0, "height": 0, "detections": "[]", "faces": 0, "with_mask": 0,
                 "without_mask": 0, "mask_weared_incorrect": 0, "error": None}
    try:
        image = read_image(path)
        detections = detector(image, min_score=conf)
    except MaskwatchError as exc:
        row["error"] = str(exc)
        return row
    except Exception as exc:  # a batch must not die on one strange file
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    record = ImagePredictions(Path(path).name, image.shape[1], image.shape[0], detections).to_record()
    counts = Counter(d["label"] for d in record["detections"])
    row.update(width=record["width"], height=record["height"], detections=json.dumps(record["detections"]),
               faces=len(record["detections"]), **{c: counts.get(c, 0) for c in detector.classes if c in row})
    if annotate_dir is not None:
        target = annotate_dir / (name or Path(path).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, annotate(image, detections, detector.classes), jpeg_quality=95)
    return row


def _parts_oldest_first(out_dir: Path) -> list[Path]:
    return sorted(Path(out_dir).glob("*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def done_paths(out_dir: Path) -> set[str]:
    """Paths already in the results folder without an error: a second run skips them, and tries the failed
    ones again (a file fixed since, a share that was down)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in _parts_oldest_first(out_dir):
        try:
            table = pq.read_table(part, columns=["path", "error"])
        except Exception:  # a part cut short by a crash holds nothing we can trust; its images run again
            continue
        for path, error in zip(table.column("path").to_pylist(), table.column("error").to_pylist()):
            path = normalise_path(path)  # parts of older versions may hold paths as typed
            if error:
                done.discard(path)  # a later part's failure of an image counts, not an earlier success
            else:
                done.add(path)
    return done


def drop_superseded_rows(out_dir: Path) -> int:
    """Rows of an image that a later part holds again (a failed image tried again) are removed from the older
    part, so the folder holds one row per image for any Parquet reader. Returns how many were removed."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    latest: dict[str, Path] = {}
    parts = _parts_oldest_first(out_dir)
    tables = {}
    for part in parts:
        try:
            tables[part] = pq.read_table(part, columns=["path"]).column("path").to_pylist()
        except Exception:
            continue
        for path in tables[part]:
            latest[normalise_path(path)] = part
    removed = 0
    for part, paths in tables.items():
        keep = [latest[normalise_path(p)] == part for p in paths]
        if all(keep):
            continue
        removed += keep.count(False)
        if not any(keep):
            part.unlink()
            continue
        temp = part.with_suffix(".tmp")
        pq.write_table(pq.read_table(part).filter(pc.field("path").isin(
            [p for p, k in zip(paths, keep) if k])), temp)
        temp.replace(part)  # complete or absent, as when it was first written
    return removed


SETTINGS_FILE = "_batch.json"  # "_": Parquet readers of the folder (pyarrow, pandas, Spark) skip it


def check_settings(out_dir: Path, settings: dict, has_rows: bool) -> None:
    """A results folder holds rows of one setting (score threshold, model, annotated copies): resuming with
    other settings would mix them silently, so it is refused; a folder without rows takes the new ones."""
    path = Path(out_dir) / SETTINGS_FILE
    if has_rows and path.is_file():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            before = {}
        changed = [f"{key} {before[key]!r} there, {value!r} now" for key, value in settings.items()
                   if key in before and before[key] != value]
        if changed:
            raise MaskwatchError(f"{out_dir} holds results made with other settings ({'; '.join(changed)}); give "
                                 f"another --out, or the same settings to go on with it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def part_name(engine: str) -> str:
    return f"part-{engine}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"


def read_results(out_dir: Path):
    """All result rows of a folder as a pyarrow Table in the row schema (parts of older versions, which may
    store `error` as type null, are cast to it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(Path(out_dir).glob("*.parquet"))
    if not parts:
        raise MaskwatchError(f"{out_dir}: no result files")
    schema = row_schema()
    tables = []
    for part in parts:
        try:
            tables.append(pq.read_table(part).select(schema.names).cast(schema))
        except Exception as exc:  # a part cut short by a crash: its images run again on the next run
            log.warning("%s: unreadable result part (%s); skipped", part, exc)
    return pa.concat_tables(tables) if tables else schema.empty_table()
