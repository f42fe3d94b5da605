"""Video in real time (behaviour, never speed): the detection schedule, motion gating, the face finder's scale from
the previous faces, the head's answers reused, boxes moved between detections, decode and encode threads, and
the counts of detected / tracked-only / dropped frames in every summary."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
import supervision as sv

from clips import GatedSource, PacedSource, face_crop, pan_frames, walk_through_frames, write_clip
from maskwatch import Detector
from maskwatch.face_finder import AUTO
from maskwatch.predictions import FACE_CONFIDENCE, detections_from_labels
from maskwatch.video import CallbackSink, VideoPipeline
from maskwatch.video.frame_detector import VideoDetector
from maskwatch.video.pipeline import WatchOptions
from maskwatch.video.box_motion import BoxPredictor
from maskwatch.video.realtime import REALTIME, DetectSchedule
from maskwatch.video.scale_choice import ScaleChooser
from maskwatch.video.sources import Frame, FrameSource, ReadAhead
from maskwatch.video.tracking import FaceTracker
from maskwatch.video.writer import BackgroundWriter

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


class SquareDetector:
    """Finds the bright square of `square_frames` in no time (a stand-in for the detector where the test is about
    the pipeline, not the model); `delay_s` makes it as slow as a detector on a slow machine."""

    classes = CLASSES

    def __init__(self, delay_s: float = 0.0):
        self.delay_s, self.calls = delay_s, 0

    def __call__(self, image, min_score=0.01, all_classes=False, min_face_score=None, scale=None) -> sv.Detections:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        ys, xs = np.nonzero(image[:, :, 0] > 200)
        if not len(xs):
            return detections_from_labels(np.zeros((0, 4)), [], np.zeros(0), CLASSES)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return detections_from_labels(box, ["with_mask"], np.array([0.9]), CLASSES)


class SquaresDetector(SquareDetector):
    """Every bright square of the frame is a face."""

    def __call__(self, image, min_score=0.01, all_classes=False, min_face_score=None, scale=None) -> sv.Detections:
        import cv2

        self.calls += 1
        count, _, stats, _ = cv2.connectedComponentsWithStats((image[:, :, 0] > 200).astype(np.uint8))
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:]], np.float32).reshape(-1, 4)
        return detections_from_labels(boxes, ["with_mask"] * len(boxes), np.full(len(boxes), 0.9), CLASSES)


def textured(width: int, height: int, seed: int = 1) -> np.ndarray:
    """A scene with texture everywhere (blurred noise, grey levels 60-160), as real backgrounds have."""
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 1, (height // 8, width // 8)).astype(np.float32)
    grey = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.repeat((60 + 100 * np.clip(grey, 0, 1))[:, :, None], 3, axis=2).astype(np.uint8)


def panning_frames(frames: int, step: int, squares: int = 6, size=(640, 480)) -> list[np.ndarray]:
    """A camera panning right by `step` px per frame over a textured scene with 24-px bright squares that stay
    in view all along."""
    w, h = size
    scene = textured(w + step * frames, h)
    for i in range(squares):
        x, y = 340 + 45 * i, 60 + 60 * i
        scene[y:y + 24, x:x + 24] = 240
    return [scene[:, step * i:step * i + w].copy() for i in range(frames)]


def square_frames(still: int, moving: int, size=(320, 240), side: int = 60, step: int = 6,
                  noise: float = 2.0) -> list[np.ndarray]:
    """A bright square on grey with sensor noise: `still` frames where it stands, then `moving` where it walks."""
    rng = np.random.default_rng(0)
    w, h = size
    frames = []
    for i in range(still + moving):
        x = 20 + step * max(0, i - still + 1)
        frame = np.full((h, w, 3), 110, np.float32) + rng.normal(0, noise, (h, w, 1))
        frame[90:90 + side, x:x + side] = 230
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def detected_flags(pipeline: VideoPipeline, source) -> tuple[list[bool], object]:
    """Whether the detector ran on each frame, and the summary."""
    counts: list[int] = []
    pipeline.sinks.append(CallbackSink(on_frame=lambda view: counts.append(view.summary.detected_frames)))
    summary = pipeline.run(source)
    return [b > a for a, b in zip([0] + counts, counts)], summary


def test_the_schedule_detects_one_frame_in_n_from_the_measured_costs_and_says_so_once(caplog):
    n = DetectSchedule.frames_per_detection
    assert n(0.02, 0.005, 0.8 / 30) == 1  # detection fits the frame interval: every frame
    assert n(0.100, 0.010, 0.8 / 30) == 6  # (100 + 5 * 10) / 6 = 25 ms <= 26.7 ms; with 5 it would be 28
    assert n(0.100, 0.030, 0.8 / 30) == math.inf  # tracking alone is too slow: no N keeps up
    schedule = DetectSchedule(30.0, None, "cam", live=True)
    detections = 0
    with caplog.at_level(logging.WARNING):
        for i in range(60):
            detect = schedule.due(i, i / 30)
            if detect:
                schedule.detected(i / 30)
                detections += 1
            schedule.spent(detect, 0.100 if detect else 0.010)
    assert schedule.detect_every == pytest.approx(6)
    assert 9 <= detections <= 13  # two to start (the first warms up and is not measured), then one in six
    slower = [r for r in caplog.records if "more than the 33 ms between frames" in r.getMessage()]
    assert len(slower) == 1 and schedule.notes == [slower[0].getMessage()]
    fixed = DetectSchedule(30.0, 3, "cam", live=False)
    assert [fixed.due(i, i / 30) for i in range(6)] == [True, False, False, True, False, False]


def test_max_fps_gives_each_frame_its_paced_time(caplog):
    """A 15 fps file at --max-fps 5: every frame is processed, 200 ms apart, so a 77 ms detection fits each one
    (it once detected on one frame in two, saying 77 ms was more than the 67 ms between frames). A live source
    at --max-fps 5 sees frames 200 ms apart: the same."""
    for live in (False, True):
        schedule = DetectSchedule(15.0, None, "door", live=live, max_fps=5.0)
        with caplog.at_level(logging.WARNING):
            for i in range(20):
                t = i / (5.0 if live else 15.0)
                detect = schedule.due(i, t)
                if detect:
                    schedule.detected(t)
                schedule.spent(detect, 0.077 if detect else 0.005)
        assert schedule.detect_every == 1 and schedule.detections == 20 and "between frames" not in caplog.text
    unpaced = DetectSchedule(15.0, None, "door", live=False)
    for i in range(20):
        detect = unpaced.due(i, i / 15)
        if detect:
            unpaced.detected(i / 15)
        unpaced.spent(detect, 0.077 if detect else 0.005)
    assert unpaced.detect_every > 1


@pytest.mark.parametrize("detect_s, track_s, behind", [(0.13, 0.075, False), (0.20, 0.095, True)])
def test_behind_is_said_only_when_the_video_cannot_be_kept_up_with(caplog, detect_s, track_s, behind):
    """At 10 frames/s, detecting at least every 0.5 s: (0.13 + 4 x 0.075) / 5 = 86 ms a frame is over the 80 %
    budget but keeps up with the video (it once said "cannot keep up with 10 frames/s ... about 11 frames/s");
    (0.20 + 4 x 0.095) / 5 = 116 ms does not."""
    schedule = DetectSchedule(10.0, None, "clip.mp4", live=False)
    with caplog.at_level(logging.WARNING):
        for i in range(40):
            detect = schedule.due(i, i / 10)
            if detect:
                schedule.detected(i / 10)
            schedule.spent(detect, detect_s if detect else track_s)
    said = [r.getMessage() for r in caplog.records if "cannot keep up" in r.getMessage()]
    assert len(said) == int(behind)


def test_a_camera_faster_than_detection_is_tracked_in_between_and_its_dropped_frames_counted(tmp_path, caplog):
    frames = square_frames(still=0, moving=90, step=2)  # 3 s at 30 fps
    out, db = tmp_path / "live.mp4", tmp_path / "events.sqlite"
    with caplog.at_level(logging.WARNING):
        summary = VideoPipeline(SquareDetector(delay_s=0.15), WatchOptions(), db).run(PacedSource(frames, 30.0), out)
    # Detection (150 ms) is slower than the camera (33 ms): it runs on some frames, the others are tracked.
    assert summary.detected_frames >= 2 and summary.tracked_frames > summary.detected_frames
    assert summary.frames == summary.detected_frames + summary.tracked_frames
    assert summary.dropped_frames > 0 and summary.frames + summary.dropped_frames <= len(frames)
    said = [r.getMessage() for r in caplog.records if "between frames" in r.getMessage()]
    assert len(said) == 1 and summary.realtime[0] == said[0]
    # The summary file, the database and the end message say the same.
    written = json.loads(out.with_suffix(".json").read_text())
    assert (written["detected_frames"], written["tracked_frames"], written["dropped_frames"]) == (
        summary.detected_frames, summary.tracked_frames, summary.dropped_frames)
    row = sqlite3.connect(db).execute("SELECT frames, detected_frames, tracked_frames, dropped_frames FROM runs")
    assert row.fetchone() == (summary.frames, summary.detected_frames, summary.tracked_frames, summary.dropped_frames)
    # Detecting on every frame instead falls behind the camera: far fewer frames get processed at all.
    every = VideoPipeline(SquareDetector(delay_s=0.15), WatchOptions(every=1)).run(PacedSource(frames, 30.0))
    assert every.tracked_frames == 0 and every.frames * 2 < summary.frames


def test_motion_gating_skips_a_still_picture_and_detects_as_soon_as_something_moves():
    frames = square_frames(still=30, moving=30)  # 10 fps: 3 s standing still, then 3 s walking
    flags, summary = detected_flags(VideoPipeline(SquareDetector(), WatchOptions()), GatedSource(frames, 10.0))
    assert flags[:3] == [True] * 3  # the face is detected until it is a person (seen on 2 frames after the first)
    assert sum(flags[3:30]) <= 3  # then the still picture is detected once a second
    assert sum(flags[30:]) >= 27  # walking: (nearly) every frame, since detection is fast
    assert summary.tracked_frames == 60 - summary.detected_frames
    # The same run without motion gating detects every frame: the gate is what skipped them.
    ungated = WatchOptions(realtime=replace(REALTIME, motion_gating=False))
    flags, _ = detected_flags(VideoPipeline(SquareDetector(), ungated), GatedSource(frames, 10.0))
    assert sum(flags[:30]) >= 27


def test_a_faint_face_that_can_never_be_a_person_does_not_keep_a_still_picture_detected():
    """Drawn (its class scores 0.45) but too faint to start a track (face confidence 0.3): motion gating must not
    wait for it to become a person, which it never will."""

    class FaintSquare(SquareDetector):
        def __call__(self, image, **kwargs) -> sv.Detections:
            found = super().__call__(image, **kwargs)
            found.confidence = np.full(len(found), 0.45, np.float32)
            found.data[FACE_CONFIDENCE] = np.full(len(found), 0.3, np.float32)
            return found

    frames = square_frames(still=30, moving=0)  # 3 s standing still
    flags, summary = detected_flags(VideoPipeline(FaintSquare(), WatchOptions()), GatedSource(frames, 10.0))
    assert sum(flags) <= 6, flags  # the first look, then about once a second (not every frame)
    assert sum(summary.people.values()) == 0


def test_the_scale_chooser_follows_the_smallest_face():
    chooser = ScaleChooser()
    faces = lambda *heights: sv.Detections(xyxy=np.array([[0, 0, h, h] for h in heights], np.float32),  # noqa: E731
                                           confidence=np.full(len(heights), 0.9, np.float32))
    assert chooser.scale_for(0.0) == AUTO  # nothing seen yet: the still-image policy
    chooser.observe(0.0, faces(220, 300))
    assert chooser.scale_for(0.1) == 0.25  # 220 px * 0.25 = 55 px at the finder's input
    chooser.observe(0.1, faces(220, 120))
    assert chooser.scale_for(0.2) == 0.5  # a smaller face came in
    chooser.observe(0.2, faces(30, 220))
    assert chooser.scale_for(0.3) == AUTO  # a crowd face: upscaling may be needed
    assert chooser.scale_for(1.5) == 1.0  # a second without faces: 1x ...
    assert chooser.scale_for(3.5) == AUTO  # ... and now and then the upscaled pass too
    chooser.observe(3.6, faces(400))
    assert chooser.scale_for(3.7) == 0.25
    chooser.observe(6.5, faces(400))
    assert chooser.scale_for(6.6) == 0.5  # 3 s on: the probe a step finer, looking for smaller faces
    assert chooser.scale_for(6.7) == 0.25
    # A face the detector is sure of but whose best class is not (0.3 with_mask, 0.25 mask below the nose) counts
    # by its face confidence, as the tracker counts it; a faint one does not.
    split = faces(120, 60)
    split.confidence = np.array([0.3, 0.3], np.float32)
    split.data[FACE_CONFIDENCE] = np.array([0.55, 0.2], np.float32)
    chooser.observe(6.8, split)
    assert chooser.scale_for(6.9) == 0.5  # 120 px * 0.5 = 60 px; the 60-px face, at 0.2, is not judged
    # A downscale that loses a face a finer look found (one CenterFace is sure of only near full size) is not used
    # for a while: the next frame is detected at once at the scale that found it, then a step finer.
    lost = ScaleChooser()
    assert lost.scale_for(0.0) == AUTO
    lost.observe(0.0, faces(220), AUTO)
    assert lost.scale_for(0.1) == 0.25 and not lost.retry
    lost.observe(0.1, sv.Detections.empty(), 0.25)
    assert lost.retry and lost.scale_for(0.2) == AUTO and not lost.retry  # where it was found
    lost.observe(0.2, faces(220), AUTO)  # there: 0.25 had missed it, and stays blocked
    assert lost.scale_for(0.3) == 0.5
    lost.observe(0.3, faces(220), 0.5)  # found at 0.5: the count to beat is met
    assert not lost.retry and lost.scale_for(1.0) == 0.5  # still blocked ...
    for t in (9.0, 9.5, 10.0, 10.5):  # (9.0 is the probe's turn)
        lost.scale_for(t)
        lost.observe(t, faces(220), 0.5)
    assert lost.scale_for(10.6) == 0.25  # ... until scale_loss_block_s after the loss
    # Someone who leaves is not a loss: the second look finds no more than the downscale did.
    left = ScaleChooser()
    left.scale_for(0.0)
    left.observe(0.0, faces(220, 240), AUTO)
    assert left.scale_for(0.1) == 0.25
    left.observe(0.1, faces(220), 0.25)  # one of two faces not found here ...
    assert left.retry and left.scale_for(0.2) == AUTO
    left.observe(0.2, faces(220), AUTO)  # ... nor where both were: that person left
    assert left.scale_for(0.3) == 0.25 and not left.blocked
    left.observe(0.3, faces(220), 0.25)  # and the same count at the same scale is no loss
    assert not left.retry and left.scale_for(0.4) == 0.25
    # A block never applies to an empty picture's first-pass scale (0.5 for 1080p): it stays the cheap search.
    lost.blocked[0.5] = 100.0
    assert lost.scale_for(30.0, base=0.5) == AUTO and lost.scale_for(31.0, base=0.5) == 0.5  # (30.0: a probe)
    # No face lately in a 1080p frame: its first pass at 960 px (0.5), not full resolution; the probe goes to auto.
    assert chooser.scale_for(8.5, base=0.5) == 0.5 and chooser.scale_for(10.0, base=0.5) == AUTO
    assert chooser.scale_for(10.5, base=0.25) == 0.25 and chooser.scale_for(13.1, base=0.25) == AUTO  # 4K too


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(threads=2)


def test_a_face_found_only_near_full_size_is_not_lost_to_a_downscale(data_dir, detector, tmp_path):
    """A selfie with a dark mask, 220 px tall at 640x480: CenterFace is sure of it at 1x (0.55) and not at 1/4 or
    1/2 (0.13 and 0.18), where its size alone sent the scale chooser. Lost there, it was found again only after
    a second, so a short clip never counted the person."""
    photo = cv2.resize(cv2.imread(str(data_dir / "images" / "maksssksksss4.jpg")), (640, 480))
    clip = write_clip([photo] * 15, tmp_path / "selfie.avi", fps=10, codec="MJPG")  # 1.5 s
    summary = VideoPipeline(detector, WatchOptions()).run(str(clip))
    assert summary.people["with_mask"] == 1, (summary.people, summary.scales)
    assert summary.scales.get("0.25", 0) <= 1  # tried once, then not again


def test_video_searches_big_faces_at_a_fraction_of_the_pixels_and_crowds_at_auto(detector, data_dir, tmp_path):
    import cv2

    from clips import pan_frames

    big = face_crop(data_dir / "images" / "maksssksksss94.jpg", (110, 95, 171, 169), size=240)
    door = walk_through_frames([big], size=(640, 480), frames=20, start_frames=(0,), span=40)[12:]
    door = [cv2.GaussianBlur(f, (3, 3), 0) for f in door]  # a 240-px face crossing a door camera's picture
    summary = VideoPipeline(detector, WatchOptions(every=1)).run(GatedSource(door, 10.0))
    assert summary.scales.get("auto") == 1 and summary.scales.get("0.25", 0) + summary.scales.get("0.5", 0) == 7
    crowd = pan_frames(data_dir / "images" / "maksssksksss657.jpg", (640, 480), 6, zoom=1.2)
    summary = VideoPipeline(detector, WatchOptions(every=1)).run(GatedSource(crowd, 10.0))
    assert summary.scales.get("auto", 0) >= 1 and set(summary.scales) <= {"auto", "1.0"}  # never below 1x
    fixed = VideoPipeline(Detector.load(threads=2, scale=1.0), WatchOptions(every=1)).run(GatedSource(door[:2], 10.0))
    assert fixed.scales == {"1.0": 2}  # --scale given: the user's scale, always


def test_settled_faces_are_not_sent_to_the_head_again_until_they_move_or_a_second_passes(data_dir):
    import cv2

    detector = Detector.load(threads=2, scale=1.0)
    image = cv2.resize(cv2.imread(str(data_dir / "images" / "maksssksksss94.jpg")), (640, 360))
    video = VideoDetector(detector, 0.1, 0.2)
    first = video(image, 0.0)
    plain = detector(image, min_score=0.1, min_face_score=0.2)
    assert len(first) >= 2 and np.allclose(first.xyxy, plain.xyxy, atol=1e-3)
    assert list(first.data["class_name"]) == list(plain.data["class_name"])  # the cache changes nothing at first
    candidates = video.cache.looked
    video(image, 0.1), video(image, 0.2)
    assert video.cache.looked == 3 * candidates and video.cache.reused == 0  # three looks settle a class
    again = video(image, 0.3)
    assert video.cache.looked == 3 * candidates and video.cache.reused == candidates
    assert np.allclose(again.xyxy, first.xyxy, atol=1e-3) and list(again.data["class_name"]) == list(
        first.data["class_name"])
    moved = np.roll(image, 60, axis=1)  # every face moves by 60 px: its box changed a lot
    video(moved, 0.4)
    assert video.cache.looked > 3 * candidates
    looked = video.cache.looked
    video(moved, 0.5), video(moved, 0.6)
    settled = video.cache.looked
    video(moved, 0.7)
    assert video.cache.looked == settled
    video(moved, 1.7)  # a second after the last look: looked at again (a mask may have been pulled down)
    assert video.cache.looked > settled >= looked


def test_boxes_move_on_at_their_track_velocity_between_detections():
    predictor = BoxPredictor((640, 480))

    def tracked(x: float) -> sv.Detections:
        return sv.Detections(xyxy=np.array([[x, 100, x + 50, 150]], np.float32), confidence=np.array([0.9]),
                             class_id=np.array([0]), tracker_id=np.array([7]))

    predictor.detected(tracked(100), 0.0)
    assert predictor.at(0.1).xyxy[0, 0] == pytest.approx(100)  # one sighting: no velocity yet
    predictor.detected(tracked(120), 0.1)  # 200 px/s to the right
    assert predictor.at(0.15).xyxy[0, 0] == pytest.approx(130)
    assert predictor.at(0.15).tracker_id.tolist() == [7]
    predictor.hold()  # nothing moved (motion gating): the boxes stay
    assert predictor.at(0.2).xyxy[0, 0] == pytest.approx(120)
    predictor.detected(tracked(620), 0.3)
    predictor.detected(tracked(630), 0.4)
    assert len(predictor.at(0.9)) == 0  # walked out of the picture


def test_a_face_back_after_longer_than_the_lost_time_is_a_new_person():
    tracker = FaceTracker(CLASSES, fps=30)
    box = np.array([[100, 80, 150, 140]], np.float32)
    face = detections_from_labels(box, ["with_mask"], np.array([0.9]), CLASSES)
    ids = [tracker.update(face, t, i).tracker_id.tolist() for i, t in enumerate([0.0, 0.5, 1.0])]
    assert ids[1] == ids[2] and ids[1][0] >= 0  # detections half a second apart: one person
    back = tracker.update(face, 3.0, 3).tracker_id.tolist()  # 2 s unseen (lost after 1.5 s)
    assert back[0] >= 0 and back != ids[2]
    assert list(tracker.tracks) == back  # the one who left is not kept (the emitter holds what it counts)


def test_people_are_counted_once_when_detection_is_slower_than_the_camera(data_dir):
    masked = face_crop(data_dir / "images" / "maksssksksss94.jpg", (110, 95, 171, 169))
    unmasked = face_crop(data_dir / "images" / "maksssksksss343.jpg", (85, 131, 232, 284))
    frames = walk_through_frames([masked, unmasked], size=(480, 320), frames=240, start_frames=(0, 110), span=130)

    class Slow:
        classes = CLASSES

        def __init__(self):
            self.detector = Detector.load(threads=2, scale=1.0)

        def __call__(self, image, **kwargs):
            time.sleep(0.1)
            return self.detector(image, **kwargs)

    summary = VideoPipeline(Slow(), WatchOptions()).run(PacedSource(frames, 30.0))
    assert summary.tracked_frames > summary.detected_frames >= 4
    assert summary.people == {"with_mask": 1, "without_mask": 1, "mask_weared_incorrect": 0}, summary


def test_read_ahead_gives_the_same_frames_and_raises_the_sources_error():
    images = [np.full((4, 4, 3), i, np.uint8) for i in range(20)]

    class Failing(FrameSource):
        fps, size = 10.0, (4, 4)

        def frames(self):
            for i, image in enumerate(images):
                if i == 15:
                    raise OSError("disk gone")
                yield Frame(i, i / 10, image)

    ahead = ReadAhead(Failing(), depth=4)
    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for frame in ahead.frames():
            seen.append(int(frame.image[0, 0, 0]))
    ahead.close()
    assert seen == list(range(15))
    early = ReadAhead(GatedSource(images, 10.0), depth=2)
    assert [f.index for f, _ in zip(early.frames(), range(3))] == [0, 1, 2]
    early.close()  # the consumer stopped early: the decoding thread ends too
    assert not early._thread.is_alive()


def test_the_encoder_thread_reports_a_failed_write_on_the_next_call():
    class Broken:
        frames = 0

        def write(self, image, time_s=None):
            raise OSError("disk full")

        def close(self):
            self.closed = True

    inner = Broken()
    writer = BackgroundWriter(inner, depth=2)
    writer.write(np.zeros((4, 4, 3), np.uint8))  # accepted: the encoder thread fails on it later
    deadline = time.time() + 10
    while writer._error is None and time.time() < deadline:
        time.sleep(0.01)
    with pytest.raises(OSError, match="disk full"):  # the very next call says so
        writer.write(np.zeros((4, 4, 3), np.uint8))
    writer.close()  # said once: closing after it raises nothing more
    assert inner.closed


def test_watch_ends_with_frames_detected_tracked_and_dropped(data_dir, tmp_path):
    from typer.testing import CliRunner

    from clips import pan_frames
    from maskwatch.cli import app

    clip = write_clip(pan_frames(data_dir / "images" / "maksssksksss657.jpg", (320, 240), 12, 1.5),
                      tmp_path / "pan.avi", fps=12, codec="MJPG")
    result = CliRunner().invoke(app, ["watch", str(clip), "--db", str(tmp_path / "e.sqlite"), "--every", "3",
                                      "--scale", "1"])
    assert result.exit_code == 0, result.output
    assert "12 frames in" in result.output and "4 detected, 8 tracked-only, 0 dropped" in result.output
    assert "detections per face-finder scale: 1.0 x4" in result.output  # --scale 1: the chooser does not choose


def test_a_scene_cut_is_a_new_picture_that_holds_not_a_pan_or_a_flash(data_dir):
    """video/scene_cut.py: a cut is confirmed on the frame after the change; a fast pan (most pixels change,
    the histogram stays), a flash or one frame of another picture is not a cut."""
    import cv2

    from maskwatch.video.motion import MotionGate
    from maskwatch.video.scene_cut import SceneCuts, histogram_correlation

    small = MotionGate().small

    def cuts_in(frames: list[np.ndarray], settings=REALTIME) -> list[int]:
        cuts = SceneCuts(settings)
        return [i for i, frame in enumerate(frames) if cuts.is_cut(small(frame))]

    a, b = (cv2.resize(cv2.imread(str(data_dir / "images" / f"{stem}.jpg")), (320, 240))
            for stem in ("maksssksksss0", "maksssksksss657"))
    assert cuts_in([a, a, b, b, b]) == [3]
    assert cuts_in([a, a, np.full_like(a, 255), a, a]) == []  # a flash
    assert cuts_in([a, a, b, a, a]) == []  # one frame of another picture (a glitch of a stream)
    assert cuts_in([a, a, b, b, b], replace(REALTIME, scene_cuts=False)) == []
    pan = pan_frames(data_dir / "images" / "maksssksksss657.jpg", (320, 240), frames=12, zoom=3.0)  # a fast pan
    share = MotionGate()
    share.detected(small(pan[0]))
    assert share.changed_share(small(pan[1])) > REALTIME.cut_changed_share  # most pixels change, yet no cut
    assert cuts_in(pan) == []
    # Two crowd photos alike in tone: their histograms correlate above the cut threshold, but no shift of the
    # whole first picture makes the second one (a pan's frames always have one).
    c, d = (cv2.resize(cv2.imread(str(data_dir / "images" / f"{stem}.jpg")), (320, 240))
            for stem in ("maksssksksss0", "maksssksksss1"))
    assert histogram_correlation(small(c), small(d)) > REALTIME.cut_histogram_corr
    assert cuts_in([c, c, d, d, d]) == [3]


def test_camera_motion_follows_a_pan_and_not_people_walking():
    from maskwatch.video.camera_motion import CameraMotion
    from maskwatch.video.motion import MotionGate

    small = MotionGate().small
    pan = panning_frames(10, step=5)
    camera = CameraMotion((640, 480))
    camera.detected(small(pan[0]), np.zeros(2, np.float32))
    assert camera.shift(small(pan[8])) == pytest.approx([-40, 0], abs=3)  # the picture moved 40 px left
    walking = square_frames(still=1, moving=9, noise=0)  # one square walks across a still camera's picture
    background = textured(320, 240)
    for frame in walking:
        frame[frame[:, :, 0] < 200] = background[frame[:, :, 0] < 200]
    camera = CameraMotion((320, 240))
    camera.detected(small(walking[0]), np.zeros(2, np.float32))
    assert camera.shift(small(walking[8])).tolist() == [0, 0]
    apart = [np.full((240, 320, 3), 110, np.uint8) for _ in range(2)]  # two squares walking apart on plain grey
    for frame, d in zip(apart, (0, 30)):
        frame[100:140, 120 - d:160 - d] = 230
        frame[100:140, 180 + d:220 + d] = 230
    camera = CameraMotion((320, 240))
    camera.detected(small(apart[0]), np.zeros(2, np.float32))
    assert camera.shift(small(apart[1])).tolist() == [0, 0]  # no single shift explains it


def test_tracks_survive_a_pan_between_sparse_detections():
    frames = panning_frames(64, step=5)  # 40 px between two detections; the squares are 24 px
    followed = VideoPipeline(SquaresDetector(), WatchOptions(every=8)).run(GatedSource(frames, 30.0))
    assert sum(followed.people.values()) == 6  # each square one person, tracked across the pan
    still = WatchOptions(every=8, realtime=replace(REALTIME, compensate_camera=False))
    lost = VideoPipeline(SquaresDetector(), still).run(GatedSource(frames, 30.0))
    assert sum(lost.people.values()) < 6  # matched where they were: no overlap, tracks broken
