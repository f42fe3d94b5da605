"""Sinks for the person at the machine: an OpenCV window and a progress callback."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError
from maskwatch.video.bus import FrameView, RunInfo, Sink
from maskwatch.video.summary import WatchSummary

WINDOW = "maskwatch"


class DisplaySink(Sink):
    """`watch --show`: each annotated frame in an OpenCV window; an OpenCV without GUI support is said when the run
    opens, not at the first frame."""

    name = "display"

    def open(self, run: RunInfo) -> None:
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
            cv2.imshow(WINDOW, np.zeros((2, 2, 3), np.uint8))
        except cv2.error as exc:
            raise MaskwatchError("--show needs a display and an OpenCV built with GUI support "
                                 "(this install has opencv-python-headless); write --out instead") from exc

    def frame(self, view: FrameView) -> None:
        cv2.imshow(WINDOW, view.annotated())
        cv2.waitKey(1)


class ProgressSink(Sink):
    """Calls `on_progress(summary so far, expected frames or None)` after each frame (a progress bar, a job)."""

    name = "progress"

    def __init__(self, on_progress: Callable[[WatchSummary, int | None], None]):
        self.on_progress = on_progress

    def frame(self, view: FrameView) -> None:
        self.on_progress(view.summary, view.expected_frames)
