"""Annotated video out as H.264 in MP4 (yuv420p), which browsers and common players play.
OpenCV's default `mp4v` does not play in browsers; PyAV carries an FFmpeg with libx264.

The MP4 is fragmented (a `moof` every second, flushed to disk as written): a plain MP4 needs its index written
at the end and does not play at all when the process is killed; a fragmented one plays up to the last second."""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from maskwatch.video.realtime import REALTIME

TIME_BASE = Fraction(1, 1000)  # frame timestamps in milliseconds
FRAGMENTED_MP4 = {"movflags": "+frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000",
                  "flush_packets": "1"}


class H264Writer:
    """The annotated video as an H.264 MP4 (PyAV), frames written as they come, so a run cut short still leaves a
    video that plays up to its last frames."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, crf: int = 23,
                 preset: str = REALTIME.encode_preset):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        width, height = size
        # yuv420p needs even sizes: an odd-sized frame gets its last row or column repeated, so no pixel (nor a
        # box drawn at the edge) is lost; the video is then one pixel wider or taller than the source.
        self.frame_size = (width, height)  # what write() takes
        self.width, self.height = width + width % 2, height + height % 2
        self.container = av.open(str(self.path), mode="w", format="mp4", options=FRAGMENTED_MP4)
        self.fps = fps
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        # No B-frames: with them x264 delays every timestamp by two frames, and a fragmented MP4 (no edit list)
        # then starts 0.2 s late. Timestamps are the frames' own times (in ms): a variable-rate phone video or a
        # live camera that delivered unevenly plays at the pace it was recorded at.
        self.stream.options = {"crf": str(crf), "preset": preset, "bf": "0"}
        self.stream.codec_context.time_base = TIME_BASE
        self.frames = 0
        self._last_pts = -1
        self.closed = False

    def write(self, image_bgr: np.ndarray, time_s: float | None = None) -> None:
        """One frame, shown at `time_s` seconds from the start (None: one frame period after the last)."""
        width, height = self.frame_size
        if image_bgr.shape[:2] != (height, width):
            raise ValueError(f"frame of {image_bgr.shape[1]}x{image_bgr.shape[0]} pixels written to a video of "
                             f"{width}x{height}")
        image = image_bgr
        if (width, height) != (self.width, self.height):
            image = cv2.copyMakeBorder(image, 0, self.height - height, 0, self.width - width, cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        pts = round(time_s / TIME_BASE) if time_s is not None else self._last_pts + round(1 / (self.fps * TIME_BASE))
        frame.pts = self._last_pts = max(pts, self._last_pts + 1)  # strictly increasing, as the encoder needs
        frame.time_base = TIME_BASE
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> "H264Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BackgroundWriter:
    """An H264Writer fed through a short queue and run on its own thread: encoding (which releases the GIL, and
    x264 threads on its own) overlaps detection instead of waiting its turn. A full queue makes `write` wait, so
    a slow encoder slows the pipeline rather than filling memory; an encoder error is raised by the next call."""

    def __init__(self, writer: H264Writer, depth: int = 8):
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="maskwatch-encoder")
        self._thread.start()

    @property
    def frames(self) -> int:
        return self.writer.frames

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.writer.write(*item)
                except BaseException as exc:  # raised on the pipeline's thread by the next write or close
                    self._error = exc

    def write(self, image_bgr: np.ndarray, time_s: float | None = None) -> None:
        self._raise()
        self._queue.put((image_bgr, time_s))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        try:
            self._raise()
        finally:
            self.writer.close()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
