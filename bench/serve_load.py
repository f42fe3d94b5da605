"""Load on the REST API: N concurrent clients on loopback posting images to /v1/detect for a bounded time, with the
server allowed 1 core, then all (its CPU affinity, as a container's CPU limit would): does throughput grow with
the cores?

    .venv/bin/python bench/serve_load.py [--clients 1 2 4 8] [--cores 1 2] [--seconds 30]

The server runs with its defaults (workers and onnxruntime threads follow the cores it may use). Prints
requests/s, p50/p95 latency, errors, and requests/s against the same number of clients on one core (the
reference, measured in the same run). Traffic goes only to 127.0.0.1, and the loop stops by itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import free_port, wait_until_healthy  # noqa: E402


@contextmanager
def server_on(cores: set[int], data_dir: Path):
    """`maskwatch serve` with its defaults, allowed only these CPU cores from its start."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "serve", "--port", str(port), "--data-dir",
                                str(data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: os.sched_setaffinity(0, cores))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, 120)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def client(url: str, photos: list[bytes], stop: float, latencies: list[float], errors: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    with httpx.Client(timeout=60) as http:
        while time.time() < stop:
            data = photos[int(rng.integers(len(photos)))]
            started = time.perf_counter()
            try:
                response = http.post(f"{url}/v1/detect", files={"file": ("p.jpg", data)})
                if response.status_code != 200:
                    errors.append(str(response.status_code))
                    continue
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    available = sorted(os.sched_getaffinity(0))
    parser.add_argument("--cores", type=int, nargs="+", default=sorted({1, len(available)}),
                        help="how many cores the server may use, one run each")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted((args.data / "images").glob("*.jpg"))[:50]]
    rows = []
    for cores in args.cores:
        with tempfile.TemporaryDirectory() as tmp, server_on(set(available[:cores]), Path(tmp)) as url:
            for n in args.clients:
                latencies: list[float] = []
                errors: list[str] = []
                stop = time.time() + args.seconds
                threads = [threading.Thread(target=client, args=(url, photos, stop, latencies, errors, i))
                           for i in range(n)]
                started = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.perf_counter() - started
                lat = np.array(latencies or [np.nan]) * 1000
                rows.append((cores, n, len(latencies) / elapsed, np.percentile(lat, 50), np.percentile(lat, 95),
                             len(errors), len(latencies)))
                print(f"{cores} core(s), {n} clients: {rows[-1][2]:.1f} req/s, p50 {rows[-1][3]:.0f} ms, "
                      f"p95 {rows[-1][4]:.0f} ms, {len(errors)} errors", file=sys.stderr, flush=True)
    one_core = {n: rps for cores, n, rps, *_ in rows if cores == min(args.cores)}
    print(f"\n/v1/detect, {args.seconds:g} s per row, server defaults (workers and threads follow its cores)")
    print(f"| server cores | clients | requests | requests/s | x {min(args.cores)} core(s) | p50 ms | p95 ms | "
          "errors |")
    print("|---|---|---|---|---|---|---|---|")
    for cores, n, rps, p50, p95, errors, count in rows:
        ratio = rps / one_core[n] if one_core.get(n) else float("nan")
        print(f"| {cores} | {n} | {count} | {rps:.1f} | {ratio:.2f} | {p50:.0f} | {p95:.0f} | {errors} |")


if __name__ == "__main__":
    main()
