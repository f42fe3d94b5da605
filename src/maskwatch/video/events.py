"""The one event schema: what the pipeline tells its sinks (database, webhook, MQTT, and later the web page).

Every event is one flat JSON object with the same keys, so a receiver can read any type with one parser:

    {"id": "9b1d...", "type": "person.unmasked", "time": "2025-05-01T09:30:12.480+00:00", "source_time_s": 12.48,
     "camera": "door", "run": "4f0c2a...", "track_id": 7, "class": "without_mask", "share": 0.83, "zone": "queue",
     "box": [212.0, 96.5, 301.2, 210.0], "frame": 312}

Types: person.entered (a track is confirmed: seen on enough frames to be counted), person.unmasked (a confirmed
track whose vote is without_mask or mask_weared_incorrect; once per track), both with "zone": the zone the face is
in then (null: none), person.left (the track was not seen for a while, or the run ended), zone.entered / zone.left
(a confirmed track's face centre went into or out of a zone), line.crossed (with "direction": "in" or "out"), and
counts (with "counts": people per class, per zone and per line, compliance; every --summary-every seconds and at
the end of a run), camera.down (a live camera or stream sent no frame for a while: nobody is watched until
camera.up; with "reason") and camera.up (frames again; with "reason": how long it was down). "snapshot" (base64
JPEG of the face, blurred unless --keep-faces) is present only with --event-snapshots.

`id` is unique per event: delivery to a webhook or MQTT is at least once, so receivers drop repeated ids.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maskwatch.video.tracking import TrackState

PERSON_ENTERED = "person.entered"
PERSON_UNMASKED = "person.unmasked"
PERSON_LEFT = "person.left"
ZONE_ENTERED = "zone.entered"
ZONE_LEFT = "zone.left"
LINE_CROSSED = "line.crossed"
COUNTS = "counts"
CAMERA_DOWN = "camera.down"
CAMERA_UP = "camera.up"
EVENT_TYPES: tuple[str, ...] = (PERSON_ENTERED, PERSON_UNMASKED, PERSON_LEFT, ZONE_ENTERED, ZONE_LEFT, LINE_CROSSED,
                                COUNTS, CAMERA_DOWN, CAMERA_UP)


def now_iso() -> str:
    """Wall-clock time in ISO 8601 with the UTC offset and milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Event:
    """One event as it is sent and stored (its JSON: README, Events): its type, camera, run and times, and the
    person, zone, line or counts it is about."""

    type: str
    camera: str
    run: str
    source_time_s: float
    time: str = field(default_factory=now_iso)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    track_id: int | None = None
    label: str | None = None  # "class" in JSON (a Python keyword)
    share: float | None = None  # the class's share of the track's score-weighted vote
    zone: str | None = None  # zone or line name for zone.* and line.crossed; on person.entered / unmasked the zone
    # the face is in (None: in no zone)
    box: list[float] | None = None  # x1, y1, x2, y2 in pixels of the source
    frame: int | None = None
    direction: str | None = None  # line.crossed only: "in" or "out"
    counts: dict[str, Any] | None = None  # counts only
    reason: str | None = None  # camera.down / camera.up only
    snapshot: str | None = None  # base64 JPEG, only with --event-snapshots
    # The track's state (votes, frames, best box), for sinks in this process that store tracks; not in the JSON.
    track: TrackState | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; known: {', '.join(EVENT_TYPES)}")

    def as_dict(self) -> dict[str, Any]:
        """The JSON object: the common keys always (null when they do not apply), the type's own keys only on it."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "time": self.time,
                               "source_time_s": round(self.source_time_s, 3), "camera": self.camera, "run": self.run,
                               "track_id": self.track_id, "class": self.label,
                               "share": None if self.share is None else round(self.share, 3), "zone": self.zone,
                               "box": None if self.box is None else [round(float(v), 1) for v in self.box],
                               "frame": self.frame}
        if self.type == LINE_CROSSED:
            out["direction"] = self.direction
        if self.type == COUNTS:
            out["counts"] = self.counts
        if self.type in (CAMERA_DOWN, CAMERA_UP):
            out["reason"] = self.reason
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))
