"""Stops the local Ray cluster that maskwatch started when the process that started it dies, however it dies.

`ray.init()` starts the GCS, the raylet and their agents as children of the driver. On a normal exit Ray shuts
them down; when the driver is killed with SIGKILL nothing runs in it, and the dashboard and runtime-env agents
live on for a minute or more. So before starting the cluster the driver starts this watchdog in its own session
(Ctrl-C in the terminal does not reach it) with a pipe on its stdin. The watchdog notes the Ray processes below
the driver every half second; when the pipe closes (the driver shut the cluster down, exited or was killed: the
kernel closes the pipe in every case) it stops the noted processes that are still running.

    python -m maskwatch.batch.ray_watchdog DRIVER_PID
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

POLL_S = 0.5
GRACE_S = 5.0


def start_watchdog() -> subprocess.Popen:
    """The watchdog of this process; close its stdin (`stop_watchdog`) once the cluster is shut down."""
    return subprocess.Popen([sys.executable, "-m", "maskwatch.batch.ray_watchdog", str(os.getpid())],
                            stdin=subprocess.PIPE, start_new_session=True)


def stop_watchdog(watchdog: subprocess.Popen) -> None:
    """Tell the watchdog that the driver is done (it then stops any Ray process left over, and exits)."""
    if watchdog.stdin:
        watchdog.stdin.close()
    try:
        watchdog.wait(timeout=GRACE_S + 5)
    except subprocess.TimeoutExpired:
        watchdog.kill()


def _is_ray(process) -> bool:
    """Ray's own processes: ray::Worker names, or a command from the ray package (gcs_server, raylet, agents)."""
    try:
        if process.name().startswith("ray::"):
            return True
        return any("/ray/" in part or part.startswith("ray::") for part in process.cmdline())
    except Exception:  # gone or not ours to read
        return False


def watch(driver_pid: int) -> None:
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    noted: dict[int, psutil.Process] = {}
    while True:
        try:
            for child in driver.children(recursive=True):
                if child.pid not in noted and _is_ray(child):
                    noted[child.pid] = child
        except psutil.NoSuchProcess:
            pass
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # end of file: the driver is done or dead
    left = [p for p in noted.values() if p.is_running()]  # is_running also guards against a reused pid
    for process in left:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(left, timeout=GRACE_S)
    for process in still:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; Ctrl-C meant for it must not stop us
    watch(int(sys.argv[1]))
