"""Retention: an events database kept to its last N days, now and every hour while a service runs (a camera
watched for months would otherwise grow its database for ever)."""

from __future__ import annotations

import logging
import math
import numbers
import time
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.periodic import Periodic
from maskwatch.video.store import delete_older_than

log = logging.getLogger(__name__)


def check_days(days: float | None, option: str) -> float | None:
    """A number of days to keep something for (above 0, finite), or None (kept for ever)."""
    if days is not None and (isinstance(days, bool) or not isinstance(days, numbers.Real)
                             or not math.isfinite(days) or days <= 0):
        raise MaskwatchError(f"{option} {days}: give a number of days above 0")
    return days


def check_retention_days(days: float | None) -> float | None:
    """check_days for --retention-days (watch, serve and Retention check it alike)."""
    return check_days(days, "--retention-days")


class Retention:
    """Deletes what is older than `days` from `db`: `apply()` once, or `start()` (at once, then hourly on a thread)
    until `stop()`."""

    def __init__(self, db: Path, days: float):
        self.db, self.days = Path(db), check_retention_days(days)
        self._hourly = Periodic(self.apply, "retention")

    def apply(self) -> dict[str, int]:
        deleted = delete_older_than(self.db, time.time() - self.days * 86400)
        if any(deleted.values()):
            log.info("retention (%g days): deleted %s", self.days,
                     ", ".join(f"{n} {table}" for table, n in deleted.items() if n))
        return deleted

    @property
    def started(self) -> bool:
        return self._hourly.started

    def start(self) -> None:
        self.apply()
        self._hourly.start()

    def stop(self) -> None:
        self._hourly.stop()
