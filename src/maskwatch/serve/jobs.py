"""Video jobs: queued in SQLite, run one at a time on a worker thread, results kept on disk.

A job's state lives in the database, so a restart of the server loses no finished result. A server that shuts
down stops the running job at its next frame and queues it again (it runs at the next start); a job that was
running when the server was killed is marked failed with a message saying so, never silently lost.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from maskwatch.detector import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.file_lock import FileLock, LockHeld
from maskwatch.periodic import Periodic
from maskwatch.video.pipeline import VideoPipeline, WatchOptions
from maskwatch.video.retention import check_days

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    frames_done INTEGER DEFAULT 0, frames_total INTEGER, summary TEXT, message TEXT, filename TEXT);
"""

class DataDirLock(FileLock):
    """One server per data directory: a lock on DATA_DIR/server.lock, held while the server runs. Two servers on
    one directory would each mark the other's running job failed and run every queued job twice."""

    def __init__(self, data_dir: Path):
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            super().__init__(data_dir / "server.lock")
        except LockHeld as held:
            raise MaskwatchError(f"{data_dir}: another maskwatch server ({held.owner}) uses this data directory; "
                                 f"stop it, or give this one its own --data-dir") from None


@dataclass
class Job:
    """A video job as its row in jobs.sqlite holds it; `as_dict` is what the API answers about it."""

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
        # A finished job whose video ended before its end (cut short) is finished, but not complete: said apart, so a
        # client that checks one field does not take a partial result for the whole video.
        complete = (self.summary or {}).get("status") == "finished" if self.status == "finished" else None
        return {"id": self.id, "status": self.status, "progress": progress, "frames_done": self.frames_done,
                "frames_total": self.frames_total, "complete": complete, "summary": self.summary,
                "message": self.message, "filename": self.filename}


class JobQueue:
    """The server's video jobs: uploads queued in SQLite under the data directory and run one after another on a
    thread of their own, each job's result video and summary kept until DELETE (or `keep_days` after it ended)."""

    def __init__(self, root: Path, detector: Detector, keep_days: float | None = None):
        """keep_days: finished and failed jobs (their result videos show faces) are deleted this many days after
        they ended, at the start and hourly; None: kept until DELETE /v1/videos/{id}."""
        self.keep_days = self.checked_keep_days(keep_days)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.detector = detector
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.root / "jobs.sqlite"), check_same_thread=False)
        self.db.executescript(SCHEMA)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closing = False
        self._running: VideoPipeline | None = None  # the job's pipeline while one runs
        self._running_id: str | None = None  # ... and its id
        self._cancelled: set[str] = set()  # running jobs being deleted (stopped: not queued again)
        self._running_lock = threading.Lock()  # between close() and a job starting
        self._recover()
        self._expiry = Periodic(self.expire, "job-expiry")
        if keep_days is not None:
            self.expire()
            self._expiry.start()
        self._worker = threading.Thread(target=self._work, daemon=True, name="maskwatch-jobs")
        self._worker.start()

    @staticmethod
    def checked_keep_days(keep_days: float | None) -> float | None:
        return check_days(keep_days, "--keep-results-days")

    def expire(self, now: float | None = None) -> list[str]:
        """Delete the finished and failed jobs that ended more than keep_days ago; their ids."""
        if self.keep_days is None:
            return []
        cutoff = (time.time() if now is None else now) - self.keep_days * 86400
        with self._lock:
            old = [row[0] for row in self.db.execute("SELECT id FROM jobs WHERE status IN ('finished', 'failed') "
                                                     "AND updated_at < ?", (cutoff,))]
        deleted = [job_id for job_id in old if self.delete(job_id)]
        if deleted:
            log.warning("deleted %d video job(s) that ended more than %g days ago (--keep-results-days)", len(deleted),
                        self.keep_days)
        return deleted

    def _recover(self) -> None:
        """After a restart: running jobs failed (their process died; their upload and partial outputs are
        deleted), queued ones run again."""
        with self._lock:
            died = [row[0] for row in self.db.execute("SELECT id FROM jobs WHERE status = 'running'")]
            self.db.execute("UPDATE jobs SET status = 'failed', message = 'the server stopped while this job ran; "
                            "upload the video again', updated_at = ? WHERE status = 'running'", (time.time(),))
            self.db.commit()
            queued = [row[0] for row in self.db.execute("SELECT id FROM jobs WHERE status = 'queued' "
                                                        "ORDER BY created_at")]
        for job_id in died:  # nothing of a job that died is served again (its row says what happened)
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        for job_id in queued:
            self._queue.put(job_id)

    def delete(self, job_id: str, wait_s: float = 30.0) -> bool:
        """Remove a job: its row and its folder (upload, result video, events). A running one is stopped first (at
        its next frame: a video of huge frames must not hold the only worker for hours); False when it did not
        stop within `wait_s`."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._running_lock:
                if self._running_id == job_id and self._running is not None:
                    self._cancelled.add(job_id)
                    self._running.stop()
            while self._running_id == job_id and time.monotonic() < deadline:
                time.sleep(0.05)
            with self._lock:
                cursor = self.db.execute("DELETE FROM jobs WHERE id = ? AND status != 'running'", (job_id,))
                self.db.commit()
            if cursor.rowcount == 1 or self.get(job_id) is None:  # (or deleted meanwhile by another request)
                break
            if time.monotonic() >= deadline:  # still running: a frame that takes longer than the wait
                return False
            time.sleep(0.05)  # (claimed by the worker between the look and the DELETE: stopped on the next round)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)  # a queued one: the worker finds no row, skips it
        return True

    def queued(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def result_path(self, job_id: str) -> Path:
        """The annotated video a finished job leaves."""
        return self.job_dir(job_id) / "result.mp4"

    def create(self, data_path: Path, filename: str) -> str:
        """Take ownership of an uploaded file (already checked to be a video) and queue it."""
        job_id = secrets.token_urlsafe(18)  # not guessable
        folder = self.job_dir(job_id)
        folder.mkdir()
        try:
            data_path.replace(folder / "input")
            now = time.time()
            with self._lock:
                self.db.execute("INSERT INTO jobs (id, status, created_at, updated_at, filename) "
                                "VALUES (?, 'queued', ?, ?, ?)", (job_id, now, now, filename[:200]))
                self.db.commit()
        except BaseException:  # no job folder without its row
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._queue.put(job_id)
        return job_id

    def get(self, job_id: str) -> Job | None:
        jobs = self._select("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    def all(self) -> list[Job]:
        """Every job the server keeps, oldest first: what a client that lost a job's id can find (and delete)."""
        return self._select("ORDER BY created_at", ())

    def _select(self, where: str, args: tuple) -> list[Job]:
        with self._lock:
            rows = self.db.execute("SELECT id, status, frames_done, frames_total, summary, message, filename FROM jobs "
                                   + where, args).fetchall()
        return [Job(row[0], row[1], row[2], row[3], json.loads(row[4]) if row[4] else None, row[5], row[6])
                for row in rows]

    def _update(self, job_id: str, **fields) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self.db.execute(f"UPDATE jobs SET {names}, updated_at = ? WHERE id = ?",
                            (*fields.values(), time.time(), job_id))
            self.db.commit()

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._closing:
                return
            self._run(job_id)

    def claim(self, job_id: str) -> bool:
        """Queued -> running in one statement: a job is run once even if two workers reach it."""
        with self._lock:
            cursor = self.db.execute("UPDATE jobs SET status = 'running', frames_done = 0, message = NULL, "
                                     "updated_at = ? WHERE id = ? AND status = 'queued'", (time.time(), job_id))
            self.db.commit()
        return cursor.rowcount == 1

    def public_message(self, text: str | None, job_id: str) -> str | None:
        """A message for clients: the server's own paths (data directory, job folder, upload) are named, not shown."""
        if not text:
            return text
        folder = self.job_dir(job_id)
        names = {str(form): name for path, name in ((self.root, "the server's job folder"),
                                                    (folder, "the job folder"), (folder / "input", "the upload"))
                 for form in (path, path.resolve())}
        for form in sorted(names, key=len, reverse=True):  # longest first: a relative path is inside the absolute
            text = text.replace(form, names[form])
        return text

    def _run(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        # An upload is not live: nothing is gained by keeping up with its frame rate, so every frame is detected
        # (the real-time schedule would skip detections on a busy server and change the counts with the load).
        job = self.get(job_id)  # (its camera is named after the uploaded file, as `watch` names a file's)
        camera = Path(job.filename).stem if job and job.filename and Path(job.filename).stem else None
        pipeline = VideoPipeline(self.detector, WatchOptions(every=1), folder / "events.sqlite", camera=camera)
        with self._running_lock:  # registered before the job is claimed, so close() can always stop it
            if self._closing:  # shutting down: the job stays queued for the next start
                return
            self._running, self._running_id = pipeline, job_id
        if not self.claim(job_id):
            self._running = self._running_id = None
            return
        last_saved = [0.0]

        def progress(summary, expected):
            if time.monotonic() - last_saved[0] > 0.5:
                last_saved[0] = time.monotonic()
                # (an estimate from the container's duration: never below what was done, so progress stays <= 1)
                self._update(job_id, frames_done=summary.frames,
                             frames_total=max(expected, summary.frames) if expected else expected)

        try:
            summary = pipeline.run(str(folder / "input"), self.result_path(job_id), progress,
                                   overwrite=True)  # (a job run again after a restart: its own partial video)
            if job_id in self._cancelled:  # deleted while it ran: delete() removes the rest once this returns
                self._update(job_id, status="failed", message="deleted while it ran")
            elif pipeline.stopping.is_set() and summary.status == "interrupted":
                self._update(job_id, status="queued", frames_done=0,
                             message="the server stopped while this job ran; it runs again when the server starts")
                return
            else:
                result = summary.as_dict()
                for key in ("source", "output", "database"):
                    result.pop(key, None)
                self._update(job_id, status="finished", frames_done=summary.frames,
                             summary=self.public_message(json.dumps(result), job_id),
                             message=self.public_message(summary.message, job_id))
        except MaskwatchError as exc:
            self._update(job_id, status="failed", message=self.public_message(str(exc), job_id))
        except Exception as exc:  # a job must end in a state, whatever happened
            log.exception("job %s failed", job_id)
            self._update(job_id, status="failed", message=f"internal error: {type(exc).__name__}")
        finally:
            with self._running_lock:
                self._running = self._running_id = None
                self._cancelled.discard(job_id)
        # The job ended (finished or failed): the upload, a video of people's faces, is not kept (the result is,
        # until DELETE /v1/videos/{id}).
        (folder / "input").unlink(missing_ok=True)

    def close(self, timeout_s: float = 120.0) -> None:
        """Shut down in order: no new job starts, the running one stops at its next frame (its outputs finished,
        the job queued again), the worker ends, and only then is the database closed. The caller releases the
        data directory's lock after this returns."""
        self._expiry.stop()
        with self._running_lock:
            self._closing = True
            if self._running is not None:
                self._running.stop()
        self._queue.put(None)
        self._worker.join(timeout=timeout_s)
        if self._worker.is_alive():  # a frame that takes minutes: leave the connection to it rather than pull it away
            log.error("the video job did not stop within %.0f s; its database is left open", timeout_s)
            return
        self._expiry.stop(timeout_s)  # (a go under way finishes before the database closes)
        with self._lock:
            self.db.close()
