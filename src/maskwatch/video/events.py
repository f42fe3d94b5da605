"""Events in an embedded SQLite database: one row per run, one per track, and per-window counts, so a day of
camera work can be summarised and charted later (`maskwatch report`)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from maskwatch.video.tracking import TrackState

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    frames INTEGER DEFAULT 0, status TEXT NOT NULL DEFAULT 'running', message TEXT);
CREATE TABLE IF NOT EXISTS tracks (
    run_id INTEGER NOT NULL REFERENCES runs(id), track_id INTEGER NOT NULL, first_seen_s REAL, last_seen_s REAL,
    label TEXT, votes TEXT, frames INTEGER, best_score REAL, best_box TEXT, best_frame INTEGER,
    PRIMARY KEY (run_id, track_id));
CREATE TABLE IF NOT EXISTS windows (
    run_id INTEGER NOT NULL REFERENCES runs(id), window_start_s REAL NOT NULL, label TEXT NOT NULL,
    people INTEGER NOT NULL, PRIMARY KEY (run_id, window_start_s, label));
"""


class EventStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False)
        self.db.executescript(SCHEMA)

    def start_run(self, source: str) -> int:
        cursor = self.db.execute("INSERT INTO runs (source, started_at) VALUES (?, ?)", (source, time.time()))
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

    def finish_run(self, run_id: int, frames: int, status: str, message: str | None = None) -> None:
        self.db.execute("UPDATE runs SET ended_at = ?, frames = ?, status = ?, message = ? WHERE id = ?",
                        (time.time(), frames, status, message, run_id))
        self.db.commit()

    def close(self) -> None:
        self.db.close()
