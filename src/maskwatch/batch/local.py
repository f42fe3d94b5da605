"""The local engine: one process, a progress bar, results flushed to Parquet every `chunk` images or
`every_s` seconds."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from maskwatch.batch.core import detect_row, part_name
from maskwatch.detector import Detector
from maskwatch.limits import BATCH_PART_ROWS, BATCH_PART_SECONDS
from maskwatch.whole_file import written_whole
from maskwatch.predictions import row_schema


def write_rows(rows: list[dict], path: Path) -> None:
    """One Parquet part in the row schema, written under a hidden name and renamed into place, so that a reader of the
    folder (or a resumed run) never sees a part half written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with written_whole(path, f".{path.stem}.tmp") as temp:  # a part is either complete or absent
        pq.write_table(pa.Table.from_pylist(rows, schema=row_schema()), temp)


def run_local(paths: list[str], out_dir: Path, detector: Detector, conf: float, annotate_dir: Path | None,
              names: dict[str, str] | None = None, chunk: int = BATCH_PART_ROWS,
              every_s: float = BATCH_PART_SECONDS, progress: bool = True) -> int:
    """The local engine: detect_row for each path in turn, a part written every `chunk` rows or `every_s` seconds (a
    crash loses little), and the rows in hand on the way out, Ctrl-C included; returns the rows written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    name = part_name("local")
    written, parts, since = 0, 0, time.monotonic()
    try:
        for path in tqdm(paths, desc="detecting", unit="img", disable=not progress):
            rows.append(detect_row(detector, path, conf, annotate_dir, (names or {}).get(path)))
            if len(rows) >= chunk or time.monotonic() - since >= every_s:
                write_rows(rows, out_dir / f"{name}-{parts:05d}.parquet")
                written, parts, rows, since = written + len(rows), parts + 1, [], time.monotonic()
    finally:  # Ctrl-C or SIGTERM (as KeyboardInterrupt): the rows done so far are kept too
        if rows:
            write_rows(rows, out_dir / f"{name}-{parts:05d}.parquet")
            written += len(rows)
    return written
