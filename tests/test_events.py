"""Events, zones and sinks on generated clips of real faces: zone and line counts against known crossings, tracks
in SQLite while the run goes on, snapshots, a failing sink, and bad input that says how to fix it."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from clips import GatedSource, crossing_people, face_crop, write_clip
from maskwatch import Detector
from maskwatch.errors import MaskwatchError
from maskwatch.video import CallbackSink, Sink, VideoPipeline, WatchOptions, Zone, Line
from maskwatch.video.report import read_report
from maskwatch.video.store import read_events

ZONE = "counter=260,10,470,10,470,310,260,310"
LINE = "door=240,0,240,320"


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(threads=2, scale=1.0)


@pytest.fixture(scope="module")
def faces(data_dir) -> tuple[np.ndarray, np.ndarray]:
    """A masked and an unmasked face from training photos (the shipped model calls them so at 0.9)."""
    masked = face_crop(data_dir / "images" / "maksssksksss94.jpg", (110, 95, 171, 169))
    unmasked = face_crop(data_dir / "images" / "maksssksksss343.jpg", (85, 131, 232, 284))
    return masked, unmasked


@pytest.fixture(scope="module")
def crossing(faces, tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    frames, fps = crossing_people(*faces)
    return write_clip(frames, tmp_path_factory.mktemp("clips") / "crossing.avi", fps=fps, codec="MJPG"), frames


def run_collecting(detector, source, tmp_path, **kwargs):
    events = []
    pipeline = VideoPipeline(detector, WatchOptions(**kwargs.pop("options", {})), tmp_path / "events.sqlite",
                             [CallbackSink(on_event=events.append), *kwargs.pop("sinks", [])], **kwargs)
    return pipeline, events


def test_zone_and_line_counts_match_the_known_crossings(detector, crossing, tmp_path):
    clip, source_frames = crossing
    out = tmp_path / "crossing.mp4"
    pipeline, events = run_collecting(detector, None, tmp_path, zones=[ZONE], lines=[LINE])
    summary = pipeline.run(str(clip), out)
    types = [e.type for e in events]
    # Two people: one masked, one not; the unmasked one raises exactly one alert.
    assert summary.people == {"with_mask": 1, "without_mask": 1, "mask_weared_incorrect": 0}
    assert types.count("person.entered") == 2 and types.count("person.left") == 2
    unmasked = [e for e in events if e.type == "person.unmasked"]
    assert len(unmasked) == 1 and unmasked[0].label == "without_mask" and unmasked[0].share > 0.5
    # The line: right, back left, right again. For a line drawn downwards, left to right is "in".
    crossed = [(e.track_id, e.direction) for e in events if e.type == "line.crossed"]
    assert len(crossed) == 3, crossed
    directions = [d for _, d in crossed]
    assert directions == ["in", "out", "in"] and crossed[0][0] == crossed[1][0] != crossed[2][0]
    assert summary.lines["door"]["in"] == 2 and summary.lines["door"]["out"] == 1
    assert summary.lines["door"]["in_people"] == {"with_mask": 1, "without_mask": 1, "mask_weared_incorrect": 0}
    # The zone on the right half: both went in, both came out (the second by leaving the picture).
    entered = [e.track_id for e in events if e.type == "zone.entered"]
    left = [e.track_id for e in events if e.type == "zone.left"]
    assert len(entered) == 2 and sorted(entered) == sorted(left)
    assert summary.zones["counter"]["people"] == {"with_mask": 1, "without_mask": 1, "mask_weared_incorrect": 0}
    assert summary.zones["counter"]["inside"] == 0 and summary.zones["counter"]["compliance"] == 0.5
    # Each zone event comes after its track's person.entered, and every event of a track names its class.
    for e in events:
        if e.track_id is not None:
            assert types.index("person.entered") <= events.index(e) and e.label in ("with_mask", "without_mask")
    final = events[-1]
    assert final.type == "counts" and final.counts["zones"] == summary.zones and final.counts["lines"] == summary.lines
    # The same counts in the database (maskwatch report), the summary JSON and CSV.
    report = read_report(tmp_path / "events.sqlite")
    assert report.zones == {"counter": {"with_mask": 1, "without_mask": 1}}
    assert report.lines == {"door": {"in": 2, "out": 1}}
    assert json.loads(out.with_suffix(".json").read_text())["zones"]["counter"]["people"]["without_mask"] == 1
    rows = out.with_suffix(".zones.csv").read_text().splitlines()
    assert "counter,zone,without_mask,1,," in rows and "door,line,with_mask,,1,1" in rows
    # The zone is drawn: its top edge (y=10, far from the faces) is no longer the grey background.
    import av

    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="bgr24")
    change = np.abs(first[8:13, 300:440].astype(int) - source_frames[0][8:13, 300:440]).max(axis=2).max(axis=0)
    assert np.median(change) > 60  # every column of that stretch crosses the drawn edge
