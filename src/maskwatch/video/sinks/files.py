"""Sinks that write files: the annotated H.264 video, and the summary JSON / CSV beside it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

from maskwatch.video.bus import FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.events import PERSON_LEFT, Event
from maskwatch.video.realtime import REALTIME, RealtimeSettings
from maskwatch.video.summary import TRACKS_CSV, TRACKS_CSV_HEADER, track_row, write_summary_files
from maskwatch.video.writer import BackgroundWriter, H264Writer


class VideoFileSink(Sink):
    """The annotated video; frames are drawn on the pipeline's thread and encoded on the encoder's
    (`encode_queue` frames may wait; 0 encodes on the pipeline's thread)."""

    name = "video file"
    required = True

    def __init__(self, path: Path, settings: RealtimeSettings = REALTIME):
        self.path = Path(path)
        self.encode_queue, self.preset = settings.encode_queue, settings.encode_preset
        self.writer: H264Writer | BackgroundWriter | None = None
        self._start_s: float | None = None

    def open(self, run: RunInfo) -> None:
        self._start_s = None  # (a sink may serve several runs: each video starts at its own first frame)
        writer = H264Writer(self.path, run.size, run.fps, preset=self.preset)
        self.writer = BackgroundWriter(writer, self.encode_queue) if self.encode_queue else writer

    def frame(self, view: FrameView) -> None:
        if self._start_s is None:  # the video starts at its first frame, whatever the source's clock says then
            self._start_s = view.frame.time_s
        self.writer.write(view.annotated(), view.frame.time_s - self._start_s)

    def close(self, end: RunEnd) -> None:
        if self.writer:
            self.writer.close()  # (no frame: the encoder never opened the file)
        if self._start_s is None and end.summary.status != "failed" and (self.path.exists() or self.path.is_symlink()):
            # A run without a frame, told to replace an earlier run's video (`overwrite`; else it was refused or
            # set aside): its summary files replace the earlier ones, so the earlier video must not stay beside
            # them as if it were this run's.
            self.path.unlink()


class SummaryFilesSink(Sink):
    """OUT.tracks.csv, a row per person as they leave (nothing held in memory for a long run), then OUT.json and
    OUT.zones.csv when the run ends."""

    name = "summary files"
    required = True
    records_run = True

    def __init__(self, out: Path):
        self.out = Path(out)
        self._tracks: IO[str] | None = None
        self._frames = 0

    def open(self, run: RunInfo) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)  # (the files are made with the first frame: a run that
        self._tracks, self._frames = None, 0  # never starts leaves an earlier run's files as they were)

    def _start(self) -> None:
        self._tracks = self.out.with_suffix(TRACKS_CSV).open("w", newline="", encoding="utf-8")
        csv.writer(self._tracks).writerow(TRACKS_CSV_HEADER)
        self._tracks.flush()

    def frame(self, view: FrameView) -> None:
        if self._tracks is None:
            self._start()
        self._frames += 1

    def event(self, event: Event) -> None:
        if event.type == PERSON_LEFT and event.track is not None:
            if self._tracks is None:
                self._start()
            csv.writer(self._tracks).writerow(track_row(event.track))
            self._tracks.flush()

    def record(self, end: RunEnd) -> None:
        if not self._frames and end.summary.status == "failed":  # it never started (another output refused to
            return  # open, the source failed): the error is said; files describing no run would only mislead
        if self._tracks is None:
            self._start()
        write_summary_files(end.summary, self.out)

    def close(self, end: RunEnd) -> None:
        if self._tracks is not None:
            self._tracks.close()
