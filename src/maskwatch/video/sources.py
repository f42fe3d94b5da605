"""Where frames come from: a video file, a folder of frames, a webcam or a network stream.

Live sources read on a thread that keeps only the newest frame, so a slow detector never builds up delay; a
dropped stream is reopened with back-off and logged, never fatal.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from maskwatch.data.images import check_pixels, list_images, read_image
from maskwatch.errors import MaskwatchError

log = logging.getLogger(__name__)


@dataclass
class Frame:
    index: int
    time_s: float  # seconds since the start of the source (media time for files, wall time for live)
    image: np.ndarray


class FrameSource:
    fps: float = 30.0
    size: tuple[int, int] = (0, 0)  # width, height
    live: bool = False
    expected_frames: int | None = None
    ended_early: str | None = None  # set when a file stops before its header said it would
    dropped: int = 0  # frames a live source received but replaced by newer ones before they were taken

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileSource(FrameSource):
    def __init__(self, path: Path):
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise MaskwatchError(f"{path}: cannot be opened as a video (missing, corrupt or unknown format)")
        # The container's header gives the frame size before any frame is decoded (as for images).
        width, height = self.capture.get(cv2.CAP_PROP_FRAME_WIDTH), self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        try:
            check_pixels(int(width), int(height), str(path))
        except MaskwatchError:
            self.capture.release()
            raise
        ok, first = self.capture.read()
        if not ok or first is None:
            raise MaskwatchError(f"{path}: no frame could be decoded; the file is corrupt or empty")
        check_pixels(first.shape[1], first.shape[0], str(path))
        self.first = first
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 25.0
        self.size = (first.shape[1], first.shape[0])
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected_frames = count if count > 0 else None

    def frames(self) -> Iterator[Frame]:
        index, image = 0, self.first
        while image is not None:
            yield Frame(index, index / self.fps, image)
            index += 1
            ok, image = self.capture.read()
            if not ok:
                image = None
            elif image.shape[:2] != self.first.shape[:2]:  # the stream changed size: not a video we follow
                self.ended_early = (f"{self.path}: frame {index} is {image.shape[1]}x{image.shape[0]} pixels, "
                                    f"not {self.size[0]}x{self.size[1]} like the first; stopped there")
                log.warning(self.ended_early)
                return
        if self.expected_frames and index < self.expected_frames - 1 and not self.ended_early:
            self.ended_early = (f"{self.path}: the video ended after {index} of {self.expected_frames} frames "
                                f"(truncated or corrupt); the output holds the frames read")
            log.warning(self.ended_early)

    def close(self) -> None:
        self.capture.release()


class FolderSource(FrameSource):
    def __init__(self, folder: Path, fps: float = 10.0):
        self.paths = list_images(folder)
        if not self.paths:
            raise MaskwatchError(f"{folder}: no image frames in this folder")
        self.fps = fps
        first = read_image(self.paths[0])
        self.size = (first.shape[1], first.shape[0])
        self.expected_frames = len(self.paths)

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except MaskwatchError as exc:
                log.error("%s; frame skipped", exc)
                continue
            if (image.shape[1], image.shape[0]) != self.size:
                image = cv2.resize(image, self.size)
            yield Frame(index, index / self.fps, image)


class LiveSource(FrameSource):
    """A webcam index or a stream URL, read on a background thread that keeps only the newest frame."""

    live = True

    def __init__(self, spec: str | int, max_retries: int | None = None, open_timeout_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.5, 10.0)):
        self.spec = spec
        self.max_retries = max_retries
        self.backoff = backoff_s
        self.reconnects = 0
        self._lock = threading.Condition()
        self._latest: np.ndarray | None = None
        self._sequence = 0
        self._stop = threading.Event()
        self._failed: str | None = None
        self._open_timeout = open_timeout_s
        capture = self._open()
        if capture is None:
            raise MaskwatchError(f"{spec}: cannot open the camera or stream (is the address right and reachable?)")
        ok, first = capture.read()
        if not ok:
            capture.release()
            raise MaskwatchError(f"{spec}: opened, but no frame arrived")
        try:
            check_pixels(first.shape[1], first.shape[0], str(spec))
        except MaskwatchError:
            capture.release()
            raise
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 120 else 25.0
        self.size = (first.shape[1], first.shape[0])
        self._latest, self._sequence = first, 1
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._read_loop, args=(capture,), daemon=True, name="maskwatch-reader")
        self._thread.start()

    def _open(self) -> cv2.VideoCapture | None:
        capture = cv2.VideoCapture(self.spec) if isinstance(self.spec, int) else cv2.VideoCapture(
            self.spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._open_timeout * 1000),
                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._open_timeout * 1000)])
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    def _read_loop(self, capture: cv2.VideoCapture) -> None:
        delay = self.backoff[0]
        attempts = 0
        while not self._stop.is_set():
            ok, image = capture.read() if capture is not None else (False, None)
            if ok and image is not None:
                attempts, delay = 0, self.backoff[0]
                with self._lock:
                    self._latest = image
                    self._sequence += 1
                    self._lock.notify_all()
                continue
            if capture is not None:
                capture.release()
                log.warning("%s: stream dropped; reconnecting", self.spec)
            attempts += 1
            if self.max_retries is not None and attempts > self.max_retries:
                self._failed = f"{self.spec}: stream lost and {self.max_retries} reconnects failed"
                log.error(self._failed)
                with self._lock:
                    self._lock.notify_all()
                return
            self._stop.wait(delay)
            delay = min(delay * 2, self.backoff[1])
            capture = self._open()
            if capture is not None:
                self.reconnects += 1
                log.warning("%s: reconnected (reconnect #%d)", self.spec, self.reconnects)

    def frames(self) -> Iterator[Frame]:
        seen, index = 0, 0
        while not self._stop.is_set():
            with self._lock:
                self._lock.wait_for(lambda: self._sequence != seen or self._failed or self._stop.is_set(), timeout=1.0)
                if self._failed or self._stop.is_set():
                    return
                if self._sequence == seen:
                    continue
                if seen:
                    self.dropped += self._sequence - seen - 1
                seen, image = self._sequence, self._latest
            yield Frame(index, time.monotonic() - self.started, image)
            index += 1

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=5)


class ReadAhead(FrameSource):
    """A file or folder decoded on its own thread, a few frames ahead of the pipeline: decoding (which releases
    the GIL) overlaps detection and encoding instead of waiting its turn. Same frames, same order."""

    _END = object()

    def __init__(self, source: FrameSource, depth: int = 8):
        self.source = source
        self.fps, self.size, self.live = source.fps, source.size, source.live
        self.expected_frames = source.expected_frames
        self.name = getattr(source, "name", None)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ended_early(self) -> str | None:  # type: ignore[override]
        return self.source.ended_early

    def _read(self) -> None:
        try:
            for frame in self.source.frames():
                if not self._put(frame):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the pipeline's thread, which raises it
            self._put(exc)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def frames(self) -> Iterator[Frame]:
        self._thread = threading.Thread(target=self._read, daemon=True, name="maskwatch-decoder")
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.source.close()


def open_source(spec: str, folder_fps: float = 10.0, max_retries: int | None = None) -> FrameSource:
    """A webcam index ('0'), a URL (rtsp://, http://), a folder of frames or a video file."""
    if spec.isdigit():
        return LiveSource(int(spec), max_retries=max_retries)
    if "://" in spec:
        return LiveSource(spec, max_retries=max_retries)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, folder_fps)
    if path.is_file():
        return FileSource(path)
    raise MaskwatchError(f"{spec}: no such file or folder, and not a camera index or URL")
