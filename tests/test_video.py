"""The video pipeline on clips made from real photos: a playable H.264 file, tracking, counts, bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import signal
import sqlite3
import subprocess
import threading
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import FACE_CROPS
from clips import encode_clip, pan_frames, wait_for_progress, walk_through_frames, write_clip, write_h264
from maskwatch.data.images import read_image
from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.predictions import FACE_CONFIDENCE, detections_from_labels
from maskwatch.thresholds import FOR_PEOPLE
from maskwatch.video import VideoPipeline
from maskwatch.video.pipeline import WatchOptions
from maskwatch.video.realtime import REALTIME
from maskwatch.video.tracking import FaceTracker

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


@pytest.fixture(scope="module")
def pan(tmp_path_factory, photo) -> tuple[Path, list[np.ndarray]]:
    frames = pan_frames(photo, size=(320, 240), frames=24, zoom=1.5)
    return write_clip(frames, tmp_path_factory.mktemp("clips") / "pan.avi", fps=12, codec="MJPG"), frames


def decode(path: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return frames, (stream.codec_context.name, stream.width, stream.height, float(stream.average_rate))


def drawn_pixels(annotated: np.ndarray, source: np.ndarray) -> int:
    """Pixels the annotator changed a lot (boxes, filled label backgrounds); H.264 noise stays far below 80."""
    return int((np.abs(annotated.astype(int) - source.astype(int)).max(axis=2) > 80).sum())


def test_annotated_video_is_h264_with_source_frames_size_fps_and_drawn_boxes(detector, pan, tmp_path):
    clip, source_frames = pan
    out = tmp_path / "out.mp4"
    summary = VideoPipeline(detector, WatchOptions(every=1), tmp_path / "events.sqlite").run(str(clip), out)
    frames, (codec, width, height, fps) = decode(out)
    assert (codec, width, height) == ("h264", 320, 240)
    assert fps == pytest.approx(12, abs=0.01)
    assert len(frames) == len(source_frames) == summary.frames
    assert all(f.std() > 20 for f in frames)  # not blank
    drawn = [drawn_pixels(f, s) for f, s in zip(frames, source_frames)]
    assert np.median(drawn) > 150  # boxes and labels on most frames
    assert sum(summary.people.values()) >= 3
    assert json.loads(out.with_suffix(".json").read_text())["frames"] == len(source_frames)
    assert out.with_suffix(".tracks.csv").read_text().count("\n") >= 4


def test_an_earlier_runs_video_is_not_written_over_without_overwrite(pan, tmp_path):
    from typer.testing import CliRunner

    from maskwatch.cli import app

    clip, _ = pan
    out = tmp_path / "door.mp4"
    out.write_bytes(b"last night's recording")
    out.with_suffix(".json").write_text("{}")
    command = ["watch", str(clip), "--out", str(out), "--db", str(tmp_path / "e.sqlite"), "--max-frames", "2",
               "--scale", "1", "--threads", "2"]
    refused = CliRunner().invoke(app, command)
    said = str(refused.exception)  # (main() turns it into one line and exit 2)
    assert isinstance(refused.exception, MaskwatchError) and f"--out {out} exists" in said and "--overwrite" in said
    assert out.read_bytes() == b"last night's recording" and out.with_suffix(".json").read_text() == "{}"
    assert not (tmp_path / "e.sqlite").exists()  # refused before anything was written
    replaced = CliRunner().invoke(app, command + ["--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert decode(out)[1][0] == "h264" and json.loads(out.with_suffix(".json").read_text())["frames"] == 2


def test_overwrite_with_a_run_that_never_had_a_frame_leaves_no_earlier_video_beside_its_summary(detector, tmp_path):
    """Told to replace an earlier run, a run of no frame wrote its summary (0 frames) and left the earlier run's
    video beside it, as if it were this run's."""
    from maskwatch.video.pipeline import VideoPipeline
    from maskwatch.video.sources import FrameSource

    class Nothing(FrameSource):
        name = "an empty source"

        def __init__(self):
            self.size, self.fps = (320, 240), 10.0

        def frames(self):
            return iter(())

    out = tmp_path / "door.mp4"
    out.write_bytes(b"last night's recording")
    out.with_suffix(".json").write_text("{}")
    summary = VideoPipeline(detector).run(Nothing(), out, overwrite=True)
    assert summary.frames == 0 and json.loads(out.with_suffix(".json").read_text())["frames"] == 0
    assert not out.exists()


def test_a_live_cameras_earlier_recording_is_kept_aside_so_a_restarted_watch_records_anew(detector, tmp_path,
                                                                                             monkeypatch):
    """A stream lost for good ends `watch` with exit 1 so that its service manager starts it again: refusing the
    --out it had written would have stopped those restarts; the recording is kept under its time instead."""
    import os

    from maskwatch.video.sources import LiveSource

    out = tmp_path / "door.mp4"
    out.write_bytes(b"the morning's recording")
    out.with_suffix(".tracks.csv").write_text("track_id\n")
    os.utime(out, (1_700_000_000, 1_700_000_000))
    captures = [FakeCapture((320, 240), frames=3)]  # then the stream is lost for good
    monkeypatch.setattr(LiveSource, "_open", lambda self: captures.pop(0) if captures else None)
    summary = VideoPipeline(detector, WatchOptions(give_up_after_s=0.2)).run("rtsp://camera/door", out)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(1_700_000_000))
    assert (tmp_path / f"door.{stamp}.mp4").read_bytes() == b"the morning's recording"
    assert (tmp_path / f"door.{stamp}.tracks.csv").read_text() == "track_id\n"
    assert summary.frames >= 1 and decode(out)[1][0] == "h264"


def test_people_are_counted_once_across_frames(detector, pan, tmp_path):
    clip, source_frames = pan
    summary = VideoPipeline(detector, WatchOptions(every=1), tmp_path / "events.sqlite").run(str(clip))
    assert summary.scene_cuts == 0  # a pan is not a cut
    # The pan shows the same people throughout: each is counted once, not once per frame (24 frames).
    shown = [len(detector(frame, min_score=FOR_PEOPLE.min_score)) for frame in source_frames]
    assert min(shown) <= sum(summary.people.values()) <= max(shown)
    db = sqlite3.connect(tmp_path / "events.sqlite")
    status, frames = db.execute("SELECT status, frames FROM runs").fetchone()
    assert (status, frames) == ("finished", 24)
    assert db.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] >= sum(summary.people.values())


def test_a_scene_cut_starts_afresh_so_a_new_face_does_not_inherit_the_last_ones_class(tmp_path):
    """An edited video cuts from a masked face to a bare one at the same place. Without the cut, the tracker kept
    the first person's id and vote and the head's cache its class: the bare face was never counted."""
    def framed(label: str, name: str) -> np.ndarray:
        face = read_image(FACE_CROPS / label / name)
        return cv2.resize(cv2.copyMakeBorder(face, 0, 0, 60, 60, cv2.BORDER_REPLICATE), (320, 240))

    frames = [framed("with_mask", "101.jpg")] * 15 + [framed("without_mask", "1.jpg")] * 15
    clip = write_clip(frames, tmp_path / "cut.avi", fps=10, codec="MJPG")
    detector = Detector.load(threads=2)  # as `watch` runs it (--scale auto)
    summary = VideoPipeline(detector, WatchOptions(), tmp_path / "events.sqlite").run(str(clip))
    assert summary.scene_cuts == 1
    assert sqlite3.connect(tmp_path / "events.sqlite").execute("SELECT scene_cuts FROM runs").fetchone() == (1,)
    assert (summary.people["with_mask"], summary.people["without_mask"]) == (1, 1)
    no_cuts = WatchOptions(realtime=dataclasses.replace(REALTIME, scene_cuts=False))
    assert VideoPipeline(detector, no_cuts).run(str(clip)).people["without_mask"] == 0, \
        "the clip no longer shows what cut detection is for (the bare face counted without it)"


def test_blur_faces_changes_face_pixels(detector, pan, tmp_path):
    _, source_frames = pan
    # The pan moved down by 80 px, so that its faces are clear of the people count drawn along the top.
    lowered = [cv2.copyMakeBorder(f, 80, 0, 0, 0, cv2.BORDER_REPLICATE)[:240] for f in source_frames[:3]]
    clip = write_clip(lowered, tmp_path / "lowered.avi", fps=12, codec="MJPG")
    out = tmp_path / "blurred.mp4"
    VideoPipeline(detector, WatchOptions(blur_faces=True)).run(str(clip), out)
    frames, _ = decode(out)
    assert len(frames) == 3
    plain = tmp_path / "plain.mp4"
    VideoPipeline(detector, WatchOptions()).run(str(clip), plain)
    unblurred, _ = decode(plain)
    capture = cv2.VideoCapture(str(clip))
    first = capture.read()[1]  # as the pipeline decodes it (MJPG)
    capture.release()
    faces = detector(first, min_score=0.6)  # the confident faces, shown in both videos
    assert len(faces) >= 2

    def sharpness(frame: np.ndarray, region: tuple[slice, slice]) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[region], cv2.CV_64F).var())

    # Inside each face (its lower half, away from the drawn box and label) the blurred video has lost its detail;
    # below the faces, it has not.
    for x1, y1, x2, y2 in faces.xyxy.astype(int):
        dx, dy = (x2 - x1) // 5, (y2 - y1) // 8
        inner = (slice((y1 + y2) // 2, y2 - dy), slice(x1 + dx, x2 - dx))
        assert sharpness(frames[0], inner) < 0.6 * sharpness(unblurred[0], inner)
    below = (slice(int(faces.xyxy[:, 3].max()) + 10, 240), slice(None))
    assert sharpness(frames[0], below) > 0.8 * sharpness(unblurred[0], below)


def test_one_noisy_frame_does_not_flip_a_track():
    tracker = FaceTracker(CLASSES, fps=10)
    labels = ["with_mask"] * 6 + ["without_mask"] + ["with_mask"] * 3
    for i, label in enumerate(labels):
        box = np.array([[100 + 2 * i, 80, 140 + 2 * i, 125]], np.float32)
        tracked = tracker.update(detections_from_labels(box, [label], np.array([0.9]), CLASSES), i / 10, i)
        assert list(tracked.data["class_name"]) == ["with_mask"]
    assert len(tracker.tracks) == 1
    assert next(iter(tracker.tracks.values())).frames == len(labels) - 1  # ByteTrack confirms on the 2nd frame


def test_a_face_whose_class_is_in_doubt_is_still_followed_and_keeps_its_class_score():
    """The head splits a face between two classes (0.45 each): its best class scores under the activation
    threshold, but it is surely a face (FACE_CONFIDENCE 0.9), so it is tracked; what the tracker hands on keeps the
    class score. A box the detector barely believes is a face starts no track."""
    tracker = FaceTracker(CLASSES, fps=10)
    for i in range(4):
        boxes = np.array([[100 + 2 * i, 80, 140 + 2 * i, 125], [300, 80, 340, 125]], np.float32)
        detections = detections_from_labels(boxes, ["with_mask", "without_mask"], np.array([0.28, 0.25]), CLASSES)
        detections.data[FACE_CONFIDENCE] = np.array([0.9, 0.25], np.float32)
        tracked = tracker.update(detections, i / 10, i)
    followed = tracked[tracked.tracker_id > 0]
    assert len(followed) == 1 and followed.xyxy[0][0] == 106
    assert followed.confidence[0] == pytest.approx(0.28)
    assert FACE_CONFIDENCE in tracked.data and "class_score" not in tracked.data
    assert [t.frames for t in tracker.tracks.values()] == [3]  # ByteTrack confirms on the 2nd frame


def test_truncated_video_ends_with_a_message_and_a_playable_output(detector, pan, tmp_path):
    clip, source_frames = pan
    broken = tmp_path / "broken.avi"
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    out = tmp_path / "partial.mp4"
    summary = VideoPipeline(detector, WatchOptions()).run(str(broken), out)
    assert summary.status == "ended_early" and "broken.avi" in summary.message
    frames, (codec, *_rest) = decode(out)
    assert codec == "h264" and 0 < len(frames) == summary.frames < len(source_frames)


def test_a_damaged_stretch_of_an_h264_file_costs_only_its_frames_and_ffmpeg_stays_quiet(pan, tmp_path):
    """Bytes zeroed a third of the way into an H.264 MP4 (a bad sector, a broken download): the frames before and
    after the damage are watched; FFmpeg's per-packet complaints do not reach the terminal."""
    from maskwatch.video.writer import H264Writer

    _, source_frames = pan
    clip = tmp_path / "damaged.mp4"
    with H264Writer(clip, (source_frames[0].shape[1], source_frames[0].shape[0]), 12) as writer:
        for frame in source_frames:
            writer.write(frame)
    data = bytearray(clip.read_bytes())
    data[len(data) // 3:len(data) // 3 + 2000] = bytes(2000)
    clip.write_bytes(bytes(data))
    out = tmp_path / "watched.mp4"
    done = subprocess.run([sys.executable, "-m", "maskwatch.cli", "watch", str(clip), "--out", str(out), "--scale",
                           "1", "--db", str(tmp_path / "events.sqlite")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "damaged packet" in done.stderr and "@ 0x" not in done.stderr
    summary = json.loads(out.with_suffix(".json").read_text())
    assert len(source_frames) // 2 < summary["frames"] < len(source_frames)


def test_a_phone_video_with_a_rotation_flag_is_watched_upright(pan, tmp_path):
    """Phones store portrait video as landscape frames plus a rotation in the container; players (and OpenCV's
    reader, before PyAV) apply it, so must we: faces lying on their side are not found."""
    import cv2

    from maskwatch.video.sources import FileSource

    _, source_frames = pan
    clip = encode_clip(source_frames[:6], tmp_path / "portrait.mp4", rotation=90)  # shown a quarter turn left
    source = FileSource(clip)
    try:
        first = next(iter(source.frames())).image
    finally:
        source.close()
    expected = cv2.rotate(source_frames[0], cv2.ROTATE_90_COUNTERCLOCKWISE)
    assert first.shape == expected.shape and source.size == (expected.shape[1], expected.shape[0])
    assert np.abs(first.astype(int) - expected).mean() < 8  # H.264 noise only


def test_containers_without_a_frame_count_still_give_one(pan, tmp_path):
    """MKV and WebM do not store the number of frames; it comes from the duration (progress bars, ETA, and the
    check that a file ended early need it)."""
    from maskwatch.video.sources import FileSource

    _, source_frames = pan
    clip = encode_clip(source_frames, tmp_path / "clip.mkv")
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames == 0  # what the container says
    source = FileSource(clip)
    try:
        assert source.expected_frames == len(source_frames) == sum(1 for _ in source.frames())
    finally:
        source.close()


def test_unreadable_sources_say_so(detector, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(MaskwatchError, match="notes.mp4"):
        VideoPipeline(detector).run(str(text))
    with pytest.raises(MaskwatchError, match="no such file"):
        VideoPipeline(detector).run(str(tmp_path / "missing.mp4"))
    with pytest.raises(MaskwatchError, match="cannot open the camera or stream"):
        VideoPipeline(detector).run("rtsp://127.0.0.1:9/none")
    with pytest.raises(MaskwatchError, match=r"rtsp://user:\*\*\*@127.0.0.1:9/none: cannot open") as error:
        VideoPipeline(detector).run("rtsp://user:hunter2@127.0.0.1:9/none")  # the password is never shown
    assert "hunter2" not in str(error.value)


def test_opencv_is_quiet_while_cameras_open_and_as_before_once_the_last_open_ends(monkeypatch):
    import cv2

    from maskwatch.video.sources import opencv_quiet

    monkeypatch.delenv("OPENCV_LOG_LEVEL", raising=False)
    before = cv2.utils.logging.getLogLevel()
    first, second = opencv_quiet(), opencv_quiet()  # two cameras opening at once, in other threads
    first.__enter__()
    second.__enter__()
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    first.__exit__(None, None, None)  # the first open ends while the second still runs: still quiet
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    second.__exit__(None, None, None)
    assert cv2.utils.logging.getLogLevel() == before != cv2.utils.logging.LOG_LEVEL_SILENT


def test_an_empty_file_an_mp4_cut_before_its_index_an_heif_photo_and_a_non_video_are_told_apart(pan, tmp_path):
    """Files FFmpeg refuses alike ("Invalid data found"); a person needs to know which one they have."""
    from maskwatch.video.sources import FileSource

    _, source_frames = pan
    recorded = write_clip(source_frames[:10], tmp_path / "recorded.mp4")  # OpenCV writes the index at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(recorded.read_bytes()[: recorded.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video " * 20)
    heif = tmp_path / "photo.mp4"  # an AVIF photo's header, the rest lost
    heif.write_bytes(b"\x00\x00\x00\x1cftypavif" + bytes(200))
    expected = {cut: "is an MP4 .* index .* is missing", empty: "is empty",
                text: "cannot be opened as a video .not a video", heif: "is an image in an HEIF / AVIF container"}
    for path, says in expected.items():
        with pytest.raises(MaskwatchError, match=f"{path.name}: {says}"):
            FileSource(path)


def test_odd_sized_video_keeps_every_pixel_and_a_still_image_is_one_frame(pan, tmp_path):
    """H.264 in yuv420p needs even sizes: the last row and column are repeated rather than cut off. A still image
    read as a video (an upload has no file extension) counts as one frame, so progress can say 1 of 1."""
    import cv2

    from maskwatch.video.sources import FileSource

    _, source_frames = pan
    odd = [cv2.resize(frame, (321, 241)) for frame in source_frames[:6]]
    clip = write_h264(odd, tmp_path / "odd.mp4")  # the writer the annotated videos go through
    frames, (codec, width, height, _fps) = decode(clip)
    assert (codec, width, height, len(frames)) == ("h264", 322, 242, len(odd))
    source_edge, written_edge = odd[3][:, -1].astype(int), frames[3][:241, -1].astype(int)
    assert np.abs(source_edge - written_edge).mean() < 8  # lossy, but the source's last column, not a neighbour's
    assert np.abs(frames[3][:241, -1].astype(int) - frames[3][:241, -2].astype(int)).mean() < 4  # repeated

    still, back_to_back = tmp_path / "upload", tmp_path / "pngs"
    still.write_bytes(cv2.imencode(".png", odd[0])[1].tobytes())
    back_to_back.write_bytes(b"".join(cv2.imencode(".png", frame)[1].tobytes() for frame in odd[:3]))
    for path, expected, frames in ((still, 1, 1), (back_to_back, None, 3)):  # FFmpeg reads both as a png_pipe
        source = FileSource(path)
        try:
            assert (source.expected_frames, sum(1 for _ in source.frames())) == (expected, frames)
        finally:
            source.close()


def test_a_still_photo_watched_as_a_video_says_why_nobody_is_counted(detector, photo, tmp_path):
    import shutil

    still = tmp_path / "upload"  # no extension, as an upload is stored
    shutil.copy(photo, still)
    summary = VideoPipeline(detector).run(str(still), tmp_path / "still.mp4")
    assert summary.frames == 1 and summary.status == "finished" and sum(summary.people.values()) == 0
    assert "nobody is counted" in summary.message and "maskwatch detect" in summary.message


def test_ctrl_c_finishes_the_video_and_the_database(photo, tmp_path):
    frames = pan_frames(photo, size=(320, 240), frames=300, zoom=1.5)
    clip = write_clip(frames, tmp_path / "long.avi", fps=12, codec="MJPG")
    out, db = tmp_path / "long.mp4", tmp_path / "events.sqlite"
    process = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "watch", str(clip), "--out", str(out),
                                "--db", str(db), "--scale", "1", "--max-fps", "10"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    seen = wait_for_progress(process, 20, 300)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    stderr = seen + stderr
    assert process.returncode == 0, stderr
    assert "interrupted" in stderr and json.loads(out.with_suffix(".json").read_text())["status"] == "interrupted"
    decoded, _ = decode(out)
    assert 0 < len(decoded) < 300
    status, count = sqlite3.connect(db).execute("SELECT status, frames FROM runs").fetchone()
    assert status == "interrupted" and count == len(decoded)


def test_a_second_ctrl_c_while_the_outputs_are_finished_is_said_and_does_not_cut_them_short(detector, photo,
                                                                                            tmp_path, capfd):
    import os

    from maskwatch.video.bus import CallbackSink

    clip = write_clip(pan_frames(photo, size=(320, 240), frames=40, zoom=1.5), tmp_path / "pan.avi", fps=12,
                      codec="MJPG")
    taps = []

    def ctrl_c() -> None:
        taps.append(time.time())
        os.kill(os.getpid(), signal.SIGINT)  # as a terminal sends it: to the main thread, between two steps

    def on_frame(view) -> None:  # the first at the 6th frame ...
        if not taps and view.frame.index == 5:
            ctrl_c()

    def on_event(event) -> None:  # ... the second at the first event after it: those of the run's end
        if len(taps) == 1:
            ctrl_c()

    out = tmp_path / "pan.mp4"
    pipeline = VideoPipeline(detector, sinks=[CallbackSink(on_event=on_event, on_frame=on_frame)])
    summary = pipeline.run(str(clip), out, handle_signals=True)  # (as the watch command runs it)
    assert len(taps) == 2 and summary.status == "interrupted"
    assert "finishing the video, summary and events; once more to stop at once" in capfd.readouterr().err
    decoded, _ = decode(out)
    assert len(decoded) == summary.frames == 6  # every frame shown is in the video
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "interrupted"


def test_people_entering_and_leaving_are_each_counted_once(detector, data_dir, tmp_path):
    import cv2

    from maskwatch.data import load_dataset

    sample = load_dataset(data_dir).subset(["maksssksksss94"]).samples[0]
    image = cv2.imread(str(sample.image_path))
    widths = sample.detections.xyxy[:, 2] - sample.detections.xyxy[:, 0]
    faces = []
    for i in np.argsort(-widths)[:2]:  # the two largest faces of the photo, with some context
        x1, y1, x2, y2 = sample.detections.xyxy[i]
        cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.6
        crop = image[int(max(0, cy - side / 2)):int(cy + side / 2), int(max(0, cx - side / 2)):int(cx + side / 2)]
        faces.append(cv2.resize(crop, (110, 110), interpolation=cv2.INTER_CUBIC))
    clip = write_clip(walk_through_frames(faces), tmp_path / "door.avi", fps=10, codec="MJPG")
    pipeline = VideoPipeline(detector, WatchOptions(every=1, min_track_frames=3), tmp_path / "events.sqlite")
    summary = pipeline.run(str(clip))
    assert sum(summary.people.values()) == 2, summary.people
    rows = sqlite3.connect(tmp_path / "events.sqlite").execute(
        "SELECT first_seen_s, last_seen_s FROM tracks WHERE frames >= 3 ORDER BY first_seen_s").fetchall()
    assert len(rows) == 2
    assert rows[0][0] < 1.0 and 2.0 <= rows[1][0] <= 3.5  # the second person enters at frame 25 (2.5 s)
    assert rows[0][1] < rows[1][1]


def test_report_reads_back_what_the_run_counted(detector, pan, tmp_path):
    from maskwatch.video.report import plot_compliance, read_report

    clip, _ = pan
    db = tmp_path / "events.sqlite"
    summary = VideoPipeline(detector, WatchOptions(every=1), db).run(str(clip))
    report = read_report(db)
    assert [r["status"] for r in report.runs] == ["finished"]
    assert summary.people == report.people  # (every class, 0 included, in both)
    assert report.compliance == pytest.approx(summary.compliance)
    assert report.windows  # per-window counts were stored
    chart = plot_compliance(report, tmp_path / "chart.png")
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert plot_compliance(report, tmp_path / "noext") == tmp_path / "noext.png"  # the file it writes, named
    with pytest.raises(MaskwatchError, match="no such events database"):
        read_report(tmp_path / "missing.sqlite")
    with pytest.raises(MaskwatchError, match="no runs recorded with id 0"):
        read_report(db, 0)
    from typer.testing import CliRunner

    from maskwatch.cli import app

    for chart_path, said in ((db, "is the database being read"), (tmp_path / "c.mp4", "the chart is a PNG")):
        result = CliRunner().invoke(app, ["report", str(db), "--chart", str(chart_path)])
        assert isinstance(result.exception, MaskwatchError) and said in str(result.exception)  # (main(): exit 2)
    assert read_report(db).runs  # (the database is still one)


def test_report_chart_window_follows_the_run_length(detector, pan, tmp_path):
    """A 2-s clip stored in one 10-s database window still charts several points: the chart picks its own window."""
    from maskwatch.video.report import chart_window, read_report, span_compliance

    clip, _ = pan
    db = tmp_path / "events.sqlite"
    VideoPipeline(detector, WatchOptions(window_s=10.0), db).run(str(clip))
    report = read_report(db)
    assert len(report.windows) == 1  # what the database holds at --window 10
    length = max(last for _, _, last, _ in report.spans)
    assert 1.0 < length <= 2.0 and chart_window(length) == 1.0
    series = span_compliance([(first, last, label) for _, first, last, label in report.spans], chart_window(length))
    assert len(series) >= 2 and all(0 <= share <= 1 for _, share in series)
    assert (chart_window(60), chart_window(3600), chart_window(86400)) == (5.0, 300.0, 7200.0)


def test_a_video_file_that_cannot_be_written_fails_the_command_and_says_so(pan, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from maskwatch.cli import app
    from maskwatch.video.writer import H264Writer

    def disk_full(self, image, time_s=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(H264Writer, "write", disk_full)
    clip, _ = pan
    out, db = tmp_path / "out.mp4", tmp_path / "events.sqlite"
    result = CliRunner().invoke(app, ["watch", str(clip), "--out", str(out), "--db", str(db), "--max-frames", "4",
                                      "--scale", "1", "--threads", "2"])
    assert result.exit_code == 1, result.output
    # The encoder runs on its own thread: its error comes back on a later frame's write (or at close), so how many
    # of the 4 frames report it depends on timing; that it is counted, said and stored the same everywhere does not.
    said = re.search(r"video file: failed (\d+) time\(s\)", result.stderr)
    assert said and 1 <= int(said[1]) <= 4 and "No space left on device" in result.stderr, result.stderr
    failure = json.loads(out.with_suffix(".json").read_text())["sink_failures"]["video file"]
    assert failure["failures"] == int(said[1]) and failure["required"] and "No space left" in failure["first"]
    status, message = sqlite3.connect(db).execute("SELECT status, message FROM runs").fetchone()
    assert status == "finished" and f"video file failed {said[1]} time(s), first in" in message


def test_a_lost_stream_is_given_up_at_the_limit_not_at_the_next_back_off(monkeypatch):
    """The reconnect back-off (up to 10 s) ran past --give-up-after: 8 s asked, 16 s before the run ended."""
    from maskwatch.video.sources import LiveSource

    watched = threading.Event()  # the reader's thread reads on only once its waits are watched

    class Gated(FakeCapture):
        def read(self):
            if len(self.frames) < 5:  # (the first frame is read as the source opens)
                assert watched.wait(30)
            return super().read()

    captures = [Gated((640, 480))]
    monkeypatch.setattr(LiveSource, "_open", lambda self: captures.pop(0) if captures else None)
    source = LiveSource("rtsp://camera/stream", give_up_after_s=0.3, backoff_s=(30.0, 30.0))
    waits = []
    wait = source._stop.wait
    monkeypatch.setattr(source._stop, "wait", lambda timeout=None: waits.append(timeout) or wait(timeout))
    watched.set()
    try:
        list(source.frames())
    finally:
        source.close()
    assert "given up (--give-up-after 0.3)" in source.ended_early
    assert waits and max(waits) <= 0.3  # (a back-off of 30 s: the run would have ended 30 s late)


class FakeCapture:
    """What cv2.VideoCapture gives for a network camera: these frames, then nothing (the stream drops)."""

    def __init__(self, size: tuple[int, int], frames: int = 5):
        self.frames = [np.full((size[1], size[0], 3), 100, np.uint8) for _ in range(frames)]

    def isOpened(self) -> bool:
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop) -> float:
        return 10.0

    def release(self) -> None:
        pass


@pytest.mark.parametrize("second, reason", [
    ((800, 600), "the frames are now 800x600 pixels, not 640x480 as when the stream was opened"),
    ((1000, 800), "1000x800 pixels, over the limit of 600,000"),
    (None, "given up (--give-up-after 0.05)")])
def test_a_live_stream_that_comes_back_at_another_size_or_not_at_all_ends_early(monkeypatch, second, reason):
    from maskwatch.video.sources import LiveSource

    monkeypatch.setenv("MASKWATCH_MAX_PIXELS", "600000")
    captures = [FakeCapture((640, 480))] + ([FakeCapture(second)] if second else [])
    monkeypatch.setattr(LiveSource, "_open", lambda self: captures.pop(0) if captures else None)
    source = LiveSource("rtsp://camera/stream", give_up_after_s=0.05, backoff_s=(0.01, 0.02))
    try:
        shapes = {frame.image.shape for frame in source.frames()}
    finally:
        source.close()
    assert shapes == {(480, 640, 3)}  # no frame of another size went on
    assert source.ended_early and reason in source.ended_early


def test_a_camera_not_up_at_the_start_fails_at_once_or_is_waited_for(monkeypatch, caplog):
    """One try by default (a wrong address fails at once); with wait_s the camera is tried again with backoff,
    each try said, until it comes up, the time is over, or the wait is cancelled. The source's clock is a fake one
    that its pauses move on: the pauses and tries are exact, and nothing here depends on the machine's speed."""
    import types

    from maskwatch.video import sources
    from maskwatch.video.sources import LiveSource

    class Clock:
        """time.monotonic for the source, and the `cancel` event whose wait() is each pause between tries."""

        def __init__(self, cancelled_at: int | None = None):
            self.now, self.pauses, self.cancelled_at = 1000.0, [], cancelled_at

        def monotonic(self) -> float:
            return self.now

        def wait(self, seconds: float) -> bool:
            self.pauses.append(seconds)
            self.now += seconds
            return len(self.pauses) == self.cancelled_at  # True: cancelled during this pause

    tries: list[int] = []

    def up_on_third_try(self):
        tries.append(1)
        return FakeCapture((320, 240)) if len(tries) >= 3 else None

    def source_with(clock: Clock, **kwargs) -> LiveSource:
        real = {name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
        monkeypatch.setattr(sources, "time", types.SimpleNamespace(**{**real, "monotonic": clock.monotonic}))
        try:
            return LiveSource("rtsp://camera/stream", backoff_s=(0.05, 0.1), cancel=clock, **kwargs)
        finally:
            monkeypatch.setattr(sources, "time", time)

    monkeypatch.setattr(LiveSource, "_open", up_on_third_try)
    clock = Clock()
    with pytest.raises(MaskwatchError, match=r"rtsp://camera/stream: cannot open the camera or stream") as refused:
        source_with(clock)
    assert len(tries) == 1 and clock.pauses == [] and "--wait-for-camera" not in str(refused.value)
    tries.clear()
    clock = Clock()
    with caplog.at_level(logging.WARNING, logger="maskwatch.video.sources"):
        source = source_with(clock, wait_s=30)
    try:
        assert len(tries) == 3 and source.size == (320, 240) and clock.pauses == [0.05, 0.1]  # backoff, doubled
        waits = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
        assert len(waits) == 2 and "cannot open the camera or stream" in waits[0]
    finally:
        source.close()
    tries.clear()
    monkeypatch.setattr(LiveSource, "_open", lambda self: tries.append(1))  # never up
    clock = Clock()
    with pytest.raises(MaskwatchError, match=r"cannot open the camera or stream .*; tried for 0.3 s \(--wait-for"):
        source_with(clock, wait_s=0.3)
    assert len(tries) == 5 and clock.pauses == pytest.approx([0.05, 0.1, 0.1, 0.05])  # the last pause: what was left
    tries.clear()
    clock = Clock(cancelled_at=1)  # a pipeline's stop() during the first pause ends the wait there
    with pytest.raises(MaskwatchError, match="stopped while waiting for it"):
        source_with(clock, wait_s=60)
    assert len(tries) == 1 and clock.pauses == [0.05]


def test_a_camera_without_frames_is_said_down_on_the_bus_and_up_when_they_come_back(detector, monkeypatch,
                                                                                    tmp_path):
    """A dead camera must not look like an empty doorway: camera.down once no frame came for a while, camera.up
    with the frames; here the stream drops after 5 frames, comes back with 5 more once camera.down was said, then
    drops for good and is given up."""
    from maskwatch.video.bus import CallbackSink
    from maskwatch.video.events import CAMERA_DOWN, CAMERA_UP
    from maskwatch.video.sources import LiveSource

    events, said_down = [], threading.Event()
    captures = [FakeCapture((320, 240)), FakeCapture((320, 240))]

    def reopen(self):  # the camera comes back once the pipeline has said it is down, and then never again
        return captures.pop(0) if captures and (len(captures) == 2 or said_down.is_set()) else None

    def on_event(event) -> None:
        events.append(event)
        if event.type == CAMERA_DOWN:
            said_down.set()

    monkeypatch.setattr(LiveSource, "_open", reopen)
    source = LiveSource("rtsp://camera/stream", give_up_after_s=6, backoff_s=(0.2, 0.2))
    options = WatchOptions(camera_down_after_s=1.0, summary_every=None)
    db = tmp_path / "events.sqlite"
    summary = VideoPipeline(detector, options, db, sinks=[CallbackSink(on_event=on_event)]).run(source)
    kinds = [e.type for e in events if e.type in (CAMERA_DOWN, CAMERA_UP)]
    assert kinds == [CAMERA_DOWN, CAMERA_UP, CAMERA_DOWN], kinds  # down, back, down for good
    down = next(e for e in events if e.type == CAMERA_DOWN)
    assert down.as_dict()["reason"].startswith("no frame for ") and summary.frames >= 2
    assert summary.status == "ended_early" and "given up (--give-up-after 6)" in summary.message
    assert summary.live  # (`watch` then exits with 1, for a service manager to start it again)
    from maskwatch.video.report import read_report

    assert read_report(db).runs[0]["camera_outages"] == 2  # what `maskwatch report` lists


def test_the_people_in_view_when_a_camera_goes_down_leave_then_not_when_it_comes_back(detector, faces):
    """camera.down says nobody is watched: the person in view leaves at once (person.left, zone.left), not when
    the frames come back (which may be never); the picture that comes back is a new one."""
    from clips import crossing_people
    from maskwatch.video.bus import CallbackSink
    from maskwatch.video.events import CAMERA_DOWN, CAMERA_UP, PERSON_ENTERED, PERSON_LEFT, ZONE_LEFT
    from maskwatch.video.sources import Frame, FrameSource

    pictures, rate = crossing_people(*faces)

    class DroppingCamera(FrameSource):  # the masked person walks in and stops; the stream drops; it comes back
        live, fps, size = True, rate, (pictures[0].shape[1], pictures[0].shape[0])

        def frames(self):
            for index in range(20):
                yield Frame(index, index / rate, pictures[index], time.time())
            for _ in range(15):  # 3 s without a frame, as a live source waits for one
                self.on_wait()
                time.sleep(0.2)
            for index in range(20, 26):
                yield Frame(index, 5.0 + index / rate, np.full_like(pictures[0], 90), time.time())

    events = []
    options = WatchOptions(every=1, camera_down_after_s=1.0, summary_every=None)
    VideoPipeline(detector, options, sinks=[CallbackSink(on_event=events.append)],
                  zones=["all=0,0,479,0,479,319,0,319"]).run(DroppingCamera())
    kinds = [e.type for e in events if e.type in (PERSON_ENTERED, PERSON_LEFT, ZONE_LEFT, CAMERA_DOWN, CAMERA_UP)]
    assert kinds[:5] == [PERSON_ENTERED, CAMERA_DOWN, ZONE_LEFT, PERSON_LEFT, CAMERA_UP] or \
        kinds[:5] == [PERSON_ENTERED, CAMERA_DOWN, PERSON_LEFT, ZONE_LEFT, CAMERA_UP], kinds
    assert kinds.count(PERSON_ENTERED) == kinds.count(PERSON_LEFT) == 1  # nobody comes back from the old picture
    down = next(i for i, e in enumerate(events) if e.type == CAMERA_DOWN)
    up = next(i for i, e in enumerate(events) if e.type == CAMERA_UP)
    during = [e for e in events[down:up] if e.type == "counts"]
    assert len(during) == 1 and sum(during[0].as_dict()["counts"]["present"].values()) == 0


def test_a_file_played_as_a_camera_that_goes_away_is_waited_for_as_a_camera_that_drops(tmp_path, monkeypatch):
    """serve's file cameras: a file moved away (being replaced) is looked for again, with on_wait called (so
    camera.down is said), and it plays again once back; it used to stop the camera for good."""
    from maskwatch.video.sources import FileSource, LoopingSource

    clip = write_clip([np.full((48, 64, 3), v, np.uint8) for v in (40, 80, 120)], tmp_path / "door.avi", fps=30,
                      codec="MJPG")
    monkeypatch.setattr(LoopingSource, "RETRY_S", 0.05)
    source = LoopingSource(lambda: FileSource(clip), str(clip))
    waits = []

    def waiting() -> None:  # what the pipeline's outage watch hears; the file comes back at the fifth
        waits.append(source.receiving())
        if len(waits) == 5:
            aside.rename(clip)

    source.on_wait = waiting
    aside = clip.rename(tmp_path / "aside.avi")  # gone before the first loop ends (the first is already open)
    frames = source.frames()
    seen = [next(frames) for _ in range(6)]  # the first loop, the wait, the file back, the second loop
    source.close()
    assert len(seen) == 6 and waits[:5] == [False] * 5 and source.receiving() and source.reconnects == 1
    assert all(b.time_s > a.time_s for a, b in zip(seen, seen[1:]))  # time goes on across the wait


def test_labels_of_faces_at_the_top_edge_are_drawn_over_the_counts_band():
    """The counts band at the top left is drawn before the faces, so a face there keeps its label readable."""
    from types import SimpleNamespace

    from maskwatch.classes import CLASS_COLOURS_BGR

    fake = SimpleNamespace(options=SimpleNamespace(draw_conf=0.3, blur_faces=False),
                           detector=SimpleNamespace(classes=CLASSES))
    image = np.full((240, 320, 3), 128, np.uint8)
    tracked = detections_from_labels(np.array([[20, 2, 60, 50]]), ["without_mask"], np.array([0.9]), CLASSES)
    out = VideoPipeline.render(fake, image, tracked, {"without_mask": 1})
    band = out[:14, :200].reshape(-1, 3).astype(int)
    red = np.abs(band - np.array(CLASS_COLOURS_BGR["without_mask"])).sum(axis=1) < 30
    black = band.sum(axis=1) == 0
    assert red.sum() > 50 and black.sum() > 200  # the face's label over the band, and the band itself
    assert (image == 128).all()  # the frame itself is left as it was


def test_a_counted_person_is_drawn_even_when_this_frames_class_score_is_low():
    """The tracker follows face confidence: a person whose class is in doubt (class score under the drawing
    threshold) is counted, so the video must show them; an uncounted face that faint is not drawn."""
    from types import SimpleNamespace

    fake = SimpleNamespace(options=SimpleNamespace(draw_conf=0.4, blur_faces=False),
                           detector=SimpleNamespace(classes=CLASSES))
    image = np.full((240, 320, 3), 128, np.uint8)
    tracked = detections_from_labels(np.array([[120, 80, 200, 180]]), ["with_mask"], np.array([0.3]), CLASSES)
    tracked.tracker_id = np.array([7])
    face = (slice(70, 190), slice(110, 210))
    uncounted = VideoPipeline.render(fake, image, tracked, {})
    counted = VideoPipeline.render(fake, image, tracked, {"with_mask": 1}, counted=tracked)
    assert (uncounted[face] == 128).all()
    assert (counted[face] != 128).any(axis=2).sum() > 200  # its box and label


def test_a_folder_of_portrait_and_landscape_photos_plays_without_squashing(tmp_path):
    from maskwatch.video.sources import FolderSource, ReadAhead

    landscape = np.full((300, 400, 3), 200, np.uint8)
    portrait = np.full((400, 300, 3), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), landscape)
    cv2.imwrite(str(tmp_path / "b.png"), portrait)
    (tmp_path / "c.png").write_bytes(b"not a picture")  # named and skipped; the run's summary says so
    source = ReadAhead(FolderSource(tmp_path))
    frames = [f.image for f in source.frames()]
    assert source.skipped == "1 of the folder's 3 frames could not be read and were skipped (c.png)"
    assert [f.shape for f in frames] == [(300, 400, 3), (300, 400, 3)]
    picture = frames[1][:, :, 0] == 100  # the portrait photo, scaled to 225 x 300 and centred on black
    columns = np.where(picture.any(axis=0))[0]
    assert picture.all(axis=0)[columns].all() and abs(len(columns) - 225) <= 1 and (frames[1][:, :80] == 0).all()


def test_still_images_are_told_from_videos_by_ffmpegs_demuxer(photo, tmp_path):
    """What POST /v1/videos refuses as a photo: what FFmpeg reads as one picture, whatever the name (an upload has
    none); a GIF of one frame is a photo, an animated GIF or an MJPEG AVI is a video."""
    from PIL import Image

    from maskwatch.video.sources import is_still_image

    image = Image.open(photo).convert("RGB")
    (tmp_path / "jpeg").write_bytes(photo.read_bytes())
    image.save(tmp_path / "png", format="PNG")
    image.save(tmp_path / "webp", format="WEBP")
    image.save(tmp_path / "one.gif", format="GIF")
    image.save(tmp_path / "gif", format="GIF", save_all=True, append_images=[image.transpose(Image.FLIP_LEFT_RIGHT)])
    write_clip([np.array(image)[:, :, ::-1]] * 3, tmp_path / "clip.avi", fps=3, codec="MJPG")
    (tmp_path / "text").write_text("not a picture")
    (tmp_path / "mjpeg").write_bytes(photo.read_bytes() * 3)  # a camera's raw MJPEG dump: JPEGs one after another
    assert [is_still_image(tmp_path / name) for name in ("jpeg", "png", "webp", "one.gif")] == [True] * 4
    assert [is_still_image(tmp_path / name) for name in ("gif", "clip.avi", "text", "mjpeg")] == [False] * 4


def test_an_animated_webp_says_it_must_be_converted(photo, tmp_path):
    from PIL import Image

    from maskwatch.video.sources import FileSource

    image = Image.open(photo).convert("RGB")
    image.save(tmp_path / "anim.webp", save_all=True, append_images=[image.transpose(Image.FLIP_LEFT_RIGHT)],
               duration=100)
    with pytest.raises(MaskwatchError, match="an animated WebP, which FFmpeg does not decode"):
        FileSource(tmp_path / "anim.webp")


def test_the_annotated_video_keeps_the_sources_timing_from_zero(photo, tmp_path):
    """A phone's variable-rate video (frames 50 and 200 ms apart, by turns) comes out at the same pace, its first
    frame at 0 s (not 0.2 s behind, as B-frames in a fragmented MP4 put it)."""
    from fractions import Fraction

    import av
    from typer.testing import CliRunner

    from maskwatch.cli import app

    source, times = tmp_path / "phone.mp4", [round(i // 2 * 0.25 + (i % 2) * 0.05, 3) for i in range(12)]
    picture = cv2.resize(cv2.imread(str(photo)), (320, 240))
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t in times:
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["watch", str(source), "--out", str(out), "--db", str(tmp_path / "e.sqlite"),
                                      "--scale", "1", "--threads", "2"])
    assert result.exit_code == 0, result.output

    def frame_times(path):
        with av.open(str(path)) as container:
            return [round(float(f.time), 3) for f in container.decode(video=0)]

    assert frame_times(source) == times and frame_times(out) == times


def test_frames_of_a_stream_without_timestamps_are_timed_by_the_frame_rate(photo, tmp_path):
    """A raw H.264 stream (a camera's dump) has no timestamps: frames are 1 / fps apart from 0, never negative."""
    import av

    from maskwatch.video.sources import FileSource

    picture = cv2.resize(cv2.imread(str(photo)), (160, 120))
    with av.open(str(tmp_path / "dump.h264"), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = FileSource(tmp_path / "dump.h264")
    times = [frame.time_s for frame in source.frames()]
    source.close()
    assert len(times) == 5 and times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] == pytest.approx(4 / source.fps, abs=0.05)


def test_frames_of_your_own_run_through_the_pipeline_and_a_wrong_one_is_named(photo, tmp_path):
    from maskwatch.video import ArraySource, watch

    picture = cv2.resize(cv2.imread(str(photo)), (320, 240))
    summary = watch(ArraySource((picture for _ in range(6)), fps=3), out=tmp_path / "mine.mp4",
                    database=tmp_path / "e.sqlite")
    assert summary.status == "finished" and summary.frames == 6 and sum(summary.people.values()) >= 1
    with pytest.raises(MaskwatchError, match="frame 1 is 320x100 pixels, not 320x240 like the first"):
        watch(ArraySource([picture, picture[:100]], fps=3), database=tmp_path / "e.sqlite")
    with pytest.raises(MaskwatchError, match="frame 0 is not an 8-bit BGR image"):
        ArraySource([picture.astype(np.float32)])
    with pytest.raises(MaskwatchError, match="frames of your own: ArraySource"):
        watch([picture], database=tmp_path / "e.sqlite")


def test_the_counts_band_fits_a_narrow_frame_instead_of_being_cut():
    """A 320-px webcam: "people: mask 12, no mask 14, wrong 1 | compliance 44%" ran off the right edge."""
    from maskwatch.annotate import draw_counts

    people = {"with_mask": 12, "without_mask": 14, "mask_weared_incorrect": 1}
    for width in (320, 640, 1920):
        image = draw_counts(np.full((240, width, 3), 128, np.uint8), people)
        band = image[:max(12, width // 40)]  # (the band grows with the frame)
        assert (band[:, -3:] == 128).all(), width  # the band (and its text) ends before the right edge
        assert (band[:, :100] == 0).any() and (band[:, :100] >= 200).any(), width  # and holds white text on black


def _write_av(path, frames, fmt=None, codec="libx264", fps=12, gop=None, pts_ms=None, sar=None):
    """A clip through PyAV with the knobs real files have: a keyframe interval, timestamps that start late or
    come unevenly (ms), a sample aspect ratio (anamorphic)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if sar:
            stream.codec_context.sample_aspect_ratio = Fraction(*sar)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_files_as_they_come_are_read_whole_and_not_called_cut_short(pan, tmp_path, caplog):
    """A long damaged stretch (a bad disk) stopped the run after 50 damaged packets; a stream that changed
    resolution (an adaptive download) stopped at the change; an MKV whose clock starts at 10 h, or of variable
    rate, was called truncated; an anamorphic picture was watched (and written) squeezed."""
    from maskwatch.video.sources import FileSource

    def read(path):
        source = FileSource(path)
        try:
            return [frame.image for frame in source.frames()], source
        finally:
            source.close()

    _, frames = pan
    frames = [cv2.resize(f, (320, 240)) for f in frames] * 8  # 192 frames
    damaged = _write_av(tmp_path / "damaged.mp4", frames, gop=12)
    data = bytearray(damaged.read_bytes())
    cut = slice(len(data) * 35 // 100, len(data) * 65 // 100)
    data[cut] = np.random.default_rng(0).integers(0, 256, cut.stop - cut.start, dtype=np.uint8).tobytes()
    damaged.write_bytes(bytes(data))
    read_frames, source = read(damaged)
    assert source.damaged > 50 and len(read_frames) > len(frames) // 2  # the frames after the damage too
    assert source.ended_early is None and "damaged packet(s) skipped" in source.skipped

    first = _write_av(tmp_path / "a.ts", frames[:24], fmt="mpegts", pts_ms=[i * 83 for i in range(24)])
    second = _write_av(tmp_path / "b.ts", [cv2.resize(f, (160, 120)) for f in frames[24:48]], fmt="mpegts",
                       pts_ms=[2000 + i * 83 for i in range(24)])
    (tmp_path / "abr.ts").write_bytes(first.read_bytes() + second.read_bytes())
    read_frames, source = read(tmp_path / "abr.ts")
    assert len(read_frames) == 48 and {f.shape for f in read_frames} == {(240, 320, 3)}  # scaled, not stopped
    assert "from frame 24 the video is 160x120 pixels, not 320x240" in caplog.text and source.ended_early is None
    assert "later frames are scaled into the first's size" in source.skipped  # (the summary's message says it)

    late = _write_av(tmp_path / "late.mkv", frames[:30], fmt="matroska",
                     pts_ms=[36_000_000 + i * 83 for i in range(30)])
    uneven = _write_av(tmp_path / "uneven.mkv", frames[:30], fmt="matroska",
                       pts_ms=list(np.cumsum([0] + [40 if i % 3 else 250 for i in range(29)])))
    for clip in (late, uneven):
        read_frames, source = read(clip)
        assert len(read_frames) == 30 and source.ended_early is None, clip.name

    squeezed = _write_av(tmp_path / "dvd.mkv", [cv2.resize(f, (240, 240)) for f in frames[:6]], sar=(4, 3))
    read_frames, source = read(squeezed)
    assert source.size == (320, 240) and read_frames[0].shape == (240, 320, 3)
    assert np.abs(read_frames[0].astype(int) - frames[0]).mean() < 12  # its shape as shown
