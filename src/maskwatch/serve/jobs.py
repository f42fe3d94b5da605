"""Video jobs: queued in SQLite, run one at a time on a worker thread, results kept on disk.

A job's state lives in the database, so a restart of the server loses no finished result; a job that was
running when the server stopped is marked failed with a message saying so, never silently lost.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.video.pipeline import VideoPipeline, WatchOptions

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    frames_done INTEGER DEFAULT 0, frames_total INTEGER, summary TEXT, message TEXT, filename TEXT);
"""


@dataclass
class Job:
    id: str
    status: str  # queued, running, finished, failed
    frames_done: int
    frames_total: int | None
    summary: dict | None
    message: str | None
    filename: str | None

    def as_dict(self) -> dict:
        progress = (self.frames_done / self.frames_total) if self.frames_total else None
        if self.status == "finished":
            progress = 1.0
        return {"id": self.id, "status": self.status, "progress": progress, "frames_done": self.frames_done,
                "frames_total": self.frames_total, "summary": self.summary, "message": self.message,
                "filename": self.filename}


class JobQueue:
    def __init__(self, root: Path, detector: Detector):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.detector = detector
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.root / "jobs.sqlite"), check_same_thread=False)
        self.db.executescript(SCHEMA)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._recover()
        self._worker = threading.Thread(target=self._work, daemon=True, name="maskwatch-jobs")
        self._worker.start()

    def _recover(self) -> None:
        """After a restart: running jobs failed (their process died), queued ones run again."""
        with self._lock:
            self.db.execute("UPDATE jobs SET status = 'failed', message = 'the server stopped while this job ran; "
                            "upload the video again', updated_at = ? WHERE status = 'running'", (time.time(),))
            self.db.commit()
            queued = [row[0] for row in self.db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at")]
        for job_id in queued:
            self._queue.put(job_id)

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, data_path: Path, filename: str) -> str:
        """Take ownership of an uploaded file (already checked to be a video) and queue it."""
        job_id = secrets.token_urlsafe(18)  # not guessable
        folder = self.job_dir(job_id)
        folder.mkdir()
        data_path.replace(folder / "input")
        now = time.time()
        with self._lock:
            self.db.execute("INSERT INTO jobs (id, status, created_at, updated_at, filename) VALUES (?, 'queued', ?, ?, ?)",
                            (job_id, now, now, filename[:200]))
            self.db.commit()
        self._queue.put(job_id)
        return job_id

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self.db.execute("SELECT id, status, frames_done, frames_total, summary, message, filename FROM jobs "
                                  "WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return Job(row[0], row[1], row[2], row[3], json.loads(row[4]) if row[4] else None, row[5], row[6])

    def _update(self, job_id: str, **fields) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self.db.execute(f"UPDATE jobs SET {names}, updated_at = ? WHERE id = ?", (*fields.values(), time.time(), job_id))
            self.db.commit()

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            self._run(job_id)

    def _run(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        self._update(job_id, status="running")
        last_saved = [0.0]

        def progress(summary, expected):
            if time.monotonic() - last_saved[0] > 0.5:
                last_saved[0] = time.monotonic()
                self._update(job_id, frames_done=summary.frames, frames_total=expected)

        try:
            pipeline = VideoPipeline(self.detector, WatchOptions(), folder / "events.sqlite")
            summary = pipeline.run(str(folder / "input"), folder / "result.mp4", progress)
            result = summary.as_dict()
            for key in ("source", "output", "database"):
                result.pop(key, None)
            self._update(job_id, status="finished", frames_done=summary.frames, summary=json.dumps(result),
                         message=summary.message)
        except MaskwatchError as exc:
            self._update(job_id, status="failed", message=str(exc).replace(str(folder / "input"), "the upload"))
        except Exception as exc:  # a job must end in a state, whatever happened
            log.exception("job %s failed", job_id)
            self._update(job_id, status="failed", message=f"internal error: {type(exc).__name__}")

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)
        self.db.close()
