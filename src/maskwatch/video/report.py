"""`maskwatch report DB`: what the cameras saw, from the events database: people per class, compliance, and a
chart of compliance over time."""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.classes import classes_to_list, compliance_of
from maskwatch.errors import MaskwatchError
from maskwatch.video.events import CAMERA_DOWN
from maskwatch.video.zones import line_counts, zone_counts


@dataclass
class Report:
    """What read_report found in an events database, for `maskwatch report` and a camera's report route."""

    runs: list[dict]
    people: dict[str, int]
    compliance: float | None
    windows: list[tuple[int, float, dict[str, int]]]  # run id, window start, people per class
    # In the shapes of a live camera's counts (ZoneCounter.counts, less what is inside now): zone -> {"people": per
    # class, "compliance"}; line -> {"in": n, "out": n, "in_people": per class, "out_people": per class}
    zones: dict[str, dict] = field(default_factory=dict)
    lines: dict[str, dict] = field(default_factory=dict)
    spans: list[tuple[int, float, float, str]] = field(default_factory=list)  # counted tracks: run, first, last, label


def _mark_stale_runs(path: Path) -> None:
    """Runs of processes that died without finishing show as failed, not as running forever (when the file is
    a maskwatch events database and writable; otherwise it is only read)."""
    from maskwatch.video.store import EventStore

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            is_ours = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()
        if is_ours:
            EventStore(path).close()
    except sqlite3.Error:
        pass


def read_report(path: Path, run_id: int | None = None, camera: str | None = None,
                since: float | None = None) -> Report:
    """What the database holds, for all runs, one run, or one camera's runs; with `since` (Unix seconds) only
    the windows, people and zone counts from then on (a live run's times are seconds since it started)."""
    if not Path(path).is_file():
        raise MaskwatchError(f"{path}: no such events database")
    _mark_stale_runs(Path(path))
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        where, args = [], []
        for column, value in (("id", run_id), ("camera", camera)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("(ended_at IS NULL OR ended_at >= ?)")
            args.append(since)
        clause = "WHERE " + " AND ".join(where) if where else ""
        runs = [dict(r) for r in db.execute(f"SELECT * FROM runs {clause} ORDER BY id", args)]
        ids = [r["id"] for r in runs]
        if not ids:
            raise MaskwatchError(f"{path}: no runs recorded" + (f" with id {run_id}" if run_id is not None else "") +
                                 (f" for camera {camera!r}" if camera else "") + (" in that time" if since else ""))
        marks = ",".join("?" * len(ids))
        outages = dict(db.execute(f"SELECT run_id, COUNT(*) FROM events WHERE type = ? AND run_id IN ({marks}) "
                                  f"GROUP BY run_id", (CAMERA_DOWN, *ids)).fetchall())
        for r in runs:  # a live camera that sent no frame for a while (camera.down): nobody was watched then
            r["camera_outages"] = outages.get(r["id"], 0)
        after = "AND r.started_at + {} >= ?" if since is not None else ""
        since_args = (since,) if since is not None else ()
        people: dict[str, int] = {}  # the tracks table holds confirmed tracks only: the emitter decided
        for row in db.execute(f"SELECT t.label, COUNT(*) AS n FROM tracks t JOIN runs r ON r.id = t.run_id "
                              f"WHERE t.run_id IN ({marks}) {after.format('t.last_seen_s')} GROUP BY t.label",
                              (*ids, *since_args)):
            people[row["label"]] = row["n"]
        spans = [(row["run_id"], row["first_seen_s"], row["last_seen_s"], row["label"]) for row in db.execute(
            f"SELECT run_id, first_seen_s, last_seen_s, label FROM tracks WHERE run_id IN ({marks}) "
            f"ORDER BY run_id, first_seen_s", ids)]
        windows: dict[tuple[int, float], dict[str, int]] = {}
        for row in db.execute(f"SELECT w.* FROM windows w JOIN runs r ON r.id = w.run_id WHERE w.run_id IN ({marks}) "
                              f"{after.format('w.window_start_s')} ORDER BY w.run_id, w.window_start_s",
                              (*ids, *since_args)):
            windows.setdefault((row["run_id"], row["window_start_s"]), {})[row["label"]] = row["people"]
        zones, lines = _zone_counts(db, ids, since)
        _add_quiet_areas(runs, zones, lines)
        named = {c: 0 for r in runs for c in json.loads(r.get("areas") or "{}").get("classes", ())}  # (models')
        classes = classes_to_list({**named, **dict(sorted(people.items()))})
        people = {c: people.get(c, 0) for c in classes}  # every class, 0 included, as the live counts list them
        zones, lines = _as_live_counts(zones, lines, classes)
    except sqlite3.DatabaseError as exc:
        raise MaskwatchError(f"{path}: not a maskwatch events database ({exc})") from exc
    finally:
        db.close()
    return Report(runs, people, compliance_of(people),
                  [(run, start, counts) for (run, start), counts in windows.items()], zones, lines, spans)


def compliance_series(report: Report, bucket_s: float | None = None) -> list[dict]:
    """The report's windows on the wall clock (run start + window start), merged into buckets of `bucket_s`
    seconds when given (people per class added up, so a person seen in two windows weighs twice, as in the
    chart): [{"start": Unix s, "people": {...}, "compliance": share or None}], oldest first."""
    started = {run["id"]: run["started_at"] for run in report.runs}
    buckets: dict[float, dict[str, int]] = {}
    for run, start, counts in report.windows:
        at = started[run] + start
        key = at - at % bucket_s if bucket_s else at
        merged = buckets.setdefault(key, {})
        for label, n in counts.items():
            merged[label] = merged.get(label, 0) + n
    return [{"start": start, "people": people, "compliance": compliance_of(people)}
            for start, people in sorted(buckets.items())]


def _zone_counts(db: sqlite3.Connection, ids: list[int], since: float | None = None) -> tuple[dict, dict]:
    """People who entered each zone (per class, by the track's final vote) and line crossings each way, from
    the events (databases written before events were stored have none)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone():
        return {}, {}
    marks = ",".join("?" * len(ids))
    after, args = ("AND e.time >= ?", [*ids, since]) if since is not None else ("", ids)
    zones: dict[str, dict[str, int]] = {}
    for row in db.execute(f"SELECT e.zone, t.label, COUNT(DISTINCT e.run_id || '/' || e.track_id) AS n FROM events e "
                          f"JOIN tracks t ON t.run_id = e.run_id AND t.track_id = e.track_id "
                          f"WHERE e.type = 'zone.entered' AND e.run_id IN ({marks}) {after} GROUP BY e.zone, t.label "
                          f"ORDER BY e.zone", args):
        zones.setdefault(row["zone"], {})[row["label"] or "unknown"] = row["n"]
    lines: dict[str, dict[str, dict[str, int]]] = {}  # line -> direction -> class -> crossings
    for row in db.execute(f"SELECT e.zone, json_extract(e.payload, '$.direction') AS direction, t.label, COUNT(*) AS n "
                          f"FROM events e LEFT JOIN tracks t ON t.run_id = e.run_id AND t.track_id = e.track_id "
                          f"WHERE e.type = 'line.crossed' AND e.run_id IN ({marks}) {after} "
                          f"GROUP BY e.zone, direction, t.label ORDER BY e.zone", args):
        lines.setdefault(row["zone"], {"in": {}, "out": {}})[row["direction"]][row["label"] or "unknown"] = row["n"]
    return zones, lines


def _as_live_counts(zones: dict, lines: dict, classes: list[str]) -> tuple[dict, dict]:
    """The stored counts in the shapes a live camera reports them in (every class named, zeros included)."""
    def per_class(counts: dict[str, int]) -> dict[str, int]:
        return {c: counts.get(c, 0) for c in classes} | {c: n for c, n in counts.items() if c not in classes}

    live_zones = {name: zone_counts(per_class(people)) for name, people in zones.items()}
    live_lines = {name: line_counts(sum(ways["in"].values()), sum(ways["out"].values()), per_class(ways["in"]),
                                    per_class(ways["out"]))
                  for name, ways in lines.items()}
    return live_zones, live_lines


def _add_quiet_areas(runs: list[dict], zones: dict, lines: dict) -> None:
    """The runs' zones nobody entered and lines nobody crossed, with no people and 0 crossings: a quiet door is a
    count too (runs recorded before the areas were stored name only those with events)."""
    for run in runs:
        areas = json.loads(run.get("areas") or "{}")
        for name in areas.get("zones", ()):
            zones.setdefault(name, {})
        for name in areas.get("lines", ()):
            lines.setdefault(name, {"in": {}, "out": {}})


CHART_WINDOWS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def chart_window(length_s: float, points: int = 20) -> float:
    """A round window giving at most about `points` points over a run: 1 s for a 10-s clip, 5 min for an hour."""
    for window in CHART_WINDOWS_S:
        if length_s / window <= points:
            return float(window)
    return 3600.0 * math.ceil(length_s / 3600 / points)


def span_compliance(spans: list[tuple[float, float, str]], window: float) -> list[tuple[float, float]]:
    """(window start, compliance of the people seen in it): a person counts in every window their track overlaps."""
    end = max((last for _, last, _ in spans), default=0.0)
    series = []
    for index in range(int(end // window) + 1):
        start = index * window
        counts: dict[str, int] = {}
        for first, last, label in spans:
            if first < start + window and last >= start:
                counts[label] = counts.get(label, 0) + 1
        share = compliance_of(counts)
        if share is not None:
            series.append((start, share))
    return series


def plot_compliance(report: Report, path: Path) -> Path:
    """Compliance over time per run, from its tracks, in windows chosen from the longest run's length (the
    database's --window may be longer than a short clip)."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    length = max((last for _, _, last, _ in report.spans), default=0.0)
    window = chart_window(length)
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    for run in report.runs:
        points = span_compliance([(f, l, lab) for r, f, l, lab in report.spans if r == run["id"]], window)
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "o-", label=f"run {run['id']}: {Path(str(run['source'])).name}")
    ax.set_xlim(0, max(length, window)), ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"time in the source (s), {window:g}-s windows"), ax.set_ylabel("wearing a mask correctly")
    ax.set_title("compliance over time"), ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path) if Path(path).suffix.lower() == ".png" else Path(f"{path}.png")  # (what savefig writes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise MaskwatchError(f"--chart {path}: cannot be written ({exc.strerror or exc}); give a .png path you can "
                             f"write to") from None
    return path
