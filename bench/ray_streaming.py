"""Does the Ray engine write each block as it finishes? `maskwatch batch --engine ray` on a folder of images, the
result parts on disk counted every 2 s while it runs (a run that writes only at its end shows 0 until then, and
Ctrl-C would lose everything).

    .venv/bin/python bench/ray_streaming.py [--images ../shared/datasets/jolignier-val/images]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maskwatch.predictions import read_results, result_parts

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=ROOT / ".." / "shared" / "datasets" / "jolignier-val" / "images")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        run = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "batch", str(args.images), "--out", str(out),
                                "--engine", "ray"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts = []
        while run.poll() is None:
            time.sleep(args.every)
            counts.append((time.perf_counter() - started, len(result_parts(out)) if out.is_dir() else 0))
        wall = time.perf_counter() - started
        parts = result_parts(out) if out.is_dir() else []
        rows = len(read_results(out)) if parts else 0
    print(f"\n`maskwatch batch {args.images} --engine ray`: exit {run.returncode}, {rows} rows in {len(parts)} parts, "
          f"{wall:.1f} s")
    print("| seconds since start | result parts on disk |")
    print("|---|---|")
    for seconds, parts in counts:
        print(f"| {seconds:.0f} | {parts} |")


if __name__ == "__main__":
    main()
