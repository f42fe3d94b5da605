"""From camera threads to browsers: the latest frame of a camera, awaited by its live streams, and the events of
all cameras, fanned out to Server-Sent Events clients.

The cameras run on threads and the server on an asyncio loop; both boards hand values over with
`call_soon_threadsafe`, so a camera never waits for a browser, and a slow browser only loses its own frames or
events (its queue is bounded), never anyone else's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


class LatestBoard(Generic[T]):
    """The newest value of something (a camera's annotated JPEG), numbered; readers wait for a newer one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: T | None = None
        self.sequence = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []

    def put(self, value: T) -> None:
        with self._lock:
            self.latest = value
            self.sequence += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future, None)
            except RuntimeError:  # that loop has closed: its reader is gone
                pass

    async def newer_than(self, sequence: int, timeout_s: float) -> tuple[int, T | None]:
        """(sequence, value) once the board holds a value newer than `sequence`; the current one after
        `timeout_s` without news (so a stream can resend it and notice a client that left)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.sequence > sequence:
                return self.sequence, self.latest
            future = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
        with self._lock:
            return self.sequence, self.latest


@dataclass(eq=False)
class Subscription:
    """One SSE client: its filters and its bounded queue of event dicts."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    cameras: frozenset[str] | None
    types: frozenset[str] | None
    dropped: int = 0

    def wants(self, event: dict) -> bool:
        return ((self.cameras is None or event["camera"] in self.cameras)
                and (self.types is None or event["type"] in self.types))

    def offer(self, event: dict) -> None:
        """On the subscriber's loop: queue the event, dropping the oldest when the client is too slow."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("an event stream client is too slow; %d event(s) dropped for it", self.dropped)
        self.queue.put_nowait(event)


class EventHub:
    """Every camera's events, as the JSON dicts the webhook posts, to every subscribed stream."""

    def __init__(self, queue_size: int = 1000):
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []

    def subscribe(self, cameras: list[str] | None = None, types: list[str] | None = None) -> Subscription:
        subscription = Subscription(asyncio.get_running_loop(), asyncio.Queue(self.queue_size),
                                    frozenset(cameras) if cameras else None, frozenset(types) if types else None)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def publish(self, event: dict) -> None:
        """From any thread."""
        with self._lock:
            targets = [s for s in self._subscriptions if s.wants(event)]
        for subscription in targets:
            try:
                subscription.loop.call_soon_threadsafe(subscription.offer, event)
            except RuntimeError:
                self.unsubscribe(subscription)
