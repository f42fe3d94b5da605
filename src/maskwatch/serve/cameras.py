"""Live cameras in the server (`maskwatch serve --camera NAME=SOURCE` or `--config cameras.yaml`).

Each camera runs the video pipeline of `maskwatch watch` on its own thread, with the sinks of its config (the
events database, webhooks, MQTT) plus a LiveView, which keeps what the page and the API show: the latest annotated
frame as JPEG, the frame and detection rates, the counts. A camera keeps running when no browser is open; a
stream that drops reconnects (the pipeline's live source), a camera that cannot be opened is retried with
back-off, and a camera that fails is logged and shown as such while the server and the other cameras go on.

The CPU is shared fairly: all cameras take turns at the detector, first come first served (a FairGate), so on two
cores two cameras each keep up at a reduced detection rate (a live source hands over only its newest frame)
instead of one starving the other. The page shows each camera's real rates.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import cv2

from maskwatch.classes import compliance_of
from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import class_counts
from maskwatch.serve.hub import EventHub, LatestBoard
from maskwatch.video.bus import FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.config import CameraConfig, load_config
from maskwatch.video.events import PERSON_UNMASKED, Event
from maskwatch.video.redact import without_password
from maskwatch.video.sources import FrameSource, is_live_spec, open_source
from maskwatch.video.retention import Retention, check_retention_days

log = logging.getLogger(__name__)

CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
LIVE, RECONNECTING, STOPPED = "live", "reconnecting", "stopped"


# -- setup: what `maskwatch serve` was asked for --

@dataclass
class CameraSetup:
    """The cameras of one server and where their events go (one database, so the API can read them all)."""

    cameras: list[CameraConfig]
    db: Path | None
    retention_days: float | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        check_retention_days(self.retention_days)
        if self.retention_days is not None and self.db is None:
            raise MaskwatchError("--retention-days needs an events database: give --db, --camera or --config")


def parse_camera(spec: str) -> CameraConfig:
    """`NAME=SOURCE` as given to `serve --camera`: a webcam index, a stream URL, or a video file (played on
    repeat)."""
    name, sep, source = spec.partition("=")
    if not sep or not name.strip() or not source.strip():
        raise MaskwatchError(f"--camera {spec!r}: expected NAME=SOURCE, e.g. door=rtsp://192.168.1.20/stream, "
                             f"hall=0 (a webcam) or demo=clip.mp4 (a file, played on repeat)")
    return CameraConfig(name=name.strip(), source=source.strip())


def check_camera(camera: CameraConfig) -> None:
    """Refuse a camera the server cannot run: a name unfit for its URLs, a video file that is not there; then the checks
    that `watch` makes."""
    if not camera.name or not CAMERA_NAME.match(camera.name):
        raise MaskwatchError(f"camera name {camera.name!r}: use 1-40 letters, digits, '-', '_' or '.' "
                             f"(it is part of the camera's URLs), starting with a letter or digit")
    if not is_live_spec(camera.source) and not Path(camera.source).exists():
        raise MaskwatchError(f"camera {camera.name!r}: {camera.source}: no such video file or folder "
                             f"(or give a webcam index such as 0, or an rtsp:// / http:// URL)")
    camera.check()  # every, scale, summary_every, ...: the same checks as `watch`


def setup_from_options(cameras: list[str] | None, config: Path | None, db: Path | None,
                       retention_days: float | None, threads: int | None = None,
                       **overrides: Any) -> CameraSetup:
    """The server's cameras from `--config` and `--camera NAME=SOURCE`, with the command line's options over
    the file's (as `watch` does). The server keeps no video file and never opens a window (`out`, `show` and
    `max_frames` of the config are for `watch`); all cameras write to one database: `--db`, else the one the
    config names."""
    found: dict[str, CameraConfig] = dict(load_config(config)) if config else {}
    for spec in cameras or []:
        camera = parse_camera(spec)
        if camera.name in found:
            raise MaskwatchError(f"--camera {spec!r}: there is already a camera named {camera.name!r}")
        found[camera.name] = camera
    chosen = []
    for camera in found.values():
        camera = camera.with_overrides(**overrides)
        check_camera(camera)
        if camera.out or camera.show or camera.max_frames:
            log.warning("camera %r: out, show and max_frames are for `maskwatch watch`; the server ignores them",
                        camera.name)
        chosen.append(replace(camera, out=None, show=False, max_frames=None))
    if db is None and chosen:
        databases = sorted({str(c.db) for c in chosen if c.db is not None})
        if len(databases) > 1:
            raise MaskwatchError(f"the cameras name different databases ({', '.join(databases)}); the server keeps "
                                 f"all events in one: give --db")
        db = Path(databases[0]) if databases else None
        if db is None:
            raise MaskwatchError("the cameras name no database (db: null); the server needs one: give --db")
    return CameraSetup([replace(c, db=db) for c in chosen], db, retention_days, threads)


# -- sharing the CPU --

class FairGate:
    """A ticket lock: whoever asked first goes first. A plain lock lets the thread that just released it take it
    again at once, so one camera could keep the detector; with tickets, cameras alternate."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> "FairGate":
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._turn.wait_for(lambda: self._serving == ticket)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._turn:
            self._serving += 1
            self._turn.notify_all()

    @property
    def waiting(self) -> int:
        """Callers queued behind the one at the detector."""
        with self._turn:
            return max(0, self._next_ticket - self._serving - 1)


class TakingTurns:
    """A detector that waits for its turn at the gate: what each camera's pipeline calls. It shows the pipeline
    what the detector has of the video path's parts (its scale policy and head settings, the face finder and the
    head's looks apart: video/frame_detector.py), each call through the gate, so that a camera of the server
    chooses its scale and reuses settled faces' classes as `maskwatch watch` does."""

    PASSED = ("classes", "policy", "config")  # read as they are
    GATED = ("find_faces", "refine")  # called at the gate

    def __init__(self, detector: Any, gate: FairGate):
        self.detector, self.gate = detector, gate

    def __getattr__(self, name: str) -> Any:  # only for what is not set on the instance
        if name not in self.PASSED + self.GATED:
            raise AttributeError(name)
        value = getattr(self.detector, name)  # AttributeError where the detector lacks it (a one-stage model)
        if name in self.PASSED:
            return value

        def gated(*args, **kwargs):
            with self.gate:
                return value(*args, **kwargs)

        return gated

    def __call__(self, image, **kwargs):
        with self.gate:
            return self.detector(image, **kwargs)


# -- what the page sees of a camera --

@dataclass(frozen=True)
class LiveFrame:
    """A camera's latest annotated frame, as the page and the MJPEG stream get it (LiveView puts it on the camera's
    board)."""

    jpeg: bytes
    received_at: float  # wall clock (Unix s) when the source delivered the frame: latency is measured from here
    index: int


class LiveView(Sink):
    """A peer on the camera's event bus: rates and counts for the API, the latest annotated frame as JPEG for
    the page (every frame while someone watches the stream, a few a second while the grid polls, one a second
    otherwise), and every event to the event hub."""

    name = "live view"
    RATE_WINDOW_S = 5.0

    def __init__(self, camera: str, hub: EventHub, board: LatestBoard[LiveFrame],
                 frame_interval: Callable[[], float], jpeg_quality: int = 80):
        self.camera, self.hub, self.board = camera, hub, board
        self.frame_interval, self.jpeg_quality = frame_interval, jpeg_quality
        self.stats: dict[str, Any] = {}
        self.last_alert: dict[str, Any] | None = None
        self.run: RunInfo | None = None
        self._history: deque[tuple[float, int, int]] = deque()
        self._encoded_at = self._zones_at = 0.0
        self._zones: dict = {}

    def open(self, run: RunInfo) -> None:
        self.run = run
        self._history.clear()
        self._encoded_at = self._zones_at = 0.0

    def frame(self, view: FrameView) -> None:
        now = time.monotonic()
        summary = view.summary
        self._history.append((now, summary.frames, summary.detected_frames))
        while now - self._history[0][0] > self.RATE_WINDOW_S:
            self._history.popleft()
        since, frames_then, detected_then = self._history[0]
        span = now - since
        if now - self._zones_at >= 1.0:
            self._zones, self._zones_at = view.zone_counts(), now
        present = class_counts(view.confirmed, list(view.people))  # counted people, one box each, as elsewhere
        received_at = view.frame.received_at or time.time()
        self.stats = {  # replaced whole, never changed in place: readers on other threads see one state
            "frames": summary.frames, "detected_frames": summary.detected_frames,
            "frames_per_s": round((summary.frames - frames_then) / span, 2) if span >= 1 else None,
            "detections_per_s": round((summary.detected_frames - detected_then) / span, 2) if span >= 1 else None,
            "people": dict(view.people), "compliance": compliance_of(view.people),
            "present": present,
            "zones": self._zones.get("zones", {}), "lines": self._zones.get("lines", {}),
            "last_frame_at": received_at}
        if now - self._encoded_at >= self.frame_interval():
            ok, jpeg = cv2.imencode(".jpg", view.annotated(), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                self.board.put(LiveFrame(jpeg.tobytes(), received_at, view.frame.index))
                self._encoded_at = now

    def event(self, event: Event) -> None:
        payload = event.as_dict()
        self.hub.publish(payload)
        if event.type == PERSON_UNMASKED:
            self.last_alert = {k: v for k, v in payload.items() if k != "snapshot"}

    def close(self, end: RunEnd) -> None:
        self._history.clear()


# -- one camera --

class CameraWorker:
    """One camera on its own thread: open the source, run the pipeline, and again after a failure, with
    back-off, until the server stops. Only a setup the user must fix (a zone outside the picture, a model that
    does not load) stops it for good, with the reason in `message`."""

    STREAM_FPS = 15.0  # most frames a second encoded while someone watches the live stream
    POLL_INTERVAL_S = 0.5  # while the grid polls snapshots
    IDLE_INTERVAL_S = 1.0  # while nobody looks: the snapshot stays fresh for the API
    WATCH_HOLD_S = 5.0

    def __init__(self, config: CameraConfig, detector_for: Callable[[CameraConfig], Any], hub: EventHub,
                 backoff_s: tuple[float, float] = (1.0, 30.0)):
        self.config = config
        self.name: str = config.name or "camera"
        self.detector_for = detector_for
        self.backoff = backoff_s
        self.board: LatestBoard[LiveFrame] = LatestBoard()
        self.view = LiveView(self.name, hub, self.board, self._frame_interval)
        self.message: str | None = "connecting"
        self._source: FrameSource | None = None
        self._stop = threading.Event()
        self._stopped = False
        self._streamed_until = self._polled_until = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"maskwatch-camera-{self.name}")

    # who is looking decides how often a frame is encoded
    def streamed(self) -> None:
        self._streamed_until = time.monotonic() + self.WATCH_HOLD_S

    def polled(self) -> None:
        self._polled_until = time.monotonic() + self.WATCH_HOLD_S

    def _frame_interval(self) -> float:
        now = time.monotonic()
        if now < self._streamed_until:
            return 1 / self.STREAM_FPS
        return self.POLL_INTERVAL_S if now < self._polled_until else self.IDLE_INTERVAL_S

    @property
    def status(self) -> str:
        if self._stopped or self._stop.is_set():
            return STOPPED
        source = self._source
        if source is None or not source.receiving() or not self.view.stats:
            return RECONNECTING
        return LIVE

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()
        source = self._source
        if source is not None:
            source.stop()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        delay = self.backoff[0]
        try:
            while not self._stop.is_set():
                try:
                    source = open_source(self.config.source, loop=True)
                except Exception as exc:  # unreachable now; the camera may come up later
                    self.message = f"cannot open the source: {exc}; retrying in {delay:.0f} s"
                    log.warning("camera %s: %s", self.name, self.message)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay = self.backoff[0]
                self._source = source
                if self._stop.is_set():
                    source.close()
                    break
                try:
                    self.message = None
                    pipeline = self.config.pipeline(self.detector_for(self.config))
                    pipeline.sinks.append(self.view)
                    summary = pipeline.run(source)
                    if not self._stop.is_set():
                        self.message = f"the source ended ({summary.status}: {summary.message or 'no message'}); " \
                                       f"starting again"
                        log.warning("camera %s: %s", self.name, self.message)
                except MaskwatchError as exc:
                    self.message = str(exc)
                    log.error("camera %s stopped: %s", self.name, exc)
                    return
                except Exception as exc:  # a bug or a broken stream: logged, and the camera starts again
                    self.message = f"failed ({type(exc).__name__}: {exc}); starting again in {delay:.0f} s"
                    log.exception("camera %s failed; starting again", self.name)
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                finally:
                    self._source = None
        finally:
            self._stopped = True
            if self._stop.is_set():
                self.message = "the server is stopping" if self.message is None else self.message

    def describe(self) -> dict[str, Any]:
        """The camera as `GET /v1/cameras` lists it."""
        stats = self.view.stats
        source = self._source
        run = self.view.run
        size = list(run.size) if run else None
        status = self.status
        message = self.message
        if status == RECONNECTING and message is None:
            message = "no frames from the source; reconnecting"
        down = status != LIVE  # rates and who is present now are not known while no frame comes (last_frame_at)
        return {"name": self.name, "status": status, "message": message,
                "source": without_password(self.config.source), "size": size,
                "source_fps": round(run.fps, 2) if run else None,
                "frames_per_s": 0.0 if down and stats else stats.get("frames_per_s"),
                "detections_per_s": 0.0 if down and stats else stats.get("detections_per_s"),
                "frames": stats.get("frames", 0), "detected_frames": stats.get("detected_frames", 0),
                "people": stats.get("people", {}), "present": {} if down else stats.get("present", {}),
                "compliance": stats.get("compliance"), "zones": stats.get("zones", {}),
                "lines": stats.get("lines", {}), "last_frame_at": stats.get("last_frame_at"),
                "last_alert": self.view.last_alert, "reconnects": getattr(source, "reconnects", 0),
                "run": run.run if run else None, "blur_faces": self.config.blur_faces,
                "event_snapshots": self.config.event_snapshots, "every": self.config.every,
                "zone_names": [z.name for z in self.config.zones], "line_names": [x.name for x in self.config.lines],
                "snapshot_url": f"/v1/cameras/{self.name}/snapshot.jpg",
                "stream_url": f"/v1/cameras/{self.name}/stream",
                "report_url": f"/v1/cameras/{self.name}/report"}


# -- all cameras --

class CameraRegistry:
    """The server's cameras, the detector they share, the event hub, and retention."""

    def __init__(self, setup: CameraSetup | None = None):
        self.setup = setup or CameraSetup([], None)
        self.hub = EventHub()
        self.gate = FairGate()
        self._detectors: dict[tuple[str, str], TakingTurns] = {}
        self._lock = threading.Lock()
        self.workers: dict[str, CameraWorker] = {
            c.name: CameraWorker(c, self.detector_for, self.hub) for c in self.setup.cameras if c.name}
        self.retention = (Retention(self.setup.db, self.setup.retention_days) if self.setup.retention_days
                          else None)

    @property
    def db(self) -> Path | None:
        return self.setup.db

    def detector_for(self, config: CameraConfig) -> TakingTurns:
        """One detector per model and scale, shared by the cameras that use it, behind the one gate."""
        key = (str(config.model), str(config.scale))
        with self._lock:
            if key not in self._detectors:
                detector = Detector.load(config.model, threads=self.setup.threads, scale=config.scale)
                self._detectors[key] = TakingTurns(detector, self.gate)
            return self._detectors[key]

    def get(self, name: str) -> CameraWorker | None:
        return self.workers.get(name)

    def classes_in_use(self) -> list[str]:
        """The classes of the models the cameras have loaded so far."""
        with self._lock:
            return [name for detector in self._detectors.values() for name in detector.classes]

    def start(self) -> None:
        if self.retention is not None:
            self.retention.start()
        for worker in self.workers.values():
            worker.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Every camera finishes its run (database rows closed, webhooks drained), in parallel."""
        if self.retention is not None:
            self.retention.stop()
        for worker in self.workers.values():
            worker.request_stop()
        deadline = time.monotonic() + timeout_s
        for worker in self.workers.values():
            worker.join(max(0.1, deadline - time.monotonic()))

