"""Real time: how much work each video frame gets, so `maskwatch watch` keeps up with its source at default
settings. The one place for the real-time policy: its settings (what each trades is said beside it) and the
schedule that decides, frame by frame, whether the detector runs or the tracked faces are only moved on.

The schedule measures what a frame costs (the whole frame: detection, tracking, drawing, encoding, sinks) and
detects as often as the source's frame rate allows: on every frame when that fits, else on every Nth, with N
from the measured costs, tracking in between. A still picture is not detected again until something moves
(motion gating, as Frigate does). When even that cannot keep up, it says so once; a live source then drops
frames (its reader keeps only the newest), a file takes longer than its length.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealtimeSettings:
    """Every setting of the real-time policy in one place (when to detect, motion gating, the scale choice, the
    head cache, encoding); benchmarks switch levers off through it."""

    # --- when to detect (DetectSchedule) ---
    headroom: float = 0.8  # aim at this share of the time between source frames; the rest absorbs slow frames
    max_detect_gap_s: float = 0.5  # never track longer than this without a detection: a face walking in is
    # found within it, and the boxes moved in between do not drift far (longer: cheaper, later and looser)
    cost_smoothing: float = 0.2  # weight of the newest frame in the running cost averages
    # --- motion gating (MotionGate) ---
    motion_gating: bool = True
    still_detect_gap_s: float = 1.0  # on a still picture detect at least this often, so tracks stay alive
    # (a person.left comes after 1.5 s unseen) and a face that appears without moving much is still found
    motion_width: int = 160  # frames are compared at this width, blurred: cheap, and blind to sensor noise
    motion_pixel_delta: int = 20  # a grey level change above this is motion
    motion_share: float = 0.002  # share of pixels that must change (at 160x120: 38 pixels, a face far away)
    # --- the face finder's scale (ScaleChooser), under --scale auto ---
    choose_scale: bool = True
    min_face_input_px: float = 40.0  # the smallest face's height at the finder's input, at least: recall of
    # CenterFace drops below about 32 px at its input (measured on both validation sets resized to 640x480)
    downscales: tuple[float, ...] = (0.25, 0.5)  # scales tried below 1x, cheapest first (1/16 and 1/4 the work)
    scale_memory_s: float = 1.0  # the smallest face of the detections of this long decides the scale
    scale_probe_s: float = 3.0  # this often, one detection a step finer, to find faces smaller than those seen
    scale_loss_block_s: float = 10.0  # a downscale that missed confident faces a finer detection just before
    # found (a face CenterFace is sure of only near full size: a dark mask, a tilted head) is not used this long
    # --- the mask head (HeadCache) ---
    reuse_head: bool = True
    settle_looks: int = 3  # a face's class is settled after this many looks in a row agree
    reclassify_iou: float = 0.6  # ... and looked at again when its box moved this far (IoU with the box last
    # looked at below this) ...
    reclassify_s: float = 1.0  # ... or this long after its last look (a mask pulled down is seen within it)
    # --- a moving camera (CameraMotion) ---
    compensate_camera: bool = True  # boxes and tracks follow a pan / tilt / shake of the whole picture
    camera_residual: float = 0.25  # a shift is believed when it leaves at most this share of the change
    # --- scene cuts (SceneCuts): an edited video's new shot starts fresh tracks, detected at once ---
    scene_cuts: bool = True
    cut_changed_share: float = 0.5  # at least this share of pixels changed from the previous frame ...
    cut_histogram_corr: float = 0.5  # ... and grey-level histograms correlating at most this much, or no shift
    # of the whole picture explaining the change; one too far to check counts as a pan only with a phase
    # correlation peak of at least this (a cut's is noise: 0.23 at most on bench/scene_cuts.py's photo switches)
    cut_max_shift_peak: float = 0.3
    # --- boxes between detections (BoxPredictor) ---
    predict_boxes: bool = True  # move boxes at their track's measured velocity (else they stay where found)
    max_velocity_gap_s: float = 1.0  # velocities are measured only between detections this close
    # --- decode and encode off the detection thread ---
    read_ahead: int = 8  # frames decoded ahead of the pipeline (files, folders); 0: decode on the loop
    encode_queue: int = 8  # frames waiting for the H.264 encoder thread; 0: encode on the loop
    encode_preset: str = "superfast"  # x264's speed / file size trade for the annotated video


REALTIME = RealtimeSettings()


class DetectSchedule:
    """Whether the detector runs on a frame. `every` (the --every option) fixes it: every Nth frame, nothing
    measured. Otherwise (the default) N follows the measured costs and the source's frame rate."""

    WARM_DETECTIONS = 4  # no message before this many detections were measured

    def __init__(self, fps: float, every: int | None, source: str, live: bool,
                 settings: RealtimeSettings = REALTIME, max_fps: float | None = None):
        # Frames processed per second: --max-fps paces them. A live source's frames in between are dropped (the
        # frames seen come at that rate); a file's are all processed, more slowly (its frames keep their rate).
        self.paced = min(fps, max_fps) if max_fps else fps
        self.fps = self.paced if live else fps
        self.every = every
        self.source, self.live = source, live
        self.settings = settings
        self.budget_s = settings.headroom / self.paced  # what one frame may cost on average
        self.detect_cost: float | None = None  # running average of a detection frame's cost (s)
        self.track_cost = 0.0  # ... of a tracked-only frame (0 until one is measured)
        self.interval_s = 0.0  # detect when this long has passed since the last detection
        self.last_detect_s: float | None = None
        self.still_skips = 0  # detections skipped because nothing moved
        self.detections = 0
        self.notes: list[str] = []
        self._said: set[str] = set()

    @property
    def adaptive(self) -> bool:
        return self.every is None

    @property
    def detect_every(self) -> float:
        """Frames per detection the schedule aims at now (1: every frame)."""
        return self.every or max(1.0, self.interval_s * self.fps)

    def due(self, index: int, time_s: float) -> bool:
        """Whether a detection is due on this frame, before motion gating."""
        if self.every:
            return index % self.every == 0
        if self.last_detect_s is None:
            return True
        return time_s - self.last_detect_s >= self.interval_s - 0.25 / self.fps

    @property
    def gates_motion(self) -> bool:
        """Motion gating is part of the adaptive schedule (a fixed --every detects on its frames, moving or not)."""
        return self.adaptive and self.settings.motion_gating

    def may_skip_still(self, time_s: float) -> bool:
        """A due detection may be skipped if nothing moved, until the still-picture gap has passed."""
        return (self.gates_motion and self.last_detect_s is not None
                and time_s - self.last_detect_s < self.settings.still_detect_gap_s)

    def detected(self, time_s: float) -> None:
        self.last_detect_s = time_s

    def spent(self, detected: bool, seconds: float) -> None:
        """A frame's cost: updates the averages and the detection interval."""
        if self.every:
            return
        alpha = self.settings.cost_smoothing
        if detected:
            self.detections += 1
            if self.detections == 1:
                return  # the first includes warming up (onnxruntime's first run, allocations): not typical
            self.detect_cost = seconds if self.detect_cost is None else (1 - alpha) * self.detect_cost + alpha * seconds
        else:
            self.track_cost = (1 - alpha) * self.track_cost + alpha * seconds
        if self.detect_cost is None:
            return
        frames = self.frames_per_detection(self.detect_cost, self.track_cost, self.budget_s)
        most = self.settings.max_detect_gap_s * self.fps
        gap = max(1.0, most)  # frames from one detection to the next, at most
        self.interval_s = min(frames, gap) / self.fps
        if self.detections < self.WARM_DETECTIONS:
            return
        if self.detect_cost > 1 / self.paced:
            self._say("slower", f"{self.source}: detection takes {self.detect_cost * 1000:.0f} ms, more than "
                                f"the {1000 / self.paced:.0f} ms between frames: detecting on about one frame in "
                                f"{min(frames, most):.0f} and tracking the faces in between")
        cost = (self.detect_cost + (gap - 1) * self.track_cost) / gap  # per frame, detecting at the longest gap
        if frames > most and cost > 1 / self.paced:  # over the budget's headroom is not yet behind the video
            what = ("frames are dropped (the newest is always processed)" if self.live
                    else "the run takes longer than the video")
            self._say("behind", f"{self.source}: cannot keep up with {self.paced:.0f} frames/s even detecting "
                                f"every {self.settings.max_detect_gap_s:g} s (about {1 / cost:.0f} frames/s): "
                                f"{what}; --scale 0.5 or a smaller frame size make it cheaper")

    @staticmethod
    def frames_per_detection(detect_s: float, track_s: float, budget_s: float) -> float:
        """The smallest N with (detect + (N - 1) * track) / N <= budget: one detection per N frames fits the
        budget on average. Infinite when tracking alone does not fit."""
        if detect_s <= budget_s:
            return 1.0
        if track_s >= budget_s:
            return math.inf
        return float(math.ceil((detect_s - track_s) / (budget_s - track_s)))

    def _say(self, key: str, message: str) -> None:
        """Each kind of message once per run: logged and kept for the summary."""
        if key in self._said:
            return
        self._said.add(key)
        self.notes.append(message)
        log.warning(message)
