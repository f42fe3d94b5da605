"""The MQTT sink against a real mosquitto broker on loopback, stopped and started again mid-run: every event on
PREFIX/events/<type> with the stored JSON, the latest counts retained on PREFIX/state, availability."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt

from clips import BackgroundRun, GatedSource, crossing_people
from maskwatch.video import MqttSink, VideoPipeline, WatchOptions
from maskwatch.video.store import read_events
from servers import Mosquitto, free_port, wait_until


class Subscriber:
    """A client with a persistent session (clean_session off, QoS 1): the broker keeps its messages while it is
    away, as a home-automation hub's subscription would."""

    def __init__(self, port: int, topic: str, client_id: str, persistent: bool = True):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self.lock = threading.Lock()
        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(30), "the subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def received(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, predicate, what: str, timeout: float = 120) -> list[tuple[str, bytes, bool]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(self.received()):
                return self.received()
            time.sleep(0.1)
        raise AssertionError(f"the subscriber never got {what}; it has {len(self.received())} messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def event_ids(messages) -> set[str]:
    return {json.loads(payload)["id"] for topic, payload, _ in messages if "/events/" in topic}


def test_events_reach_mqtt_subscribers_across_a_broker_restart(detector, faces, tmp_path):
    frames, fps = crossing_people(*faces)
    port = free_port()
    broker = Mosquitto(port, tmp_path / "broker").start()
    subscriber = Subscriber(port, "site/#", "test-subscriber")
    source = GatedSource(frames, fps, gates=(20, 50))
    db = tmp_path / "events.sqlite"
    sink = MqttSink(f"mqtt://127.0.0.1:{port}/site/{{camera}}", drain_s=60, reconnect_s=(1, 2))
    pipeline = VideoPipeline(detector, WatchOptions(every=1, summary_every=1.0), db, [sink],
                             lines=["door=240,0,240,320"], camera="door")
    run = BackgroundRun(pipeline, source)
    try:
        source.wait_at(20)
        subscriber.wait_for(lambda m: any(t == "site/door/events/person.entered" for t, _, _ in m), "person.entered")
        broker.stop()  # the broker goes away mid-run
        source.open(20)
        source.wait_at(50)  # the unmasked person arrives while it is away
        assert any(e["type"] == "person.unmasked" for e in read_events(db))
        broker.start()
        source.open(50)
        summary = run.join()
        emitted = read_events(db, run_id=summary.run_id)
        messages = subscriber.wait_for(lambda m: event_ids(m) >= {e["id"] for e in emitted}, "every event")
    finally:
        source.open(20), source.open(50)
        subscriber.close()
    by_id = {json.loads(p)["id"]: (t, json.loads(p)) for t, p, _ in messages if "/events/" in t}
    for e in emitted:  # each event on its type's topic, with the JSON the database holds
        assert by_id[e["id"]] == (f"site/door/events/{e['type']}", e)
    alerts = {e["id"]: e["track_id"] for e in emitted if e["type"] == "person.unmasked"}
    assert len(alerts) == len(set(alerts.values())) == 1
    assert [p for t, p, _ in messages if t == "site/door/availability"][:1] == [b"online"]
    # A newcomer gets the retained state at once: the final counts of the run, and that the camera is offline.
    late = Subscriber(port, "site/door/+", "test-late", persistent=False)
    try:
        retained = late.wait_for(lambda m: {"site/door/state", "site/door/availability"} <= {t for t, _, _ in m},
                                 "the retained state")
    finally:
        late.close()
        broker.stop()
    state = {t: (p, r) for t, p, r in retained}
    final_counts = [e for e in emitted if e["type"] == "counts"][-1]
    assert json.loads(state["site/door/state"][0]) == final_counts and state["site/door/state"][1]
    assert final_counts["counts"]["people"] == summary.people and final_counts["counts"]["lines"]["door"]["in"] == 2
    assert state["site/door/availability"] == (b"offline", True)


def test_one_sink_serves_two_runs_and_keeps_no_acknowledgement_over(tmp_path):
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.events import Event

    port = free_port()
    broker = Mosquitto(port, tmp_path / "broker").start()
    subscriber = Subscriber(port, "site/#", "test-two-runs", persistent=False)
    sink = MqttSink(f"mqtt://127.0.0.1:{port}/site/{{camera}}", drain_s=30)
    sent = []
    try:
        for run in ("run1", "run2"):
            sink.open(RunInfo("door", run, "door.mp4", (640, 480), 10.0))
            for n in range(3):
                sent.append(Event("person.entered", "door", run, float(n), id=f"{run}-{n}"))
                sink.event(sent[-1])
            sink.close(None)
            # Every message of the run was acknowledged, the availability ones included: nothing is left to
            # match a later message that reuses an id.
            assert sink._pending == {} and sink._acked_early == set()
        subscriber.wait_for(lambda m: event_ids(m) >= {e.id for e in sent}, "the events of both runs")
    finally:
        subscriber.close()
        broker.stop()


def test_a_camera_that_sends_no_frame_turns_its_availability_offline_until_frames_come_back(tmp_path):
    """A dead camera must not read as an empty doorway: availability follows camera.down and camera.up."""
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.events import CAMERA_DOWN, CAMERA_UP, Event

    port = free_port()
    broker = Mosquitto(port, tmp_path / "broker").start()
    subscriber = Subscriber(port, "site/#", "test-camera-down", persistent=False)
    sink = MqttSink(f"mqtt://127.0.0.1:{port}/site/door", drain_s=30)
    try:
        sink.open(RunInfo("door", "run1", "rtsp://door", (640, 480), 10.0))
        subscriber.wait_for(lambda m: "site/door/availability" in {t for t, _, _ in m}, "online")
        for n, kind in enumerate((CAMERA_DOWN, CAMERA_UP)):
            sink.event(Event(kind, "door", "run1", float(n), reason="test"))
        sink.close(None)
        subscriber.wait_for(lambda m: len([t for t, _, _ in m if t == "site/door/availability"]) == 4, "4 states")
    finally:
        subscriber.close()
        broker.stop()
    states = [p for t, p, _ in subscriber.received() if t == "site/door/availability"]
    assert states == [b"online", b"offline", b"online", b"offline"]  # run, camera down, back, run ended


def test_two_outputs_to_one_broker_keep_their_connections_and_a_normal_end_is_not_a_loss(tmp_path, caplog):
    """Each sink has its own client id (one id would make the broker close the other's connection, over and over)."""
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.events import Event

    port = free_port()
    broker = Mosquitto(port, tmp_path / "broker").start()
    subscriber = Subscriber(port, "#", "test-two-sinks", persistent=False)
    sinks = [MqttSink(f"mqtt://127.0.0.1:{port}/{prefix}", drain_s=30) for prefix in ("a", "b")]
    try:
        with caplog.at_level("WARNING", logger="maskwatch.video.sinks.mqtt"):
            for sink in sinks:
                sink.open(RunInfo("door", "run1", "door.mp4", (640, 480), 10.0))
            subscriber.wait_for(lambda m: {"a/availability", "b/availability"} <= {t for t, _, _ in m}, "both online")
            time.sleep(3)  # time for the broker to close one of two connections sharing an id, and for a retry
            for n in range(3):
                for sink in sinks:
                    sink.event(Event("person.entered", "door", "run1", float(n), id=f"{sink.prefix}-{n}"))
            for sink in sinks:
                sink.close(None)
        subscriber.wait_for(lambda m: len(event_ids(m)) == 6, "the events of both outputs")
    finally:
        subscriber.close()
        broker.stop()
    availability = [(t, p) for t, p, _ in subscriber.received() if t.endswith("/availability")]
    assert sorted(availability) == [("a/availability", b"offline"), ("a/availability", b"online"),
                                    ("b/availability", b"offline"), ("b/availability", b"online")]
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # no "lost ..., reconnecting"


def test_a_broker_that_cannot_be_reached_is_said_during_the_run_and_counted_at_its_end(caplog):
    import pytest

    from maskwatch.errors import MaskwatchError
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.events import Event

    sink = MqttSink(f"mqtt://127.0.0.1:{free_port()}/site", drain_s=1, reconnect_s=(1, 2))  # nothing listens
    with caplog.at_level("WARNING", logger="maskwatch.video.sinks.mqtt"):
        sink.open(RunInfo("door", "run1", "door.mp4", (640, 480), 10.0))
        sink.event(Event("person.unmasked", "door", "run1", 0.0, id="e1"))
        deadline = time.time() + 20
        while time.time() < deadline and not any("cannot reach" in r.getMessage() for r in caplog.records):
            time.sleep(0.1)
        during = [r.getMessage() for r in caplog.records]
        with pytest.raises(MaskwatchError, match="1 message\\(s\\) not acknowledged .* they are lost"):
            sink.close(None)
    assert len([m for m in during if "cannot reach 127.0.0.1" in m]) == 1, during  # while running, once


def test_tls_asked_of_a_plain_broker_says_which_scheme_to_give(tmp_path, caplog):
    import pytest

    from maskwatch.errors import MaskwatchError
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.events import Event

    port = free_port()
    broker = Mosquitto(port, tmp_path / "broker").start()  # plain MQTT, up and answering
    sink = MqttSink(f"mqtts://127.0.0.1:{port}/site", drain_s=1, reconnect_s=(1, 2))
    hint = f"(mqtts:// speaks TLS; if port {port} is plain MQTT, as 1883 usually is, give mqtt://)"
    try:
        with caplog.at_level("WARNING", logger="maskwatch.video.sinks.mqtt"):
            sink.open(RunInfo("door", "run1", "door.mp4", (640, 480), 10.0))
            sink.event(Event("person.unmasked", "door", "run1", 0.0, id="e1"))
            deadline = time.time() + 20
            while time.time() < deadline and hint not in caplog.text:
                time.sleep(0.1)
            lost = r"1 message\(s\) not acknowledged .*give mqtt://\); they are lost"
            with pytest.raises(MaskwatchError, match=lost):
                sink.close(None)
    finally:
        broker.stop()
    assert f"cannot reach 127.0.0.1:{port} {hint}" in caplog.text
    assert "port 8883 is usually MQTT over TLS" in MqttSink("mqtt://broker:8883/site")._scheme_hint()


def test_a_broker_that_refuses_the_login_is_said_once_and_named_as_the_cause_of_the_loss(tmp_path, caplog):
    """A login the broker refuses was warned about at every retry, and the run's end said 'broker away'."""
    import pytest

    from maskwatch.errors import MaskwatchError
    from maskwatch.video.bus import RunInfo
    from maskwatch.video.events import Event

    port = free_port()
    broker = Mosquitto(port, tmp_path / "broker", anonymous=False).start()  # no user may log in
    sink = MqttSink(f"mqtt://user:wrong@127.0.0.1:{port}/site", drain_s=1, reconnect_s=(1, 1))
    try:
        with caplog.at_level("WARNING", logger="maskwatch.video.sinks.mqtt"):
            sink.open(RunInfo("door", "run1", "door.mp4", (640, 480), 10.0))
            sink.event(Event("person.unmasked", "door", "run1", 0.0, id="e1"))
            wait_until(lambda: "refused the connection" in caplog.text, "the broker's refusal", timeout=20)
            time.sleep(3)  # a few retries, each refused again
            with pytest.raises(MaskwatchError, match=r"1 message\(s\) not acknowledged within 1 s \(the broker "
                                                     r"refused the connection: Not authorized\); they are lost"):
                sink.close(None)
    finally:
        broker.stop()
    assert caplog.text.count("refused the connection: Not authorized") == 1
    assert "wrong" not in caplog.text
