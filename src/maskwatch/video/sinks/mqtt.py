"""MQTT sink (paho-mqtt): each event to `PREFIX/events/<type>`, the latest counts retained on `PREFIX/state`,
and `PREFIX/availability` (retained `online`; `offline` as the last will and while the camera sends no frame,
between camera.down and camera.up), all at QoS 1.

paho reconnects with back-off when the broker goes away and re-sends what was published meanwhile (QoS 1: at
least once, receivers drop repeated event ids). `{camera}` in the prefix becomes the camera's name, so one URL
serves several cameras: mqtt://broker/maskwatch/{camera}.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from urllib.parse import SplitResult, unquote, urlsplit

import paho.mqtt.client as mqtt

from maskwatch.errors import MaskwatchError
from maskwatch.video.bus import RunEnd, RunInfo, Sink
from maskwatch.video.events import CAMERA_DOWN, CAMERA_UP, COUNTS, Event
from maskwatch.video.redact import checked_port, without_password

log = logging.getLogger(__name__)

QOS = 1


def check_mqtt_url(url: str) -> tuple[SplitResult, int | None]:
    """The parts of an --mqtt URL and its port (None: the scheme's), or a MaskwatchError saying what is wrong."""
    parts = urlsplit(url)
    shown = without_password(url)  # (what messages say: never the login's password)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise MaskwatchError(f"--mqtt {shown!r}: expected mqtt://[user:pass@]host[:port]/prefix "
                             f"(mqtts:// for TLS), e.g. mqtt://127.0.0.1:1883/maskwatch")
    port = checked_port(parts, "--mqtt", url)  # (":0" was taken as no port: 1883)
    if "#" in url or parts.query or "+" in parts.path:  # (`#` would be read as the URL's fragment)
        raise MaskwatchError(f"--mqtt {shown!r}: the prefix is where events are published, so it cannot hold MQTT "
                             f"wildcards (+ #) or a ?query; subscribe with wildcards instead "
                             f"(e.g. mosquitto_sub -t 'maskwatch/#')")
    return parts, port


class MqttSink(Sink):
    """Publishes each event to PREFIX/events/<type> on an MQTT broker (paho-mqtt) and the latest counts, retained,
    to PREFIX/state; reconnects on its own; what the broker never acknowledged by the end fails the run."""

    name = "mqtt"
    required = True  # messages never acknowledged by the end are lost: the run failed to deliver them

    def __init__(self, url: str, drain_s: float = 10.0, keepalive_s: int = 30,
                 reconnect_s: tuple[int, int] = (1, 30)):
        parts, port = check_mqtt_url(url)
        self.url, self.shown = url, without_password(url)  # (shown: what messages say, never the password)
        self.tls = parts.scheme == "mqtts"
        self.host, self.port = parts.hostname, port or (8883 if self.tls else 1883)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.prefix = parts.path.strip("/") or "maskwatch"
        self.topic_prefix = self.prefix  # with {camera} filled in when the run opens
        self.drain_s, self.keepalive_s, self.reconnect_s = drain_s, keepalive_s, reconnect_s
        self.name = f"mqtt {self.host}:{self.port}/{self.prefix}"  # (told apart from another broker's failures)
        self._drain_until: float | None = None  # set by begin_close
        self._refused = ""  # why the broker last refused the connection (a login it does not accept)
        self.client: mqtt.Client | None = None
        self._pending: dict[int, str] = {}  # mid -> topic, published but not yet acknowledged
        self._acked_early: set[int] = set()
        self._lock = threading.Condition()
        self._connected = False
        self._closing = False
        self._said_unreachable = False  # one warning per outage, not one per retry
        self._camera_down = False  # between camera.down and camera.up: availability stays offline

    def _scheme_hint(self) -> str:
        """Why a broker that is up may still never answer: TLS asked of a plain port, or the reverse."""
        if self.tls and self.port != 8883:
            return (f" (mqtts:// speaks TLS; if port {self.port} is plain MQTT, as 1883 usually is, give mqtt://)")
        if not self.tls and self.port == 8883:
            return " (port 8883 is usually MQTT over TLS: give mqtts://)"
        return ""

    def _topic(self, *parts: str) -> str:
        return "/".join((self.topic_prefix, *parts))

    def open(self, run: RunInfo) -> None:
        """Start a run: fresh run state (a sink may serve several runs, one after another), then the client."""
        if self.client is not None:
            raise MaskwatchError(f"--mqtt {self.shown}: this sink is already open in another run; give each run its "
                                 f"own MqttSink")
        with self._lock:
            self._pending, self._acked_early = {}, set()
        self._connected = self._closing = self._said_unreachable = self._camera_down = False
        self._refused, self._drain_until = "", None
        if any(c in run.camera for c in "+#\0"):
            raise MaskwatchError(f"--mqtt {self.shown}: the camera name {run.camera!r} holds an MQTT wildcard (+ #), "
                                 f"which no topic may hold; rename the camera (--camera)")
        self.topic_prefix = self.prefix.replace("{camera}", run.camera)
        # Unique per sink: two --mqtt outputs to one broker under one id would each close the other's connection.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"maskwatch-{run.camera}-{run.run[:8]}-{secrets.token_hex(3)}")
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set()
        client.will_set(self._topic("availability"), "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(*self.reconnect_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # Asynchronous: a broker that is down now is connected to when it comes up; the video does not wait.
        self.client = client  # before the loop starts: _on_connect publishes through it
        client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._closing:  # a reconnect racing the end of the run: "online" now would stay retained
            return
        if reason_code.is_failure:  # said once per reason, not at every retry
            if str(reason_code) != self._refused:
                log.warning("mqtt %s:%d refused the connection: %s", self.host, self.port, reason_code)
            self._refused = str(reason_code)
            return
        self._connected, self._refused = True, ""
        if self._said_unreachable:
            log.warning("mqtt: connected to %s:%d; the events kept meanwhile are being sent", self.host, self.port)
        else:
            log.info("mqtt: connected to %s:%d", self.host, self.port)
        self._said_unreachable = False
        # (a reconnect while the camera is down must not say online: what a subscriber reads is retained)
        self._publish(self._topic("availability"), "offline" if self._camera_down else "online", retain=True)

    def _on_connect_fail(self, client, userdata) -> None:
        """The broker cannot be reached (down, wrong address, a name that does not resolve): said once, while
        the video runs, not only when it ends."""
        self._refused = ""  # (not reached, this time: a refusal earlier is not why messages wait now)
        if not self._said_unreachable and not self._closing:
            log.warning("mqtt: cannot reach %s:%d%s; retrying every %d-%d s, events are kept until it answers",
                        self.host, self.port, self._scheme_hint(), *self.reconnect_s)
            self._said_unreachable = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected and not self._closing:
            log.warning("mqtt: lost %s:%d (%s); reconnecting, events are kept until it is back", self.host,
                        self.port, reason_code)
        self._connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if self._pending.pop(mid, None) is None:
                self._acked_early.add(mid)
            self._lock.notify_all()

    def _publish(self, topic: str, payload: str, retain: bool = False) -> mqtt.MQTTMessageInfo | None:
        """Every message goes through here (events, state, availability), so each acknowledgement is matched
        to its message and none is left over to be mistaken for another's when paho's ids wrap around."""
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            log.warning("mqtt: paho's outgoing queue is full; an event to %s was dropped", topic)
            return None
        with self._lock:  # the acknowledgement may have come before we get here
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
            else:
                self._pending[info.mid] = topic
        return info

    def event(self, event: Event) -> None:
        payload = event.to_json()
        self._publish(self._topic("events", event.type), payload)
        if event.type == COUNTS:
            self._publish(self._topic("state"), payload, retain=True)
        elif event.type in (CAMERA_DOWN, CAMERA_UP):  # a dead camera is not an empty doorway: its entities
            self._camera_down = event.type == CAMERA_DOWN  # turn unavailable (Home Assistant reads this topic)
            self._publish(self._topic("availability"), "offline" if self._camera_down else "online", retain=True)

    def begin_close(self) -> None:
        if self._drain_until is None:
            self._drain_until = time.monotonic() + self.drain_s

    def close(self, end: RunEnd) -> None:
        if self.client is None:
            return
        self.begin_close()
        deadline, self._drain_until = self._drain_until, None
        try:
            with self._lock:
                while self._pending and time.monotonic() < deadline:
                    self._lock.wait(timeout=0.2)
        except KeyboardInterrupt:  # "once more to stop at once": no more waiting for the broker
            log.warning("mqtt %s:%d: stopped waiting for the broker", self.host, self.port)
        with self._lock:
            left = len(self._pending)
        self._closing = True  # the disconnect below is ours: no "lost, reconnecting" warning
        try:
            if self._connected:
                info = self._publish(self._topic("availability"), "offline", retain=True)
                if info is not None:
                    info.wait_for_publish(timeout=2)
        except (RuntimeError, ValueError) as exc:
            log.warning("mqtt: could not say offline: %s", exc)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        if left:  # raised, so the run counts it among its sink failures (summary, run message)
            why = (f"(the broker refused the connection: {self._refused})" if self._refused
                   else f"(broker away){self._scheme_hint()}")
            raise MaskwatchError(f"mqtt {self.host}:{self.port}: {left} message(s) not acknowledged within "
                                 f"{self.drain_s:.0f} s {why}; they are lost")

