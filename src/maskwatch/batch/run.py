"""`maskwatch batch`: pick the engine, skip what an earlier run finished, report what happened."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskwatch.batch.core import collect_inputs, done_paths
from maskwatch.data.images import IMAGE_SUFFIXES
from maskwatch.errors import MaskwatchError
from maskwatch.limits import BATCH_PART_ROWS


@dataclass
class BatchSummary:
    inputs: int
    skipped: int
    processed: int
    engine: str
    out: Path


def run_batch(spec: str, out: Path, engine: str = "local", address: str | None = None, conf: float = 0.4,
              annotate: bool = False, model: str | None = None, actors: int = 2, threads: int | None = None,
              part_rows: int = BATCH_PART_ROWS) -> BatchSummary:
    """part_rows: rows per Parquet part of the local engine (Ray writes one part per block)."""
    paths = list(dict.fromkeys(collect_inputs(spec)))  # unique, order kept
    if not paths:
        raise MaskwatchError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) found; nothing to do")
    done = done_paths(out) if out.is_dir() else set()
    todo = [p for p in paths if p not in done]
    annotate_dir = out / "annotated" if annotate else None
    if engine == "local":
        from maskwatch.batch.local import run_local
        from maskwatch.detector import Detector

        processed = run_local(todo, out, Detector.load(model, threads=threads), conf, annotate_dir,
                              part_rows) if todo else 0
    elif engine == "ray":
        try:
            from maskwatch.batch.ray_engine import run_ray
        except ImportError as exc:
            raise MaskwatchError(f"the Ray engine needs: pip install 'maskwatch[ray]' ({exc})") from exc
        processed = run_ray(todo, out, model, conf, annotate_dir, address, actors) if todo else 0
    else:
        raise MaskwatchError(f"unknown engine {engine!r}; use local or ray")
    return BatchSummary(len(paths), len(paths) - len(todo), processed, engine, out)
