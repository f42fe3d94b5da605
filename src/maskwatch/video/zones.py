"""Areas of the picture: polygon zones (who is in the queue) and lines (who went through the door, which way).

The geometry is supervision's: PolygonZone says which faces are inside, LineZone which tracks crossed. A face
counts by the centre of its box. Only confirmed tracks are given to zones, so a one-frame flicker never enters
a zone, and zone counts agree with the people counts.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import supervision as sv

from maskwatch.classes import compliance_of
from maskwatch.errors import MaskwatchError

ANCHOR = (sv.Position.CENTER,)
MAX_COORDINATE = 1_000_000  # pixels: far past any picture, and small enough for the area's arithmetic
EDGE_SLACK = 0.05  # a point this far past the picture's edge (share of its side) is moved onto the edge
log = logging.getLogger(__name__)


_EXAMPLES = {"--zone": "queue=100,200,400,200,400,470,100,470", "--line": "door=320,0,320,480"}


def _invalid(label: str, option: str, problem: str) -> MaskwatchError:
    return MaskwatchError(f"{label}: {problem}, e.g. {_EXAMPLES[option]}")


def _name_and_numbers(spec: str, option: str, where: str | None) -> tuple[str, list[float], str]:
    """NAME and the numbers of `NAME=x1,y1,...` as given to `option`, and how messages name it: `where` (a config
    file's camera and key) or the option with its value."""
    label = where or f"{option} {spec!r}"
    name, sep, coords = spec.partition("=")
    if not sep or not name.strip() or not coords.strip():
        raise _invalid(label, option, "expected NAME=x1,y1,x2,y2,...")
    try:
        values = [float(v) for v in coords.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise _invalid(label, option, "the coordinates must be numbers") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in values):  # (inf, nan, 1e308: numpy's
        raise _invalid(label, option, f"the coordinates are pixels: numbers from -{MAX_COORDINATE:,} to "  # overflow)
                                      f"{MAX_COORDINATE:,}")
    return name.strip(), values, label


@dataclass(frozen=True)
class Zone:
    """A polygon in pixels of the source."""

    name: str
    points: tuple[tuple[float, float], ...]
    where: str | None = field(default=None, compare=False)  # a config file's camera and key, for messages

    def __post_init__(self) -> None:
        """A Zone made in Python is checked as --zone's text is (a bow tie, no area, too few points)."""
        label = self.where or f"Zone({self.name!r})"
        object.__setattr__(self, "points", _pixel_points(self.points, label))
        problem = "" if isinstance(self.name, str) and self.name.strip() else "a zone needs a name (text)"
        problem = problem or (_zone_problem(sum(self.points, ())) or "")
        if problem:
            raise MaskwatchError(f"{label}: {problem}")

    @property
    def label(self) -> str:
        return self.where or repr(self.name)

    @classmethod
    def parse(cls, spec: str, where: str | None = None) -> "Zone":
        """`NAME=x1,y1,x2,y2,x3,y3[,...]`, as given to --zone; where: what the messages name instead of the
        option (a config file's camera and key)."""
        name, values, label = _name_and_numbers(spec, "--zone", where)
        problem = _zone_problem(tuple(values))
        if problem:
            raise _invalid(label, "--zone", problem)
        return cls(name, tuple(zip(values[0::2], values[1::2])), where)


def _zone_problem(values: tuple[float, ...]) -> str | None:
    """What is wrong with a zone of these x, y numbers, if anything."""
    if len(values) % 2 or len(values) < 6:
        return "a zone needs at least 3 points given as x,y pairs (an even count of numbers)"
    points = tuple(zip(values[0::2], values[1::2]))
    if _crosses_itself(points):
        return "the zone's outline crosses itself: give its corners in order around it"
    if _area(points) == 0:
        return "the zone has no area (its points lie on one line): nobody could be in it"
    return None


def _pixel_points(points, label: str) -> tuple[tuple[float, float], ...]:
    """Points given in Python as pairs of pixel coordinates, as floats (the numbers --zone and --line take)."""
    try:
        pairs = tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError):
        raise MaskwatchError(f"{label}: points are (x, y) pairs of numbers, got {points!r}") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for pair in pairs for v in pair):
        raise MaskwatchError(f"{label}: the coordinates are pixels: numbers from -{MAX_COORDINATE:,} to "
                             f"{MAX_COORDINATE:,}")
    return pairs


def _crosses_itself(points: tuple[tuple[float, float], ...]) -> bool:
    """Whether two edges that do not share a corner cross (a bow tie: the zone would not be what was meant)."""
    edges = list(zip(points, points[1:] + points[:1]))

    def side(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    for i, (a, b) in enumerate(edges):
        for j in range(i + 2, len(edges)):
            if i == 0 and j == len(edges) - 1:
                continue  # neighbours through the first corner
            c, d = edges[j]
            if side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0:
                return True
    return False


@dataclass(frozen=True)
class Line:
    """A segment in pixels of the source; crossings are counted in each direction."""

    name: str
    start: tuple[float, float]
    end: tuple[float, float]
    where: str | None = field(default=None, compare=False)  # as for Zone

    def __post_init__(self) -> None:
        """A Line made in Python is checked as --line's text is."""
        label = self.where or f"Line({self.name!r})"
        start, end = _pixel_points((self.start, self.end), label)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        problem = "" if isinstance(self.name, str) and self.name.strip() else "a line needs a name (text)"
        if problem or start == end:
            raise MaskwatchError(f"{label}: {problem or 'a line is two different points'}")

    @property
    def label(self) -> str:
        return self.where or repr(self.name)

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        return self.start, self.end

    @classmethod
    def parse(cls, spec: str, where: str | None = None) -> "Line":
        """`NAME=x1,y1,x2,y2`, as given to --line (where: as for Zone.parse)."""
        name, values, label = _name_and_numbers(spec, "--line", where)
        if len(values) != 4 or values[:2] == values[2:]:
            raise _invalid(label, "--line", "a line is two different points, x1,y1,x2,y2")
        return cls(name, (values[0], values[1]), (values[2], values[3]), where)


def as_zone(value: str | Zone) -> Zone:
    """A Zone as given: one already made, or its --zone text (`NAME=x1,y1,x2,y2,x3,y3,...`)."""
    return value if isinstance(value, Zone) else Zone.parse(value)


def as_line(value: str | Line) -> Line:
    """A Line as given: one already made, or its --line text (`NAME=x1,y1,x2,y2`)."""
    return value if isinstance(value, Line) else Line.parse(value)


@dataclass
class Crossing:
    """A confirmed track went into or out of a zone, or over a line."""

    type: str  # zone.entered, zone.left or line.crossed (the event type)
    name: str
    track_id: int
    index: int | None  # row in the frame's detections (None when the track has ended)
    direction: str | None = None  # line.crossed: in / out


@dataclass
class _ZoneState:
    zone: Zone
    polygon: sv.PolygonZone
    inside: set[int] = field(default_factory=set)
    entered: set[int] = field(default_factory=set)  # tracks still in the picture that went in
    entered_before: Counter[str] = field(default_factory=Counter)  # people who went in and left, by final class

    @property
    def seen(self) -> int:
        return len(self.entered) + sum(self.entered_before.values())


@dataclass
class _LineState:
    line: Line
    counter: sv.LineZone
    crossed_in: list[int] = field(default_factory=list)  # crossings of tracks still in the picture (one per crossing)
    crossed_out: list[int] = field(default_factory=list)
    in_before: Counter[str] = field(default_factory=Counter)  # crossings of people who left, by final class
    out_before: Counter[str] = field(default_factory=Counter)


def _fit_to_picture(item: Zone | Line, width: int, height: int) -> Zone | Line:
    """The zone or line with points drawn a little past the picture's edge (up to EDGE_SLACK of its side, as when
    a corner is clicked just outside the frame) moved onto the edge, said once; points further out are an error,
    since the zone was most likely drawn for another resolution."""
    slack_x, slack_y = EDGE_SLACK * width, EDGE_SLACK * height
    far = [p for p in item.points if not (-slack_x <= p[0] <= width + slack_x and -slack_y <= p[1] <= height + slack_y)]
    if far:
        raise MaskwatchError(f"{item.label}: point {far[0]} is outside the {width}x{height} picture; zones and "
                             f"lines are in pixels of the source (was it drawn for another resolution?)")
    given = item.points  # (floats: Zone and Line make them so)
    fitted = tuple((min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))) for x, y in given)
    if fitted == given:
        return item
    if isinstance(item, Line) and fitted[0] == fitted[1] or isinstance(item, Zone) and _area(fitted) == 0:
        inside = any(0 < x < width and 0 < y < height for x, y in given)
        raise MaskwatchError(f"{item.label}: " + ("once its points past the picture's edge are moved onto it, it "
                                                  f"has no {'area' if isinstance(item, Zone) else 'length'}" if inside
                                                  else f"lies outside the {width}x{height} picture, past its edge")
                             + "; zones and lines are in pixels of the source")
    if isinstance(item, Zone) and _crosses_itself(fitted):
        raise MaskwatchError(f"{item.label}: once its points past the {width}x{height} picture's edge are moved "
                             f"onto it, the zone's outline crosses itself; zones and lines are in pixels of the source")
    log.warning("%s: points past the %dx%d picture's edge moved onto it: %s", item.label, width, height,
                ", ".join(f"{p} -> {q}" for p, q in zip(given, fitted) if p != q))
    if isinstance(item, Zone):
        return replace(item, points=fitted)
    return replace(item, start=fitted[0], end=fitted[1])


def _area(points: tuple[tuple[float, float], ...]) -> float:
    """A polygon's area (shoelace formula)."""
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    return float(abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2)


class ZoneCounter:
    """Zone and line state for one run: who is inside now, who entered, who crossed which way. Tracks that
    ended are kept only as counts per class (`track_ended`), so the state stays as small as the crowd."""

    def __init__(self, zones: Iterable[Zone], lines: Iterable[Line], frame_size: tuple[int, int]):
        width, height = frame_size
        self.zones: list[_ZoneState] = []
        self.lines: list[_LineState] = []
        names: set[str] = set()
        zones = [_fit_to_picture(zone, width, height) for zone in zones]
        lines = [_fit_to_picture(line, width, height) for line in lines]
        for item in [*zones, *lines]:
            if item.name in names:
                where = f"{item.where}: " if item.where else ""  # (a config file's camera and key)
                raise MaskwatchError(f"{where}zone or line name {item.name!r} is used twice; give each a different "
                                     f"name")
            names.add(item.name)
        for zone in zones:
            polygon = sv.PolygonZone(np.array(zone.points, dtype=np.int64), triggering_anchors=ANCHOR)
            self.zones.append(_ZoneState(zone, polygon))
        for line in lines:
            counter = sv.LineZone(sv.Point(*line.start), sv.Point(*line.end), triggering_anchors=ANCHOR)
            self.lines.append(_LineState(line, counter))

    def __bool__(self) -> bool:
        return bool(self.zones or self.lines)

    def update(self, tracked: sv.Detections) -> list[Crossing]:
        """Crossings in this frame. `tracked` holds confirmed tracks only. A track missing from a frame keeps its
        place (a missed detection is not a step out of the zone); it leaves when it ends (`track_ended`)."""
        crossings: list[Crossing] = []
        if len(tracked) == 0 or tracked.tracker_id is None:
            for state in self.lines:
                state.counter.trigger(tracked)  # ages its crossing history
            return crossings
        ids = [int(t) for t in tracked.tracker_id]
        for state in self.zones:
            inside = state.polygon.trigger(tracked)
            for index, (tid, now_in) in enumerate(zip(ids, inside)):
                if now_in and tid not in state.inside:
                    state.inside.add(tid)
                    state.entered.add(tid)
                    crossings.append(Crossing("zone.entered", state.zone.name, tid, index))
                elif not now_in and tid in state.inside:
                    state.inside.discard(tid)
                    crossings.append(Crossing("zone.left", state.zone.name, tid, index))
        for state in self.lines:
            crossed_in, crossed_out = state.counter.trigger(tracked)
            for index, tid in enumerate(ids):
                for crossed, direction, seen in ((crossed_in, "in", state.crossed_in),
                                                 (crossed_out, "out", state.crossed_out)):
                    if crossed[index]:
                        seen.append(tid)
                        crossings.append(Crossing("line.crossed", state.line.name, tid, index, direction))
        return crossings

    def zone_of(self, track_id: int) -> str | None:
        """The zone a confirmed track's face is in now (the first given, where zones overlap), or None."""
        return next((state.zone.name for state in self.zones if track_id in state.inside), None)

    def track_ended(self, track_id: int, label: str) -> list[Crossing]:
        """A track that ended leaves the zones it was in; what it entered and crossed is counted under its final
        class, and the track is forgotten."""
        left = []
        for state in self.zones:
            if track_id in state.inside:
                state.inside.discard(track_id)
                left.append(Crossing("zone.left", state.zone.name, track_id, None))
            if track_id in state.entered:
                state.entered.discard(track_id)
                state.entered_before[label] += 1
        for state in self.lines:
            for crossed, before in ((state.crossed_in, state.in_before), (state.crossed_out, state.out_before)):
                if track_id in crossed:
                    before[label] += crossed.count(track_id)
                    crossed[:] = [t for t in crossed if t != track_id]
        return left

    def counts(self, label_of: Callable[[int], str], classes: Sequence[str]) -> dict:
        """Per zone: faces inside now, people who entered per class (tracks still in the picture by their vote
        now, the others by their final one), compliance. Per line: crossings in each direction, and per class."""

        def per_class(track_ids: Iterable[int], before: Counter[str]) -> dict[str, int]:
            labels = Counter(label_of(t) for t in track_ids) + before
            return {c: labels.get(c, 0) for c in classes}

        zones = {state.zone.name: zone_counts(per_class(state.entered, state.entered_before), len(state.inside))
                 for state in self.zones}
        lines = {state.line.name: line_counts(len(state.crossed_in) + sum(state.in_before.values()),
                                              len(state.crossed_out) + sum(state.out_before.values()),
                                              per_class(state.crossed_in, state.in_before),
                                              per_class(state.crossed_out, state.out_before))
                 for state in self.lines}
        return {"zones": zones, "lines": lines}


    def drawables(self) -> tuple[list[tuple[sv.PolygonZone, str]], list[tuple[sv.LineZone, str]]]:
        """What annotate.draw_zones needs: each polygon with its label, each line counter with its name."""
        polygons = [(s.polygon, f"{s.zone.name}: {len(s.inside)} in, {s.seen} seen") for s in self.zones]
        return polygons, [(s.counter, s.line.name) for s in self.lines]


def zone_counts(people: dict[str, int], inside: int | None = None) -> dict:
    """A zone's counts in the one shape live cameras, run summaries and reports give: who is inside now (live
    only), the people who entered per class, their compliance."""
    return ({"inside": inside} if inside is not None else {}) | {"people": people, "compliance": compliance_of(people)}


def line_counts(crossed_in: int, crossed_out: int, in_people: dict[str, int], out_people: dict[str, int]) -> dict:
    """A line's counts in that shape: crossings each way, and per class."""
    return {"in": crossed_in, "out": crossed_out, "in_people": in_people, "out_people": out_people}
