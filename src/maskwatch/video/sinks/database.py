"""The SQLite sink: the run, each track when it is confirmed and again when it ends, per-window counts and every
event, written as they happen (see maskwatch.video.store), on a thread of its own: a database that another
process holds locked (a long transaction in an admin's shell, a backup) delays the writes, not the video."""

from __future__ import annotations

import copy
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from maskwatch.errors import MaskwatchError
from maskwatch.video.bus import FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.events import PERSON_ENTERED, PERSON_LEFT, PERSON_UNMASKED, Event
from maskwatch.video.store import EventStore, is_busy

log = logging.getLogger(__name__)


class DatabaseSink(Sink):
    """The run, its events, counting windows and tracks into the events database (SQLite), written on a thread of
    its own: the video never waits on the disk, and a locked database holds writes back rather than the frames."""

    name = "database"
    required = True
    records_run = True
    PROGRESS_EVERY_S = 1.0  # the run's frame counts so far are written this often, in wall or video time
    CLOSE_WAIT_S = 60.0  # at the end, how long writes held up by a lock may still take before they are given up

    def __init__(self, path: Path, window_s: float = 10.0):
        self.path = Path(path)
        self.window_s = window_s
        self.store: EventStore | None = None
        self.run_id: int | None = None
        self._window_start, self._window_tracks = 0.0, {}
        self._progress_at, self._progress_video_s = -float("inf"), -float("inf")
        self._writes: queue.Queue = queue.Queue()
        self._errors: list[BaseException] = []  # raised on the pipeline's thread, one per hook call
        self._give_up = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, run: RunInfo) -> None:
        self.store = EventStore(self.path)  # (a file that is no database: said now, on the caller's thread)
        try:
            self.run_id = self.store.start_run(run.source, run.camera, run.run, run.zones, run.lines, run.classes)
        except sqlite3.OperationalError as exc:  # locked past the wait, or the disk full: one line, not a traceback
            why = ("another process holds it locked (sqlite3 with an open transaction, a backup?)" if is_busy(exc)
                   else "is the disk full?" if "full" in str(exc) else "")
            raise MaskwatchError(f"{self.path}: cannot record the run ({exc})" + (f"; {why}" if why else "")) from exc
        self._thread = threading.Thread(target=self._write_loop, daemon=True, name="maskwatch-database")
        self._thread.start()

    def _write(self, *writes: tuple[Callable[..., None], tuple[Any, ...]]) -> None:
        """Queue writes (a call and its arguments each); an earlier write's failure is raised here, after queuing
        them, so the bus counts each failure once, on the pipeline's thread."""
        for write in writes:
            self._writes.put(write)
        if self._errors:
            raise self._errors.pop(0)

    def _write_loop(self) -> None:
        said_locked, said_gone, looked_at = False, False, time.monotonic()
        while (item := self._writes.get()) is not None:
            call, args = item
            if self._give_up.is_set():  # the end came and the database is still locked: counted by close
                continue
            if not said_gone and time.monotonic() - looked_at >= self.PROGRESS_EVERY_S:
                looked_at = time.monotonic()
                if not self.path.exists():  # deleted (its folder removed): SQLite goes on writing into nothing
                    said_gone = True
                    self._errors.append(MaskwatchError(
                        f"{self.path}: the events database was deleted while this run wrote to it; its events from "
                        f"then on are lost (a restart makes it again)"))
            while True:
                try:
                    call(*args)
                    break
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or self._give_up.is_set():
                        self._errors.append(exc)
                        break
                    if not said_locked:  # (each try already waited the store's busy timeout)
                        log.warning("%s: the events database is locked by another process (%s); %d write(s) wait "
                                    "and are made once it is free, the video goes on", self.path, exc,
                                    self._writes.qsize() + 1)
                        said_locked = True
                    time.sleep(0.5)
                except Exception as exc:  # noqa: BLE001 (a full disk, a removed file: said by the next hook call)
                    self._errors.append(exc)
                    break
            if said_locked and self._writes.empty():
                log.warning("%s: the events database is free again; the waiting writes are made", self.path)
                said_locked = False

    def event(self, event: Event) -> None:
        writes = [(self.store.save_event, (self.run_id, event))]
        if event.type in (PERSON_ENTERED, PERSON_UNMASKED, PERSON_LEFT) and event.track is not None:
            writes.append((self.store.save_tracks, (self.run_id, [copy.deepcopy(event.track)])))  # as it is now
        self._write(*writes)

    def frame(self, view: FrameView) -> None:
        """People per class seen in each window: confirmed tracks only, as in every other count."""
        people = view.confirmed
        if len(people) and people.tracker_id is not None:
            for tid, label in zip(people.tracker_id, people.data.get("class_name", [])):
                self._window_tracks[int(tid)] = str(label)
        if view.frame.time_s - self._window_start >= self.window_s:
            self._write((self.store.save_window, (self.run_id, self._window_start,
                                                  Counter(self._window_tracks.values()))))
            self._window_start, self._window_tracks = view.frame.time_s, {}
        if (time.monotonic() - self._progress_at >= self.PROGRESS_EVERY_S
                or view.frame.time_s - self._progress_video_s >= self.PROGRESS_EVERY_S):
            s = view.summary
            self._write((self.store.save_progress, (self.run_id, s.frames, s.detected_frames, s.tracked_frames,
                                                    s.dropped_frames)))
            self._progress_at, self._progress_video_s = time.monotonic(), view.frame.time_s

    def record(self, end: RunEnd) -> None:
        """The last window (once) and the run's end row, queued now: written in milliseconds, while the network
        outputs wait for their receivers."""
        if self.store is None:
            return
        if self._window_tracks:
            self._writes.put((self.store.save_window, (self.run_id, self._window_start,
                                                       Counter(self._window_tracks.values()))))
            self._window_tracks = {}
        s = end.summary
        self._writes.put((self.store.finish_run, (self.run_id, s.frames, s.status, s.full_message(),
                                                  s.detected_frames, s.tracked_frames, s.dropped_frames,
                                                  s.scene_cuts)))

    def close(self, end: RunEnd) -> None:
        if self.store is None:
            return
        try:
            self._writes.put(None)
            if self._thread is not None:
                self._thread.join(self.CLOSE_WAIT_S)
                if self._thread.is_alive():  # still locked: what waits is given up, said below
                    left = self._writes.qsize()
                    self._give_up.set()
                    self._thread.join(40)  # (at most the write under way, which waits the busy timeout)
                    self._errors.append(RuntimeError(f"the events database stayed locked; {left} write(s) given "
                                                     f"up after waiting {self.CLOSE_WAIT_S:.0f} s at the end"))
        finally:
            if self._thread is None or not self._thread.is_alive():
                self.store.close()
        if self._errors:
            first, count = self._errors[0], len(self._errors)
            self._errors = []
            raise RuntimeError(f"{count} write(s) failed, first: {type(first).__name__}: {first}") from first
