"""From tracks to events: who was confirmed, who is unmasked, who left, who went into which zone, and the
periodic counts. The one place that decides when a track counts as a person (confirmed: seen on
`min_track_frames` detection frames), so counts, events and the database always agree.

A person who left is folded into running counts (by their final class) and forgotten, so a camera watched for
a week holds only the people in the picture now."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Sequence

import cv2
import numpy as np
import supervision as sv

from maskwatch.annotate import blur_boxes
from maskwatch.classes import compliance_of, is_unmasked
from maskwatch.video.events import (CAMERA_DOWN, CAMERA_UP, COUNTS, PERSON_ENTERED, PERSON_LEFT, PERSON_UNMASKED,
                                    Event)
from maskwatch.video.sources import Frame
from maskwatch.video.tracking import TrackState
from maskwatch.video.zones import ZoneCounter


def snapshot_of(image: np.ndarray, box: Sequence[float], keep_face: bool, size: int = 160) -> str:
    """Base64 JPEG of the face with some context (1.5x the box), the face blurred unless `keep_face`."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = map(float, box)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.5
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = image[top:bottom, left:right].copy()
    if crop.size == 0:
        crop = np.zeros((size, size, 3), np.uint8)
    elif not keep_face:
        blur_boxes(crop, [(x1 - left, y1 - top, x2 - left, y2 - top)])
    scale = size / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(jpeg.tobytes()).decode("ascii")


class EventEmitter:
    """Tracks into events: a track seen on enough detection frames is a person (person.entered), raises one alert
    when its recent vote is unmasked (person.unmasked) and leaves by its whole visit's vote (person.left); zone
    and line events, and the counts event."""

    def __init__(self, camera: str, run: str, classes: Sequence[str], zones: ZoneCounter, min_track_frames: int,
                 lost_after_s: float, snapshots: bool = False, keep_faces: bool = False):
        self.camera, self.run, self.classes = camera, run, list(classes)
        self.zones = zones
        self.min_track_frames = min_track_frames
        self.lost_after_s = lost_after_s
        self.snapshots, self.keep_faces = snapshots, keep_faces
        self.confirmed: dict[int, TrackState] = {}  # people in the picture now
        self.alerted: set[int] = set()  # of those, the ones person.unmasked was sent for
        self.ended: set[int] = set()  # left, but the tracker still follows the id: if it finds it again, ignored
        self.people_left: Counter[str] = Counter()  # people who left, by their final class

    def _event(self, type_: str, time_s: float, state: TrackState | None = None, box=None, frame: int | None = None,
               image: np.ndarray | None = None, **extra) -> Event:
        event = Event(type_, self.camera, self.run, time_s, frame=frame, **extra)
        if state is not None:
            event.track_id, event.label, event.share, event.track = state.track_id, state.label, state.share, state
            if type_ == PERSON_UNMASKED:  # (the class that raised it: the last seconds', not the visit's)
                event.label, event.share = state.label_now, state.share_now
            event.box = list(box if box is not None else state.last_box)
            if self.snapshots and image is not None and type_ in (PERSON_ENTERED, PERSON_UNMASKED):
                event.snapshot = snapshot_of(image, event.box, self.keep_faces)
        return event

    def camera_event(self, up: bool, time_s: float, reason: str) -> Event:
        """camera.down (no frame for a while: nobody is watched) or camera.up (frames again), with why."""
        return self._event(CAMERA_UP if up else CAMERA_DOWN, time_s, reason=reason)

    def people(self) -> dict[str, int]:
        """Confirmed people per class: those who left by their final vote, the others by their vote now."""
        labels = Counter(state.label for state in self.confirmed.values()) + self.people_left
        return {c: labels.get(c, 0) for c in self.classes}

    def confirmed_only(self, tracked: sv.Detections) -> sv.Detections:
        if len(tracked) == 0 or tracked.tracker_id is None:
            return tracked
        return tracked[np.array([int(t) in self.confirmed for t in tracked.tracker_id], dtype=bool)]

    def detection_frame(self, frame: Frame, tracked: sv.Detections, tracks: dict[int, TrackState]) -> list[Event]:
        """Events of a frame the detector and tracker just ran on (track states only change there)."""
        events: list[Event] = []
        self.ended &= tracks.keys()  # ids the tracker has forgotten cannot come back
        ids = [int(t) for t in tracked.tracker_id] if len(tracked) and tracked.tracker_id is not None else []
        people: list[tuple[str, TrackState, np.ndarray]] = []
        for tid, box in zip(ids, tracked.xyxy):
            state = tracks.get(tid)
            if state is None or tid in self.ended:
                continue
            if tid not in self.confirmed and state.frames >= self.min_track_frames:
                self.confirmed[tid] = state
                people.append((PERSON_ENTERED, state, box))
            if tid in self.confirmed and tid not in self.alerted and is_unmasked(state.label_now):
                self.alerted.add(tid)
                people.append((PERSON_UNMASKED, state, box))
        # Zones first, so person events name the zone the face is in now; they are published first, so each
        # track's zone events come after its person.entered.
        confirmed = self.confirmed_only(tracked)
        crossings = self.zones.update(confirmed) if self.zones else []
        for type_, state, box in people:
            events.append(self._event(type_, frame.time_s, state, box, frame.index, frame.image,
                                      zone=self.zones.zone_of(state.track_id)))
        for crossing in crossings:
            state = self.confirmed[crossing.track_id]
            events.append(self._event(crossing.type, frame.time_s, state, confirmed.xyxy[crossing.index],
                                      frame.index, zone=crossing.name, direction=crossing.direction))
        for tid, state in list(self.confirmed.items()):
            if frame.time_s - state.last_seen_s > self.lost_after_s:
                events.extend(self._left(tid, frame.time_s, frame.index))
        return events

    def _left(self, tid: int, time_s: float, frame: int | None) -> list[Event]:
        """The person left: their events, then their final class goes into the running counts and their state
        is dropped."""
        state = self.confirmed.pop(tid)
        self.alerted.discard(tid)
        self.ended.add(tid)
        self.people_left[state.label] += 1
        events = [self._event(c.type, time_s, state, frame=frame, zone=c.name)
                  for c in self.zones.track_ended(tid, state.label)]
        events.append(self._event(PERSON_LEFT, time_s, state, frame=frame))
        return events

    def finish(self, time_s: float, frame: int | None) -> list[Event]:
        """The run ends, or the scene cuts to another picture: every confirmed track still in the picture
        leaves."""
        events = []
        for tid in list(self.confirmed):
            events.extend(self._left(tid, time_s, frame))
        return events

    def zone_counts(self) -> dict:
        return self.zones.counts(lambda t: self.confirmed[t].label, self.classes)

    def counts(self, time_s: float, frame: int | None) -> Event:
        """The `counts` event: people per class in this run, present now, compliance, per zone and per line."""
        people = self.people()
        present = Counter(s.label for s in self.confirmed.values())
        return self._event(COUNTS, time_s, frame=frame, counts={
            "people": people, "present": {c: present.get(c, 0) for c in self.classes},
            "compliance": compliance_of(people), **self.zone_counts()})
