"""Batch detection throughput: images per second, local engine vs Ray with 1 and 2 actors.

    .venv/bin/python bench/batch_throughput.py [--images 120]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from maskwatch.batch.run import run_batch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for path in sorted((args.data / "images").glob("*.jpg"))[: args.images]:
            shutil.copy(path, inputs)
        for engine, actors, threads in (("local", 1, 2), ("ray", 1, None), ("ray", 2, None)):
            started = time.perf_counter()
            summary = run_batch(str(inputs), Path(tmp) / f"out-{engine}-{actors}", engine, actors=actors,
                                threads=threads)
            seconds = time.perf_counter() - started
            rows.append((engine, actors, summary.processed, seconds))
            print(f"{engine} actors={actors}: {summary.processed / seconds:.2f} images/s", flush=True)
    print("| engine | actors | images | seconds (incl. start-up) | images/s |\n|---|---|---|---|---|")
    for engine, actors, n, seconds in rows:
        print(f"| {engine} | {actors if engine == 'ray' else '-'} | {n} | {seconds:.1f} | {n / seconds:.2f} |")


if __name__ == "__main__":
    main()
