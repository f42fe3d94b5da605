"""A live camera that sends no frame: said on the bus, so that what listens (MQTT availability, the web page,
a webhook, the database) can tell a dead camera from an empty doorway. Frigate calls this a camera going
offline; an operator must hear of it, since nobody is watched meanwhile."""

from __future__ import annotations

import logging
import time
from typing import Callable

from maskwatch.video.bus import EventBus
from maskwatch.video.emitter import EventEmitter
from maskwatch.video.sources import NO_FRAME_DOWN_S

log = logging.getLogger(__name__)

DOWN_AFTER_S = NO_FRAME_DOWN_S  # no frame for this long: camera.down (and `serve` lists the camera reconnecting)
REMIND_EVERY_S = 60.0  # while it lasts, a warning this often (one line at the start is lost in a day's log)


class OutageWatch:
    """Called by a live source while it waits for a frame (`waiting`) and by the pipeline on each frame
    (`frame`): publishes camera.down once no frame came for `down_after_s`, and camera.up with the frames."""

    def __init__(self, name: str, emitter: EventEmitter, bus: EventBus, down_after_s: float = DOWN_AFTER_S,
                 remind_every_s: float = REMIND_EVERY_S, on_down: Callable[[float], None] | None = None):
        """on_down(time_s): called once camera.down is out (the pipeline lets the people in view go)."""
        self.name, self.emitter, self.bus, self.on_down = name, emitter, bus, on_down
        self.down_after_s, self.remind_every_s = down_after_s, remind_every_s
        self.last_frame_at = time.monotonic()
        self.last_time_s = 0.0  # the source time of the last frame
        self.down_since: float | None = None
        self._reminded_at = 0.0

    def frame(self, time_s: float) -> None:
        now = time.monotonic()
        if self.down_since is not None:
            lasted = now - self.down_since + self.down_after_s
            log.warning("%s: frames again after %.0f s without", self.name, lasted)
            self.bus.publish(self.emitter.camera_event(up=True, time_s=time_s,
                                                       reason=f"frames again after {lasted:.0f} s without"))
            self.down_since = None
        self.last_frame_at, self.last_time_s = now, time_s

    def waiting(self) -> None:
        now = time.monotonic()
        gap = now - self.last_frame_at
        if self.down_since is None and gap >= self.down_after_s:
            self.down_since, self._reminded_at = now, now
            log.warning("%s: no frame for %.0f s: nobody is watched until it is back (camera.down)", self.name, gap)
            self.bus.publish(self.emitter.camera_event(up=False, time_s=self.last_time_s + gap,
                                                       reason=f"no frame for {gap:.0f} s"))
            if self.on_down is not None:
                self.on_down(self.last_time_s + gap)
        elif self.down_since is not None and now - self._reminded_at >= self.remind_every_s:
            self._reminded_at = now
            log.warning("%s: still no frame, for %.0f s now", self.name, gap)
