"""Stops the local Ray cluster that maskwatch started when the process that started it dies, however it dies.

`ray.init()` starts the GCS, the raylet and their agents as children of the driver. On a normal exit Ray shuts
them down; when the driver is killed with SIGKILL nothing runs in it, and the dashboard and runtime-env agents
live on for a minute or more. So before starting the cluster the driver starts this watchdog in its own session
(Ctrl-C in the terminal does not reach it) with a pipe on its stdin. The watchdog notes the Ray processes below
the driver every half second, and the cluster's session folder from their command lines; when the pipe closes (the
driver shut the cluster down, exited or was killed: the kernel closes the pipe in every case) it stops the noted
processes that are still running and every process that holds a file in that session folder. The second net
catches what the first can miss: the raylet's agents start after the GCS and can die with the driver's last half
second unnoted, and once the raylet is gone they are no one's children (they rename themselves `ray::...`, so
neither their command line nor their environment says which cluster they served; their open logs do).

    python -m maskwatch.batch.ray_watchdog DRIVER_PID
"""

from __future__ import annotations

import os
import re
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


# Ray names each cluster's folder session_<date>_<time>_<microseconds>_<pid of the process that started it>.
_SESSION_DIR = re.compile(r"(/\S*?/session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+)(?=/|$)")


def session_dirs(command: list[str]) -> set[str]:
    """The Ray session folders a command line names (`--log_dir=/tmp/ray/session_.../logs`, `--session-dir=...`),
    resolved as the kernel names open files; only folders named as Ray names them, so a parent folder that happens
    to be called session_something is never taken for one."""
    return {os.path.realpath(match.group(1)) for part in command for match in _SESSION_DIR.finditer(part)}


def _holding_files_in(folders: set[str], spare: int) -> list:
    """This user's Ray processes but `spare` that hold a file under one of `folders` (each holds its logs)."""
    import psutil

    found = []
    if not folders:
        return found
    prefixes = tuple(folder.rstrip("/") + "/" for folder in folders)
    for process in psutil.process_iter():
        if process.pid in (os.getpid(), spare):
            continue
        try:
            if (process.uids().real == os.getuid() and _is_ray(process)
                    and any(f.path.startswith(prefixes) for f in process.open_files())):
                found.append(process)
        except psutil.Error:  # gone, or not ours to read
            pass
    return found


def watch(driver_pid: int) -> None:
    """The watchdog's loop (module docstring): note the driver's Ray processes and their session folders until stdin
    closes, then terminate the noted ones still running and any Ray process holding a file in those folders, killing
    what outlives GRACE_S."""
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    noted: dict[int, psutil.Process] = {}
    folders: set[str] = set()
    while True:
        try:
            for child in driver.children(recursive=True):
                if child.pid not in noted and _is_ray(child):
                    noted[child.pid] = child
                    try:
                        folders |= session_dirs(child.cmdline())
                    except psutil.Error:
                        pass
        except psutil.NoSuchProcess:
            pass
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # end of file: the driver is done or dead
    by_pid = {p.pid: p for p in noted.values() if p.is_running()}  # is_running also guards against a reused pid
    # The driver itself is spared: one that shut its cluster down normally is waiting for us.
    by_pid.update((p.pid, p) for p in _holding_files_in(folders, spare=driver_pid))
    left = list(by_pid.values())
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
