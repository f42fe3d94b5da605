"""The events database (SQLite): one row per run, one per confirmed track (written when it is confirmed, updated
when it ends, so a camera watched for a week has its tracks while it runs), per-window counts, and every event
in the one JSON schema, queryable by camera, type and time (`read_events`), for `maskwatch report` and the
server."""

from __future__ import annotations

import json
import math
import numbers
import os
import random
import socket
import sqlite3
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from maskwatch.errors import MaskwatchError
from maskwatch.video.events import EVENT_TYPES, Event
from maskwatch.video.tracking import TrackState

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    frames INTEGER DEFAULT 0, status TEXT NOT NULL DEFAULT 'running', message TEXT, camera TEXT, run TEXT,
    pid INTEGER, host TEXT, detected_frames INTEGER, tracked_frames INTEGER, dropped_frames INTEGER,
    scene_cuts INTEGER, areas TEXT);
CREATE TABLE IF NOT EXISTS tracks (
    run_id INTEGER NOT NULL REFERENCES runs(id), track_id INTEGER NOT NULL, first_seen_s REAL, last_seen_s REAL,
    label TEXT, votes TEXT, frames INTEGER, best_score REAL, best_box TEXT, best_frame INTEGER,
    PRIMARY KEY (run_id, track_id));
CREATE TABLE IF NOT EXISTS windows (
    run_id INTEGER NOT NULL REFERENCES runs(id), window_start_s REAL NOT NULL, label TEXT NOT NULL,
    people INTEGER NOT NULL, PRIMARY KEY (run_id, window_start_s, label));
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, run_id INTEGER REFERENCES runs(id), camera TEXT NOT NULL, type TEXT NOT NULL,
    time REAL NOT NULL, source_time_s REAL, track_id INTEGER, label TEXT, zone TEXT, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_camera_type_time ON events (camera, type, time);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
"""
# Columns that databases written by older versions lack (new ones have them from CREATE TABLE).
ADDED_COLUMNS = {"runs": [("camera", "TEXT"), ("run", "TEXT"), ("pid", "INTEGER"), ("host", "TEXT"),
                          ("detected_frames", "INTEGER"), ("tracked_frames", "INTEGER"), ("dropped_frames", "INTEGER"),
                          ("scene_cuts", "INTEGER"), ("areas", "TEXT")]}
DEFAULT_DB = Path("out/maskwatch.sqlite")  # the events database of `watch` (and the webhook queue) by default
STALE_MESSAGE = "the process stopped without finishing this run (killed or crashed); its counts are partial"


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the database (locked or busy), not for a fault."""
    return "locked" in str(exc) or "busy" in str(exc)


def connect(path: Path, timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection to the events database, made ready: WAL (readers such as `maskwatch report` or the server
    do not block a running camera) and the tables."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # no permission, a file where the folder should be
        raise MaskwatchError(f"{path}: cannot make the events database's folder ({exc.strerror or exc}); give --db "
                             f"a place you can write to") from None
    deadline = time.monotonic() + timeout_s
    while True:
        db = None
        try:
            db = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                add_missing_columns(db, table, columns)
            return db
        except sqlite3.DatabaseError as exc:  # not SQLite, a folder, unreadable, another program's tables
            if db is not None:
                db.close()
            # Switching a new file to WAL needs it alone for a moment; SQLite answers "locked" at once (without
            # waiting out the timeout) when another process is doing the same, so try again shortly.
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc) and time.monotonic() < deadline:
                time.sleep(random.uniform(0.02, 0.1))
                continue
            if not os.access(path.parent, os.W_OK):  # a read-only folder: SQLite says "unable to open"
                raise MaskwatchError(f"{path}: cannot write into {path.parent} ({exc}); give --db a place you can "
                                     f"write to") from None
            raise MaskwatchError(f"{path}: cannot be used as the events database ({exc}); give --db a new file "
                                 f"name or an events database written by maskwatch") from None


def add_missing_columns(db: sqlite3.Connection, table: str, columns: list[tuple[str, str]]) -> None:
    """Bring a table written by an older version up to date. Checked again inside one write transaction, so
    processes opening the same database at once add each column once (not "duplicate column name")."""

    def missing() -> list[tuple[str, str]]:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        return [(name, definition) for name, definition in columns if name not in have]

    if not missing():
        return
    db.execute("BEGIN IMMEDIATE")  # waits (up to the busy timeout) for a process that is migrating now
    try:
        for name, definition in missing():
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
        db.commit()
    except BaseException:
        db.rollback()
        raise


def process_alive(pid: int) -> bool:
    """Whether a process with that pid exists on this machine (one of another user's counts), to tell a dead run or
    webhook sender from a live one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def mark_stale_runs(db: sqlite3.Connection) -> int:
    """Runs still 'running' whose process on this machine is gone (SIGKILL, power cut) become 'failed', so
    nothing says forever that a dead run is going on. Runs of live processes, or of other machines, stay."""
    host = socket.gethostname()
    stale = [run_id for run_id, pid, run_host in db.execute("SELECT id, pid, host FROM runs WHERE status = 'running'")
             if pid is None or (run_host == host and not process_alive(int(pid)))]
    db.executemany("UPDATE runs SET status = 'failed', message = ? WHERE id = ?",
                   [(STALE_MESSAGE, run_id) for run_id in stale])
    db.commit()
    return len(stale)


def tidy_wal(path: Path) -> None:
    """Remove SQLite's -wal and -shm files that read-only connections leave beside the database (they cannot
    remove them on close): a brief read-write connection does, when nobody else has the database open; while a
    run writes, they stay, as they must. Nothing happens where the file is not writable."""
    path = Path(path)
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    if not (writable and path.with_name(path.name + "-wal").exists()):
        return
    try:
        with closing(sqlite3.connect(str(path), timeout=1.0)) as db:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error:
        pass


def epoch_of(iso: str) -> float:
    """An event's ISO 8601 time as Unix seconds, as the events table keeps it (time filters and retention compare
    numbers)."""
    return datetime.fromisoformat(iso).timestamp()


class EventStore:
    """The events database (SQLite in WAL mode, so readers do not hold up a running camera): runs, events,
    counting windows and tracks; a run left 'running' by a process that died is marked failed when it is opened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = connect(self.path)
        mark_stale_runs(self.db)

    def start_run(self, source: str, camera: str | None = None, run: str | None = None,
                  zones: Sequence[str] = (), lines: Sequence[str] = (), classes: Sequence[str] = ()) -> int:
        """A new run; its zones and lines by name, and its model's classes (`areas`), so that a report lists
        those nobody entered, crossed or was counted in too."""
        areas = json.dumps({"zones": list(zones), "lines": list(lines), "classes": list(classes)},
                           ensure_ascii=False)
        cursor = self.db.execute("INSERT INTO runs (source, started_at, camera, run, pid, host, areas) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (source, time.time(), camera, run, os.getpid(), socket.gethostname(), areas))
        self.db.commit()
        return int(cursor.lastrowid)

    def save_tracks(self, run_id: int, tracks: list[TrackState]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, t.track_id, t.first_seen_s, t.last_seen_s, t.label, json.dumps(dict(t.votes)), t.frames,
              t.best_score, json.dumps(t.best_box), t.best_frame) for t in tracks])
        self.db.commit()

    def save_window(self, run_id: int, start_s: float, people: dict[str, int]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?)",
                            [(run_id, start_s, label, n) for label, n in people.items()])
        self.db.commit()

    def save_event(self, run_id: int | None, event: Event) -> None:
        self.db.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (event.id, run_id, event.camera, event.type, epoch_of(event.time),
                         round(event.source_time_s, 3),  # (as in its payload)
                         event.track_id, event.label, event.zone, event.to_json()))
        self.db.commit()

    def save_progress(self, run_id: int, frames: int, detected: int, tracked: int, dropped: int) -> None:
        """The run's frame counts so far: a run that dies without finishing (SIGKILL, a power cut) still says how
        far it got (finish_run writes the final ones)."""
        self.db.execute("UPDATE runs SET frames = ?, detected_frames = ?, tracked_frames = ?, dropped_frames = ? "
                        "WHERE id = ?", (frames, detected, tracked, dropped, run_id))
        self.db.commit()

    def finish_run(self, run_id: int, frames: int, status: str, message: str | None = None,
                   detected: int | None = None, tracked: int | None = None, dropped: int | None = None,
                   scene_cuts: int | None = None) -> None:
        """frames: processed; of them `detected` by the detector and `tracked` only (boxes moved on); `dropped`:
        frames of a live source never processed; `scene_cuts`: cuts to a new picture (tracks started afresh)."""
        self.db.execute("UPDATE runs SET ended_at = ?, frames = ?, status = ?, message = ?, detected_frames = ?, "
                        "tracked_frames = ?, dropped_frames = ?, scene_cuts = ? WHERE id = ?",
                        (time.time(), frames, status, message, detected, tracked, dropped, scene_cuts, run_id))
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def event_stored(path: Path, event_id: str) -> bool:
    """Whether the database holds the event (its writes come from their own thread, a moment after the event)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is not None
    finally:
        db.close()


def cameras_with_events(path: Path, names: Sequence[str]) -> set[str]:
    """Which of these camera names have at least one stored event (the camera index answers each at once)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = (db.execute("SELECT 1 FROM events WHERE camera = ? LIMIT 1", (name,)).fetchone() for name in names)
        return {name for name, row in zip(names, found) if row}
    finally:
        db.close()


def as_unix_time(value: float | str | datetime, name: str = "since") -> float:
    """Unix seconds from Unix seconds, an ISO 8601 time (one without an offset is UTC, as the API documents) or a
    datetime (one without a time zone is local time, as Python reads it)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool):
        raise MaskwatchError(f"{name}={value!r}: not a time; give Unix seconds or an ISO 8601 time")
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise MaskwatchError(f"{name}={value!r}: not a time; give Unix seconds or an ISO 8601 time")
        return float(value)
    try:
        return as_unix_time(float(value), name)
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MaskwatchError(f"{name}={value!r}: give Unix seconds or an ISO 8601 time such as "
                             f"2025-05-01T09:30:00+00:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def read_events(path: str | Path, camera: str | Sequence[str] | None = None,
                type: str | Sequence[str] | None = None, since: float | str | datetime | None = None,
                run_id: int | None = None, limit: int = 1000, after_id: str | None = None,
                newest_first: bool = False, before_id: str | None = None, run: str | None = None
                ) -> list[dict[str, Any]]:
    """Events as JSON objects, oldest first (or newest first): of a camera and a type (or any of several), of a
    run (`run`: the id events carry, WatchSummary.run; `run_id`: its row in the database, WatchSummary.run_id), at
    or after `since` (Unix seconds, an ISO 8601 time or a datetime), at most `limit`; `after_id` pages on from the
    last event of the previous page (oldest first), `before_id` back from it (newest first)."""
    if not Path(path).is_file():
        raise MaskwatchError(f"{path}: no such events database")
    where, args = [], []
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if run is not None:
        where.append("run_id IN (SELECT id FROM runs WHERE run = ?)")
        args.append(run)
    if type is not None:
        unknown = [t for t in ([type] if isinstance(type, str) else type) if t not in EVENT_TYPES]
        if unknown:
            raise MaskwatchError(f"unknown event type(s) {', '.join(map(repr, unknown))}; the types are "
                                 f"{', '.join(EVENT_TYPES)}")
    for column, value in (("camera", camera), ("type", type)):
        if value is not None:
            values = [value] if isinstance(value, str) else list(value)
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    if since is not None:
        where.append("time >= ?")
        args.append(as_unix_time(since))
    for cursor, compare in ((after_id, ">"), (before_id, "<")):
        if cursor is not None:
            where.append(f"rowid {compare} (SELECT rowid FROM events WHERE id = ?)")
            args.append(cursor)
    order = "DESC" if newest_first else ""
    sql = ("SELECT payload FROM events" + (" WHERE " + " AND ".join(where) if where else "") +
           f" ORDER BY rowid {order} LIMIT ?")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [json.loads(row[0]) for row in db.execute(sql, (*args, limit))]
    finally:
        db.close()


def delete_older_than(path: Path, cutoff: float) -> dict[str, int]:
    """Retention: events, counting windows, tracks and queued webhook posts from before `cutoff` (Unix seconds)
    deleted, then runs that ended before it and have nothing left. Windows and tracks are timed from their run's
    start (a live run's source time is wall time since it started). Returns the rows deleted per table."""
    db = connect(path)
    try:
        deleted = {
            "events": db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount,
            "windows": db.execute("DELETE FROM windows WHERE rowid IN (SELECT w.rowid FROM windows w JOIN runs r "
                                  "ON r.id = w.run_id WHERE r.started_at + w.window_start_s < ?)",
                                  (cutoff,)).rowcount,
            "tracks": db.execute("DELETE FROM tracks WHERE rowid IN (SELECT t.rowid FROM tracks t JOIN runs r "
                                 "ON r.id = t.run_id WHERE r.started_at + COALESCE(t.last_seen_s, 0) < ?)",
                                 (cutoff,)).rowcount}
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'webhook_queue'").fetchone():
            deleted["webhook_queue"] = db.execute("DELETE FROM webhook_queue WHERE queued_at < ?", (cutoff,)).rowcount
        deleted["runs"] = db.execute(
            "DELETE FROM runs WHERE ended_at IS NOT NULL AND ended_at < ? AND id NOT IN (SELECT run_id FROM tracks) "
            "AND id NOT IN (SELECT run_id FROM windows) AND id NOT IN (SELECT run_id FROM events "
            "WHERE run_id IS NOT NULL)", (cutoff,)).rowcount
        db.commit()
        return deleted
    finally:
        db.close()
