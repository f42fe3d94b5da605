"""`maskwatch batch`: pick the engine, skip what an earlier run finished, report what happened."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from maskwatch.batch.core import done_paths, normalise_path
from maskwatch.data.inputs import collect_images, output_names
from maskwatch.errors import MaskwatchError
from maskwatch.limits import BATCH_PART_ROWS
from maskwatch.thresholds import FOR_PEOPLE


@dataclass
class BatchSummary:
    inputs: int
    skipped: int
    processed: int
    engine: str
    out: Path


def run_batch(spec: str | list[str], out: Path, engine: str = "local", address: str | None = None,
              conf: float = FOR_PEOPLE.min_score, annotate: bool = False, model: str | None = None, actors: int = 2,
              threads: int | None = None, only: Path | None = None, verbose: bool = False,
              part_rows: int = BATCH_PART_ROWS) -> BatchSummary:
    """spec: what `detect` takes (folders, images, .txt lists of paths, globs); only: a list of names to keep.
    verbose: let Ray print its own logs and progress (quiet otherwise). part_rows: rows per Parquet part of the
    local engine (Ray writes one part per block)."""
    found = collect_images([spec] if isinstance(spec, (str, Path)) else spec, only)
    paths = [normalise_path(str(p)) for p in found]  # one row per file however its path was typed
    names = dict(zip(paths, output_names(found)))  # over every input, so a resumed run names files the same
    done = done_paths(out) if out.is_dir() else set()
    todo = [p for p in paths if p not in done]
    annotate_dir = out / "annotated" if annotate else None
    if engine == "local":
        from maskwatch.batch.local import run_local
        from maskwatch.detector import Detector

        detector = Detector.load(model, threads=threads) if todo else None
        processed = run_local(todo, out, detector, conf, annotate_dir, names, part_rows) if todo else 0
    elif engine == "ray":
        try:
            importlib.import_module("ray")  # the extra: run_ray imports it where it runs, so ask here
            from maskwatch.batch.ray_engine import run_ray
        except ImportError as exc:
            raise MaskwatchError(f"the Ray engine needs Ray: pip install 'maskwatch[ray]' ({exc})") from exc
        processed = (run_ray(todo, out, model, conf, annotate_dir, address, actors, names=names, verbose=verbose)
                     if todo else 0)
    else:
        raise MaskwatchError(f"unknown engine {engine!r}; use local or ray")
    return BatchSummary(len(paths), len(paths) - len(todo), processed, engine, out)
