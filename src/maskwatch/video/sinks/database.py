"""The SQLite sink: the run, each track when it is confirmed and again when it ends, per-window counts and every
event, written as they happen (see maskwatch.video.store)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from maskwatch.video.bus import FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.events import PERSON_ENTERED, PERSON_LEFT, PERSON_UNMASKED, Event
from maskwatch.video.store import EventStore


class DatabaseSink(Sink):
    name = "database"
    required = True
    PROGRESS_EVERY_S = 1.0  # the run's frame counts so far are written this often, in wall or video time

    def __init__(self, path: Path, window_s: float = 10.0):
        self.path = Path(path)
        self.window_s = window_s
        self.store: EventStore | None = None
        self.run_id: int | None = None
        self._window_start, self._window_tracks = 0.0, {}
        self._progress_at, self._progress_video_s = -float("inf"), -float("inf")

    def open(self, run: RunInfo) -> None:
        self.store = EventStore(self.path)
        self.run_id = self.store.start_run(run.source, run.camera, run.run, run.zones, run.lines)

    def event(self, event: Event) -> None:
        self.store.save_event(self.run_id, event)
        if event.type in (PERSON_ENTERED, PERSON_UNMASKED, PERSON_LEFT) and event.track is not None:
            self.store.save_tracks(self.run_id, [event.track])

    def frame(self, view: FrameView) -> None:
        """People per class seen in each window: confirmed tracks only, as in every other count."""
        people = view.confirmed
        if len(people) and people.tracker_id is not None:
            for tid, label in zip(people.tracker_id, people.data.get("class_name", [])):
                self._window_tracks[int(tid)] = str(label)
        if view.frame.time_s - self._window_start >= self.window_s:
            self.store.save_window(self.run_id, self._window_start, Counter(self._window_tracks.values()))
            self._window_start, self._window_tracks = view.frame.time_s, {}
        if (time.monotonic() - self._progress_at >= self.PROGRESS_EVERY_S
                or view.frame.time_s - self._progress_video_s >= self.PROGRESS_EVERY_S):
            s = view.summary
            self.store.save_progress(self.run_id, s.frames, s.detected_frames, s.tracked_frames, s.dropped_frames)
            self._progress_at, self._progress_video_s = time.monotonic(), view.frame.time_s

    def close(self, end: RunEnd) -> None:
        if self.store is None:
            return
        try:
            if self._window_tracks:
                self.store.save_window(self.run_id, self._window_start, Counter(self._window_tracks.values()))
            s = end.summary
            self.store.finish_run(self.run_id, s.frames, s.status, s.full_message(), s.detected_frames,
                                  s.tracked_frames, s.dropped_frames, s.scene_cuts)
        finally:
            self.store.close()
