"""A long run of `maskwatch watch` (or `serve` with the camera) on a live camera: does anything grow over time?

    .venv/bin/python bench/soak.py [--minutes 15] [--every 30] [--warmup 2] [--mode watch|serve] [--outage-at 5 ...]

Starts a real RTSP camera on loopback (gst-rtsp-server playing a pan across a crowd photo at 640x480, 10 fps, in a
loop; needs the system packages of `make test`), runs `maskwatch watch` on it with an events database, an
annotated video and event snapshots (kept in the database), or `maskwatch serve --camera` with the same
database, asked for its latest frame and its cameras' counts at each sample, as a page would; stops the camera
for 20 s at each --outage-at minute (a dropped camera: the run must reconnect), and samples every --every seconds:
the process's resident memory (its children included), open file descriptors, threads, and the size on disk of
what it writes (database, video).

Prints one row per sample and, as the reference, the sample at the end of the warm-up (--warmup minutes: the
models loaded, the first detections made) against the last one: the growth per hour of each figure after the
warm-up, and over the second half of the samples alone (a step at a reconnect then does not read as a slope). A
leak shows as memory, descriptors or threads that keep rising; the disk columns grow with the run by design
(README, "Where results go"): the table says by how much an hour.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from clips import write_pan_jpegs  # noqa: E402
from servers import RtspCamera, free_port  # noqa: E402

PHOTO = ROOT.parent / "shared" / "datasets" / "face-mask-voc" / "images" / "maksssksksss12.jpg"
OUTAGE_S = 20


def processes(pid: int) -> list[int]:
    """The process and its descendants (ffmpeg, a Ray or multiprocessing child), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def status_value(pid: int, key: str) -> int:
    """A figure of /proc/PID/status (VmRSS in kB, Threads), 0 where it is not listed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def sample(pid: int, written: list[Path]) -> dict[str, float]:
    """Memory (MB, resident, children included), descriptors, threads, and MB on disk of what the run writes."""
    rss = fds = threads = 0
    for p in processes(pid):
        try:
            rss += status_value(p, "VmRSS")
            threads += status_value(p, "Threads")
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:  # (a child that just ended)
            continue
    disk = 0
    for path in written:
        files = path.rglob("*") if path.is_dir() else [path]
        disk += sum(f.stat().st_size for f in files if f.is_file())
    return {"rss_mb": rss / 1024, "fds": fds, "threads": threads, "disk_mb": disk / 1e6}


def command(mode: str, url: str, work: Path, port: int) -> tuple[list[str], list[Path]]:
    """The run to soak and what it writes."""
    db = work / "events.sqlite"
    cli = [sys.executable, "-m", "maskwatch.cli"]
    wal = db.with_name(db.name + "-wal")
    if mode == "watch":  # (snapshots go into the database, with their events)
        out = work / "live.mp4"
        return ([*cli, "watch", url, "--db", str(db), "--out", str(out), "--event-snapshots", "--threads", "2",
                 "--summary-every", "60"], [db, wal, out])
    return ([*cli, "serve", "--port", str(port), "--camera", f"door={url}", "--db", str(db), "--event-snapshots",
             "--data-dir", str(work / "data"), "--threads", "2"], [db, wal, work / "data"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=2, help="minutes before the reference sample")
    parser.add_argument("--mode", choices=("watch", "serve"), default="watch")
    parser.add_argument("--outage-at", type=float, nargs="*", default=[5.0],
                        help="minutes at which the camera drops for 20 s (none: never)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    camera = RtspCamera(free_port(), write_pan_jpegs(PHOTO, work / "frames")).start()
    port = free_port()
    argv, written = command(args.mode, camera.url, work, port)
    log = (work / "run.log").open("w")
    run = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    print(f"{args.mode} on {camera.url}, {args.minutes:g} min, files in {work}", flush=True)
    start, rows, reference, outages = time.monotonic(), [], None, sorted(args.outage_at)
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60 and run.poll() is None:
            if outages and elapsed >= outages[0] * 60:
                outages.pop(0)
                camera.kill()
                time.sleep(OUTAGE_S)
                camera.start()
                print(f"camera dropped for {OUTAGE_S} s at {elapsed / 60:.1f} min", flush=True)
            if args.mode == "serve":  # (a page's polls: the live view and the counts)
                for path in ("/v1/cameras/door/snapshot.jpg", "/v1/cameras"):
                    try:
                        httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
                    except httpx.HTTPError:
                        pass
            row = {"minute": (time.monotonic() - start) / 60, **sample(run.pid, written)}
            rows.append(row)
            if reference is None and row["minute"] >= args.warmup:
                reference = row
            print("  ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
            time.sleep(args.every)
    finally:
        ended_early = run.poll() is not None
        camera.kill()
        run.terminate()
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:  # (its outputs may be lost: the table below is still the run's)
            run.kill()
            run.wait()
        log.close()
    said = [line for line in (work / "run.log").read_text(errors="replace").replace("\r", "\n").splitlines()
            if " frames in " in line or line.startswith(("people", "events:"))]
    print("\n".join(said[-2:]))  # (what the run said at its end: frames detected, tracked-only, dropped)
    if ended_early:
        print(f"the run ended by itself (exit {run.returncode}); its log: {work / 'run.log'}")
    if not rows:
        sys.exit(f"the run ended before the first sample (exit {run.returncode}); its log: {work / 'run.log'}")
    last = rows[-1]
    reference = reference or rows[0]
    middle = rows[len(rows) // 2]

    def per_hour(key: str, since: dict[str, float]) -> str:
        hours = (last["minute"] - since["minute"]) / 60
        return f"{(last[key] - since[key]) / hours:+.1f}" if hours > 0 else "-"

    print(f"\n| figure | at {reference['minute']:.1f} min (reference) | at {last['minute']:.1f} min | max | "
          f"growth per hour after the warm-up | per hour from {middle['minute']:.1f} min |")
    print("|---|---|---|---|---|---|")
    for key, name in (("rss_mb", "memory, MB (resident, children included)"), ("fds", "open file descriptors"),
                      ("threads", "threads"), ("disk_mb", "written on disk, MB")):
        top = max(r[key] for r in rows)
        print(f"| {name} | {reference[key]:.1f} | {last[key]:.1f} | {top:.1f} | {per_hour(key, reference)} | "
              f"{per_hour(key, middle)} |")
    print(f"\n{len(rows)} samples; load average {os.getloadavg()[0]:.2f}; the run's log: {work / 'run.log'}")


if __name__ == "__main__":
    main()
