"""Where frames come from: a video file, a folder of frames, a webcam or a network stream.

Live sources read on a thread that keeps only the newest frame, so a slow detector never builds up delay; a
dropped stream is reopened with back-off and logged. Every frame of a live stream is checked like the first (a
camera that comes back from a reconnect at another size, or over the pixel limit, stops the run there), and a
stream that stops for good ends the run as `ended_early` with the reason.
"""

from __future__ import annotations

import collections
import itertools
import logging
import numbers
import os
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import av.stream
import cv2
import numpy as np

from maskwatch.data.images import check_pixels, image_header, is_heif_header, list_images, read_image
from maskwatch.errors import MaskwatchError, TooManyPixels, name_some
from maskwatch.video.redact import without_password

log = logging.getLogger(__name__)
# FFmpeg's own messages from OpenCV's reader (cameras and streams; e.g. "[rtsp @ 0x...] method DESCRIBE failed"
# on every reconnect) would flood the terminal; the source reports what matters itself (cannot open, stream lost).
# Set OPENCV_FFMPEG_LOGLEVEL (e.g. 16 for errors) to see them, and OPENCV_LOG_LEVEL=WARNING for OpenCV's own
# while a camera opens (e.g. "can't open camera by index"). Files are read by PyAV, whose FFmpeg logging is
# off unless `av.logging.set_level` turns it on.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass
class Frame:
    """One frame of a source: its index, its time in the source, the 8-bit BGR image and, from a live source, when it
    arrived."""

    index: int
    time_s: float  # seconds since the start of the source (media time for files, wall time for live)
    image: np.ndarray
    received_at: float | None = None  # wall clock (Unix s) when a live source received it: where latency starts


def check_frame(image: object, index: int, size: tuple[int, int] | None, source: str) -> np.ndarray:
    """A frame as the pipeline needs it (8-bit BGR, the source's size, under the pixel limit), or a MaskwatchError
    naming it: a wrong one would otherwise be drawn on, counted in zones of another size, or fail inside OpenCV."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        raise MaskwatchError(f"{source}: frame {index} is not an 8-bit BGR image (H x W x 3 uint8): "
                             f"{type(image).__name__}{f' {shape} {image.dtype}' if shape is not None else ''}")
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise MaskwatchError(f"{source}: frame {index} is {image.shape[1]}x{image.shape[0]} pixels, not "
                             f"{size[0]}x{size[1]} like the first")
    check_pixels(image.shape[1], image.shape[0], f"{source} frame {index}")
    return image


class FrameSource:
    """Where a pipeline's frames come from. To feed frames of your own, give `VideoPipeline.run` / `watch` an
    `ArraySource(your_frames, fps)`, or subclass this: set `size` (width, height) and `fps`, and yield `Frame`s
    (index, seconds from the start, an 8-bit BGR image of that size) from `frames()`; the pipeline checks each.
    A source is read once. Where frames() may wait (a camera), make `stop()` end the wait (the pipeline's stop()
    calls it from another thread), set `live = True`, and call `self.on_wait()` about every second while no frame
    comes, so that the run says camera.down and lets the people in view go."""

    fps: float = 30.0
    size: tuple[int, int] = (0, 0)  # width, height
    live: bool = False
    expected_frames: int | None = None
    ended_early: str | None = None  # why the source stopped before its end (truncated file, stream lost)
    dropped: int = 0  # frames a live source received but replaced by newer ones before they were taken
    skipped: str | None = None  # what was left out or changed on the way (damaged packets, unreadable frames,
    # frames rescaled to the first's size), said at the end
    on_wait: Callable[[], None] | None = None  # a live source calls it about every second while no frame comes

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def receiving(self) -> bool:
        """Whether frames are arriving now (a live stream that dropped says False while it reconnects)."""
        return True

    def stop(self) -> None:
        """Make `frames()` end soon; safe to call from another thread (close() belongs to the reading one)."""

    def close(self) -> None:
        pass


ALREADY_READ = "ArraySource: already read by a run; make a new ArraySource for another run"


class ArraySource(FrameSource):
    """Frames of your own (an iterable of 8-bit BGR images of one size: a generator, a list, frames from another
    library), `fps` of them per second; each is checked as it comes, so a wrong one stops the run with a
    MaskwatchError naming it. Read once: make a new one for another run. `live`: frames that arrive in real time
    (a camera): their times are when they came; the pipeline takes each one in turn, so a source that must not
    wait drops frames itself."""

    def __init__(self, frames: Iterable[np.ndarray], fps: float = 30.0, live: bool = False):
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps < float("inf"):
            raise MaskwatchError(f"ArraySource: fps must be a positive number, not {fps!r}")
        self._frames = iter(frames)
        try:
            self._first = next(self._frames)  # (its size is the video's: read now)
        except StopIteration:
            raise MaskwatchError("ArraySource: no frames") from None
        check_frame(self._first, 0, None, "ArraySource")
        self.size = (self._first.shape[1], self._first.shape[0])
        self.fps, self.live = float(fps), live
        self._stop = threading.Event()
        self.used = False  # read by a run (its frames are gone)

    def frames(self) -> Iterator[Frame]:
        if self.used:  # (its frames are gone: a second run would get the first alone)
            raise MaskwatchError(ALREADY_READ)
        self.used = True
        for index, image in enumerate(itertools.chain([self._first], self._frames)):
            if self._stop.is_set():
                return
            yield Frame(index, index / self.fps, check_frame(image, index, self.size, "ArraySource"),
                        time.time() if self.live else None)

    def stop(self) -> None:
        self._stop.set()


class FileSource(FrameSource):
    """A video file, decoded with PyAV packet by packet: a damaged packet is skipped (and counted), so a file with
    a bad stretch still gives every frame around it, however long the stretch (OpenCV's reader gives up on the
    whole file), and a truncated file gives the frames before the cut. Frames come upright (a phone's rotation
    flag applied) and in square pixels (an anamorphic DVD or broadcast picture stretched to its display shape);
    frames of another size than the first (a stream that changed resolution) are scaled into the first's."""

    def __init__(self, path: Path):
        self.path = path
        self.damaged = 0  # packets that could not be decoded
        self._stopped_by: str | None = None  # why decoding ended before the container did
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MaskwatchError(f"{path}: {why_unopenable(Path(path))}") from exc
        try:
            # Not cover art (an MP3's or M4A's picture is a one-frame "video stream").
            streams = [s for s in self.container.streams.video
                       if not s.disposition & av.stream.Disposition.attached_pic]
            if not streams:
                raise MaskwatchError(f"{path}: holds no video stream")
            self.stream = streams[0]
            if self.stream.codec_context is None:
                raise MaskwatchError(f"{path}: no decoder for its video codec ({self.stream.codec.name})")
            self.stream.thread_type = "AUTO"
            sar = self.stream.codec_context.sample_aspect_ratio
            self._stretch = float(sar) if sar and 0.25 <= float(sar) <= 4 and sar != 1 else None  # pixel shape
            # The container's header gives the frame size before any frame is decoded (as for images).
            check_pixels(self.stream.codec_context.width, self.stream.codec_context.height, str(path))
            self._times: collections.deque[float | None] = collections.deque()
            self._decoded = self._decode()
            try:
                first = next(self._decoded, None)
            except Exception as exc:  # anything the decoder or the conversion raises on the first frame
                raise MaskwatchError(f"{path}: the first frame cannot be decoded ({exc})") from exc
            if first is None:
                refuse_oversized_image(Path(path))  # a still image too big for FFmpeg: said with its size
                with open(path, "rb") as file:
                    head = file.read(21)
                if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) == 21 and head[20] & 0x02:
                    # (the extended header's animation flag) FFmpeg decodes still WebP only
                    raise MaskwatchError(f"{path}: an animated WebP, which FFmpeg does not decode: convert it to "
                                         f"an MP4 or GIF first (e.g. with ImageMagick: convert x.webp x.gif)")
                raise MaskwatchError(f"{path}: no frame could be decoded; the file is corrupt or empty")
            check_pixels(first.shape[1], first.shape[0], str(path))
        except BaseException:
            self.container.close()
            raise
        self.first = first
        self._read_ahead = [first]  # decoded in __init__, given first by frames()
        rate = self.stream.average_rate or self.stream.guessed_rate
        fps = float(rate) if rate else 0.0
        self.fps = fps if 1 <= fps <= 240 else 25.0
        self.size = (first.shape[1], first.shape[0])
        self.expected_frames = self.stream.frames or self._frames_from_duration()
        if not self.expected_frames:  # no count and no duration: a still image (an upload has no extension) or
            try:  # images back to back; a second frame tells which
                second = next(self._decoded, None)
            except Exception:  # a broken second frame: the count stays unknown, frames() ends after the first
                pass
            else:
                if second is None:
                    self.expected_frames = 1
                else:
                    self._read_ahead.append(second)

    def _duration_s(self) -> float | None:
        """How long the video lasts, for containers that do not store a frame count (MKV, WebM, TS, FLV). Some
        (Matroska) give the container's duration as its end time, start offset included (a recording whose clock
        starts at 10 h): a duration longer than the start time is taken less the start, which at worst misses a
        cut shorter than the start."""
        if self.stream.duration and self.stream.time_base:
            return float(self.stream.duration * self.stream.time_base)
        if not self.container.duration:
            return None
        seconds, start = self.container.duration / av.time_base, (self.container.start_time or 0) / av.time_base
        return seconds - start if 0 < start < seconds else seconds

    def _frames_from_duration(self) -> int | None:
        """Frame count of containers that do not store it: duration x frame rate (for the progress bar; a
        variable-rate video is judged complete by its last frame's time, in frames())."""
        seconds = self._duration_s()
        return max(1, round(seconds * self.fps)) if seconds and seconds > 0 else None

    def _decode(self) -> Iterator[np.ndarray]:
        try:
            for packet in self.container.demux(self.stream):
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    self.damaged += 1
                    continue
                for frame in decoded:
                    self._times.append(frame.time)  # media time, taken by frames() with the image
                    image = to_bgr(frame)
                    if self._stretch:  # stored squeezed (anamorphic): shown, and looked at, in square pixels
                        image = cv2.resize(image, (max(1, round(image.shape[1] * self._stretch)), image.shape[0]),
                                           interpolation=cv2.INTER_LINEAR)
                    yield upright(image, frame.rotation)
        except av.FFmpegError as exc:  # the container itself breaks off (a truncated file)
            self._stopped_by = f"the file breaks off ({exc})"

    def frames(self) -> Iterator[Frame]:
        """Frames at their media time from the first (a variable-rate phone video keeps its pace); where a frame
        has none, or it does not move on, one frame period after the last."""
        index, start, last, first_media, last_media, resized = 0, None, None, None, None, None
        for image in itertools.chain(self._read_ahead, self._decoded):
            if image.shape[:2] != self.first.shape[:2]:  # a stream that changed resolution (adaptive bit rate)
                if not resized:
                    resized = (f"{self.path}: from frame {index} the video is {image.shape[1]}x{image.shape[0]} "
                               f"pixels, not {self.size[0]}x{self.size[1]} like the first; later frames are scaled "
                               f"into the first's size")
                    log.warning(resized)
                image = fit_into(image, self.size)
            media = self._times.popleft() if self._times else None
            if media is not None:
                first_media = media if first_media is None else first_media
                last_media = media
            expected = 0.0 if last is None else last + 1 / self.fps
            if media is not None and start is None:  # the first time given: the frames before it kept their place
                start = media - expected
            time_s = media - start if media is not None else expected
            last = time_s if last is None or time_s > last else expected
            yield Frame(index, last, image)
            index += 1
        if self._stopped_by:
            self.ended_early = (f"{self.path}: decoding stopped after {index} frames: {self._stopped_by}; the output "
                                f"holds the frames read")
        elif self._cut_short(index, first_media, last_media):
            self.ended_early = (f"{self.path}: the video ended after {index} of {self.expected_frames} frames "
                                f"(truncated or corrupt); the output holds the frames read")
        if self.ended_early:
            log.warning(self.ended_early)
        if self.damaged:
            damage = (f"{self.path}: {self.damaged} damaged packet(s) skipped; frames near them may show "
                      f"artefacts")
            log.warning(damage)
            self.skipped = damage
        if resized:  # (said when it began; kept for the summary)
            self.skipped = "; ".join(filter(None, (self.skipped, resized)))

    def _cut_short(self, frames: int, first_media: float | None, last_media: float | None) -> bool:
        """Whether the video ended before its container said it would: by the stored frame count where there is
        one (MP4, MOV) and nothing was damaged, else by the last frame's time against the duration (a
        variable-rate MKV has fewer frames than its duration x its average rate; a damaged stretch costs its own
        frames and those the decoder drops until the next key frame, but the frames after it come)."""
        if self.stream.frames and not self.damaged:
            return frames < self.stream.frames - 1
        duration = self._duration_s()
        if duration and first_media is not None and last_media is not None:
            return last_media - first_media < duration - max(1.0, 3 / self.fps)
        return bool(self.expected_frames and frames < self.expected_frames - 1)

    def close(self) -> None:
        self.container.close()




def refuse_oversized_image(path: Path) -> None:
    """TooManyPixels, naming the size, when `path` is an image over the pixel limit (FFmpeg gives up on a huge
    PNG before the frame-size check sees it); nothing when it is not an image or is within the limit."""
    try:
        _, width, height, _ = image_header(path, str(path))
    except TooManyPixels:
        raise
    except MaskwatchError:
        return  # not an image: the caller's own message stands
    check_pixels(width, height, str(path))


def is_still_image(path: Path) -> bool:
    """Whether FFmpeg reads a file as one still picture (one packet from its image demuxers: `image2`, `jpeg_pipe`,
    `png_pipe`, ...; a GIF of one frame; an HEIF photo by its brand) rather than as a video:
    raw MJPEG (JPEGs one after another), MPEG streams, animated GIF and APNG are videos here. Nothing is decoded."""
    with path.open("rb") as file:
        head = file.read(12)
    if is_heif_header(head):
        return True
    try:
        with av.open(str(path)) as container:
            names = container.format.name.split(",")
            if "gif" in names:  # its demuxer may hand over frames without a delay as one packet: its frame count
                return container.streams.video[0].frames == 1
            if not any(name == "image2" or name.endswith("_pipe") for name in names):
                return False
            packets = sum(1 for packet in itertools.islice(container.demux(video=0), 3) if packet.size)
    except (av.FFmpegError, OSError, ValueError):
        return False
    return packets == 1


def why_unopenable(path: Path) -> str:
    """What to tell a user whose file FFmpeg cannot open (it says "Invalid data" to all of them): the common cases
    read differently to a person."""
    try:
        with path.open("rb") as file:
            head = file.read(12)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not head:
        return "is empty (0 bytes)"
    if is_heif_header(head):
        return "is an image in an HEIF / AVIF container, not a video (or a damaged one)"
    if head[4:8] == b"ftyp" and "moov" not in top_level_boxes(path):
        return ("is an MP4 or MOV whose index (its 'moov' box, written when recording ends) is missing: a recording "
                "cut off before it finished, or a copy that did not complete")
    return "cannot be opened as a video (not a video, corrupt, or a format FFmpeg does not know)"


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes, read from their headers until the file ends or a box is cut."""
    types, size_of_file = [], path.stat().st_size
    with path.open("rb") as file:
        position = 0
        while position + 8 <= size_of_file:
            file.seek(position)
            header = file.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
            if size == 1 and len(header) == 16:  # a 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:  # the box runs to the end of the file
                size = size_of_file - position
            if size < 8 or position + size > size_of_file:
                break  # cut off here (or not boxes at all)
            types.append(kind)
            position += size
    return types


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """The frame as BGR pixels; the common YUV 4:2:0 through OpenCV (a third faster than FFmpeg's converter here,
    which matters at 1080p)."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


_TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as it is meant to be seen: phones store portrait video as landscape frames plus a rotation in the
    container (the display matrix; PyAV's `frame.rotation`, counterclockwise degrees), which players apply (and
    OpenCV's reader did)."""
    turn = _TURNS.get(int(round(rotation / 90)) % 4 * 90)
    return image if turn is None else cv2.rotate(image, turn)


NO_FRAME_DOWN_S = 5.0  # a live source without a frame this long is down (a hiccup of a second or two is not)
FOLDER_FPS = 10.0  # a folder of images played as a video: the frame rate its times are counted in
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".mts", ".mpg", ".mpeg", ".wmv", ".flv",
                  ".3gp")  # (only to point a folder of videos to its files)


class FolderSource(FrameSource):
    """A folder of images played as a video at `fps`, in sorted order; pictures of another size than the first are
    fitted into its frame, and unreadable ones skipped."""

    def __init__(self, folder: Path, fps: float = FOLDER_FPS):
        self.paths = list_images(folder)
        if not self.paths:
            videos = sorted(p.name for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            raise MaskwatchError(f"{folder}: no image frames in this folder" + (
                f" (a folder is watched as a sequence of photos; to watch a video in it, give the file: "
                f"{Path(folder) / videos[0]})" if videos else ""))
        self.fps = fps
        first = read_image(self.paths[0])
        self.size = (first.shape[1], first.shape[0])
        self.expected_frames = len(self.paths)

    def frames(self) -> Iterator[Frame]:
        unread = []
        for index, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except MaskwatchError as exc:
                log.error("%s; frame skipped", exc)
                unread.append(path.name)
                self.skipped = (f"{len(unread)} of the folder's {len(self.paths)} frames could not be read and were "
                                f"skipped ({name_some(unread)})")
                continue
            if (image.shape[1], image.shape[0]) != self.size:
                image = fit_into(image, self.size)
            yield Frame(index, index / self.fps, image)


def fit_into(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The picture scaled to fit a frame of `size` (width, height) without changing its shape, centred on black:
    a folder of photos mixing portrait and landscape becomes frames of one size, and no face is squashed."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return cv2.copyMakeBorder(resized, top, height - new_h - top, left, width - new_w - left, cv2.BORDER_CONSTANT,
                              value=(0, 0, 0))


_quiet_lock = threading.Lock()
_quiet_opens = 0  # opens in progress (cameras open in threads of their own, at once)
_level_before = 0


@contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's own messages ("can't open camera by index", "index out of range") silenced while cameras open,
    unless OPENCV_LOG_LEVEL asks for them. Counted, so that overlapping opens in several threads give the level
    back as it was once the last one ends (each thread restoring what it saw could leave it silenced)."""
    global _quiet_opens, _level_before
    if "OPENCV_LOG_LEVEL" in os.environ:
        yield
        return
    with _quiet_lock:
        if _quiet_opens == 0:
            _level_before = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _quiet_opens += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_opens -= 1
            if _quiet_opens == 0:
                cv2.utils.logging.setLogLevel(_level_before)


class LiveSource(FrameSource):
    """A webcam index or a stream URL, read on a background thread that keeps only the newest frame."""

    live = True

    def __init__(self, spec: str | int, give_up_after_s: float | None = None, open_timeout_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.5, 10.0), wait_s: float = 0.0,
                 cancel: threading.Event | None = None):
        """wait_s: how long a camera that cannot be opened, or sends no first frame, is tried again before the
        error (a camera that boots after the machine); 0: one try, so a wrong address fails at once. `cancel`
        (a pipeline's stop) ends that wait with the error at once."""
        self.spec = spec
        self.name = without_password(str(spec))
        self.give_up_after_s = give_up_after_s  # a stream lost this long ends the run (None: reconnect for ever)
        self.backoff = backoff_s
        self.reconnects = 0
        self._lock = threading.Condition()
        self._latest: np.ndarray | None = None
        self._latest_at: float | None = None  # wall clock of the newest frame
        self._sequence = 0
        self._stop = threading.Event()
        self._failed: str | None = None
        self._open_timeout = open_timeout_s
        capture, first = self._first_frame(wait_s, cancel or threading.Event())
        try:
            check_pixels(first.shape[1], first.shape[0], self.name)
        except MaskwatchError:
            capture.release()
            raise
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 120 else 25.0
        self.size = (first.shape[1], first.shape[0])
        self._latest, self._latest_at, self._sequence = first, time.time(), 1
        self.started = self._latest_at  # frames are timed by their arrival (received_at), from the first
        self._thread = threading.Thread(target=self._read_loop, args=(capture,), daemon=True, name="maskwatch-reader")
        self._thread.start()

    def _first_frame(self, wait_s: float, cancel: threading.Event) -> tuple[cv2.VideoCapture, np.ndarray]:
        """The opened capture and its first frame, tried again with backoff for up to `wait_s` seconds."""
        deadline, delay = time.monotonic() + wait_s, self.backoff[0]
        while True:
            capture = self._open()
            ok, first = capture.read() if capture is not None else (False, None)
            if ok and first is not None:
                return capture, first
            if capture is not None:
                capture.release()
                problem = f"{self.name}: opened, but no frame arrived"
            elif isinstance(self.spec, int) or str(self.spec).isdigit():
                problem = (f"webcam {self.spec}: cannot open it (is a camera connected as /dev/video{self.spec}, may "
                           f"this user read it (the `video` group), and is no other program using it? "
                           f"`ls -l /dev/video*` lists them)")
            else:
                problem = f"{self.name}: cannot open the camera or stream (is the address right and reachable?)"
            left = deadline - time.monotonic()
            if left <= 0:
                raise MaskwatchError(problem + (f"; tried for {wait_s:g} s (--wait-for-camera)" if wait_s else ""))
            pause = min(delay, left)
            log.warning("%s; trying again in %.1f s (waiting up to %.1f s more, --wait-for-camera)", problem, pause,
                        left)
            if cancel.wait(pause):
                raise MaskwatchError(f"{problem}; stopped while waiting for it")
            delay = min(delay * 2, self.backoff[1])

    def _open(self) -> cv2.VideoCapture | None:
        with opencv_quiet():  # the source says itself what went wrong
            capture = cv2.VideoCapture(self.spec) if isinstance(self.spec, int) else cv2.VideoCapture(
                self.spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._open_timeout * 1000),
                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._open_timeout * 1000)])
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    def _read_loop(self, capture: cv2.VideoCapture) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            ok, image = capture.read() if capture is not None else (False, None)
            if ok and image is not None:
                refusal = self._refusal(image)
                if refusal:
                    capture.release()
                    self._fail(refusal)
                    return
                delay = self.backoff[0]
                with self._lock:
                    self._latest, self._latest_at = image, time.time()
                    self._sequence += 1
                    self._lock.notify_all()
                continue
            if capture is not None:
                capture.release()
                log.warning("%s: stream dropped; reconnecting", self.name)
            gap = time.time() - (self._latest_at or 0.0)  # since the last frame (a read may wait its timeout)
            if self.give_up_after_s is not None and gap >= self.give_up_after_s:
                self._fail(f"{self.name}: no frame for {gap:.0f} s; given up (--give-up-after "
                           f"{self.give_up_after_s:g})")
                return
            left = None if self.give_up_after_s is None else self.give_up_after_s - gap
            self._stop.wait(delay if left is None else min(delay, left))  # (the back-off ends at the limit: a run
            delay = min(delay * 2, self.backoff[1])  # given up after 8 s took 16 before)
            capture = self._open()
            if capture is not None:
                self.reconnects += 1
                log.warning("%s: reconnected (reconnect #%d)", self.name, self.reconnects)

    def _refusal(self, image: np.ndarray) -> str | None:
        """Why a frame cannot go on, or None: the stream must keep the size it was opened with (the writer, the
        zones and the tracker assume it), which also keeps it under the pixel limit checked then."""
        height, width = image.shape[:2]
        if (width, height) == self.size:
            return None
        try:
            check_pixels(width, height, self.name)
        except MaskwatchError as exc:
            return f"{exc}; the stream was stopped there"
        return (f"{self.name}: the frames are now {width}x{height} pixels, not {self.size[0]}x{self.size[1]} as "
                f"when the stream was opened (a reconnect to another setting?); stopped there, start again to follow "
                f"the new size")

    def _fail(self, reason: str) -> None:
        self._failed = reason
        log.error(reason)
        with self._lock:
            self._lock.notify_all()

    def frames(self) -> Iterator[Frame]:
        seen, index = 0, 0
        while not self._stop.is_set():
            with self._lock:
                self._lock.wait_for(lambda: self._sequence != seen or self._failed or self._stop.is_set(), timeout=1.0)
                if self._failed:
                    self.ended_early = self._failed
                    return
                if self._stop.is_set():
                    return
                fresh = self._sequence != seen
                if fresh:
                    if seen:
                        self.dropped += self._sequence - seen - 1
                    seen, image, received_at = self._sequence, self._latest, self._latest_at
            if not fresh:
                if self.on_wait is not None:  # (outside the lock: it publishes events)
                    self.on_wait()
                continue
            yield Frame(index, (received_at or time.time()) - self.started, image, received_at)
            index += 1

    def receiving(self) -> bool:
        """A frame arrived within NO_FRAME_DOWN_S (or four frame intervals of a slow camera): else the stream is
        down, as the pipeline's camera.down says (video/outage.py)."""
        at = self._latest_at
        return at is not None and time.time() - at < max(NO_FRAME_DOWN_S, 4 / self.fps) and not self._failed

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()

    def close(self) -> None:
        self.stop()
        self._thread.join(timeout=5)


class LoopingSource(FrameSource):
    """A video file (or folder of frames) played as if it were a live camera, for demos and tests: at its own
    frame rate, from the start again when it ends, and skipping frames when the reader falls behind, as a
    camera's newest-frame reader does. Without the pacing a file would take all the CPU it can get."""

    live = True

    RETRY_S = 1.0  # a file gone (moved, being replaced) is looked for again this often, as a camera reconnects

    def __init__(self, open_once: Callable[[], FrameSource], name: str):
        self.open_once, self.name = open_once, name
        self._current: FrameSource | None = open_once()
        self.fps, self.size = self._current.fps, self._current.size
        self.loops = self.reconnects = 0
        self._stop = threading.Event()
        self._missing = False

    def receiving(self) -> bool:
        return not self._missing

    def _reopen(self) -> FrameSource | None:
        """The file again, for the next loop; while it cannot be opened (moved away, being copied), said once and
        tried every RETRY_S with `on_wait` called (camera.down after a while), as a camera that dropped. None
        when stopped meanwhile."""
        while not self._stop.is_set():
            try:
                source = self.open_once()
            except MaskwatchError as exc:
                if not self._missing:
                    log.warning("%s: cannot be opened again (%s); trying every %.0f s", self.name, exc, self.RETRY_S)
                self._missing = True
                if self.on_wait is not None:
                    self.on_wait()
                self._stop.wait(self.RETRY_S)
                continue
            if self._missing:
                self._missing = False
                self.reconnects += 1
                log.warning("%s: back; playing it again", self.name)
            return source
        return None

    def frames(self) -> Iterator[Frame]:
        period = 1 / self.fps
        started = time.monotonic()
        due_index = yielded = 0
        while not self._stop.is_set():
            reconnects = self.reconnects
            source = self._current or self._reopen()
            self._current = None
            if source is None:
                return
            if self.reconnects != reconnects:  # back after an outage: its time passed, no frames are owed for it
                due_index = max(due_index, int((time.monotonic() - started) / period))
            try:
                for frame in source.frames():
                    due = started + due_index * period
                    due_index += 1
                    if time.monotonic() > due + period:
                        self.dropped += 1
                        continue  # late: the reader is behind, as with a camera, only the newest frame counts
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                    yield Frame(yielded, due - started, frame.image, time.time())
                    yielded += 1
            finally:
                source.close()
            self.loops += 1

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._current is not None:
            self._current.close()
            self._current = None


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

    @property
    def skipped(self) -> str | None:  # type: ignore[override]
        return self.source.skipped

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
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stop.set()
        self.source.stop()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():  # stuck in a read (a dead network drive): closing under it could crash
                log.warning("the decoder thread did not stop within 10 s; its file is left open")
                return
        self.source.close()


def is_live_spec(spec: str) -> bool:
    """A webcam index or a stream URL (not a file or folder)."""
    return spec.isdigit() or "://" in spec


def open_source(spec: str, folder_fps: float = FOLDER_FPS, give_up_after_s: float | None = None,
                loop: bool = False, wait_s: float = 0.0, cancel: threading.Event | None = None) -> FrameSource:
    """A webcam index ('0'), a URL (rtsp://, http://), a folder of frames or a video file; with `loop`, a file or
    folder plays on repeat at its own frame rate, like a live camera (the server's cameras). give_up_after_s: a
    live source lost this long ends (None: it reconnects for ever); wait_s: how long a live source that is not up
    yet is tried again before the error (`cancel` ends the wait)."""
    if is_live_spec(spec):
        return LiveSource(int(spec) if spec.isdigit() else spec, give_up_after_s=give_up_after_s, wait_s=wait_s,
                          cancel=cancel)
    path = Path(spec)
    if path.is_dir():
        return LoopingSource(lambda: FolderSource(path, folder_fps), spec) if loop else FolderSource(path, folder_fps)
    if path.is_file():
        return LoopingSource(lambda: FileSource(path), spec) if loop else FileSource(path)
    raise MaskwatchError(f"{without_password(spec)}: no such file or folder, and not a camera index or URL")
