"""Load on the REST API: N concurrent clients on loopback posting images to /v1/detect for a bounded time.

    .venv/bin/python bench/serve_load.py [--clients 4] [--seconds 30]

Prints requests/s, p50/p95 latency and errors. Traffic goes only to 127.0.0.1, and the loop stops by itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import running_server  # noqa: E402


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
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted((args.data / "images").glob("*.jpg"))[:50]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as (url, _):
        for n in args.clients:
            latencies: list[float] = []
            errors: list[str] = []
            stop = time.time() + args.seconds
            threads = [threading.Thread(target=client, args=(url, photos, stop, latencies, errors, i)) for i in range(n)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            lat = np.array(latencies) * 1000
            rows.append((n, len(lat) / elapsed, np.percentile(lat, 50), np.percentile(lat, 95), len(errors), len(lat)))
            print(f"{n} clients: {rows[-1][1]:.1f} req/s, p50 {rows[-1][2]:.0f} ms, p95 {rows[-1][3]:.0f} ms, "
                  f"{len(errors)} errors", flush=True)
    print("| clients | requests | requests/s | p50 ms | p95 ms | errors |\n|---|---|---|---|---|---|")
    for n, rps, p50, p95, errors, count in rows:
        print(f"| {n} | {count} | {rps:.1f} | {p50:.0f} | {p95:.0f} | {errors} |")


if __name__ == "__main__":
    main()
