"""Ctrl-C and SIGTERM as KeyboardInterrupt, so long jobs (a video, a batch) finish what they have cleanly
instead of dying mid-write."""

from __future__ import annotations

import signal


def stop_signals_as_interrupt() -> dict:
    """Install the handlers; returns the previous ones for `restore_signals`. SIGINT is set explicitly too: a
    process started in the background by a shell inherits it ignored. Only possible on the main thread
    (elsewhere: nothing changes)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:
        pass
    return previous


def restore_signals(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
