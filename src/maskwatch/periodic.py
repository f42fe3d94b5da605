"""The hourly chores of a long-running service (deleting what is past its retention, expiring old results), each on
a daemon thread of its own that a failure does not end."""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `task` every `every_s` seconds (the first time after `every_s`) until `stop()`; a failure of one go is
    logged and the next goes on."""

    def __init__(self, task: Callable[[], object], name: str, every_s: float = 3600.0):
        self.task, self.name, self.every_s = task, name, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"maskwatch-{self.name}")
        self._thread.start()

    def stop(self, timeout_s: float = 0.0) -> None:
        """Ends the loop (a go under way finishes first: `timeout_s` waits for it)."""
        self._stop.set()
        if self._thread is not None and timeout_s:
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.task()
            except Exception:  # (a database busy or closed under it): next time
                log.exception("%s failed; trying again in %.0f s", self.name, self.every_s)
