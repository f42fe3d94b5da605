"""`watch` when things go wrong: inputs it cannot encode, an output name it cannot write, and a process killed
with SIGKILL. The run never stays 'running' in the database, and a killed run's video still plays."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import av
import pytest
from PIL import Image

from clips import pan_frames, wait_for_progress, write_clip
from maskwatch.errors import MaskwatchError
from maskwatch.video import ArraySource, VideoPipeline, WatchOptions

WATCH = [sys.executable, "-m", "maskwatch.cli", "watch"]


def runs(db: Path) -> list[tuple[str, str | None]]:
    if not db.exists():
        return []
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute("SELECT status, message FROM runs ORDER BY id").fetchall()


def frames_recorded(db: Path) -> int:
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute("SELECT frames FROM runs").fetchone()[0] or 0


def test_inputs_and_outputs_watch_cannot_handle_are_clear_errors(tmp_path, photo):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    db = tmp_path / "events.sqlite"
    tiny = subprocess.run([*WATCH, str(tmp_path / "dot.png"), "--out", str(tmp_path / "dot.mp4"), "--db", str(db)],
                          capture_output=True, text=True, timeout=120)
    assert tiny.returncode == 2 and "1x1 pixels" in tiny.stderr and "Traceback" not in tiny.stderr
    no_suffix = subprocess.run([*WATCH, str(photo), "--out", str(tmp_path / "o"), "--db", str(db)],
                               capture_output=True, text=True, timeout=120)
    assert no_suffix.returncode == 2 and "give it a .mp4 name" in no_suffix.stderr
    assert "Traceback" not in no_suffix.stderr
    folder = subprocess.run([*WATCH, str(photo), "--out", str(tmp_path), "--db", str(db)],
                            capture_output=True, text=True, timeout=120)  # a folder for --out: a file in it
    assert folder.returncode == 2 and f"(e.g. {tmp_path / 'video.mp4'})" in folder.stderr
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(pan_frames(photo, (160, 120), 3), videos / "door.avi")
    of_videos = subprocess.run([*WATCH, str(videos), "--db", str(db)], capture_output=True, text=True, timeout=120)
    assert of_videos.returncode == 2 and f"to watch a video in it, give the file: {videos / 'door.avi'}" in \
        of_videos.stderr
    assert not db.exists()  # all refused before the database was opened: no run left 'running'


@pytest.mark.parametrize("make, error", [
    (lambda: WatchOptions(draw_conf=5), "draw_conf is 5; expected a score from 0 to 1"),  # (was drawn as nothing)
    (lambda: WatchOptions(detect_conf="x"), "detect_conf is 'x'; expected a score"),  # (numpy's UFuncTypeError)
    (lambda: ArraySource(iter(()), fps="15"), "fps must be a positive number"),
    (lambda: ArraySource(iter(()), fps=0), "fps must be a positive number"),
])
def test_video_settings_from_python_that_cannot_work_are_refused_by_name(make, error):
    from fractions import Fraction

    import numpy as np

    from maskwatch.errors import MaskwatchError

    with pytest.raises(MaskwatchError, match=error):
        make()
    from maskwatch.video.pipeline import check_video_out

    with pytest.raises(MaskwatchError, match="give it a .mp4 name \\(e.g. clips/video.mp4\\)"):
        check_video_out("door.mp4", "clips/", overwrite=False)  # (a folder meant: a file in it)
    frame = np.zeros((64, 64, 3), np.uint8)  # numbers as PyAV and numpy give them are numbers
    assert ArraySource([frame], fps=Fraction(30000, 1001)).fps == pytest.approx(29.97, abs=0.01)
    assert WatchOptions(every=np.int64(2), draw_conf=np.float32(0.5)).every == 2


class CrashingDetector:
    """The shipped detector, until it fails on its third frame (a bug, a GPU gone)."""

    def __init__(self, detector):
        self.detector, self.classes, self.calls = detector, detector.classes, 0

    def __call__(self, image, **options):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("the model crashed")
        return self.detector(image, **options)


def test_a_library_run_leaves_the_signals_alone_and_a_ctrl_c_is_raised_once_the_outputs_are_whole(tmp_path, photo,
                                                                                                     detector):
    """watch() from Python took over SIGTERM and SIGHUP (a worker told to end went on) and returned from a Ctrl-C
    as if the video had ended: now the caller's handlers stay, and the KeyboardInterrupt comes back, after the
    video and the summary are finished."""
    import json

    seen = []

    def frames():
        for index, frame in enumerate(pan_frames(photo, size=(320, 240), frames=20)):
            seen.append(signal.getsignal(signal.SIGTERM))
            if index == 12:
                raise KeyboardInterrupt
            yield frame

    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "cut.mp4"
    with pytest.raises(KeyboardInterrupt):
        VideoPipeline(detector, WatchOptions(every=1)).run(ArraySource(frames(), fps=10), out)
    assert set(seen) == {before} and signal.getsignal(signal.SIGTERM) == before
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "interrupted"
    with av.open(str(out)) as video:
        assert sum(1 for _ in video.decode(video=0)) >= 10


def test_stop_ends_a_run_whose_camera_is_down_at_once(photo, detector):
    """stop() was seen only when a frame came: a run whose camera was down (reconnecting for ever) went on
    waiting. It now stops the source too (FrameSource.stop), and the run ends as stopped, its outputs finished."""
    import threading
    import time

    from maskwatch.video.sources import Frame, FrameSource

    class DownAfterOneFrame(FrameSource):
        size, fps, live = (320, 240), 10.0, True

        def __init__(self) -> None:
            self.stopped = threading.Event()

        def frames(self):
            yield Frame(0, 0.0, next(iter(pan_frames(photo, size=(320, 240), frames=1))), time.time())
            self.stopped.wait(120)  # a camera that is down: no frame comes until the source is stopped

        def stop(self) -> None:
            self.stopped.set()

    from maskwatch.video import CallbackSink

    framed = threading.Event()
    pipeline = VideoPipeline(detector, WatchOptions(every=1, camera_down_after_s=60),
                             sinks=[CallbackSink(on_frame=lambda view: framed.set())])
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=pipeline.run(DownAfterOneFrame())), daemon=True)
    runner.start()
    assert framed.wait(60)  # the first frame handled: the source now waits
    pipeline.stop()
    runner.join(20)
    assert not runner.is_alive(), "stop() did not end a run whose camera is down"
    assert outcome["summary"].status == "interrupted" and outcome["summary"].frames == 1


def test_a_run_that_fails_after_the_database_is_open_is_marked_failed(tmp_path, photo, detector):
    clip = write_clip(pan_frames(photo, size=(320, 240), frames=6, zoom=1.5), tmp_path / "short.avi", fps=12,
                      codec="MJPG")
    db = tmp_path / "events.sqlite"
    with pytest.raises(RuntimeError, match="the model crashed"):
        VideoPipeline(CrashingDetector(detector), WatchOptions(), db).run(str(clip), tmp_path / "short.mp4")
    assert runs(db) == [("failed", "RuntimeError: the model crashed")]


def test_a_killed_run_is_marked_failed_and_its_video_plays(tmp_path, photo):
    frames = pan_frames(photo, size=(320, 240), frames=300, zoom=1.5)
    clip = write_clip(frames, tmp_path / "long.avi", fps=12, codec="MJPG")
    out, db = tmp_path / "long.mp4", tmp_path / "events.sqlite"
    process = subprocess.Popen([*WATCH, str(clip), "--out", str(out), "--db", str(db), "--scale", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_progress(process, 60, 300)  # 5 s of video done
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert runs(db) == [("running", None)]  # what SIGKILL leaves: nothing in the process could finish the run
    assert frames_recorded(db) >= 12  # how far it got, written while it ran (at least once a second)
    with av.open(str(out)) as container:  # fragmented MP4: playable up to the last second written
        decoded = sum(1 for _ in container.decode(container.streams.video[0]))
    assert 12 <= decoded < 300
    report = subprocess.run([sys.executable, "-m", "maskwatch.cli", "report", str(db), "--chart",
                             str(tmp_path / "chart.png")], capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert not list(tmp_path.glob("events.sqlite-*"))  # report only reads: no -wal / -shm left beside it
    status, message = runs(db)[0]
    assert status == "failed" and "stopped without finishing" in message
    assert "failed" in report.stdout


def test_the_summary_is_written_whole_or_not_at_all_and_no_earlier_runs_zones_stay(tmp_path, monkeypatch):
    """A full disk left OUT.json at 0 bytes, shown as the summary; a run without zones left an earlier run's
    OUT.zones.csv beside its own files."""
    from maskwatch.video.summary import WatchSummary, write_summary_files

    out = tmp_path / "door.mp4"
    zoned = WatchSummary(source="door.mp4", zones={"counter": {"people": {"with_mask": 1}}})
    assert [p.name for p in write_summary_files(zoned, out)] == ["door.json", "door.zones.csv"]
    before = out.with_suffix(".json").read_text()
    real_write = Path.write_text

    def full_disk(self, *args, **kwargs):
        real_write(self, "")  # what a full disk leaves: the file made, nothing in it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_summary_files(WatchSummary(source="door.mp4"), out)
    monkeypatch.undo()
    assert out.with_suffix(".json").read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "door.json", "door.zones.csv"]  # the earlier summary whole, no partial file left
    assert [p.name for p in write_summary_files(WatchSummary(source="door.mp4"), out)] == ["door.json"]
    assert not out.with_suffix(".zones.csv").exists()


def test_sources_of_ones_own_are_checked_and_read_once_and_a_stop_before_the_run_writes_nothing(tmp_path, photo,
                                                                                                 detector):
    """A library trial: a FrameSource subclass's wrong frame was drawn and counted (a video of 10 frames out of 30,
    'finished'); an ArraySource run twice gave its first frame alone the second time; stop() before run() still
    opened the source and wrote a run's files; a source without a size was said as frames of 0x0 pixels."""
    import json

    from maskwatch.video.sources import Frame, FrameSource

    frames = list(pan_frames(photo, size=(320, 240), frames=12))

    class Shrinking(FrameSource):
        size, fps = (320, 240), 10.0

        def frames(self):
            for index, image in enumerate(frames):
                yield Frame(index, index / 10, image if index < 6 else image[:120, :160].copy())

    with pytest.raises(MaskwatchError, match=r"Shrinking: frame 6 is 160x120 pixels, not 320x240"):
        VideoPipeline(detector, WatchOptions(every=1)).run(Shrinking(), tmp_path / "shrinking.mp4")
    assert json.loads((tmp_path / "shrinking.json").read_text())["status"] == "failed"

    class NoSize(FrameSource):
        def frames(self):
            yield Frame(0, 0.0, frames[0])

    with pytest.raises(MaskwatchError, match=r"NoSize: its size is \(0, 0\): a FrameSource sets `size`"):
        VideoPipeline(detector).run(NoSize())

    source = ArraySource(frames, fps=10)
    assert VideoPipeline(detector).run(source).frames == 12
    with pytest.raises(MaskwatchError, match="already read by a run; make a new ArraySource"):
        VideoPipeline(detector).run(source, tmp_path / "again.mp4")
    assert not (tmp_path / "again.mp4").exists() and not (tmp_path / "again.json").exists()

    stopped = VideoPipeline(detector, database=tmp_path / "events.sqlite")
    stopped.stop()
    summary = stopped.run(ArraySource(frames, fps=10), tmp_path / "never.mp4")
    assert summary.status == "interrupted" and summary.frames == 0 and "nothing written" in summary.message
    assert not list(tmp_path.glob("never*")) and not (tmp_path / "events.sqlite").exists()
