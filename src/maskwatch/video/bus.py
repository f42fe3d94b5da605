"""The event bus: the pipeline publishes, sinks listen, and sinks are peers (Frigate's dispatcher and
communicators). The video file, the database, the window, progress, the webhook and MQTT are each one Sink; a
new one is added without touching the others.

A sink that fails while the video runs is logged and the video goes on; its failures are counted in the
run's summary (`sink_failures`), and a failed output the user asked for (the video file, the summary files,
the database, events lost for good by the webhook or MQTT: `required` sinks) makes `watch` exit non-zero.
Only a sink that cannot start (a bad URL, no display) stops the run before it begins, with a MaskwatchError
that says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import supervision as sv

from maskwatch.errors import MaskwatchError
from maskwatch.video.events import Event
from maskwatch.video.sources import Frame
from maskwatch.video.summary import WatchSummary

log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    """What every sink learns when a run starts."""

    camera: str
    run: str  # the run id carried by every event
    source: str
    size: tuple[int, int]  # width, height
    fps: float
    zones: tuple[str, ...] = ()  # names of the run's zones and lines
    lines: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()  # the model's classes (a report lists those nobody was counted in too)


@dataclass
class FrameView:
    """One processed frame: the source image, the tracked faces (ids, voted classes; drawn), those of them that
    are counted people (`confirmed`, the emitter's decision), the people counted so far. `annotated()` draws it
    once, however many sinks ask."""

    frame: Frame
    tracked: sv.Detections
    people: dict[str, int]
    summary: WatchSummary
    expected_frames: int | None
    render: Callable[[], np.ndarray]
    zone_counts: Callable[[], dict] = dict  # per zone and line now, as in the `counts` event (computed when asked)
    confirmed: sv.Detections = field(default_factory=sv.Detections.empty)
    _annotated: np.ndarray | None = None

    def annotated(self) -> np.ndarray:
        if self._annotated is None:
            self._annotated = self.render()
        return self._annotated


@dataclass
class RunEnd:
    """What every sink learns when a run ends (`record`, `close`)."""

    summary: WatchSummary  # complete: status, people, zones, lines (each person's track came with person.left)


class Sink:
    """A peer on the bus. Every hook is optional; `open` may raise MaskwatchError for a setup the user must fix,
    the others are guarded by the bus."""

    name = "sink"
    # An output the user asked for (--out, --db, --webhook, --mqtt): if it fails (a file left incomplete, events
    # lost for good), the run did not do its job and `watch` exits 1.
    required = False
    # Writes the run's record (summary files, database): `record` writes it before the other sinks close (a kill
    # while they wait for their receivers keeps it), and again after them if their closing lost something (events
    # a webhook receiver refused, MQTT messages never acknowledged); `close` then only finishes.
    records_run = False

    def open(self, run: RunInfo) -> None:
        pass

    def frame(self, view: FrameView) -> None:
        pass

    def event(self, event: Event) -> None:
        pass

    def record(self, end: RunEnd) -> None:
        """The run's record as it stands (only sinks that `records_run`): called before `close`, when the video is
        over, and again if the other sinks' closing added failures."""

    def begin_close(self) -> None:
        """Start what `close` waits for (a network output delivering what it holds), without waiting: every
        sink starts before any waits, so the end of a run waits as long as the slowest receiver, not their sum."""

    def close(self, end: RunEnd) -> None:
        pass


class CallbackSink(Sink):
    """A sink made of functions, for code that only wants to hear: `CallbackSink(on_event=print)`."""

    name = "callback"

    def __init__(self, on_event: Callable[[Event], Any] | None = None,
                 on_frame: Callable[[FrameView], Any] | None = None,
                 on_close: Callable[[RunEnd], Any] | None = None):
        self.on_event, self.on_frame, self.on_close = on_event, on_frame, on_close

    def event(self, event: Event) -> None:
        if self.on_event:
            self.on_event(event)

    def frame(self, view: FrameView) -> None:
        if self.on_frame:
            self.on_frame(view)

    def close(self, end: RunEnd) -> None:
        if self.on_close:
            self.on_close(end)


class EventBus:
    """Hands every event and frame to each sink as peers: a sink that fails is logged and counted (and a required
    one fails the run), but never stops the video or the other sinks."""

    LOG_EVERY = 100  # after the first failure of a sink's hook, log one in this many

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks = list(sinks)
        self.failures: dict[tuple[int, str], int] = {}  # (sink, hook) -> failures
        self.published: dict[str, int] = {}
        # Per sink name: failures, the first one, and whether the sink is required (WatchSummary.sink_failures).
        self.sink_failures: dict[str, dict[str, Any]] = {}

    def open(self, run: RunInfo) -> None:
        """Open every sink, in order; if one cannot start, close those already open and raise."""
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open(run)
                opened.append(sink)
        except BaseException:
            self._close(opened[::-1], RunEnd(WatchSummary(run.source, status="failed")))
            raise

    def publish(self, event: Event) -> None:
        self.published[event.type] = self.published.get(event.type, 0) + 1
        for sink in self.sinks:
            self._guarded(sink, "event", sink.event, event)

    def frame(self, view: FrameView) -> None:
        for sink in self.sinks:
            self._guarded(sink, "frame", sink.frame, view)

    def close(self, end: RunEnd) -> None:
        self._close(self.sinks, end)

    def _close(self, sinks: list[Sink], end: RunEnd) -> None:
        """Close `sinks`, in two steps for those that record the run (`records_run`): their record is written
        first, then the others close (the network outputs wait for their receivers), then the record is written
        again if that closing added failures, and the recorders close."""
        recorders = [sink for sink in sinks if sink.records_run]
        self._each(recorders, "record", end)
        counted = {name: record["failures"] for name, record in self.sink_failures.items()}
        others = [sink for sink in sinks if not sink.records_run]
        for sink in others:
            self._guarded(sink, "close", lambda _: sink.begin_close(), None)
        self._each(others, "close", end)
        if {name: record["failures"] for name, record in self.sink_failures.items()} != counted:
            self._each(recorders, "record", end)
        self._each(recorders, "close", end)

    def _each(self, sinks: list[Sink], hook: str, end: RunEnd) -> None:
        for sink in sinks:
            try:
                self._guarded(sink, hook, getattr(sink, hook), end)
            except KeyboardInterrupt:  # "stop at once" while this one waited: the others still close (the record)
                self._failed(sink, hook, MaskwatchError("stopped by the user before it had finished"))

    def _guarded(self, sink: Sink, hook: str, call: Callable, arg: Any) -> None:
        try:
            call(arg)
        except Exception as exc:  # a sink must never stop the video
            self._failed(sink, hook, exc)

    def _failed(self, sink: Sink, hook: str, exc: BaseException) -> None:
        """Count a sink's failure in the run's summary; log the first and then one in LOG_EVERY."""
        key = (id(sink), hook)
        n = self.failures[key] = self.failures.get(key, 0) + 1
        first = f"{hook}: {type(exc).__name__}: {exc}"
        record = self.sink_failures.setdefault(sink.name, {"failures": 0, "first": first,
                                                           "required": sink.required})
        record["failures"] += 1
        if n == 1 or n % self.LOG_EVERY == 0:  # a traceback only for what is not a described failure
            log.warning("%s sink failed in %s (%d failure(s) so far; the video goes on): %s: %s",
                        sink.name, hook, n, type(exc).__name__, exc,
                        exc_info=n == 1 and not isinstance(exc, (MaskwatchError, OSError)))  # (a full disk: said)
