"""The webhook sink against a real HTTP receiver on loopback that is killed and started again: nothing lost, one
alert per person, signed bodies, a bounded queue that drops the oldest counts first and survives a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time

import pytest

from clips import BackgroundRun, GatedSource, crossing_people
from maskwatch.errors import MaskwatchError
from maskwatch.video import VideoPipeline, WatchOptions
from maskwatch.video.bus import RunInfo
from maskwatch.video.events import Event
from maskwatch.video.sinks import WebhookSink
from maskwatch.video.sinks.webhook import sink_name
from maskwatch.video.store import read_events
from servers import WebhookReceiver, free_port, wait_until

SECRET = "s3cret"


def queued(db) -> int:
    with sqlite3.connect(db) as q:
        return q.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()[0]


def unique_events(posts: list[dict]) -> list[dict]:
    """The events received, each id once, in the order first received (delivery is at least once)."""
    seen, events = set(), []
    for post in posts:
        event = json.loads(post["body"])
        if event["id"] not in seen:
            seen.add(event["id"])
            events.append(event)
    return events


def test_a_receiver_killed_and_restarted_mid_run_loses_no_event(detector, faces, tmp_path):
    frames, fps = crossing_people(*faces)
    source = GatedSource(frames, fps, gates=(20, 50))
    db = tmp_path / "events.sqlite"
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start()
    sink = WebhookSink(receiver.url, SECRET, queue_path=db, backoff_s=(0.1, 0.5), drain_s=60)
    pipeline = VideoPipeline(detector, WatchOptions(every=1, summary_every=1.0), db, [sink],
                             zones=["counter=260,10,470,10,470,310,260,310"], lines=["door=240,0,240,320"],
                             camera="door")
    run = BackgroundRun(pipeline, source)
    try:
        source.wait_at(20)
        receiver.wait_for(lambda posts: any(json.loads(p["body"])["type"] == "person.entered" for p in posts),
                          "the first person.entered")
        receiver.kill()  # the receiver goes away mid-run
        source.open(20)
        source.wait_at(50)  # 30 more frames: the unmasked person came in while nobody listened
        assert queued(db) > 0
        assert any(e["type"] == "person.unmasked" for e in read_events(db))
        receiver.start()  # back on the same port
        source.open(50)
        summary = run.join()
    finally:
        source.open(20), source.open(50)
        receiver.kill()
    assert summary.status == "finished" and queued(db) == 0
    emitted = read_events(db, run_id=summary.run_id)
    received = unique_events(receiver.posts())
    assert [e["id"] for e in received] == [e["id"] for e in emitted]  # none lost, in order
    assert received == emitted  # the same JSON as stored
    assert {"person.entered", "person.unmasked", "person.left", "zone.entered", "zone.left", "line.crossed",
            "counts"} == {e["type"] for e in received}
    alerts = [e["track_id"] for e in received if e["type"] == "person.unmasked"]
    assert len(alerts) == len(set(alerts)) == 1  # one alert for the one unmasked person, not one per frame
    for post in receiver.posts():
        body = post["body"].encode()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert post["headers"]["X-Maskwatch-Signature-256"] == expected
        assert post["headers"]["X-Maskwatch-Event"] == json.loads(body)["type"]


def run_info() -> RunInfo:
    return RunInfo("door", "run1", "door.mp4", (640, 480), 10.0)


def event(type_: str, n: int) -> Event:
    return Event(type_, "door", "run1", float(n), id=f"{type_}-{n}")


def test_a_full_queue_drops_the_oldest_counts_first_and_survives_a_restart(tmp_path, caplog):
    port = free_port()
    queue = tmp_path / "queue.sqlite"
    receiver = WebhookReceiver(port, tmp_path / "posts.jsonl")
    first = WebhookSink(receiver.url, queue_path=queue, max_queue=5, backoff_s=(0.05, 0.2), drain_s=0.5)
    first.open(run_info())  # nobody listens on the port yet
    sent = [event("counts", 1), event("person.entered", 2), event("counts", 3), event("person.unmasked", 4),
            event("counts", 5), event("person.left", 6), event("zone.entered", 7)]
    for e in sent:
        first.event(e)
    assert first.dropped == 2 and "dropped the oldest 1 counts" in caplog.text
    first.event(event("zone.left", 8))  # drops counts-5, the last counts
    first.event(event("person.entered", 9))  # no counts left: the oldest event goes
    assert "dropped the oldest 1 person.entered" in caplog.text
    with sqlite3.connect(queue) as q:
        ids = [r[0] for r in q.execute("SELECT event_id FROM webhook_queue ORDER BY seq")]
    assert ids == ["person.unmasked-4", "person.left-6", "zone.entered-7", "zone.left-8", "person.entered-9"]
    with pytest.raises(MaskwatchError, match=r"4 event\(s\) dropped from a full queue"):  # lost for good: a failure
        first.close(None)  # the run ends with the receiver still away: the events left stay queued
    assert "stay queued" in caplog.text and queued(queue) == 5
    # The next run to the same URL sends them first. The receiver answers 503 at first: retried, not dropped.
    second = WebhookSink(receiver.url, queue_path=queue, max_queue=10, backoff_s=(0.05, 0.2), drain_s=30)
    receiver.start(status=503)
    try:
        second.open(run_info())
        receiver.wait_for(lambda posts: len(posts) >= 3, "three attempts")
        assert queued(queue) == 5 and {json.loads(p["body"])["id"] for p in receiver.posts()} == {ids[0]}
        receiver.kill()
        receiver.start(status=200)
        second.event(event("person.left", 10))
        second.close(None)
    finally:
        receiver.kill()
    delivered = [json.loads(p["body"])["id"] for p in receiver.posts() if p["status"] == 200]
    assert delivered == [*ids, "person.left-10"] and queued(queue) == 0


def test_a_receiver_that_refuses_an_event_does_not_block_the_queue(tmp_path, caplog):
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start(status=400)
    queue = tmp_path / "queue.sqlite"
    sink = WebhookSink(receiver.url, queue_path=queue, drain_s=30)
    try:
        sink.open(run_info())
        sink.event(event("person.entered", 1))
        sink.event(event("person.left", 2))
        with pytest.raises(MaskwatchError, match=r"the receiver refused 2 event\(s\) \(HTTP 400 x2\)"):
            sink.close(None)  # lost for good: a failure of this output in the run's summary
    finally:
        receiver.kill()
    assert [json.loads(p["body"])["id"] for p in receiver.posts()] == ["person.entered-1", "person.left-2"]
    assert "refused a person.entered event with HTTP 400" in caplog.text and queued(queue) == 0
    assert "refused a person.left event" not in caplog.text  # (one line per status, not one per event)


def test_a_receiver_slower_than_the_timeout_is_said_to_be_slow_not_down(tmp_path, caplog):
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start(delay_s=1.0)
    sink = WebhookSink(receiver.url, queue_path=tmp_path / "queue.sqlite", timeout_s=0.3, drain_s=6,
                       backoff_s=(0.1, 0.2))
    try:
        sink.open(run_info())
        sink.event(event("person.entered", 1))
        receiver.wait_for(lambda posts: len(posts) >= 3, "the event three times")
        sink.close(None)
    finally:
        receiver.kill()
    assert "receiver unavailable (no answer within 0.3 s (ReadTimeout))" in caplog.text
    assert "took the same event 3 times without answering within 0.3 s: it is slow rather than down" in caplog.text


def test_one_sink_serves_two_runs_one_after_the_other(tmp_path):
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start()
    queue = tmp_path / "queue.sqlite"
    sink = WebhookSink(receiver.url, queue_path=queue, drain_s=30)
    try:
        for run in (1, 2):
            sink.open(run_info())
            sink.event(event("person.entered", 10 * run))
            wait_until(lambda: len(receiver.posts()) == 2 * run - 1 and queued(queue) == 0, "sent the first event")
            sink.event(event("person.left", 10 * run + 1))  # after the sender found the queue empty once
            sink.close(None)
    finally:
        receiver.kill()
    assert [json.loads(p["body"])["id"] for p in receiver.posts()] == [
        "person.entered-10", "person.left-11", "person.entered-20", "person.left-21"]
    assert queued(queue) == 0


def test_two_sinks_on_one_database_and_url_deliver_each_event_once(tmp_path):
    """Two runs (or processes) with the same --db and --webhook: each posts, trims and waits for its own events."""
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl")
    queue = tmp_path / "queue.sqlite"
    sinks = [WebhookSink(receiver.url, queue_path=queue, max_queue=3, backoff_s=(0.05, 0.2), drain_s=60)
             for _ in range(2)]
    for sink in sinks:
        sink.open(run_info())  # the receiver is not up yet: the events wait
    for n in range(3):
        for name, sink in zip("ab", sinks):
            sink.event(Event("person.entered", "door", "run1", float(n), id=f"{name}-{n}"))
    assert [sink.dropped for sink in sinks] == [0, 0] and queued(queue) == 6  # neither trimmed the other's
    receiver.start()
    try:
        for sink in sinks:
            sink.close(None)
    finally:
        receiver.kill()
    delivered = [json.loads(p["body"])["id"] for p in receiver.posts()]
    assert sorted(delivered) == ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2"]  # each once
    assert queued(queue) == 0


def test_the_sender_survives_a_failing_queue_and_goes_on(tmp_path, caplog):
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start()
    sink = WebhookSink(receiver.url, queue_path=tmp_path / "queue.sqlite", backoff_s=(0.05, 0.2), drain_s=60)
    real_oldest, failures = sink._oldest, [2]

    def locked_twice():
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real_oldest()

    sink._oldest = locked_twice  # what another process holding the database looks like to the sender
    try:
        sink.open(run_info())
        sink.event(event("person.entered", 1))
        sink.close(None)
    finally:
        receiver.kill()
    assert [json.loads(p["body"])["id"] for p in receiver.posts()] == ["person.entered-1"]
    assert "database is locked" in caplog.text and failures == [0]


def test_the_end_of_a_run_says_why_it_waits_for_a_receiver_that_is_away(tmp_path, caplog):
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", queue_path=tmp_path / "queue.sqlite",
                       backoff_s=(0.05, 0.2), drain_s=3)  # nobody listens
    sink.open(run_info())
    sink.event(event("person.unmasked", 1))
    sink.close(None)
    waiting = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert len(waiting) == 1 and "stays queued for the next run" in waiting[0]
    assert queued(tmp_path / "queue.sqlite") == 1


def test_events_for_a_receiver_wait_in_memory_while_another_process_holds_the_database(tmp_path, caplog):
    """The queue lives in the events database; another process holding it (a long transaction) must not make
    the pipeline wait: event() returns while the lock is held, and everything is delivered once it is let go."""
    import threading

    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start()
    queue = tmp_path / "queue.sqlite"
    sink = WebhookSink(receiver.url, queue_path=queue, backoff_s=(0.05, 0.2), drain_s=30)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(str(queue), isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        holding.set()
        release.wait(60)
        other.execute("COMMIT")
        other.close()

    try:
        sink.open(run_info())
        sink.event(event("person.entered", 1))  # the database is free: queued at once
        receiver.wait_for(lambda posts: len(posts) == 1, "the first event")
        holder = threading.Thread(target=hold_the_lock, daemon=True)
        holder.start()
        holding.wait(10)
        sink.held_warn_s = 0.5
        for n in range(2, 5):
            sink.event(event("person.left", n))  # each returns while the lock is held: nothing waits on it
            assert ("kept in memory" in caplog.text) == (n == 4)  # said once it has lasted (a moment is routine)
            time.sleep(0.3)
        assert holder.is_alive() and "has been busy for 1 s" in caplog.text
        release.set()
        holder.join(10)
        sink.close(None)
    finally:
        release.set()
        receiver.kill()
    delivered = [json.loads(p["body"])["id"] for p in receiver.posts()]
    assert delivered == ["person.entered-1", "person.left-2", "person.left-3", "person.left-4"]
    assert "free again" in caplog.text and queued(queue) == 0


def test_events_the_receiver_refused_are_in_the_run_record_and_fail_the_run(crossing_clip, tmp_path):
    import subprocess
    import sys

    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start(status=403)
    out, db = tmp_path / "door.mp4", tmp_path / "events.sqlite"
    try:
        run = subprocess.run([sys.executable, "-m", "maskwatch.cli", "watch", str(crossing_clip), "--out", str(out),
                              "--db", str(db), "--webhook", receiver.url, "--scale", "1", "--threads", "2"],
                             capture_output=True, text=True, timeout=300)
    finally:
        receiver.kill()
    refused = len(receiver.posts())
    assert refused > 0 and run.returncode == 1, run.stderr
    said = f"the receiver refused {refused} event(s) (HTTP 403 x{refused})"
    assert said in run.stderr and "error: outputs that did not complete their work: webhook" in run.stderr
    # The summary file and the database are closed after the webhook: their record of the run holds the loss.
    # (named by its URL: with several webhooks, which one failed)
    assert said in json.loads(out.with_suffix(".json").read_text())["sink_failures"][sink_name(receiver.url)]["first"]
    with sqlite3.connect(db) as stored:
        assert said in stored.execute("SELECT message FROM runs").fetchone()[0]


def test_the_second_ctrl_c_while_the_end_waits_for_the_receiver_stops_waiting_and_keeps_the_events(tmp_path,
                                                                                                   caplog):
    import os
    import signal
    import threading

    from maskwatch.stop_signals import hold_stop_signals, restore_signals, stop_signals_as_interrupt

    queue = tmp_path / "queue.sqlite"
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", queue_path=queue, drain_s=120, backoff_s=(0.1, 0.5))
    previous = stop_signals_as_interrupt()
    hold_stop_signals("the test's run")  # as the pipeline does when the video is over and the outputs close
    taps = [threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)) for delay in (1.5, 2.5)]
    try:
        sink.open(run_info())
        sink.event(event("person.entered", 1))
        for tap in taps:
            tap.start()
        sink.close(None)  # the receiver is away: it would wait 120 s; the second tap ends the wait
    finally:
        for tap in taps:
            tap.cancel()
        restore_signals(previous)
    assert "1 event(s) not delivered (stopped waiting); they stay queued" in caplog.text and queued(queue) == 1


def test_a_webhook_is_named_by_its_url_without_its_secrets_and_a_port_out_of_range_is_refused(tmp_path, caplog):
    """Webhook URLs were logged whole (a password, a ?token= in every warning), two webhooks' failures were
    counted under one name, and a port out of range was accepted, every post then failing as 'unavailable'."""
    port = free_port()  # nobody listens
    sink = WebhookSink(f"http://bob:hunter2@127.0.0.1:{port}/hook?token=SECRETTOKEN",
                       queue_path=tmp_path / "queue.sqlite", backoff_s=(0.05, 0.2), drain_s=1)
    assert sink.name.startswith(f"webhook http://127.0.0.1:{port} #") and sink.name != WebhookSink(
        f"http://127.0.0.1:{port}/other", queue_path=tmp_path / "queue.sqlite").name  # (no path: it may be a token)
    sink.open(run_info())
    sink.event(event("person.unmasked", 1))
    sink.close(None)
    assert "receiver unavailable" in caplog.text and "hunter2" not in caplog.text and "SECRETTOKEN" not in caplog.text
    with pytest.raises(MaskwatchError, match=r"--webhook 'http://127.0.0.1:99999/x': the port must be a number "
                                             r"from 1 to 65535"):
        WebhookSink("http://127.0.0.1:99999/x", queue_path=tmp_path / "queue.sqlite")
    with pytest.raises(MaskwatchError, match="the port must be a number from 1 to 65535"):
        WebhookSink("http://127.0.0.1:0/x", queue_path=tmp_path / "queue.sqlite")


def test_the_outputs_all_start_closing_before_any_waits():
    """Each network output waits for its receiver at the end of a run (15 s a webhook, 10 s MQTT); they waited
    one after another, so three webhooks away and a broker made a 1-second clip take a minute."""
    from maskwatch.video.bus import EventBus, Sink

    calls = []

    class Recording(Sink):
        def __init__(self, name):
            self.name = name

        def begin_close(self):
            calls.append(f"{self.name} begins")

        def close(self, end):
            calls.append(f"{self.name} closes")

    EventBus([Recording("a"), Recording("b"), Recording("c")]).close(None)
    assert calls == ["a begins", "b begins", "c begins", "a closes", "b closes", "c closes"]



def test_two_webhooks_away_drain_over_the_same_seconds_not_one_after_the_other(tmp_path):
    from maskwatch.video.bus import EventBus

    sinks = [WebhookSink(f"http://127.0.0.1:{free_port()}/{name}", queue_path=tmp_path / "queue.sqlite",
                         backoff_s=(0.05, 0.2), drain_s=2) for name in ("a", "b")]  # nobody listens
    calls, deadlines = [], {}
    for name, sink in zip("ab", sinks):  # (the sinks' own hooks, watched)
        def begin_close(sink=sink, name=name, begin=sink.begin_close):
            begin()
            if name not in deadlines:  # (close calls it too, to begin where nobody did)
                calls.append(f"{name} begins")
                deadlines[name] = sink._deadline

        def close(end, sink=sink, name=name, finish=sink.close):
            calls.append(f"{name} closes")
            finish(end)

        sink.begin_close, sink.close = begin_close, close
    bus = EventBus(sinks)
    bus.open(run_info())
    bus.publish(event("person.unmasked", 1))
    bus.close(None)
    # Both drains began before either close waited, and each close kept the deadline its drain began with (the
    # second webhook's drain began only once the first had waited its 2 s out, before)
    assert calls == ["a begins", "b begins", "a closes", "b closes"]
    assert [sink._deadline for sink in sinks] == [deadlines["a"], deadlines["b"]]
    assert queued(tmp_path / "queue.sqlite") == 2  # (kept for the next run, each for its own URL)


def test_an_empty_webhook_secret_is_refused_not_sent_unsigned(tmp_path, monkeypatch):
    """`--webhook-secret "$SECRET"` with SECRET unset (the README's own example) sent every event unsigned without a
    word; serve refuses an empty --api-key for the same reason."""
    from typer.testing import CliRunner

    from maskwatch.cli import app

    for args, environment in ((["--webhook-secret", ""], {}), ([], {"MASKWATCH_WEBHOOK_SECRET": ""}),
                              ([], {"MASKWATCH_WEBHOOK_SECRET": " "})):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["watch", str(tmp_path / "door.mp4"), "--webhook", "http://127.0.0.1:9/x",
                                          "--db", str(tmp_path / "e.sqlite"), *args])
        assert isinstance(result.exception, MaskwatchError) and "is empty: the events would go unsigned" in str(
            result.exception)
    assert not (tmp_path / "e.sqlite").exists()
