"""Ctrl-C, SIGTERM and SIGHUP as KeyboardInterrupt, so long jobs (a video, a batch) finish what they have cleanly
instead of dying mid-write."""

from __future__ import annotations

import signal
import sys

# SIGHUP too: the terminal a run was started from closed (an ssh session dropped); its default ends the process at
# once, mid-write (a video without its index, a run left "running" in the database).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())


def stop_signals_as_interrupt() -> dict:
    """Install the handlers; returns the previous ones for `restore_signals`. SIGINT is set explicitly too: a
    process started in the background by a shell inherits it ignored. Only possible on the main thread
    (elsewhere: nothing changes)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    return _install(handler)


def _install(handler) -> dict:
    """`handler` for SIGINT, SIGTERM and SIGHUP; the previous handlers (empty off the main thread, where nothing changes)."""
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:
        pass
    return previous


def hold_stop_signals(what: str) -> None:
    """While a stopped job finishes its outputs: the next Ctrl-C or SIGTERM (an impatient second tap) is said and
    otherwise ignored, since cutting the finishing short loses more than it saves (a video without its last
    second, a summary never written); the one after it stops at once. `restore_signals` ends the hold. Only on
    the main thread (elsewhere: nothing changes)."""
    taps = []

    def handler(signum, frame):
        taps.append(signum)
        if len(taps) > 1:
            raise KeyboardInterrupt
        print(f"finishing {what}; once more to stop at once and leave them unfinished", file=sys.stderr,
              flush=True)

    _install(handler)


def current_handlers() -> dict:
    """The handlers now set, for `restore_signals` after a library (Ray) has set its own."""
    return {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}


def restore_signals(previous: dict) -> None:
    """Put back the handlers that stop_signals_as_interrupt or current_handlers returned (which also ends a
    hold_stop_signals); one set outside Python cannot be put back and is skipped, and off the main thread nothing
    changes."""
    try:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be set back from here
                signal.signal(signum, handler)
    except ValueError:  # not the main thread: nothing was changed there either
        pass
