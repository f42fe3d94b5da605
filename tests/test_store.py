"""The events database itself: several processes opening one new database at once, databases written by older
versions, and files that are not databases."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from maskwatch.errors import MaskwatchError
from maskwatch.video.store import EventStore


def _open_together(path: str, barrier) -> None:
    barrier.wait(timeout=60)
    try:
        EventStore(Path(path)).close()
    except Exception as exc:  # written beside the database for the test to name
        Path(f"{path}.{os.getpid()}.error").write_text(f"{type(exc).__name__}: {exc}")


def test_processes_opening_one_new_database_together_all_succeed(tmp_path):
    fork = multiprocessing.get_context("fork")  # quick to start: all of them reach the barrier together
    for round_ in range(4):
        path = tmp_path / f"events{round_}.sqlite"
        barrier = fork.Barrier(6)
        processes = [fork.Process(target=_open_together, args=(str(path), barrier)) for _ in range(6)]
        for p in processes:
            p.start()
        for p in processes:
            p.join(timeout=120)
        assert [p.exitcode for p in processes] == [0] * 6
        errors = [e.read_text() for e in tmp_path.glob("*.error")]
        assert errors == [], errors
        with sqlite3.connect(path) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        assert {"camera", "run", "pid", "host"} <= columns


def test_a_database_of_an_older_version_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, "
                   "started_at REAL NOT NULL, ended_at REAL, frames INTEGER DEFAULT 0, "
                   "status TEXT NOT NULL DEFAULT 'running', message TEXT)")
        db.execute("INSERT INTO runs (source, started_at, status) VALUES ('old.mp4', 0, 'finished')")
    store = EventStore(path)
    try:
        run_id = store.start_run("new.mp4", camera="door", run="abc")
        rows = store.db.execute("SELECT source, camera, run, status FROM runs ORDER BY id").fetchall()
    finally:
        store.close()
    assert rows == [("old.mp4", None, None, "finished"), ("new.mp4", "door", "abc", "running")] and run_id == 2


def test_a_file_that_is_not_a_database_is_named_with_the_fix(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: masks, more masks\n" * 100)
    with pytest.raises(MaskwatchError, match=r"notes.txt: cannot be used as the events database \(file is not a "
                                             r"database\); give --db a new file name"):
        EventStore(notes)
    with pytest.raises(MaskwatchError, match="cannot be used as the events database"):
        EventStore(tmp_path)  # a folder


def test_a_watch_whose_database_cannot_be_opened_leaves_no_output_files(photo, tmp_path):
    from maskwatch.detector import Detector
    from maskwatch.video.pipeline import VideoPipeline

    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    out = tmp_path / "run.mp4"
    with pytest.raises(MaskwatchError, match="cannot be used as the events database"):
        VideoPipeline(Detector.load(threads=2), database=notes).run(str(photo), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no summary of a run that never started


def test_a_database_locked_by_another_process_delays_its_writes_not_the_video(photo, tmp_path):
    """Another writer holds the database (an admin's sqlite3 shell in a transaction, a backup) while the run goes:
    the writes wait on the sink's own thread and are all made once it lets go; nothing is lost."""
    import threading

    from clips import pan_frames, write_clip
    from maskwatch.detector import Detector
    from maskwatch.video.bus import Sink
    from maskwatch.video.pipeline import VideoPipeline, WatchOptions

    db = tmp_path / "events.sqlite"
    clip = write_clip(pan_frames(photo, size=(320, 240), frames=24, zoom=1.5), tmp_path / "pan.avi", fps=12,
                      codec="MJPG")
    held, released, done = threading.Event(), threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # until the video is through (or a minute: a pipeline stuck on the lock)
        other = sqlite3.connect(str(db), isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held.set()
        done.wait(60)
        other.execute("COMMIT")
        released.set()
        other.close()

    class LockAfterOpen(Sink):  # opens after the database sink: the lock is taken once the run's row exists
        frames_while_locked = 0

        def open(self, run) -> None:
            threading.Thread(target=hold_the_lock, daemon=True).start()
            held.wait(10)

        def frame(self, view) -> None:
            self.frames_while_locked += not released.is_set()
            if view.frame.index == 23:
                done.set()

    watcher = LockAfterOpen()
    summary = VideoPipeline(Detector.load(threads=2), WatchOptions(summary_every=0.5), db,
                            sinks=[watcher]).run(str(clip))
    assert summary.status == "finished" and not summary.sink_failures
    # Every frame went through while the database was held: before, the first write stopped the pipeline until
    # the lock was let go (here never, but for the minute's safety).
    assert watcher.frames_while_locked == summary.frames == 24
    with sqlite3.connect(str(db)) as check:
        status, frames = check.execute("SELECT status, frames FROM runs").fetchone()
        stored = check.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert (status, frames) == ("finished", summary.frames) and stored == sum(summary.events.values())


@pytest.mark.parametrize("error, said", [("database is locked", "another process holds it locked"),
                                         ("database or disk is full", "is the disk full?")])
def test_a_run_that_cannot_be_recorded_is_one_error_line(tmp_path, monkeypatch, error, said):
    """A database locked past the wait (or a full disk) when a run starts ended `watch` in a traceback, and made a
    server's camera restart in a loop of tracebacks."""
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.sinks.database import DatabaseSink

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError(error)

    monkeypatch.setattr(EventStore, "start_run", refuse)
    with pytest.raises(MaskwatchError, match=f"e.sqlite: cannot record the run \\({error}\\); {said}"):
        DatabaseSink(tmp_path / "e.sqlite").open(RunInfo("door", "r1", "door.mp4", (640, 480), 25.0))
