"""What both engines share: the one function that turns an image path into a result row, and the Parquet
results folder (which is also what makes a run resumable). The inputs come from data/inputs.py, as for detect."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.annotate import annotate
from maskwatch.classes import by_meaning
from maskwatch.data.images import annotated_copy_name, read_image, save_annotated_copy
from maskwatch.data.inputs import numbered_name
from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError, name_some, utf8_text
from maskwatch.file_lock import FileLock, LockHeld
from maskwatch.predictions import (ROW_FIELDS, ImagePredictions, class_counts, empty_row, in_row_schema,
                                   result_parts)
from maskwatch.whole_file import written_whole

log = logging.getLogger(__name__)


def normalise_path(path: str) -> str:
    """The absolute path without `..`: an image is the same row however its path was typed. Links are kept as
    named (not resolved to their targets): the row names the file the user listed, as a data set made of links
    (`convert --images symlink`) names its images, so `evaluate --pred` matches them."""
    return os.path.abspath(os.path.expanduser(path))


def detect_row(detector: Detector, path: str, conf: float, annotate_dir: Path | None = None,
               name: str | None = None) -> dict:
    """One result row; a bad input becomes a row with `error` set, never an exception. The annotated copy is
    written as annotate_dir/name (data.inputs.output_names: unique across the run). Its path and error are
    `utf8_text`."""
    row = empty_row(utf8_text(path))
    # The file as it is about to be read: a change after this point shows as one on the next run.
    row["file_size"], row["file_mtime_ns"] = file_stamp(path) or (None, None)
    try:
        image = read_image(path)
        detections = detector(image, min_score=conf)
    except MaskwatchError as exc:
        row["error"] = utf8_text(str(exc))
        return row
    except Exception as exc:  # a batch must not die on one strange file
        row["error"] = utf8_text(f"{type(exc).__name__}: {exc}")
        return row
    record = ImagePredictions(Path(path).name, image.shape[1], image.shape[0], detections).to_record()
    row.update(width=record["width"], height=record["height"], detections=json.dumps(record["detections"]),
               faces=len(record["detections"]), **by_meaning(class_counts(detections, detector.classes)))
    if annotate_dir is not None:
        try:
            copy = save_annotated_copy(annotate_dir, name or Path(path).name,
                                       annotate(image, detections, detector.classes), jpeg_quality=95)
            row["annotated"] = utf8_text(copy.relative_to(annotate_dir.parent).as_posix())
        except MaskwatchError as exc:  # the detections stand; the row says the copy is missing
            row["error"] = utf8_text(str(exc))
    return row


def file_stamp(path: str) -> tuple[int, int] | None:
    """Size and modification time of the file a path names (None where it cannot be read): a row written for
    other values is of another version of the file."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_size, stat.st_mtime_ns


def copy_key(name: str) -> str:
    """How a row names the annotated copy of the input called `name` (data.inputs.output_names): relative to the
    results folder."""
    return utf8_text(f"annotated/{annotated_copy_name(name)}")


def names_keeping_earlier_copies(todo: list[str], names: dict[str, str], copies: dict[str, str],
                                 existing: set[str], unnamed_are_ours: bool) -> dict[str, str]:
    """`names` with this run's copies renamed where an earlier run's copy of another image has the name (two
    runs into one --out, each with an IMG_0001.jpg): IMG_0001-2.jpg, -3, ... so no copy replaces another image's.
    `copies`: copy -> the image whose row names it; `existing`: the copies on disk. A copy on disk that no row
    names was written by a run killed before its rows, so it is the same image's and is written over, where every
    row of the folder names its copy (`unnamed_are_ours`); in a folder begun by an older version it may be
    another image's, and is kept (at worst, a second copy of one image)."""
    renamed, out = [], dict(names)
    taken = set(copies) | existing | {copy_key(n) for n in names.values()}
    for path in todo:
        key = copy_key(names[path])
        owner = copies.get(key)
        if owner == utf8_text(path) or (owner is None and (key not in existing or unnamed_are_ours)):
            continue
        whose = f"is {owner}'s" if owner else "is there already, named by no row"
        new = numbered_name(names[path], lambda name: copy_key(name) in taken)
        taken.add(copy_key(new))
        out[path] = new
        renamed.append(f"{copy_key(new)} ({key} {whose})")
    if renamed:
        log.warning("%d annotated cop(ies) renamed, since an earlier copy has the name: %s",
                    len(renamed), name_some(renamed, 3))
    return out


PART_NAME = re.compile(r"^part-\d{8}-\d{6}-\d{6}-")  # a timestamp first: parts sort by name in the order written


def part_name(engine: str) -> str:
    """In UTC: rows are ordered by their parts' names, and a run under another time zone (a cron job's UTC
    after a run at UTC+10) or after a DST change must still sort after the runs before it."""
    now = time.time_ns() // 1000
    return f"part-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now / 1e6))}-{now % 10**6:06d}-{engine}"


def parts_oldest_first(out_dir: Path) -> list[Path]:
    """The result parts in the order they were written: by name (a timestamp leads it); parts of older versions,
    named otherwise, first, by modification time."""
    parts = result_parts(out_dir)
    old = sorted((p for p in parts if not PART_NAME.match(p.name)), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return old + sorted(p for p in parts if PART_NAME.match(p.name))


@dataclass
class FolderState:
    """What a results folder holds, read once (paths and errors only): each image's latest row."""

    latest: dict[str, tuple[Path, str | None]] = field(default_factory=dict)  # path -> (its part, its error)
    rows: dict[Path, list[str]] = field(default_factory=dict)  # part -> its rows' paths (normalised)
    unreadable: list[Path] = field(default_factory=list)
    copies: dict[str, str] = field(default_factory=dict)  # annotated copy (relative to the folder) -> its row's path
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> the file as its latest row read it
    older_schema: set[Path] = field(default_factory=set)  # parts of older versions, without some later column

    @property
    def done(self) -> set[str]:
        """Images with a row without error: a second run skips them and tries the failed ones again (a file
        fixed since, a share that was down)."""
        return {path for path, (_, error) in self.latest.items() if not error}

    def failed(self, wanted: set[str]) -> dict[str, str]:
        return {path: error for path, (_, error) in self.latest.items() if error and path in wanted}

    @property
    def row_count(self) -> int:
        return len(self.latest)


def read_folder(out_dir: Path) -> FolderState:
    """The FolderState of a results folder, its parts read oldest first so that an image's latest row wins; a part that
    cannot be read (cut short by a crash) goes into `unreadable`, and a part of an older version is read for the columns
    it has."""
    import pyarrow.parquet as pq

    state = FolderState()
    copy_of: dict[str, str | None] = {}  # path -> the copy its latest row names
    for part in parts_oldest_first(out_dir):
        try:
            names = pq.read_schema(part).names
            columns = [c for c in ("path", "error", "annotated", "file_size", "file_mtime_ns") if c in names]
            table = pq.read_table(part, columns=columns)
        except Exception:  # cut short by a crash or an interrupted write: nothing in it can be trusted
            state.unreadable.append(part)
            continue
        paths = [normalise_path(p) for p in table.column("path").to_pylist()]  # older versions: paths as typed
        state.rows[part] = paths
        copies = table.column("annotated").to_pylist() if "annotated" in columns else [None] * len(paths)
        if not set(ROW_FIELDS) <= set(names):
            state.older_schema.add(part)
        sizes, times = ((table.column(c).to_pylist() if c in columns else [None] * len(paths))
                        for c in ("file_size", "file_mtime_ns"))
        for path, error, copy, size, mtime in zip(paths, table.column("error").to_pylist(), copies, sizes, times):
            state.latest[path] = (part, error)
            copy_of[path] = copy
            if size is None or mtime is None:
                state.stamps.pop(path, None)
            else:
                state.stamps[path] = (size, mtime)
    state.copies = {copy: path for path, copy in copy_of.items() if copy}
    return state


def tidy_folder(state: FolderState) -> FolderState:
    """One row per image for any Parquet reader: rows that a later part holds again (a failed image tried
    again) are removed from the older part, and parts that cannot be read (cut short) are moved aside as
    `_unreadable-NAME.broken` (no reader takes it for a part; its images run again next time)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for part in state.unreadable:
        aside = part.with_name(f"_unreadable-{part.name}.broken")
        log.warning("%s: a result part cut short (an interrupted write); moved aside as %s: its images have no "
                    "row from it, so a run over them does them again (this one did, where they were its inputs)",
                    part, aside.name)
        part.replace(aside)
    state.unreadable = []
    for part, paths in list(state.rows.items()):
        keep = [state.latest[p][0] == part for p in paths]
        if all(keep) and part not in state.older_schema:
            continue
        if not any(keep):
            part.unlink()
            del state.rows[part]
            continue
        table = in_row_schema(pq.read_table(part))  # (an older version's part: the one schema again, for any reader)
        with written_whole(part, f".{part.stem}.{os.getpid()}.tmp") as temp:  # complete or absent, as when it
            pq.write_table(table.filter(pc.field("path").isin([raw for raw, k in zip(  # was first written
                table.column("path").to_pylist(), keep) if k])), temp)
        state.rows[part] = [p for p, k in zip(paths, keep) if k]
    return state


SETTINGS_FILE = "_batch.json"  # "_": Parquet readers of the folder (pyarrow, pandas, Spark) skip it
LOCK_FILE = "_batch.lock"


@contextlib.contextmanager
def folder_lock(out_dir: Path):
    """One run at a time per results folder: two would process the same images and rewrite each other's parts."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out_dir / LOCK_FILE)
    except LockHeld as held:
        raise MaskwatchError(f"{out_dir}: another `maskwatch batch` ({held.owner}) is writing there; wait for it, "
                             f"or give another --out") from None
    except OSError as exc:  # a file of that name, no permission
        reason = "a file of that name is there" if out_dir.is_file() else exc.strerror or str(exc)
        raise MaskwatchError(f"--out {out_dir}: cannot write the results there ({reason}); give a folder you can "
                             f"write to") from None
    with lock:
        yield


def read_settings(out_dir: Path) -> dict:
    """What a results folder's settings file says ({} where there is none, or it cannot be read)."""
    try:
        return json.loads((Path(out_dir) / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def check_settings(out_dir: Path, settings: dict, has_rows: bool) -> None:
    """A results folder holds rows of one setting (score threshold, model, annotated copies): resuming with
    other settings would mix them silently, so it is refused; a folder without rows takes the new ones."""
    path = Path(out_dir) / SETTINGS_FILE
    if has_rows and path.is_file():
        before = read_settings(out_dir)
        changed = [f"{key} {before[key]!r} there, {value!r} now" for key, value in settings.items()
                   if key in before and before[key] != value and key not in ("model", "model_sha256")]
        # The model is the same when its files are (the shipped one named by its folder too), and another when
        # they changed under the same path (trained again in place); folders of older versions: by its path.
        model, files = settings.get("model"), settings.get("model_sha256")
        if "model_sha256" in before and before["model_sha256"] != files:
            changed.append(f"model {before.get('model')!r} there, {model!r} now" if before.get("model") != model
                           else f"model {model!r}: its files changed since (trained or copied again in place)")
        elif "model_sha256" not in before and "model" in before and before["model"] != model:
            changed.append(f"model {before['model']!r} there, {model!r} now")
        if changed:
            raise MaskwatchError(f"{out_dir} holds results made with other settings ({'; '.join(changed)}); give "
                                 f"another --out, or the same settings to go on with it")
    elif has_rows:
        log.warning("%s: its rows were written by an earlier version, which did not record its settings (--conf, "
                    "--model, --annotate); this run's are recorded from now on: if they differ, the folder mixes "
                    "two settings", out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")
