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


def current_handlers() -> dict:
    """The handlers now set, for `restore_signals` after a library (Ray) has set its own."""
    return {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict) -> None:
    try:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be set back from here
                signal.signal(signum, handler)
    except ValueError:  # not the main thread: nothing was changed there either
        pass
