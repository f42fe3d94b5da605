"""The video pipeline: frames in, detections tracked and voted, an annotated H.264 video, counts and events out.

    from maskwatch.video import watch
    summary = watch("door.mp4", out="door_annotated.mp4")
    print(summary.people, summary.compliance)
"""

from __future__ import annotations

import csv
import json
import logging
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import supervision as sv

from maskwatch.annotate import annotate
from maskwatch.classes import DISPLAY_NAMES, compliance_of
from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.video.events import EventStore
from maskwatch.video.sources import FrameSource, open_source
from maskwatch.video.tracking import MIN_TRACK_FRAMES, FaceTracker
from maskwatch.video.writer import H264Writer

log = logging.getLogger(__name__)


@dataclass
class WatchOptions:
    every: int = 1  # detect on every Nth frame; boxes are carried over in between
    max_fps: float | None = None  # process at most this many frames per second (live sources)
    blur_faces: bool = False
    window_s: float = 10.0  # length of the counting windows stored in the database
    detect_conf: float = 0.1  # detections passed to the tracker (ByteTrack uses low scores to keep tracks)
    min_face_score: float = 0.2  # face candidates below this are not classified: fewer crops per frame
    draw_conf: float = 0.4
    min_track_frames: int = MIN_TRACK_FRAMES  # tracks seen fewer times are not counted as people
    max_frames: int | None = None
    show: bool = False


@dataclass
class WatchSummary:
    source: str
    frames: int = 0
    detected_frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    people: dict[str, int] = field(default_factory=dict)
    compliance: float | None = None  # share of people wearing a mask correctly
    status: str = "finished"  # finished, interrupted, ended_early, failed
    message: str | None = None
    output: str | None = None
    database: str | None = None
    run_id: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def draw_counts(image: np.ndarray, people: dict[str, int]) -> np.ndarray:
    """The running counts in a band at the top of the frame."""
    compliance = compliance_of(people)
    parts = [f"{DISPLAY_NAMES.get(k, k)} {v}" for k, v in people.items()]
    text = "people: " + (", ".join(parts) if parts else "none yet")
    if compliance is not None:
        text += f" | compliance {compliance:.0%}"
    scale = max(0.4, image.shape[1] / 1400)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(image, (0, 0), (min(image.shape[1], tw + 12), th + base + 10), (0, 0, 0), -1)
    cv2.putText(image, text, (6, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


class VideoPipeline:
    def __init__(self, detector: Detector | None = None, options: WatchOptions | None = None,
                 database: Path | None = None):
        self.detector = detector or Detector.load()
        self.options = options or WatchOptions()
        self.database = database
        self._blur = sv.BlurAnnotator(kernel_size=25)

    def people(self, tracker: FaceTracker) -> dict[str, int]:
        counted = [t.label for t in tracker.tracks.values() if t.frames >= self.options.min_track_frames]
        counts = Counter(counted)
        return {c: counts.get(c, 0) for c in self.detector.classes}

    def render(self, image: np.ndarray, tracked: sv.Detections, people: dict[str, int]) -> np.ndarray:
        shown = tracked[tracked.confidence >= self.options.draw_conf] if len(tracked) else tracked
        out = self._blur.annotate(image.copy(), tracked) if self.options.blur_faces and len(tracked) else image
        return draw_counts(annotate(out, shown, self.detector.classes), people)

    def run(self, source: str | FrameSource, out: Path | None = None,
            on_progress: Callable[[WatchSummary, int | None], None] | None = None) -> WatchSummary:
        opts = self.options
        frames_source = open_source(source) if isinstance(source, str) else source
        name = source if isinstance(source, str) else type(source).__name__
        summary = WatchSummary(source=str(name), output=str(out) if out else None,
                               database=str(self.database) if self.database else None)
        tracker = FaceTracker(self.detector.classes, frames_source.fps / max(1, opts.every))
        writer = H264Writer(out, frames_source.size, frames_source.fps) if out else None
        store = EventStore(self.database) if self.database else None
        run_id = store.start_run(str(name)) if store else None
        summary.run_id = run_id
        tracked = sv.Detections.empty()
        window_start, window_tracks = 0.0, {}
        started = time.perf_counter()
        previous_handlers = _stop_signals_as_interrupt()
        try:
            for frame in frames_source.frames():
                tick = time.perf_counter()
                if frame.index % opts.every == 0:
                    detections = self.detector(frame.image, min_score=opts.detect_conf,
                                               min_face_score=opts.min_face_score)
                    tracked = tracker.update(detections, frame.time_s, frame.index)
                    summary.detected_frames += 1
                    for tid, label in zip(tracked.tracker_id, tracked.data.get("class_name", [])):
                        if tid >= 0:
                            window_tracks[int(tid)] = str(label)
                people = self.people(tracker)
                if writer or opts.show:
                    image = self.render(frame.image, tracked, people)
                    if writer:
                        writer.write(image)
                    if opts.show:
                        _show(image)
                summary.frames += 1
                if frame.time_s - window_start >= opts.window_s:
                    if store:
                        store.save_window(run_id, window_start, Counter(window_tracks.values()))
                    window_start, window_tracks = frame.time_s, {}
                if on_progress:
                    on_progress(summary, frames_source.expected_frames)
                if opts.max_frames and summary.frames >= opts.max_frames:
                    break
                if opts.max_fps:
                    time.sleep(max(0.0, 1 / opts.max_fps - (time.perf_counter() - tick)))
            if frames_source.ended_early:
                summary.status, summary.message = "ended_early", frames_source.ended_early
        except KeyboardInterrupt:
            summary.status, summary.message = "interrupted", "stopped by the user; output finished cleanly"
            log.warning(summary.message)
        except Exception as exc:
            summary.status, summary.message = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            frames_source.close()
            if writer:
                writer.close()
            summary.seconds = time.perf_counter() - started
            summary.fps = summary.frames / summary.seconds if summary.seconds else 0.0
            summary.people = self.people(tracker)
            summary.compliance = compliance_of(summary.people)
            if store:
                if window_tracks:
                    store.save_window(run_id, window_start, Counter(window_tracks.values()))
                store.save_tracks(run_id, list(tracker.tracks.values()))
                store.finish_run(run_id, summary.frames, summary.status, summary.message)
                store.close()
            if out:
                write_summary(summary, tracker, Path(out))
        return summary


def write_summary(summary: WatchSummary, tracker: FaceTracker, out: Path) -> None:
    """JSON summary and a CSV of tracks beside the video."""
    out.with_suffix(".json").write_text(json.dumps(summary.as_dict(), indent=2))
    with out.with_suffix(".tracks.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["track_id", "label", "first_seen_s", "last_seen_s", "frames", "best_score", "votes"])
        for t in tracker.tracks.values():
            writer.writerow([t.track_id, t.label, f"{t.first_seen_s:.2f}", f"{t.last_seen_s:.2f}", t.frames,
                             f"{t.best_score:.3f}", json.dumps({k: round(v, 3) for k, v in t.votes.items()})])


def _stop_signals_as_interrupt() -> dict:
    """Ctrl-C and SIGTERM finish the output cleanly. SIGINT is set explicitly too: a process started in the
    background by a shell inherits it ignored. Only possible on the main thread (elsewhere: nothing changes)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:
        pass
    return previous


def _show(image: np.ndarray) -> None:
    try:
        cv2.imshow("maskwatch", image)
        cv2.waitKey(1)
    except cv2.error as exc:
        raise MaskwatchError("--show needs a display and an OpenCV built with GUI support "
                             "(this install has opencv-python-headless); write --out instead") from exc


def watch(source: str, out: str | Path | None = None, database: str | Path | None = None,
          detector: Detector | None = None, **options) -> WatchSummary:
    """Run the pipeline on a source; options are WatchOptions fields."""
    pipeline = VideoPipeline(detector, WatchOptions(**options), Path(database) if database else None)
    return pipeline.run(source, Path(out) if out else None)
