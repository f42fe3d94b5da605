"""`maskwatch batch`: pick the engine, skip what an earlier run finished, report what happened."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.batch.core import (FolderState, check_settings, file_stamp, folder_lock, names_keeping_earlier_copies,
                                  normalise_path, read_folder, read_settings, tidy_folder)
from maskwatch.data.inputs import check_copies_apart, check_writable, collect_images, copy_names, output_names
from maskwatch.detector import SHIPPED, is_shipped_name, model_fingerprint
from maskwatch.errors import MaskwatchError, install_hint, name_some, utf8_text
from maskwatch.limits import BATCH_PART_ROWS
from maskwatch.thresholds import FOR_PEOPLE, check_score

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    """What a `maskwatch batch` run did, for the CLI to say: its inputs, those done before (skipped) and the rows
    written now (processed), the inputs that failed, and whether Ctrl-C or SIGTERM stopped it."""

    inputs: int
    skipped: int
    processed: int
    engine: str
    out: Path
    failed: dict[str, str] = field(default_factory=dict)  # path -> error, of this command's inputs
    interrupted: bool = False
    rows: int = 0  # in the results folder, one per image


def run_batch(spec: str | Path | list[str], out: str | Path, engine: str = "local", address: str | None = None,
              conf: float = FOR_PEOPLE.min_score, annotate: bool = False, model: str | None = None, actors: int = 2,
              threads: int | None = None, only: str | Path | None = None, verbose: bool = False,
              part_rows: int = BATCH_PART_ROWS, progress: bool = True) -> BatchSummary:
    """spec: what `detect` takes (folders, images, .txt lists of paths, globs); only: a list of names to keep.
    verbose: let Ray print its own logs and progress (quiet otherwise); progress: a progress bar on stderr (off for
    a service calling it). part_rows: rows per Parquet part (the local
    engine's at most; Ray's blocks, each written as a part, about as many). Images that failed before are tried
    again, and images whose file changed since their row; a folder of results made with another conf, model or
    --annotate is refused. Ctrl-C keeps what was written (`interrupted`)."""
    out, conf = Path(out), check_score(conf, "--conf")
    if engine not in ("local", "ray"):
        raise MaskwatchError(f"unknown engine {engine!r}; use local or ray")
    for option, value in (("--actors", actors), ("--threads", threads)):
        if value is not None and value < 1:
            raise MaskwatchError(f"{option} must be at least 1, not {value}")
    if engine == "local" and (address is not None or actors != 2 or verbose):  # (2: --actors's default)
        log.warning("--address, --actors and --verbose are for --engine ray; this run is local (give --engine ray "
                    "to run on Ray)")
    if engine == "ray":  # an address that cannot work, refused before the results folder is made
        from maskwatch.batch.ray_engine import check_address, cluster_address
        from maskwatch.detector import Detector

        check_address(*cluster_address(address))
        Detector.load(model, threads=1)  # a model that cannot load: one line here, not each Ray actor's traceback
    # (its annotated copies are the only pictures a results folder holds: left out of the inputs, also where
    # --out is an input folder itself)
    found = collect_images([spec] if isinstance(spec, (str, Path)) else spec, only, out / "annotated")
    if annotate:
        check_copies_apart(found, out / "annotated", f"--out {out} --annotate",
                           "give another --out (the copies go into OUT/annotated/)")
    paths = [normalise_path(str(p)) for p in found]  # one row per file however its path was typed
    with folder_lock(out):
        before = read_folder(out)
        # a model is recorded by what it is (a link like runs/latest re-pointed is another model)
        named = str(model) if is_shipped_name(model) else os.path.realpath(os.path.expanduser(model)) if model \
            else SHIPPED
        has_rows = bool(before.rows or before.unreadable)
        # over every input, so a resumed run names files the same (a renamed copy said by the first run only);
        # only the annotated copies are named by it
        names = dict(zip(paths, copy_names(output_names(found), say=not has_rows) if annotate
                         else output_names(found)))
        # Whether every row of the folder names its annotated copy: begun by a version that does (2026-11-27).
        copies_named = bool(read_settings(out).get("copies_named", not has_rows))
        check_settings(out, {"conf": conf, "model": named, "model_sha256": model_fingerprint(model),
                             "annotate": annotate, "copies_named": copies_named}, has_rows)
        done = before.done  # (a property that builds the set: once, not per image)
        # A file is done under any name that leads to it: a row names it as it was listed then (a link, or its
        # target in rows written before 2026-11-27), and this run may list it otherwise.
        done_files = {os.path.realpath(p) for p in done}
        todo = [p for p in paths if utf8_text(p) not in done
                and (real := os.path.realpath(p)) not in done_files and utf8_text(real) not in done]
        todo += changed_since_read(sorted(set(paths) - set(todo)), before)
        say_rows_of_files_gone(before, {utf8_text(p) for p in paths})
        annotate_dir = out / "annotated" if annotate else None
        if annotate_dir is not None:
            check_writable(annotate_dir, "--annotate")
            existing = {utf8_text(f"annotated/{p.relative_to(annotate_dir).as_posix()}")
                        for p in annotate_dir.rglob("*") if p.is_file()} if annotate_dir.is_dir() else set()
            names = names_keeping_earlier_copies(todo, names, before.copies, existing, copies_named)
        summary = BatchSummary(len(paths), len(paths) - len(todo), 0, engine, out)
        try:
            summary.processed = _run_engine(todo, out, engine, address, conf, annotate_dir, model, actors, threads,
                                            names, verbose, part_rows, progress) if todo else 0
        except KeyboardInterrupt:  # what was written stays; the caller says so
            summary.interrupted = True
        after = tidy_folder(read_folder(out))
    summary.failed = after.failed({utf8_text(p) for p in paths})
    summary.rows = after.row_count
    if summary.interrupted:  # the rows this run wrote before it stopped
        summary.processed = sum(len(rows) for part, rows in after.rows.items() if part not in before.rows)
    return summary


def changed_since_read(done: list[str], before: FolderState) -> list[str]:
    """Of the images with a row, those whose file changed since (another size or modification time: a photo
    re-exported or replaced under its name), said: they run again, and their new rows replace the old ones."""
    changed = []
    for path in done:
        row = utf8_text(path)
        if row not in before.latest:  # done under another name that leads to it (realpath only then: it costs)
            real = os.path.realpath(path)
            row = real if real in before.latest else utf8_text(real)
        recorded = before.stamps.get(row)  # (rows of older versions record none: they are not checked)
        if recorded is not None and file_stamp(path) not in (recorded, None):
            changed.append(path)
    if changed:
        log.warning("%d image(s) changed since their rows were written (another size or modification time: %s): "
                    "they run again, and their new rows replace the old", len(changed),
                    name_some([utf8_text(p) for p in changed], 3))
    return changed


def say_rows_of_files_gone(before: FolderState, inputs: set[str]) -> None:
    """Rows of files that no longer exist stay in the folder (a results folder is a record), said once. Only
    rows that record the file they read (absolute paths; not rows of older versions, which may be relative to
    another folder) and whose name is text (not `\\xNN` bytes of a Latin-1 name, which lexists cannot take back)."""
    gone = [path for path in before.stamps if path not in inputs and "\\x" not in path and not os.path.lexists(path)]
    if gone:
        log.warning("%d row(s) in the results folder name files that no longer exist (%s): kept, and "
                    "read_results() returns them with the others; delete the folder to start afresh", len(gone),
                    name_some(gone, 3))


def _run_engine(todo: list[str], out: Path, engine: str, address: str | None, conf: float,
                annotate_dir: Path | None, model: str | None, actors: int, threads: int | None,
                names: dict[str, str], verbose: bool, part_rows: int, progress: bool) -> int:
    if engine == "local":
        from maskwatch.batch.local import run_local
        from maskwatch.detector import Detector

        return run_local(todo, out, Detector.load(model, threads=threads), conf, annotate_dir, names, part_rows,
                         progress=progress)
    try:
        importlib.import_module("ray")  # the extra: run_ray imports it where it runs, so ask here
        from maskwatch.batch.ray_engine import run_ray
    except ImportError as exc:
        raise MaskwatchError(f"the Ray engine needs Ray ({exc}): {install_hint('ray')}") from exc
    return run_ray(todo, out, model, conf, annotate_dir, address, actors, threads_per_actor=threads or 1, names=names,
                   verbose=verbose, part_rows=part_rows, progress=progress)
