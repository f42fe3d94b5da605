"""Test clips made from real photos (a camera panning across a crowd photo, people at a door, faces crossing a
plain background), sources that play them as a camera would, and ways to run the pipeline on them while a test
acts: on a thread, or as a `maskwatch watch` process."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from maskwatch.video.sources import Frame, FrameSource


def pan_frames(photo: Path, size: tuple[int, int] = (640, 480), frames: int = 45, zoom: float = 2.0) -> list[np.ndarray]:
    image = cv2.imread(str(photo))
    big = cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    w, h = size
    if big.shape[1] < w or big.shape[0] < h:
        big = cv2.resize(big, (max(w, big.shape[1]), max(h, big.shape[0])))
    xs = np.linspace(0, big.shape[1] - w, frames).astype(int)
    y = (big.shape[0] - h) // 2
    return [big[y:y + h, x:x + w].copy() for x in xs]


def crowd_pan_frames(photos: list[Path], size: tuple[int, int], fps: float, seconds: float,
                     zoom: float) -> list[np.ndarray]:
    """A camera panning slowly across each crowd photo in turn (enlarged `zoom` times), `seconds` in all."""
    per_photo = max(2, int(round(seconds * fps / len(photos))))
    frames = [f for photo in photos for f in pan_frames(photo, size, per_photo, zoom)]
    return frames[:int(round(seconds * fps))]


def door_frames(photos: list[Path], size: tuple[int, int], fps: float, seconds: float, empty_s: float = 0.8,
                noise: float = 1.5, seed: int = 0) -> list[np.ndarray]:
    """A door camera: for each photo, the empty doorway (the photo blurred beyond recognition, still) for
    `empty_s`, then the people of the photo coming closer (a slow zoom to 1.15x) for the rest of its share of
    `seconds`. Every frame has a little sensor noise, as a camera's do."""
    w, h = size
    rng = np.random.default_rng(seed)
    per_photo = int(round(seconds * fps / len(photos)))
    empty = min(int(round(empty_s * fps)), per_photo // 3)
    frames = []
    for photo in photos:
        image = cv2.resize(cv2.imread(str(photo)), size, interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=max(w, h) / 20)
        frames += [blurred] * empty
        for i in range(per_photo - empty):
            zoom = 1 + 0.15 * i / max(1, per_photo - empty - 1)
            cw, ch = int(w / zoom), int(h / zoom)
            x, y = (w - cw) // 2, (h - ch) // 3
            frames.append(cv2.resize(image[y:y + ch, x:x + cw], size, interpolation=cv2.INTER_LINEAR))
    noisy = []
    for frame in frames[:int(round(seconds * fps))]:
        jitter = rng.normal(0, noise, frame.shape[:2] + (1,)).astype(np.float32)
        noisy.append(np.clip(frame.astype(np.float32) + jitter, 0, 255).astype(np.uint8))
    return noisy


def write_h264(frames: list[np.ndarray], path: Path, fps: float = 30.0) -> Path:
    """An H.264 MP4, as cameras and phones record."""
    from maskwatch.video.writer import H264Writer

    with H264Writer(path, (frames[0].shape[1], frames[0].shape[0]), fps, crf=18, preset="veryfast") as writer:
        for frame in frames:
            writer.write(frame)
    return path


def write_clip(frames: list[np.ndarray], path: Path, fps: float = 15.0, codec: str = "mp4v") -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def encode_clip(frames: list[np.ndarray], path: Path, fps: int = 12, rotation: int | None = None) -> Path:
    """An H.264 clip through PyAV, in the container the suffix names (MP4, MKV ...); `rotation` stores a display
    rotation (counterclockwise degrees) in it, as phones do for portrait video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def walk_through_frames(faces: list[np.ndarray], size: tuple[int, int] = (480, 320), frames: int = 60,
                        start_frames: tuple[int, ...] = (0, 25), span: int = 30) -> list[np.ndarray]:
    """Faces (BGR crops) crossing a plain background one after another: each enters at the left at its start
    frame, walks right for `span` frames and leaves. People entering and leaving a door's view."""
    w, h = size
    clip = []
    for index in range(frames):
        frame = np.full((h, w, 3), (150, 160, 165), np.uint8)
        for face, start in zip(faces, start_frames):
            t = index - start
            if not 0 <= t < span:
                continue
            fh, fw = face.shape[:2]
            x = int(-fw + (w + fw) * t / (span - 1))
            y = (h - fh) // 2
            x1, x2 = max(0, x), min(w, x + fw)
            if x2 > x1:
                frame[y:y + fh, x1:x2] = face[:, x1 - x:x2 - x]
        clip.append(frame)
    return clip


def face_crop(photo: Path, box, size: int = 110) -> np.ndarray:
    """A face from an annotated photo with some context around it (1.6x the box), resized to size x size."""
    image = cv2.imread(str(photo))
    x1, y1, x2, y2 = box
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.6
    crop = image[int(max(0, cy - side / 2)):int(cy + side / 2), int(max(0, cx - side / 2)):int(cx + side / 2)]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)


def glide(start: tuple[int, int], end: tuple[int, int], frames: int) -> list[tuple[int, int]]:
    """Top-left positions moving evenly from start to end over `frames` frames."""
    xs, ys = np.linspace(start[0], end[0], frames), np.linspace(start[1], end[1], frames)
    return [(int(x), int(y)) for x, y in zip(xs, ys)]


def paths_frames(people: list[tuple[np.ndarray, int, list[tuple[int, int]]]], size: tuple[int, int] = (480, 320),
                 frames: int = 60) -> list[np.ndarray]:
    """Faces moving on a plain background: each person is (face crop, first frame, top-left per frame from then);
    off its path a person is not in the picture."""
    w, h = size
    clip = []
    for index in range(frames):
        frame = np.full((h, w, 3), (150, 160, 165), np.uint8)
        for face, start, path in people:
            if 0 <= index - start < len(path):
                x, y = path[index - start]
                fh, fw = face.shape[:2]
                x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + fw), min(h, y + fh)
                if x2 > x1 and y2 > y1:
                    frame[y1:y2, x1:x2] = face[y1 - y:y2 - y, x1 - x:x2 - x]
        clip.append(frame)
    return clip


def crossing_people(masked: np.ndarray, unmasked: np.ndarray) -> tuple[list[np.ndarray], float]:
    """480x320 at 10 frames/s: a masked person walks right across x=240, stops, walks back (2 crossings) and
    vanishes at the left; then, lower in the picture, an unmasked person walks right across x=240 and out of the
    right edge (1 crossing). Returns the frames and the fps."""
    a = glide((10, 20), (330, 20), 16) + [(330, 20)] * 4 + glide((330, 20), (10, 20), 16)
    b = glide((10, 190), (330, 190), 16) + glide((350, 190), (480, 190), 6)
    return paths_frames([(masked, 0, a), (unmasked, 38, b)], size=(480, 320), frames=70), 10.0


class GatedSource(FrameSource):
    """Frames from a list that stop before chosen frames until the test opens the gate: the test acts (kills a
    server, reads the database) at a known point of a run that is still going, without sleeping."""

    def __init__(self, frames: list[np.ndarray], fps: float = 10.0, gates: tuple[int, ...] = ()):
        self.images, self.fps = frames, fps
        self.size = (frames[0].shape[1], frames[0].shape[0])
        self.expected_frames = len(frames)
        self.reached = {i: threading.Event() for i in gates}  # set when the pipeline waits at frame i
        self.gates = {i: threading.Event() for i in gates}  # set by the test to let it go on

    def frames(self):
        for index, image in enumerate(self.images):
            if index in self.gates:
                self.reached[index].set()
                if not self.gates[index].wait(timeout=300):
                    raise TimeoutError(f"the test never opened the gate at frame {index}")
            yield Frame(index, index / self.fps, image)

    def wait_at(self, index: int, timeout: float = 300) -> None:
        assert self.reached[index].wait(timeout), f"the pipeline never reached frame {index}"

    def open(self, index: int) -> None:
        self.gates[index].set()


def crossing_faces(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A masked and an unmasked face (BGR crops) from two training photos; the shipped model calls them so at
    0.9."""
    masked = face_crop(data_dir / "images" / "maksssksksss94.jpg", (110, 95, 171, 169))
    unmasked = face_crop(data_dir / "images" / "maksssksksss343.jpg", (85, 131, 232, 284))
    return masked, unmasked


def write_crossing_clip(data_dir: Path, folder: Path) -> Path:
    """crossing_people as an MJPG file (7 s at 10 frames/s, 480x320): a masked person, then an unmasked one
    (crossing_faces)."""
    frames, fps = crossing_people(*crossing_faces(data_dir))
    folder.mkdir(parents=True, exist_ok=True)
    return write_clip(frames, folder / "crossing.avi", fps=fps, codec="MJPG")


def write_pan_jpegs(photo: Path, folder: Path, frames: int = 30) -> Path:
    """A pan across a crowd photo at 640x480 as numbered JPEGs: the pattern an RTSP test camera plays in a loop."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(pan_frames(photo, size=(640, 480), frames=frames)):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame)
    return folder / "%03d.jpg"


class BackgroundRun:
    """`pipeline.run(source)` on a thread, while the test acts at the gates of a GatedSource."""

    def __init__(self, pipeline, source, *args):
        self.outcome: dict = {}
        self.thread = threading.Thread(target=self._run, args=(pipeline, source, *args), daemon=True)
        self.thread.start()

    def _run(self, pipeline, source, *args) -> None:
        try:
            self.outcome["summary"] = pipeline.run(source, *args)
        except BaseException as exc:  # raised again in the test by join()
            self.outcome["error"] = exc

    def join(self, timeout: float = 300):
        """The run's WatchSummary (or its exception, raised here)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not end"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["summary"]


def wait_for_progress(process: subprocess.Popen, frames: int, total: int, timeout: float = 120) -> str:
    """Read a `maskwatch watch` process's stderr until its tqdm bar shows `frames` of `total` done (or it ends);
    returns what was read, for the test's messages."""
    seen = ""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        seen += process.stderr.read(1)
        counts = re.findall(rf"(\d+)/{total}", seen[-200:])
        if counts and int(counts[-1]) >= frames:
            break
    return seen


class PacedSource(FrameSource):
    """Frames played at `fps` in wall time, as a camera sends them, read like a live source: the pipeline always
    gets the newest frame, and frames that came while it was busy are dropped (and counted)."""

    live = True

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0):
        self.images, self.fps = frames, fps
        self.size = (frames[0].shape[1], frames[0].shape[0])
        self.expected_frames = None
        self.dropped = 0

    def frames(self) -> Iterator[Frame]:
        started, taken, index = time.monotonic(), -1, 0
        while True:
            newest = int((time.monotonic() - started) * self.fps)
            if newest >= len(self.images):
                return
            if newest == taken:
                time.sleep(max(0.0, started + (newest + 1) / self.fps - time.monotonic()))
                continue
            self.dropped += max(0, newest - taken - 1)
            taken = newest
            yield Frame(index, newest / self.fps, self.images[newest])
            index += 1
