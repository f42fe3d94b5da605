"""What a run leaves behind: the summary (people, compliance, zones, lines) and its JSON / CSV files."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maskwatch.video.tracking import TrackState
from maskwatch.whole_file import written_whole

TRACKS_CSV_HEADER = ["track_id", "label", "first_seen_s", "last_seen_s", "frames", "best_score", "votes"]


@dataclass
class WatchSummary:
    """What a run did: frames detected, tracked and dropped, people per class and compliance, zones and lines,
    events and sink failures; `run()` returns it and OUT.json holds it."""

    source: str
    camera: str | None = None
    run: str | None = None  # the run's id in events ("run")
    frames: int = 0  # frames processed: detected + tracked-only
    detected_frames: int = 0  # frames the detector ran on
    tracked_frames: int = 0  # frames shown with the faces of the last detection moved on (no detector run)
    dropped_frames: int = 0  # frames of a live source replaced by newer ones before they could be processed
    scene_cuts: int = 0  # cuts to a new picture (an edited video): tracks start afresh after each
    seconds: float = 0.0
    fps: float = 0.0
    source_fps: float = 0.0
    detect_every: float = 1.0  # frames per detection, on average over the run
    scales: dict[str, int] = field(default_factory=dict)  # detections per face-finder scale
    realtime: list[str] = field(default_factory=list)  # said once each: detection slower than the source, ...
    people: dict[str, int] = field(default_factory=dict)
    compliance: float | None = None  # share of people wearing a mask correctly
    zones: dict[str, Any] = field(default_factory=dict)  # per zone: inside, people per class, compliance
    lines: dict[str, Any] = field(default_factory=dict)  # per line: in, out (and per class)
    events: dict[str, int] = field(default_factory=dict)  # events published, per type
    # Sinks that failed during the run, by name: {"failures": n, "first": "hook: error", "required": bool}.
    sink_failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "finished"  # finished, interrupted, ended_early, failed
    live: bool = False  # a camera or stream (its ended_early is a lost stream, not a truncated file)
    message: str | None = None
    output: str | None = None
    database: str | None = None
    run_id: int | None = None  # the run's row in the database

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def failed_outputs(self) -> list[str]:
        """Required sinks (outputs the user asked for: video file, summary files, database) that failed."""
        return [name for name, record in self.sink_failures.items() if record["required"]]

    def full_message(self) -> str | None:
        """The message, with the sinks that failed (what the database keeps about how the run went)."""
        failed = [f"{name} failed {r['failures']} time(s), first in {r['first']}"
                  for name, r in self.sink_failures.items()]
        return "; ".join([m for m in (self.message,) if m] + failed) or None


def track_row(t: TrackState) -> list:
    """One person's row of OUT.tracks.csv (TRACKS_CSV_HEADER)."""
    return [t.track_id, t.label, f"{t.first_seen_s:.2f}", f"{t.last_seen_s:.2f}", t.frames, f"{t.best_score:.3f}",
            json.dumps({k: round(v, 3) for k, v in t.votes.items()}, ensure_ascii=False)]


def write_whole(path: Path, text: str) -> None:
    """The file whole or not at all (written beside, then renamed): a full disk leaves the earlier file, or none,
    rather than an empty one that reads as a summary."""
    with written_whole(path) as partial:
        partial.write_text(text)


SUMMARY_JSON, TRACKS_CSV, ZONES_CSV = ".json", ".tracks.csv", ".zones.csv"  # beside the annotated video OUT.mp4
COMPANION_SUFFIXES = (SUMMARY_JSON, TRACKS_CSV, ZONES_CSV)


def write_summary_files(summary: WatchSummary, out: Path) -> list[Path]:
    """Beside the video, when the run ends: OUT.json (the summary) and, with zones or lines, OUT.zones.csv (one
    row per zone or line and class). OUT.tracks.csv is written as people leave (SummaryFilesSink)."""
    written = [out.with_suffix(SUMMARY_JSON)]
    write_whole(written[0], json.dumps(summary.as_dict(), indent=2))
    zones = out.with_suffix(ZONES_CSV)
    if not (summary.zones or summary.lines):
        zones.unlink(missing_ok=True)  # an earlier run's, with zones: it would read as this run's
    else:
        written.append(zones)
        with zones.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "kind", "class", "people", "crossed_in", "crossed_out"])
            for name, zone in summary.zones.items():
                for label, n in zone["people"].items():
                    writer.writerow([name, "zone", label, n, "", ""])
            for name, line in summary.lines.items():
                for label in line["in_people"]:
                    writer.writerow([name, "line", label, "", line["in_people"][label], line["out_people"][label]])
    return written
