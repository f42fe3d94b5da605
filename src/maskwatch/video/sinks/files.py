"""Sinks that write files: the annotated H.264 video, and the summary JSON / CSV beside it."""

from __future__ import annotations

from pathlib import Path

from maskwatch.video.bus import FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.summary import write_summary_files
from maskwatch.video.writer import H264Writer


class VideoFileSink(Sink):
    name = "video file"
    required = True

    def __init__(self, path: Path):
        self.path = Path(path)
        self.writer: H264Writer | None = None

    def open(self, run: RunInfo) -> None:
        self.writer = H264Writer(self.path, run.size, run.fps)

    def frame(self, view: FrameView) -> None:
        self.writer.write(view.annotated())

    def close(self, end: RunEnd) -> None:
        if self.writer:
            self.writer.close()


class SummaryFilesSink(Sink):
    """OUT.json, OUT.tracks.csv and OUT.zones.csv, written when the run ends."""

    name = "summary files"
    required = True

    def __init__(self, out: Path):
        self.out = Path(out)

    def close(self, end: RunEnd) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_summary_files(end.summary, end.tracks, self.out)
