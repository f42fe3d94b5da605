"""Webhook sink: POST each event as JSON to a URL.

Events first go into a bounded queue in SQLite, then a sender thread posts them in order, retrying with
exponential back-off while the receiver is down or answers 408, 425, 429 or 5xx. A receiver away for a minute
loses nothing. Each queued row belongs to the sender (one open sink) that queued it, so several runs or processes
sharing a database and a URL never post, trim or wait for each other's events; rows whose sender is gone (its
run ended, or its process died) are claimed by the next sender to that URL, each row by one sender only. When a
sender's queue is full its oldest `counts` events go first (a newer one supersedes them), and the log says how
many were dropped. Delivery is at least once: a receiver drops repeated event ids.

With a secret, `X-Maskwatch-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body with the secret
(as GitHub signs its webhooks), so the receiver can check who sent it.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests

from maskwatch.errors import MaskwatchError
from maskwatch.limits import WEBHOOK_TIMEOUT_S
from maskwatch.video.bus import RunEnd, RunInfo, Sink
from maskwatch.video.events import COUNTS, Event
from maskwatch.video.redact import checked_port, without_password
from maskwatch.video.store import DEFAULT_DB, add_missing_columns, connect, is_busy, process_alive

log = logging.getLogger(__name__)

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL,
    body TEXT NOT NULL, queued_at REAL NOT NULL, owner TEXT);
CREATE INDEX IF NOT EXISTS webhook_queue_by_url ON webhook_queue (url, seq);
CREATE TABLE IF NOT EXISTS webhook_senders (
    owner TEXT PRIMARY KEY, url TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, started_at REAL NOT NULL);
"""
QUEUE_INDEX = "CREATE INDEX IF NOT EXISTS webhook_queue_by_owner ON webhook_queue (owner, seq)"
ADOPT_EVERY_S = 5.0  # how often an idle sender looks for rows that a finished sender left behind
SIGNATURE_HEADER = "X-Maskwatch-Signature-256"
RETRY_STATUSES = {408, 425, 429}


def check_http_url(url: str) -> str:
    """The URL, if a webhook can be posted to it (http or https, a host, a valid port); else a MaskwatchError that shows
    it without its password."""
    parts = urlsplit(url)
    shown = without_password(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MaskwatchError(f"--webhook {shown!r}: expected an http:// or https:// URL, "
                             f"e.g. http://127.0.0.1:8080/maskwatch")
    checked_port(parts, "--webhook", url)
    return url


def sink_name(url: str) -> str:
    """How a webhook is named where its failures are stored (OUT.json, the database): its scheme and host, and a
    short hash of the whole URL to tell two on one host apart; not its path, which may hold a token (Slack's)."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return f"webhook {parts.scheme}://{host} #{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def signature_of(body: bytes, secret: str) -> str:
    """The value of the signature header: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


SLOW_AFTER = 3  # the same event unanswered this many times in a row: the receiver is slow, not down (said once)


class WebhookSink(Sink):
    """POSTs each event as JSON to a URL, from a queue in SQLite that outlives the process: the video thread only
    queues (never waits on the network or the database), a sender thread delivers in order with back-off, and
    what is still queued at the end is sent by the next run on the same queue."""

    name = "webhook"
    required = True  # events it refused or lost for good fail the run (queued ones do not: sent next run)
    held_warn_s = 5.0  # events kept in memory this long (the queue's database busy) are said

    def __init__(self, url: str, secret: str | None = None, queue_path: Path | str = DEFAULT_DB,
                 max_queue: int = 10_000, timeout_s: float = WEBHOOK_TIMEOUT_S,
                 backoff_s: tuple[float, float] = (0.5, 30.0),
                 drain_s: float = 15.0):
        self.url = check_http_url(url)
        self.shown = without_password(url)  # what logs and messages say: never a password or token of the URL
        self.name = sink_name(url)  # (its failures told apart from another webhook's)
        self.secret = secret
        self.queue_path = Path(queue_path)
        self.max_queue = max(1, max_queue)
        self.timeout_s, self.backoff, self.drain_s = timeout_s, backoff_s, drain_s
        self.dropped = 0  # events dropped because the queue was full
        self.refused: dict[int, int] = {}  # events the receiver refused (4xx), by HTTP status: said at the end
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._closing = threading.Event()
        self._interrupt = threading.Event()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._db = None
        self._last_error = ""
        self._died: str | None = None  # why the sender thread stopped, if it did before close()
        self._incoming: collections.deque = collections.deque()  # events not yet in the queue table (it was busy)
        self._said_held, self._held_since = False, None
        self._busy_ms = 30000  # the queue connection's own busy timeout, set back after a short try
        self.owner = ""  # this open's name on its queue rows

    # -- the queue (shared by the pipeline thread and the sender thread) --
    def open(self, run: RunInfo) -> None:
        """Start a run: fresh run state (a sink may serve several runs, one after another), then the sender."""
        if self._thread is not None and self._thread.is_alive():
            raise MaskwatchError(f"webhook {self.shown}: this sink is already open in another run; give each run "
                                 f"its own WebhookSink")
        self._closing.clear()
        self._interrupt.clear()
        self._deadline = None
        self.dropped, self._last_error, self._died = 0, "", None
        self.refused, self._said_held, self._held_since = {}, False, None
        self._db = connect(self.queue_path)
        self._busy_ms = int(self._db.execute("PRAGMA busy_timeout").fetchone()[0])
        self._db.executescript(QUEUE_SCHEMA)
        add_missing_columns(self._db, "webhook_queue", [("owner", "TEXT")])  # queues of older versions
        self._db.execute(QUEUE_INDEX)
        self.owner = f"{run.run}-{uuid.uuid4().hex[:8]}"
        self._db.execute("INSERT INTO webhook_senders VALUES (?, ?, ?, ?, ?)",
                         (self.owner, self.url, os.getpid(), socket.gethostname(), time.time()))
        self._db.commit()
        left = self._adopt()
        if left:
            log.warning("webhook %s: %d event(s) left queued by an earlier run are sent first", self.shown, left)
        self._thread = threading.Thread(target=self._run_sender, daemon=True, name="maskwatch-webhook")
        self._thread.start()

    def _adopt(self) -> int:
        """Claim this URL's rows whose sender is gone: closed, or its process on this machine died. One UPDATE,
        so of two senders claiming at once each row goes to one of them."""
        with self._lock:
            host = socket.gethostname()
            dead = [(owner,) for owner, pid, sender_host in
                    self._db.execute("SELECT owner, pid, host FROM webhook_senders")
                    if sender_host == host and not process_alive(int(pid))]
            self._db.executemany("DELETE FROM webhook_senders WHERE owner = ?", dead)
            claimed = self._db.execute(
                "UPDATE webhook_queue SET owner = ? WHERE url = ? AND (owner IS NULL OR owner NOT IN "
                "(SELECT owner FROM webhook_senders))", (self.owner, self.url)).rowcount
            self._db.commit()
            return claimed

    def queued(self) -> int:
        """Events this sender still has to deliver."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM webhook_queue WHERE owner = ?",
                                    (self.owner,)).fetchone()[0] + len(self._incoming)

    def event(self, event: Event) -> None:
        """Queued in the database at once when it is free; when another process holds it locked (or the sender is
        in the middle of a write), kept in memory and queued by the sender: the video never waits on SQLite."""
        row = (self.url, event.id, event.type, event.to_json(), time.time(), self.owner)
        stored = False
        if not self._incoming and self._lock.acquire(timeout=0.05):  # (in order: after what waits in memory)
            try:
                stored = self._insert([row], busy_ms=50)
            finally:
                self._lock.release()
        if not stored:
            # Said only when it lasts: a busy moment (the run's own database thread or the sender writing, on a
            # loaded machine) is routine and the events are queued a moment later.
            now = time.monotonic()
            self._held_since = self._held_since or now
            if not self._said_held and now - self._held_since >= self.held_warn_s:
                log.warning("webhook %s: the queue's database %s has been busy for %.0f s (locked by another "
                            "process?); events are kept in memory and queued once it is free, the video goes on",
                            self.shown, self.queue_path, now - self._held_since)
                self._said_held = True
            self._incoming.append(row)
        with self._wake:
            self._wake.notify()

    def _insert(self, rows: list[tuple], busy_ms: int | None = None) -> bool:
        """Rows into the queue table (the caller holds self._lock); with busy_ms, give up (False) rather than wait
        longer for a database another process holds."""
        if busy_ms is not None:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        try:
            self._db.executemany("INSERT INTO webhook_queue (url, event_id, type, body, queued_at, owner) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._trim()
            self._db.commit()
            return True
        except sqlite3.OperationalError as exc:
            self._db.rollback()
            if busy_ms is None or not is_busy(exc):
                raise
            return False
        finally:
            if busy_ms is not None:
                self._db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _store_incoming(self) -> None:
        """What event() kept in memory, into the queue table, on the sender's thread (waits out a lock)."""
        if not self._incoming:
            return
        with self._lock:
            rows = [self._incoming.popleft() for _ in range(len(self._incoming))]
            try:
                self._insert(rows)
            except BaseException:
                self._incoming.extendleft(reversed(rows))
                raise
        if not self._incoming:
            if self._said_held:
                log.warning("webhook %s: the queue's database is free again; the events kept meanwhile are queued",
                            self.shown)
            self._said_held, self._held_since = False, None

    def _trim(self) -> None:
        """Keep at most max_queue events of this sender: drop the oldest `counts` first, then the oldest of any
        type."""
        excess = self._db.execute("SELECT COUNT(*) FROM webhook_queue WHERE owner = ?",
                                  (self.owner,)).fetchone()[0] - self.max_queue
        if excess <= 0:
            return
        dropped = {}
        for only_counts in (True, False):
            if excess <= 0:
                break
            kind = "AND type = ?" if only_counts else ""
            args = (self.owner, COUNTS) if only_counts else (self.owner,)
            rows = self._db.execute(f"SELECT seq, type FROM webhook_queue WHERE owner = ? {kind} ORDER BY seq "
                                    f"LIMIT ?", (*args, excess)).fetchall()
            self._db.executemany("DELETE FROM webhook_queue WHERE seq = ?", [(seq,) for seq, _ in rows])
            for _, type_ in rows:
                dropped[type_] = dropped.get(type_, 0) + 1
            excess -= len(rows)
        self.dropped += sum(dropped.values())
        log.warning("webhook %s: queue full (%d events; the receiver is away): dropped the oldest %s (%d dropped "
                    "in this run)", self.shown, self.max_queue,
                    ", ".join(f"{n} {t}" for t, n in dropped.items()), self.dropped)

    def _oldest(self) -> tuple[int, str, str, str] | None:
        with self._lock:
            return self._db.execute("SELECT seq, event_id, type, body FROM webhook_queue WHERE owner = ? "
                                    "ORDER BY seq LIMIT 1", (self.owner,)).fetchone()

    def _remove(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM webhook_queue WHERE seq = ? AND owner = ?", (seq, self.owner))
            self._db.commit()

    # -- sending --
    def _post(self, session: requests.Session, event_id: str, type_: str, body: str) -> str:
        """'sent', 'retry' (receiver down, 408/425/429/5xx), 'slow' (connected, but no answer in time: retried too)
        or 'refused' (another answer: retrying cannot help)."""
        data = body.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "maskwatch", "X-Maskwatch-Event": type_,
                   "X-Maskwatch-Event-Id": event_id}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature_of(data, self.secret)
        timeout = self.timeout_s  # at the end of a run, no longer than the time left to drain the queue
        if self._deadline is not None:
            timeout = max(0.5, min(timeout, self._deadline - time.monotonic()))
        try:
            response = session.post(self.url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
        except requests.ReadTimeout as exc:  # connected, but no answer (a ConnectTimeout is a receiver away)
            self._last_error = f"no answer within {timeout:g} s ({type(exc).__name__})"
            return "slow"
        except requests.RequestException as exc:
            self._last_error = f"{type(exc).__name__}"
            return "retry"
        if 200 <= response.status_code < 300:
            return "sent"
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            self._last_error = f"HTTP {response.status_code}"
            return "retry"
        self.refused[response.status_code] = self.refused.get(response.status_code, 0) + 1
        if self.refused[response.status_code] in (1, 100) or self.refused[response.status_code] % 1000 == 0:
            # (the others of that status: counted, said at the end; a week-long run says it again now and then)
            answer = " ".join(response.text[:200].split())
            log.error("webhook %s refused a %s event with HTTP %d; dropped it%s", self.shown, type_,
                      response.status_code, f" ({answer})" if answer else "")
        return "refused"

    def _send_loop(self) -> None:
        delay, failing, errors = self.backoff[0], False, 0
        last_seq, tries, said_slow = None, 0, False  # the same queued event posted again and again
        adopted_at = time.monotonic()
        with requests.Session() as session:
            while True:
                if self._deadline is not None and time.monotonic() > self._deadline:
                    return
                try:
                    self._store_incoming()
                    row = self._oldest()
                    if row is None:
                        if self._closing.is_set():
                            return
                        if time.monotonic() - adopted_at > ADOPT_EVERY_S:  # what a run that ended left behind
                            adopted_at = time.monotonic()
                            if self._adopt():
                                continue
                        with self._wake:
                            self._wake.wait(timeout=0.5)
                        continue
                    seq, event_id, type_, body = row
                    outcome = self._post(session, event_id, type_, body)
                    tries = tries + 1 if seq == last_seq else 1
                    last_seq = seq
                    if outcome == "slow" and tries == SLOW_AFTER and not said_slow:
                        said_slow = True
                        log.warning("webhook %s: the receiver took the same event %d times without answering within "
                                    "%g s: it is slow rather than down, and gets it again until it answers in time "
                                    "(answer first and work after, or raise --webhook-timeout, `timeout:` in a "
                                    "camera config file)", self.shown, tries, self.timeout_s)
                    if outcome not in ("retry", "slow"):
                        if failing:
                            log.warning("webhook %s: receiver back; sending the queued events", self.shown)
                        failing, delay, said_slow = False, self.backoff[0], False
                        self._remove(seq)
                        errors = 0
                        continue
                    if not failing:
                        log.warning("webhook %s: receiver unavailable (%s); retrying with back-off, events wait "
                                    "in %s", self.shown, self._last_error, self.queue_path)
                    failing = True
                except Exception as exc:  # the queue itself failed (e.g. "database is locked"): try again later
                    errors += 1
                    if errors == 1 or errors % 100 == 0:
                        log.warning("webhook %s: the queue in %s failed (%d time(s) in a row; retrying with "
                                    "back-off): %s: %s", self.shown, self.queue_path, errors, type(exc).__name__, exc,
                                    exc_info=errors == 1)
                # Back-off. Not woken by new events (it must hold while they keep coming), only by close().
                wait = delay if self._deadline is None else min(delay, max(0.0, self._deadline - time.monotonic()))
                if self._interrupt.wait(timeout=wait):
                    self._interrupt.clear()
                delay = min(delay * 2, self.backoff[1])

    def _run_sender(self) -> None:
        try:
            self._send_loop()
        except BaseException as exc:  # recorded for close(), which says so
            self._died = f"{type(exc).__name__}: {exc}"
            raise

    def begin_close(self) -> None:
        """The sender delivers what is queued, for at most `drain_s` from now (close() waits for it)."""
        if self._thread is None or self._closing.is_set():
            return
        self._deadline = time.monotonic() + self.drain_s
        self._closing.set()
        self._interrupt.set()
        with self._wake:
            self._wake.notify()

    def close(self, end: RunEnd) -> None:
        if self._thread is None:
            return
        if not self._thread.is_alive():
            log.warning("webhook %s: the sender thread had stopped during the run (%s); undelivered events stay "
                        "queued in %s for the next run", self.shown, self._died or "unknown reason", self.queue_path)
        self.begin_close()
        waited = f"within {self.drain_s:.1f} s"  # (from begin_close: the other outputs waited meanwhile)
        try:
            self._thread.join(timeout=1.0)
            remaining = self._deadline - time.monotonic()
            if self._thread.is_alive() and remaining > 0.5:  # the receiver is away or slow: say why the end waits
                log.warning("webhook %s: waiting up to %.0f s more to deliver the queued events (what is left then "
                            "stays queued for the next run; Ctrl-C twice stops waiting)", self.shown, remaining)
            self._thread.join()
        except KeyboardInterrupt:  # "once more to stop at once": no more waiting; nothing is lost, it stays queued
            waited = "(stopped waiting)"
            self._deadline = time.monotonic()
            self._interrupt.set()
            try:
                self._thread.join(timeout=self.timeout_s + 1.0)  # (a post under way ends within its timeout)
            except KeyboardInterrupt:  # a third tap: the post under way is left to its timeout
                pass
        sender, self._thread = self._thread, None
        lost = 0
        try:
            self._store_incoming()  # (what the sender had no time to queue: for the next run)
        except Exception as exc:  # noqa: BLE001
            lost = len(self._incoming)
            log.error("webhook %s: %d event(s) could not be queued in %s (%s); they are lost", self.shown,
                      lost, self.queue_path, exc)
            self._incoming.clear()
        left = self.queued()
        if left:
            log.warning("webhook %s: %d event(s) not delivered %s; they stay queued in %s and are sent at the "
                        "next run", self.shown, left, waited, self.queue_path)
        with self._lock:  # from now on, what is left is for the next sender to this URL
            self._db.execute("DELETE FROM webhook_senders WHERE owner = ?", (self.owner,))
            self._db.commit()
        if not sender.is_alive():  # (one still posting, after a third Ctrl-C, keeps it until the process ends)
            self._db.close()
        # Lost for good: a failure of this output in the run's summary, not only log lines.
        losses = []
        if self.refused:
            answers = ", ".join(f"HTTP {status} x{n}" for status, n in sorted(self.refused.items()))
            losses.append(f"the receiver refused {sum(self.refused.values())} event(s) ({answers}); they were "
                          f"dropped: check the URL's path and the secret")
        if self.dropped:
            losses.append(f"{self.dropped} event(s) dropped from a full queue (the receiver was away too long)")
        if lost:
            losses.append(f"{lost} event(s) could not be queued for the next run")
        if losses:
            raise MaskwatchError("; ".join(losses))
