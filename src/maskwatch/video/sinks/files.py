"""Sinks that write files: the annotated H.264 video, and the summary JSON / CSV beside it."""

from __future__ import annotations

from pathlib import Path

from maskwatch.video.bus import FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.realtime import REALTIME, RealtimeSettings
from maskwatch.video.summary import write_summary_files
from maskwatch.video.writer import BackgroundWriter, H264Writer


class VideoFileSink(Sink):
    """The annotated video; frames are drawn on the pipeline's thread and encoded on the encoder's
    (`encode_queue` frames may wait; 0 encodes on the pipeline's thread)."""

    name = "video file"

    def __init__(self, path: Path, settings: RealtimeSettings = REALTIME):
        self.path = Path(path)
        self.encode_queue, self.preset = settings.encode_queue, settings.encode_preset
        self.writer: H264Writer | BackgroundWriter | None = None

    def open(self, run: RunInfo) -> None:
        writer = H264Writer(self.path, run.size, run.fps, preset=self.preset)
        self.writer = BackgroundWriter(writer, self.encode_queue) if self.encode_queue else writer

    def frame(self, view: FrameView) -> None:
        self.writer.write(view.annotated())

    def close(self, end: RunEnd) -> None:
        if self.writer:
            self.writer.close()


class SummaryFilesSink(Sink):
    """OUT.json, OUT.tracks.csv and OUT.zones.csv, written when the run ends."""

    name = "summary files"

    def __init__(self, out: Path):
        self.out = Path(out)

    def close(self, end: RunEnd) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_summary_files(end.summary, end.tracks, self.out)
