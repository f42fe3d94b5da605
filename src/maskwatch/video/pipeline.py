"""The video pipeline: frames in, faces detected, tracked and voted, zones checked, and everything published
on the event bus to its sinks (video file, database, window, progress, webhook, MQTT, your own).

    from maskwatch.video import watch, WebhookSink
    summary = watch("door.mp4", out="door_annotated.mp4", zones=["queue=100,200,400,200,400,470"],
                    sinks=[WebhookSink("http://127.0.0.1:8080/hook")])
    print(summary.people, summary.compliance, summary.zones)
"""

from __future__ import annotations

import logging
import numbers
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import numpy as np
import supervision as sv

from maskwatch.annotate import annotate, blur_boxes, draw_counts, draw_zones
from maskwatch.classes import compliance_of, say_what_classes_leave_unknown
from maskwatch.data.inputs import check_writable
from maskwatch.detector import Detector, OneStageDetector
from maskwatch.errors import MaskwatchError
from maskwatch.limits import MIN_FRAME_SIDE
from maskwatch.stop_signals import hold_stop_signals, restore_signals, stop_signals_as_interrupt
from maskwatch.video.bus import EventBus, FrameView, RunEnd, RunInfo, Sink
from maskwatch.video.camera_motion import CameraMotion
from maskwatch.video.emitter import EventEmitter
from maskwatch.video.frame_detector import VideoDetector
from maskwatch.video.motion import MotionGate
from maskwatch.video.outage import DOWN_AFTER_S, OutageWatch
from maskwatch.video.box_motion import BoxPredictor
from maskwatch.video.realtime import REALTIME, DetectSchedule, RealtimeSettings
from maskwatch.video.scene_cut import SceneCuts
from maskwatch.video.sinks import DatabaseSink, DisplaySink, ProgressSink, SummaryFilesSink, VideoFileSink
from maskwatch.predictions import FACE_CONFIDENCE
from maskwatch.thresholds import FOR_PEOPLE, LIVE_MIN_FACE_SCORE, TRACK_MIN_SCORE
from maskwatch.video.redact import without_password
from maskwatch.video.sources import (ALREADY_READ, ArraySource, Frame, FrameSource, ReadAhead, check_frame,
                                     is_live_spec, open_source)
from maskwatch.video.summary import COMPANION_SUFFIXES, WatchSummary
from maskwatch.video.tracking import MIN_TRACK_FRAMES, FaceTracker
from maskwatch.video.zones import Line, Zone, ZoneCounter, as_line, as_zone

log = logging.getLogger(__name__)

__all__ = ["VideoPipeline", "WatchOptions", "WatchSummary", "watch"]


def _whole(value, least: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # (numpy's and Fraction too)


# What each numeric option may be: a test and what to write instead. The one table: WatchOptions checks its
# fields by it, and a camera config file (video/config.py) its keys.
OPTION_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "every": (lambda v: v is None or _whole(v, 1), "a whole number, 1 or more, or left out (chosen from the "
                                                   "measured speed)"),
    "max_fps": (lambda v: v is None or (_number(v) and v > 0), "a number of frames per second above 0, or left out"),
    "max_frames": (lambda v: v is None or _whole(v, 1), "a whole number, 1 or more, or left out"),
    "window_s": (lambda v: _number(v) and v > 0, "a number of seconds above 0"),
    "summary_every": (lambda v: v is None or (_number(v) and v >= 0),
                      "a number of seconds (0 or empty: only when the run ends)"),
    "min_track_frames": (lambda v: _whole(v, 1), "a whole number, 1 or more"),
    **{name: (lambda v: _number(v) and 0 <= v <= 1, "a score from 0 to 1")
       for name in ("detect_conf", "min_face_score", "draw_conf")},
    "give_up_after_s": (lambda v: v is None or (_number(v) and v > 0),
                        "a number of seconds above 0, or left out (reconnect for ever)"),
    "camera_down_after_s": (lambda v: _number(v) and v > 0, "a number of seconds above 0"),
    "wait_for_camera_s": (lambda v: _number(v) and 0 <= v < float("inf"),
                          "a number of seconds, 0 or more (0: fail at once)"),
}
OPTION_FLAGS = {"every": "--every", "max_frames": "--max-frames", "max_fps": "--max-fps",
                "summary_every": "--summary-every", "window_s": "--window",
                "give_up_after_s": "--give-up-after", "wait_for_camera_s": "--wait-for-camera"}  # watch's options


@dataclass
class WatchOptions:
    """How one run watches (`watch`'s options); a value it cannot use is refused when the options are made."""

    every: int | None = None  # detect on every Nth frame; None: as often as the source's frame rate allows
    # (every frame when it can), not again on a still picture; faces are tracked in between (video/realtime.py)
    max_fps: float | None = None  # process at most this many frames per second (live sources)
    blur_faces: bool = False
    window_s: float = 10.0  # length of the counting windows stored in the database
    detect_conf: float = TRACK_MIN_SCORE  # detections passed to the tracker (ByteTrack uses low scores)
    min_face_score: float = LIVE_MIN_FACE_SCORE  # candidates below are not classified: fewer crops per frame
    draw_conf: float = FOR_PEOPLE.min_score
    min_track_frames: int = MIN_TRACK_FRAMES  # a track is a person (confirmed, counted) from this many frames
    max_frames: int | None = None
    show: bool = False
    summary_every: float | None = 30.0  # seconds between `counts` events (None: only at the end)
    event_snapshots: bool = False  # a JPEG of the face in person.* events
    keep_faces: bool = False  # snapshots unblurred
    realtime: RealtimeSettings = REALTIME  # the real-time policy's settings (benchmarks switch levers off)
    give_up_after_s: float | None = None  # a live stream lost this long ends the run (None: reconnect for ever)
    camera_down_after_s: float = DOWN_AFTER_S  # a live source without a frame this long: camera.down
    wait_for_camera_s: float = 0.0  # a live source not up at the start is tried this long (0: the error at once)

    def __post_init__(self):
        """Values the pipeline cannot use are refused now, not as a TypeError (or a silently odd run) later."""
        for name, (test, expected) in OPTION_CHECKS.items():
            if not test(getattr(self, name)):
                option = f" ({OPTION_FLAGS[name]})" if name in OPTION_FLAGS else ""
                raise MaskwatchError(f"{name}{option} is {getattr(self, name)!r}; expected {expected}")
        if self.keep_faces and not self.event_snapshots:
            log.warning("keep_faces (--keep-faces) is about event snapshots, and there are none without "
                        "event_snapshots (--event-snapshots): it changes nothing")
        elif self.keep_faces and self.blur_faces:  # a choice one may make (a private record), but never by mistake
            log.warning("blur_faces (--blur-faces) blurs the faces in the pictures, but keep_faces (--keep-faces) "
                        "keeps them sharp in the event snapshots (stored in the database and sent to the webhook "
                        "and MQTT)")


def shown_name(source: str | FrameSource) -> str:
    """A run's source as it is shown, logged, and stored in OUT.json and the database: never a camera's password or
    token; a FrameSource by its `name`, else its class."""
    if isinstance(source, str):
        return without_password(source)
    return str(getattr(source, "name", None) or type(source).__name__)


def check_video_out(source: str | FrameSource, out: str | Path, overwrite: bool) -> None:
    """Where the annotated video goes, refused before the source is read (not after it): not an MP4 name, the
    video being watched, a folder, an earlier run's video (without `overwrite`; a live camera's is set aside under
    its time instead), or a folder that cannot be written to."""
    given, out = str(out), Path(out)  # (a trailing / says a folder: Path drops it)
    if out.suffix.lower() != ".mp4":
        example = out / "video.mp4" if out.is_dir() or given.endswith(("/", os.sep)) \
            else out.with_suffix(".mp4")  # (a folder given: a file in it)
        raise MaskwatchError(f"{out}: the annotated video is an MP4; give it a .mp4 name (e.g. {example})")
    if isinstance(source, str) and Path(source).is_file() and Path(source).resolve() == out.resolve():
        raise MaskwatchError(f"--out {out} is the video being watched: the annotated video goes to another "
                             f"file (e.g. {out.with_name(out.stem + '_maskwatch.mp4')})")
    if out.is_dir():
        raise MaskwatchError(f"--out {out} is a folder: give the annotated video's file name (.mp4)")
    if not overwrite and (out.exists() or out.is_symlink()):
        if isinstance(source, str) and is_live_spec(source):  # (a service restarted after a lost stream:
            set_aside_earlier_video(out)  # refused, it would stop restarting)
        else:
            raise MaskwatchError(f"--out {out} exists (an earlier run's video?): give another name, or "
                                 f"--overwrite to replace it and its .json and .csv files")
    check_writable(out.parent, f"--out {out}")


def set_aside_earlier_video(out: Path) -> None:
    """A live camera's earlier recording at `out` (with its .json and .csv files) renamed with its time, so a
    watch restarted by its service manager records anew and keeps what it recorded before."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(out.lstat().st_mtime))
    moved = []
    for path in (out, *(out.with_suffix(suffix) for suffix in COMPANION_SUFFIXES)):
        if path.exists() or path.is_symlink():
            target = path.with_name(f"{out.stem}.{stamp}{path.name[len(out.stem):]}")
            path.rename(target)
            moved.append(target.name)
    log.warning("%s: an earlier recording was there; kept as %s (--overwrite replaces it instead)", out,
                ", ".join(moved))


def camera_name_of(source: str) -> str:
    """A default camera name: the file's stem, the stream's host and path (never its password), or the index."""
    if "://" in source:
        parts = urlsplit(source)
        return f"{parts.hostname or ''}{parts.path}".strip("/") or source.split("://")[0]
    return Path(source).stem if not source.isdigit() else f"camera{source}"


class VideoPipeline:
    """Watches one source: the frames come in, the detector runs on those the real-time policy picks, faces are
    tracked in between, and each run's events go to its sinks (the annotated video, the database, webhooks,
    MQTT, yours) as peers; `run()` returns its WatchSummary, `stop()` ends it from another thread."""

    def __init__(self, detector: Detector | OneStageDetector | None = None, options: WatchOptions | None = None,
                 database: Path | None = None, sinks: Iterable[Sink] = (), zones: Iterable[str | Zone] = (),
                 lines: Iterable[str | Line] = (), camera: str | None = None):
        self.detector = detector or Detector.load()
        self.options = options or WatchOptions()
        self.database = database
        self.sinks = list(sinks)
        self.zones = [as_zone(z) for z in zones]
        self.lines = [as_line(x) for x in lines]
        self.camera = camera
        self.stopping = threading.Event()  # set by stop(): checked before each frame
        self._reading: FrameSource | None = None  # the running source, which stop() also stops (a camera that is down)

    def stop(self) -> None:
        """End the run before its next frame, cleanly (video, database and sinks finished, status
        'interrupted'); from any thread, e.g. a server shutting down. Before the run starts: it ends at once. A
        stopped pipeline stays stopped (a run after it ends at once too): make a new one for the next source. The
        run's source is stopped too (FrameSource.stop), so a camera that is down is not waited for; a FrameSource
        of your own whose frames() waits must end that wait on stop() for the run to end at once."""
        self.stopping.set()
        source = self._reading
        if source is not None:
            source.stop()

    def render(self, image: np.ndarray, tracked: sv.Detections, people: dict[str, int],
               zones: ZoneCounter | None = None, counted: sv.Detections | None = None) -> np.ndarray:
        """The frame as drawn: faces whose class scores at least `draw_conf`, and every counted person (`counted`:
        the tracker follows faces by face confidence, so a person whose class is in doubt is counted and drawn)."""
        shown = tracked
        if len(tracked):
            drawn = tracked.confidence >= self.options.draw_conf
            if counted is not None and len(counted):
                drawn |= np.isin(tracked.tracker_id, counted.tracker_id)
            shown = tracked[drawn]
        out = blur_boxes(image.copy(), tracked.xyxy) if self.options.blur_faces and len(tracked) else image.copy()
        draw_counts(out, people)  # first, so the faces' labels stay readable where they overlap it
        if zones:
            draw_zones(out, *zones.drawables())
        return annotate(out, shown, self.detector.classes, copy=False)  # out is already this frame's copy

    def _unconfirmed(self, tracked: sv.Detections, emitter: EventEmitter, activation: float) -> bool:
        """Whether a face followed is not yet a person (seen on too few detections): motion gating waits for it, so
        someone standing still is counted as soon as when walking. A face new to the tracker has no id yet (-1): it
        counts when it is sure enough to start a track (`activation`: the tracker's own score, on how sure the
        detector is that it is a face); one that is not can never become a person, and is not waited for (else a
        faint face in view would keep every still frame detected)."""
        if len(tracked) == 0:
            return False
        ids = tracked.tracker_id if tracked.tracker_id is not None else np.full(len(tracked), -1)
        face_score = tracked.data.get(FACE_CONFIDENCE, tracked.confidence)
        waiting = (ids >= 0) | (face_score >= activation)
        return any(int(t) not in emitter.confirmed for t in ids[waiting])

    def _sinks(self, out: Path | None, on_progress: Callable | None) -> list[Sink]:
        """The built-in sinks this run asks for, then the caller's (the bus closes those that record the run,
        files and database, in two steps around the others: see EventBus.close)."""
        sinks: list[Sink] = []
        if out:
            sinks += [VideoFileSink(out, self.options.realtime), SummaryFilesSink(out)]
        if self.database:
            sinks.append(DatabaseSink(self.database, self.options.window_s))
        if self.options.show:
            sinks.append(DisplaySink())
        if on_progress:
            sinks.append(ProgressSink(on_progress))
        return sinks + self.sinks

    def run(self, source: str | Path | int | FrameSource, out: Path | None = None,
            on_progress: Callable[[WatchSummary, int | None], None] | None = None,
            overwrite: bool = False, handle_signals: bool = False) -> WatchSummary:
        """overwrite: an earlier run's video at `out` (with its .json and .csv files) is replaced; without it, it
        is refused (a live camera's recording cannot be made again). A Ctrl-C (KeyboardInterrupt) finishes the
        outputs cleanly and is raised again. handle_signals (the `watch` command's, on the main thread): SIGTERM
        and SIGHUP stop the run as Ctrl-C does, a second one while the outputs finish is held, and the run returns
        its summary (status "interrupted") instead of raising; a library's caller keeps its own handlers."""
        if self.stopping.is_set():
            return self._not_started(source, "stopped before it started; nothing written")
        try:
            run = self._start(source, out, on_progress, overwrite)
        except MaskwatchError:
            if self.stopping.is_set():  # (stop() while the source was opened: a camera waited for)
                return self._not_started(source, "stopped while its source was being opened; nothing written")
            raise
        summary = run.summary
        started = time.perf_counter()
        previous_handlers = stop_signals_as_interrupt() if handle_signals else {}
        try:
            for frame in run.source.frames():
                if self.stopping.is_set() or not self._step(run, frame):
                    break
            if self.stopping.is_set():  # (before a frame, or its source ended by stop())
                summary.status, summary.message = "interrupted", "stopped by stop(); output finished cleanly"
            else:
                self._say_how_the_source_ended(run)
        except KeyboardInterrupt:
            summary.status, summary.message = "interrupted", "stopped by the user; output finished cleanly"
            log.warning(summary.message)
            if not handle_signals:
                raise  # (once the outputs are finished, below)
        except Exception as exc:
            summary.status, summary.message = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if handle_signals:
                hold_stop_signals("the video, summary and events")  # a second Ctrl-C must not cut them short
            try:
                self._finish(run, started)
            finally:
                restore_signals(previous_handlers)
        return summary

    def _not_started(self, source: str | Path | int | FrameSource, why: str) -> WatchSummary:
        """The summary of a run stopped before its source was open: no frame, no output, no database row."""
        name = shown_name(str(source) if isinstance(source, (Path, int)) else source)
        return WatchSummary(source=name, camera=self.camera or camera_name_of(name), status="interrupted",
                            message=why)

    def _start(self, source: str | Path | int | FrameSource, out: Path | None,
               on_progress: Callable[[WatchSummary, int | None], None] | None, overwrite: bool) -> _Run:
        """The outputs checked, the source opened, this run's parts made and its sinks opened; what fails once the
        source is open closes it (sinks that cannot all open close themselves: EventBus.open)."""
        opts = self.options
        if isinstance(source, (Path, int)):  # a file's path, a webcam's index
            source = str(source)
        if not isinstance(source, (str, FrameSource)):
            raise MaskwatchError(f"watch takes a video file, folder, webcam index or stream URL (or a FrameSource), "
                                 f"not {type(source).__name__}; frames of your own: ArraySource(frames, fps)")
        if isinstance(source, ArraySource) and source.used:  # (said before any output is opened)
            raise MaskwatchError(ALREADY_READ)
        if out is not None:  # said before the video is read, not after it
            check_video_out(source, out, overwrite)
        say_what_classes_leave_unknown(tuple(self.detector.classes))
        frames_source = open_source(source, give_up_after_s=opts.give_up_after_s, wait_s=opts.wait_for_camera_s,
                                    cancel=self.stopping) if isinstance(source, str) else source
        name = shown_name(source)
        try:
            if not isinstance(source, str) and min(frames_source.size) < 1:
                raise MaskwatchError(f"{name}: its size is {frames_source.size}: a FrameSource sets `size` (width, "
                                     f"height) before frames are read")
            if out is not None and min(frames_source.size) < MIN_FRAME_SIDE:
                raise MaskwatchError(f"{name}: frames of {frames_source.size[0]}x{frames_source.size[1]} pixels "
                                     f"cannot be encoded as H.264 (at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE}); run "
                                     f"without --out")
            if isinstance(source, str) and not frames_source.live and opts.realtime.read_ahead:
                # (ours to thread; a caller's source is theirs)
                frames_source = ReadAhead(frames_source, opts.realtime.read_ahead)
            run = self._parts(frames_source, name, out, on_progress)
            run.check_frames = not isinstance(source, (str, ArraySource))  # (ArraySource checks its own)
            self._reading = frames_source
            if self.stopping.is_set():  # (stop() came while the parts were made: it may have missed the source)
                frames_source.stop()
            return run
        except BaseException:
            frames_source.close()
            raise

    def _parts(self, frames_source: FrameSource, name: str, out: Path | None,
               on_progress: Callable[[WatchSummary, int | None], None] | None) -> _Run:
        """What a run over this source is made of, its sinks opened."""
        opts, settings = self.options, self.options.realtime
        camera = self.camera or camera_name_of(name)
        summary = WatchSummary(source=name, camera=camera, run=uuid.uuid4().hex[:16],
                               output=str(out) if out else None,
                               database=str(self.database) if self.database else None, source_fps=frames_source.fps,
                               live=frames_source.live)
        zones = ZoneCounter(self.zones, self.lines, frames_source.size)
        tracker = FaceTracker(self.detector.classes, frames_source.fps / max(1, opts.every or 1))
        sinks = self._sinks(out, on_progress)
        run = _Run(
            name=name, source=frames_source, summary=summary, zones=zones, tracker=tracker,
            emitter=EventEmitter(camera, summary.run, self.detector.classes, zones, opts.min_track_frames,
                                 tracker.lost_after_s, opts.event_snapshots, opts.keep_faces),
            schedule=DetectSchedule(frames_source.fps, opts.every, name, frames_source.live, settings, opts.max_fps),
            motion=MotionGate(settings), panning=CameraMotion(frames_source.size, settings),
            cuts=SceneCuts(settings), finder=VideoDetector(self.detector, opts.detect_conf, opts.min_face_score,
                                                           settings),
            predictor=BoxPredictor(frames_source.size, settings), bus=EventBus(sinks))
        run.bus.open(RunInfo(camera, summary.run, name, frames_source.size, frames_source.fps,
                             tuple(z.name for z in self.zones), tuple(x.name for x in self.lines),
                             tuple(self.detector.classes)))
        summary.run_id = next((s.run_id for s in sinks if isinstance(s, DatabaseSink)), None)
        if frames_source.live:  # (its clock starts once the sinks are open: a broker's connect is not an outage)
            run.outage = OutageWatch(camera, run.emitter, run.bus, opts.camera_down_after_s, on_down=run.camera_down)
            frames_source.on_wait = run.outage.waiting
        return run

    def _step(self, run: _Run, frame: Frame) -> bool:
        """One frame: detected (or its faces moved on from the last detection), tracked, counted, published;
        False once the run has had its --max-frames."""
        opts, settings, summary = self.options, self.options.realtime, run.summary
        tick = time.perf_counter()
        if run.check_frames:  # (a FrameSource of the caller's: maskwatch's own give checked frames)
            check_frame(frame.image, frame.index, run.source.size, run.name)
        run.time_s, run.index = frame.time_s, frame.index
        if run.outage is not None:
            run.outage.frame(frame.time_s)
        needs_small = run.schedule.gates_motion or settings.compensate_camera or settings.scene_cuts
        small = run.motion.small(frame.image) if needs_small else None
        cut = small is not None and run.cuts.is_cut(small)
        shift = run.panning.shift(small) if small is not None and not cut else np.zeros(2, np.float32)
        if cut:  # the people of the old picture leave; nothing learnt from it carries over
            run.new_scene(frame.time_s, frame.index)
            summary.scene_cuts += 1
        retry = run.finder.retry  # faces lost at a downscale: found again at once, still picture or not
        fresh, run.resumed = run.resumed, False  # the first frame after camera.down
        detect = cut or retry or fresh or run.schedule.due(frame.index, frame.time_s)
        if (detect and not cut and not retry and not fresh and run.schedule.may_skip_still(frame.time_s)
                and not self._unconfirmed(run.tracked, run.emitter, run.tracker.min_confidence)
                and not run.motion.moved(small)):
            detect = False  # nothing moved since the last detection: its faces are still right
            run.schedule.still_skips += 1
            run.predictor.hold()
        if detect:
            detections = run.finder(frame.image, frame.time_s)
            run.tracked = run.tracker.update(detections, frame.time_s, frame.index, run.panning.offset + shift)
            run.predictor.detected(run.tracked, frame.time_s, run.panning.offset + shift)
            run.schedule.detected(frame.time_s)
            if small is not None:
                run.motion.detected(small)
                run.panning.detected(small, shift)
            summary.detected_frames += 1
            for event in run.emitter.detection_frame(frame, run.tracked, run.tracker.tracks):
                run.bus.publish(event)
        else:
            run.tracked = run.predictor.at(frame.time_s, run.panning.offset + shift)
            summary.tracked_frames += 1
        if opts.summary_every and frame.time_s - run.last_counts_s >= opts.summary_every:
            run.bus.publish(run.emitter.counts(frame.time_s, frame.index))
            run.last_counts_s = frame.time_s
        people = run.emitter.people()
        summary.frames += 1
        summary.dropped_frames = getattr(run.source, "dropped", 0)
        counted = run.emitter.confirmed_only(run.tracked)
        run.bus.frame(FrameView(frame, run.tracked, people, summary, run.source.expected_frames,
                                partial(self.render, frame.image, run.tracked, people, run.zones, counted),
                                run.emitter.zone_counts, confirmed=counted))
        run.schedule.spent(detect, time.perf_counter() - tick)
        if opts.max_frames and summary.frames >= opts.max_frames:
            return False
        if opts.max_fps:
            time.sleep(max(0.0, 1 / opts.max_fps - (time.perf_counter() - tick)))
        return True

    def _say_how_the_source_ended(self, run: _Run) -> None:
        """The summary's status and message where the frames ran out: cut short, some skipped, or too few to
        count anyone."""
        summary, frames_source, least = run.summary, run.source, self.options.min_track_frames
        if frames_source.ended_early:  # (with what was skipped before the end, if anything)
            summary.status = "ended_early"
            summary.message = "; ".join(filter(None, (frames_source.ended_early, frames_source.skipped)))
        elif frames_source.skipped:  # the run finished, without some of what it was given
            summary.message = frames_source.skipped
        elif summary.frames < least and not frames_source.live:
            summary.message = (f"{run.name}: {summary.frames} frame(s): a face is counted as a person once seen on "
                               f"{least} detection frames, so nobody is counted here (the faces are drawn); photos "
                               f"are counted face by face by `maskwatch detect` and the web page's photo upload")

    def _finish(self, run: _Run, started: float) -> None:
        """The run's last events, its summary's figures, and every sink closed (the video finished); a run that
        ends in an outage ends after it."""
        summary, emitter, bus = run.summary, run.emitter, run.bus
        time_s = max(run.time_s, run.down_at)
        self._reading = None
        run.source.close()
        for event in emitter.finish(time_s, run.index):
            bus.publish(event)
        bus.publish(emitter.counts(time_s, run.index))
        summary.seconds = time.perf_counter() - started
        summary.fps = summary.frames / summary.seconds if summary.seconds else 0.0
        summary.dropped_frames = getattr(run.source, "dropped", 0)
        summary.detect_every = summary.frames / summary.detected_frames if summary.detected_frames else 0.0
        summary.scales = dict(run.finder.scales)
        summary.realtime = list(run.schedule.notes)
        summary.people = emitter.people()
        summary.compliance = compliance_of(summary.people)
        zone_counts = emitter.zone_counts()
        summary.zones, summary.lines = zone_counts["zones"], zone_counts["lines"]
        summary.events = dict(bus.published)
        summary.sink_failures = bus.sink_failures  # the same dict: failures while closing show up too
        bus.close(RunEnd(summary))


@dataclass(eq=False)
class _Run:
    """One run over one source: its parts (made by VideoPipeline._start) and what carries from frame to frame."""

    name: str  # the source as it may be shown (no password)
    source: FrameSource
    summary: WatchSummary
    zones: ZoneCounter
    tracker: FaceTracker
    emitter: EventEmitter
    schedule: DetectSchedule
    motion: MotionGate
    panning: CameraMotion
    cuts: SceneCuts
    finder: VideoDetector
    predictor: BoxPredictor
    bus: EventBus
    check_frames: bool = False  # the caller's own FrameSource: each frame's shape checked before it is used
    outage: OutageWatch | None = None
    tracked: sv.Detections = field(default_factory=sv.Detections.empty)  # the faces of the last frame
    last_counts_s: float = 0.0
    time_s: float = 0.0  # the last frame's
    index: int | None = None
    resumed: bool = False  # a camera back after camera.down: its first frame is detected afresh, as after a cut
    down_at: float = 0.0  # the time of the last camera.down

    def new_scene(self, time_s: float, index: int | None) -> None:
        """The people of the old picture leave; nothing learnt from it carries over (a cut, a camera down)."""
        for event in self.emitter.finish(time_s, index):
            self.bus.publish(event)
        self.tracker.new_scene()
        self.finder.new_scene()

    def camera_down(self, time_s: float) -> None:
        """camera.down: the people in view leave now (person.left, zone.left), not when frames come back, which
        may be never; what comes back is a new picture."""
        self.new_scene(time_s, self.index)
        self.bus.publish(self.emitter.counts(time_s, self.index))  # (nobody now: a dashboard must not show the last)
        self.resumed, self.down_at = True, time_s


def watch(source: str | FrameSource, out: str | Path | None = None, database: str | Path | None = None,
          detector: Detector | OneStageDetector | None = None, sinks: Iterable[Sink] = (),
          zones: Iterable[str | Zone] = (), lines: Iterable[str | Line] = (), camera: str | None = None,
          overwrite: bool = False,
          **options) -> WatchSummary:
    """Run the pipeline on a source. `sinks` are added to the built-in ones (video file with `out`, database
    with `database`); zones and lines are `NAME=x1,y1,...` strings or Zone / Line; overwrite: replace an
    earlier video at `out` (else refused); options are WatchOptions fields."""
    pipeline = VideoPipeline(detector, WatchOptions(**options), Path(database) if database else None, sinks, zones,
                             lines, camera)
    return pipeline.run(source, Path(out) if out else None, overwrite=overwrite)
