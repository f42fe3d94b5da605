"""Events, zones and sinks on generated clips of real faces: zone and line counts against known crossings, tracks
in SQLite while the run goes on, snapshots, a failing sink, and bad input that says how to fix it."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from clips import BackgroundRun, GatedSource, crossing_people
from maskwatch.errors import MaskwatchError
from maskwatch.video import CallbackSink, Sink, VideoPipeline, WatchOptions, Zone, Line
from maskwatch.video.report import read_report
from maskwatch.video.store import read_events

ZONE = "counter=260,10,470,10,470,310,260,310"
LINE = "door=240,0,240,320"


@pytest.fixture(scope="module")
def crossing(faces, crossing_clip) -> tuple[Path, list[np.ndarray]]:
    """The crossing clip and its frames as written (before compression)."""
    return crossing_clip, crossing_people(*faces)[0]


def run_collecting(detector, tmp_path, **kwargs):
    events = []
    options = {"every": 1, **kwargs.pop("options", {})}  # every frame: these tests are about events, not speed
    pipeline = VideoPipeline(detector, WatchOptions(**options), tmp_path / "events.sqlite",
                             [CallbackSink(on_event=events.append), *kwargs.pop("sinks", [])], **kwargs)
    return pipeline, events


def test_zone_and_line_counts_match_the_known_crossings(detector, crossing, tmp_path):
    clip, source_frames = crossing
    out = tmp_path / "crossing.mp4"
    pipeline, events = run_collecting(detector, tmp_path, zones=[ZONE], lines=[LINE])
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
    # Every event of a track comes after that track's person.entered, and names its class.
    entered_at = {e.track_id: i for i, e in enumerate(events) if e.type == "person.entered"}
    for i, e in enumerate(events):
        if e.track_id is not None:
            assert entered_at[e.track_id] <= i and e.label in ("with_mask", "without_mask"), (i, e)
    final = events[-1]
    assert final.type == "counts" and final.counts["zones"] == summary.zones and final.counts["lines"] == summary.lines
    # The same counts in the database (maskwatch report), the summary JSON and CSV.
    report = read_report(tmp_path / "events.sqlite")
    # (in the live counts' shapes, less who is inside now)
    assert report.zones == {"counter": {k: summary.zones["counter"][k] for k in ("people", "compliance")}}
    assert report.lines == summary.lines
    assert json.loads(out.with_suffix(".json").read_text())["zones"]["counter"]["people"]["without_mask"] == 1
    rows = out.with_suffix(".zones.csv").read_text().splitlines()
    assert "counter,zone,without_mask,1,," in rows and "door,line,with_mask,,1,1" in rows
    # The zone is drawn: its top edge (y=10, far from the faces) is no longer the grey background.
    import av

    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="bgr24")
    change = np.abs(first[8:13, 300:440].astype(int) - source_frames[0][8:13, 300:440]).max(axis=2).max(axis=0)
    assert np.median(change) > 60  # every column of that stretch crosses the drawn edge


@pytest.mark.parametrize("classes, compliance", [
    (["face_mask", "face_nomask", "chin"], 0.5),  # names that say what they mean
    (["口罩", "no mask", "máscara mal"], None),  # a mask said in Chinese: not understood
])
def test_a_model_of_other_class_names_alerts_and_counts_compliance_by_what_they_mean(crossing, tmp_path, caplog,
                                                                                    classes, compliance):
    from maskwatch import Detector
    from conftest import shipped_head_named

    from maskwatch.classes import say_what_classes_leave_unknown

    detector = Detector.load(shipped_head_named(tmp_path / "model", classes), threads=2, scale=1.0)
    say_what_classes_leave_unknown.cache_clear()  # (said once per process: another test may have said it)
    pipeline, events = run_collecting(detector, tmp_path)
    with caplog.at_level("WARNING"):
        summary = pipeline.run(str(crossing[0]))
    masked, unmasked, wrong = classes
    assert summary.people == {masked: 1, unmasked: 1, wrong: 0} and summary.compliance == compliance
    alerts = [e for e in events if e.type == "person.unmasked"]
    assert len(alerts) == 1 and alerts[0].label == unmasked
    counts = [e for e in events if e.type == "counts"][-1].counts
    assert counts["compliance"] == compliance
    said = [r.getMessage() for r in caplog.records if "the model's classes" in r.getMessage()]
    assert (said == []) if compliance is not None else (len(said) == 1 and "'口罩', 'máscara mal'" in said[0])
    report = read_report(tmp_path / "events.sqlite")  # the model's classes (its runs say them), not the shipped three
    assert (report.people, report.compliance) == ({masked: 1, unmasked: 1, wrong: 0}, compliance)


def test_what_a_class_name_means_decides_its_colour_alert_and_count_column():
    from maskwatch.classes import (CLASS_COLOURS_BGR, FALLBACK_COLOUR_BGR, by_meaning, classes_not_understood,
                                   colour_of, is_unmasked)

    assert [colour_of(name) for name in ("face_nomask", "Mask", "chin", "helmet")] == [
        CLASS_COLOURS_BGR["without_mask"], CLASS_COLOURS_BGR["with_mask"], CLASS_COLOURS_BGR["mask_weared_incorrect"],
        FALLBACK_COLOUR_BGR]
    assert [is_unmasked(name) for name in ("no_mask", "bare", "incorrect", "masked", "helmet")] == [
        True, True, True, False, False]
    negated = ("non_mask", "Non Mask", "NonMasked", "notmask", "mask_off", "no-mask", "Unmasked", "maskless", "NoMask")
    assert [name for name in negated if not is_unmasked(name)] == []  # ("non_mask" was read as a mask worn)
    from maskwatch.classes import meaning_of

    unknown = ("not_sure", "no_face", "none", "nose_covered", "helmet", "口罩")  # nothing of a mask: no alert
    assert [meaning_of(name) for name in unknown] == [None] * len(unknown)
    assert [meaning_of(name) for name in ("mask_covers_nose", "masknotworn", "mask_below_nose")] == [
        "with_mask", "without_mask", "mask_weared_incorrect"]
    wrongly = ("mask_doesnt_cover_nose", "mouth_covered_nose_out", "nose_isnt_covered", "Mask-not-properly-worn")
    assert [meaning_of(name) for name in wrongly] == ["mask_weared_incorrect"] * 4  # (a cover that is not the nose's)
    assert [meaning_of(name) for name in ("MaskOn", "MaskOff", "NoFaceMask", "not_wearing_helmet", "thunder")] == [
        "with_mask", "without_mask", "without_mask", None, None]  # (CamelCase read as words)
    assert by_meaning({"masked": 2, "no mask": 1, "helmet": 4}) == {
        "with_mask": 2, "without_mask": 1, "mask_weared_incorrect": 0}
    assert classes_not_understood(["with_mask", "without_mask", "mask_weared_incorrect"]) is None
    assert "no person.unmasked alert" in classes_not_understood(["mask", "helmet"])


def test_watch_keeps_its_database_to_the_retention_days(crossing_clip, tmp_path):
    """A camera watched as a service grew its database for ever: --retention-days deletes what is older."""
    from conftest import seed_old_and_recent_events

    db = tmp_path / "events.sqlite"
    old, recent = seed_old_and_recent_events(db)
    cli = [sys.executable, "-m", "maskwatch.cli", "watch", str(crossing_clip), "--db", str(db), "--threads", "2"]
    refused = subprocess.run([*cli, "--retention-days", "0"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--retention-days 0.0: give a number of days above 0" in refused.stderr
    not_run = subprocess.run([*cli, "--retention-days", "30", "--out", str(tmp_path / "x.avi")], capture_output=True,
                             text=True, timeout=300)  # a run refused before it began deletes nothing
    assert not_run.returncode == 2 and old in {e["id"] for e in read_events(db, limit=10_000)}
    config = tmp_path / "door.yaml"  # a config whose camera keeps no database: the days would be unused, silently
    config.write_text(f"cameras:\n  door:\n    source: {crossing_clip}\n    db: null\n", encoding="utf-8")
    no_db = subprocess.run([sys.executable, "-m", "maskwatch.cli", "watch", "--config", str(config),
                            "--retention-days", "30"], capture_output=True, text=True, timeout=300)
    assert no_db.returncode == 2 and "--retention-days needs an events database" in no_db.stderr, no_db.stderr
    kept = subprocess.run([*cli, "--retention-days", "30"], capture_output=True, text=True, timeout=300)
    assert kept.returncode == 0, kept.stderr
    ids = {e["id"] for e in read_events(db, limit=10_000)}
    assert recent in ids and old not in ids and len(ids) > 2  # (this run's own events kept)


def test_read_events_takes_what_events_carry_and_refuses_filters_that_would_match_nothing(tmp_path, monkeypatch):
    """From Python: the run id events carry (run_id was the database row only), a time as events write it (an ISO
    string compared as text matched nothing), and a misspelt type or a missing database said, not an empty list."""
    import time
    from datetime import datetime, timedelta, timezone

    from conftest import seed_old_and_recent_events

    db = tmp_path / "events.sqlite"
    old, recent = seed_old_and_recent_events(db)
    assert [e["id"] for e in read_events(db, run="oldrun")] == [old, recent] and read_events(db, run="other") == []
    ten_days_ago = datetime.now(timezone.utc) - timedelta(days=10)
    for since in (ten_days_ago, ten_days_ago.isoformat(), ten_days_ago.timestamp()):
        assert [e["id"] for e in read_events(db, since=since)] == [recent]
    hours = datetime.now(timezone.utc) - timedelta(days=1, hours=1)  # (an hour before the recent event)
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # nine hours east: a naive time read as UTC would miss it
    time.tzset()
    try:
        naive = hours.astimezone().replace(tzinfo=None)  # the same moment on this machine's clock
        assert [e["id"] for e in read_events(db, since=naive)] == [recent]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    with pytest.raises(MaskwatchError, match="unknown event type.*'person.enterd'.*person.entered"):
        read_events(db, type="person.enterd")
    with pytest.raises(MaskwatchError, match="since='yesterday': give Unix seconds or an ISO 8601 time"):
        read_events(db, since="yesterday")
    with pytest.raises(MaskwatchError, match="no such events database"):
        read_events(tmp_path / "event.sqlite")


def test_tracks_are_in_the_database_while_the_run_is_going(detector, faces, tmp_path):
    frames, fps = crossing_people(*faces)
    source = GatedSource(frames, fps, gates=(30,))
    db = tmp_path / "events.sqlite"
    pipeline = VideoPipeline(detector, WatchOptions(every=1), db, zones=[ZONE], camera="door")
    run = BackgroundRun(pipeline, source)
    try:
        source.wait_at(30)  # the masked person has crossed twice; the run is paused, not finished
        with sqlite3.connect(db) as live:
            assert live.execute("SELECT status FROM runs").fetchone() == ("running",)
            tracks = live.execute("SELECT track_id, label, frames, last_seen_s FROM tracks").fetchall()
        assert len(tracks) == 1 and tracks[0][1] == "with_mask" and tracks[0][2] >= 2
        live_events = read_events(db, camera="door")
        assert [e["type"] for e in live_events][:1] == ["person.entered"]
        assert {"zone.entered", "zone.left"} <= {e["type"] for e in live_events}
    finally:
        source.open(30)
    summary = run.join()
    with sqlite3.connect(db) as done:
        assert done.execute("SELECT status, frames FROM runs").fetchone() == ("finished", 70)
        rows = dict(done.execute("SELECT track_id, last_seen_s FROM tracks").fetchall())
    assert len(rows) == 2 and rows[tracks[0][0]] > tracks[0][3]  # the first track's row was updated when it ended
    # The events can be queried by camera, type and time (what a server lists).
    alerts = read_events(db, camera="door", type="person.unmasked")
    assert [(a["class"], a["run"]) for a in alerts] == [("without_mask", summary.run)]
    assert read_events(db, camera="elsewhere") == []
    assert read_events(db, since=2e9) == []  # a time after all of them
    page = read_events(db, limit=3)
    assert read_events(db, limit=3, after_id=page[-1]["id"])[0] == read_events(db, limit=4)[3]


def laplacian_variance(jpeg_b64: str) -> float:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(jpeg_b64), np.uint8), cv2.IMREAD_GRAYSCALE)
    h, w = image.shape
    return float(cv2.Laplacian(image[h // 3:2 * h // 3, w // 3:2 * w // 3], cv2.CV_64F).var())


def test_snapshots_only_when_asked_and_blurred_unless_keep_faces(detector, crossing, tmp_path):
    clip, _ = crossing
    runs = {}
    for name, options in (("none", {}), ("blurred", {"event_snapshots": True}),
                          ("kept", {"event_snapshots": True, "keep_faces": True})):
        pipeline, events = run_collecting(detector, tmp_path / name, options={"max_frames": 12, **options})
        pipeline.run(str(clip))
        runs[name] = [e.as_dict() for e in events]
    assert all("snapshot" not in e for e in runs["none"])
    for name in ("blurred", "kept"):
        entered = [e for e in runs[name] if e["type"] == "person.entered"]
        assert len(entered) == 1 and entered[0]["snapshot"]
        assert all("snapshot" not in e for e in runs[name] if e["type"] in ("counts", "person.left"))
    blurred = laplacian_variance(next(e for e in runs["blurred"] if e["type"] == "person.entered")["snapshot"])
    kept = laplacian_variance(next(e for e in runs["kept"] if e["type"] == "person.entered")["snapshot"])
    assert blurred < kept / 4


class BrokenSink(Sink):
    name = "broken"

    def event(self, event):
        raise ConnectionError("the receiver is on fire")

    def frame(self, view):
        raise OSError("disk full")


def test_a_failing_sink_does_not_stop_the_video_or_the_other_sinks(detector, crossing, tmp_path, caplog):
    clip, _ = crossing
    pipeline, events = run_collecting(detector, tmp_path, sinks=[BrokenSink()])
    summary = pipeline.run(str(clip), tmp_path / "out.mp4")
    assert summary.status == "finished" and summary.frames == 70
    assert [e.type for e in events].count("person.entered") == 2
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert "broken sink failed in event" in caplog.text and "the video goes on" in caplog.text


def test_bad_zones_lines_urls_and_configs_say_what_to_fix(detector, crossing, tmp_path, monkeypatch):
    from maskwatch.video.config import load_config
    from maskwatch.video.sinks import MqttSink, WebhookSink

    monkeypatch.setenv("EMPTY", "")  # an environment variable set to nothing
    monkeypatch.setenv("EVERY", "3")  # (an environment's values are text)
    monkeypatch.setenv("WINDOW", "2.5")

    for spec, message in (("queue", "expected NAME=x1,y1"), ("queue=1,2,3,4", "at least 3 points"),
                          ("queue=1,2,a,4,5,6", "must be numbers"), ("q=1,2,3,4,5", "even count"),
                          ("q=0,0,10,0,20,0", "no area"), ("q=0,0,100,0,0,100,100,100", "crosses itself")):
        with pytest.raises(MaskwatchError, match=message):
            Zone.parse(spec)
    with pytest.raises(MaskwatchError, match="two different points"):
        Line.parse("door=1,2,1,2")
    clip, _ = crossing
    with pytest.raises(MaskwatchError, match="outside the 480x320 picture"):
        VideoPipeline(detector, zones=["big=0,0,640,0,640,480"]).run(str(clip))
    with pytest.raises(MaskwatchError, match="used twice"):
        VideoPipeline(detector, zones=[ZONE], lines=["counter=0,0,10,10"]).run(str(clip))
    with pytest.raises(MaskwatchError, match="http:// or https://"):
        WebhookSink("ftp://example.org/x")
    with pytest.raises(MaskwatchError, match=r"mqtt://\[user:pass@\]host"):
        MqttSink("tcp://broker:1883/x")
    bad = tmp_path / "cameras.yaml"
    for text, message in (("cameras: [1, 2]", "expected a 'cameras:' mapping"),
                          ("cameras:\n  door: {source: a.mp4, zone: {}}", "unknown key.*zone.*known:.*zones"),
                          ("cameras:\n  door: {zones: {}}", "no source"),
                          ("cameras:\n  door: {source: a.mp4, webhooks: [{secret: x}]}", "each webhook is a URL"),
                          ("cameras:\n  door: {source: a.mp4, webhooks: [{url: 'http://h/x', timeout: 0}]}",
                           r"webhooks: webhook http://h/x: timeout \(--webhook-timeout\) is 0; expected seconds"),
                          ("cameras:\n  door: {source: a.mp4, give_up_after: -1}",
                           r"give_up_after \(--give-up-after\) is -1; expected a number of seconds above 0"),
                          ("cameras:\n  door: {source: a.mp4, wait_for_camera: -5}",
                           r"wait_for_camera \(--wait-for-camera\) is -5; expected a number of seconds, 0 or more"),
                          ("cameras:\n  door: {source: a.mp4, webhooks: ['${NOT_SET_HERE}']}", "NOT_SET_HERE.*not set"),
                          ("cameras:\n  door: {source: a.mp4, every: two}",
                           r"camera 'door': every \(--every\) is 'two'; expected a whole number, 1 or more"),
                          ("defaults: {summary_every: soon}\ncameras:\n  door: {source: a.mp4}",
                           r"camera 'door': summary_every \(--summary-every\) is 'soon'; expected a number"),
                          ("cameras:\n  door: {source: a.mp4, blur_faces: 'no'}", "blur_faces.*true or false"),
                          ("cameras:\n  door: {source: a.mp4, scale: auto_full}",
                           r"scale \(--scale\) is 'auto_full'; expected auto, auto-full or a number from 0.1 to 4"),
                          ("cameras:\n  door: {source: a.mp4, zones: {bad: [100, 100, 200, 200]}}",
                           r"camera 'door': zones.bad: a zone needs at least 3 points"),
                          ("cameras: {door: {source: [}", "not valid YAML"),
                          ("cameras:\n  door: {source: a.mp4, mqtt: '127.0.0.1:1883'}",
                           r"camera 'door': mqtt: --mqtt '127.0.0.1:1883': expected mqtt://"),
                          ("cameras:\n  door: {source: a.mp4}\n  door: {source: b.mp4}", "'door' is given twice"),
                          ("cameras:\n  door: {source: a.mp4, webhooks: [{url: 'http://h/x', secert: s}]}",
                           r"unknown key\(s\): secert"),
                          ("cameras:\n  door: {source: a.mp4, webhooks: [{url: 'http://h/x', secret: '${EMPTY}'}]}",
                           "the secret of http://h/x is empty")):
        bad.write_text(text)
        with pytest.raises(MaskwatchError, match=message):
            load_config(bad)
    bad.write_text("cameras:\n  door: {source: a.mp4, every: '${EVERY}', window: '${WINDOW}'}")
    assert (load_config(bad)["door"].every, load_config(bad)["door"].window) == (3, 2.5)
    with pytest.raises(MaskwatchError, match="a folder; give the camera config file"):
        load_config(tmp_path)
    bad.write_bytes("cameras:\n  door: {source: caf\u00e9.mp4}\n".encode("latin-1"))  # (a traceback before)
    with pytest.raises(MaskwatchError, match="not a text file in UTF-8 or UTF-16"):
        load_config(bad)
    bad.write_text("cameras:\n\tdoor: {source: a.mp4}\n")  # one line: where and what, not YAML's quoted lines
    with pytest.raises(MaskwatchError, match=r"not valid YAML at line 2, column 1 \(found character '\\t'") as error:
        load_config(bad)
    assert "\n" not in str(error.value)
    # watch runs one camera: which one comes first; another camera's unset ${VAR} is not its error.
    from maskwatch.video.config import load_camera

    bad.write_text("cameras:\n  door: {source: a.mp4, webhooks: ['${NOT_SET_HERE}']}\n  hall: {source: b.mp4}")
    with pytest.raises(MaskwatchError, match=r"several cameras; choose one with --camera \(door, hall\)"):
        load_camera(bad, None)
    assert load_camera(bad, "hall").source == "b.mp4"
    with pytest.raises(MaskwatchError, match="NOT_SET_HERE.*not set"):
        load_camera(bad, "door")
    with pytest.raises(MaskwatchError, match="cannot hold MQTT wildcards"):
        MqttSink("mqtt://broker:1883/site/#")
    for port in ("0", "99999"):  # (0 was taken as no port: 1883; 99999 said "the port must be a number")
        with pytest.raises(MaskwatchError, match="the port must be a number from 1 to 65535"):
            MqttSink(f"mqtt://user:pw@broker:{port}/site")
    with pytest.raises(MaskwatchError, match="cannot hold MQTT wildcards"):
        MqttSink("mqtt://broker:1883/site/+/door")
    # The CLI prints the message, no traceback.
    result = subprocess.run([sys.executable, "-m", "maskwatch.cli", "watch", str(clip), "--zone", "queue=1,2"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--zone 'queue=1,2'" in result.stderr and "Traceback" not in result.stderr


def test_options_that_do_nothing_or_undo_each_other_are_said(caplog):
    WatchOptions(keep_faces=True)
    assert "keep_faces (--keep-faces) is about event snapshots, and there are none" in caplog.text
    caplog.clear()
    WatchOptions(keep_faces=True, event_snapshots=True, blur_faces=True)  # allowed: a private record, say, but said
    assert "keeps them sharp in the event snapshots" in caplog.text
    caplog.clear()
    WatchOptions(event_snapshots=True, blur_faces=True)
    assert caplog.text == ""


def test_zone_points_just_past_the_edge_move_onto_it_and_far_ones_name_the_config(tmp_path, caplog):
    from maskwatch.video.config import load_config
    from maskwatch.video.zones import ZoneCounter

    counter = ZoneCounter([Zone.parse("queue=-3,0,643,0,643,482,0,480")], [Line.parse("door=320,-10,320,490")],
                          (640, 480))
    assert counter.zones[0].zone.points == ((0, 0), (640, 0), (640, 480), (0, 480))
    assert (counter.lines[0].line.start, counter.lines[0].line.end) == ((320, 0), (320, 480))
    assert "'queue': points past the 640x480 picture's edge moved onto it: (-3.0, 0.0) -> (0.0, 0.0)" in caplog.text
    caplog.clear()
    inside = Zone("inside", ((0, 0), (10, 0), (10, 10)))  # from Python, points as given: nothing to say
    assert ZoneCounter([inside], [], (640, 480)).zones[0].zone is inside and caplog.text == ""
    for zone, line in (([Zone.parse("margin=-20,0,-5,0,-5,40")], []), ([], [Line.parse("edge=-10,5,-20,5")])):
        with pytest.raises(MaskwatchError, match="lies outside the 640x480 picture"):
            ZoneCounter(zone, line, (640, 480))
    # Mostly inside, but flat once moved onto the edge: said so, not "outside the picture".
    with pytest.raises(MaskwatchError, match="once its points past the picture's edge are moved onto it, it has no "
                                             "area"):
        ZoneCounter([Zone.parse("a=-0,0,-5,0,5,100")], [], (640, 480))
    for spec in ("a=0,0,1e308,0,1e308,100", "a=0,0,inf,0,5,100", "a=0,0,nan,0,5,100"):  # (numpy's overflow warning)
        with pytest.raises(MaskwatchError, match="the coordinates are pixels: numbers from -1,000,000 to 1,000,000"):
            Zone.parse(spec)
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  door: {source: a.mp4, zones: {hall: [0, 0, 1900, 0, 1900, 1000]}}")
    zone = load_config(config)["door"].zones[0]
    with pytest.raises(MaskwatchError, match=r"cameras.yaml: camera 'door': zones.hall: point \(1900.0, 0.0\) is "
                                             r"outside the 640x480 picture.*another resolution"):
        ZoneCounter([zone], [], (640, 480))


def test_zones_and_lines_made_in_python_are_checked_as_their_text_is():
    """Zone(...) and Line(...) skipped parse's checks: a bow tie, a flat zone or a line of one point was counted
    on as given (nobody ever inside, no crossing ever), points that were not numbers failed deep in supervision."""
    for make, said in ((lambda: Zone("q", ((0, 0), (10, 10), (10, 0), (0, 10))), "Zone('q'): the zone's outline "
                        "crosses itself"),
                       (lambda: Zone("q", ((0, 0), (5, 5), (10, 10))), "Zone('q'): the zone has no area"),
                       (lambda: Zone("q", ((0, 0), (5, 5))), "Zone('q'): a zone needs at least 3 points"),
                       (lambda: Zone("q", "0,0,5,5,9,0"), "Zone('q'): points are (x, y) pairs of numbers"),
                       (lambda: Zone(" ", ((0, 0), (5, 0), (5, 5))), "a zone needs a name"),
                       (lambda: Line("door", (3, 4), (3, 4)), "Line('door'): a line is two different points"),
                       (lambda: Line("door", (3, 4), (3, float("inf"))), "the coordinates are pixels"),
                       (lambda: Line("door", (3, 4), None), "points are (x, y) pairs of numbers")):
        with pytest.raises(MaskwatchError, match=re.escape(said)):
            make()
    zone = Zone("q", [(0, 0), (10, 0), (10, 10)], where="camera 'door': zones.q")
    assert zone.points == ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0)) and zone == Zone.parse("q=0,0,10,0,10,10")
    with pytest.raises(MaskwatchError, match="camera 'door': zones.q: the zone has no area"):
        Zone("q", ((0, 0), (0, 5), (0, 9)), where="camera 'door': zones.q")
    bow = Zone.parse("b=662,189,-6,-18,4,-13,464,493")  # (a bow tie only once its points are moved)
    from maskwatch.video.zones import ZoneCounter

    with pytest.raises(MaskwatchError, match="'b': once its points past the 640x480 picture's edge are moved onto "
                                             "it, the zone's outline crosses itself"):
        ZoneCounter([bow], [], (640, 480))


def test_a_config_file_sets_up_the_camera_its_zones_and_webhook_and_report_shows_the_zones(crossing, tmp_path):
    from servers import WebhookReceiver, free_port

    clip, _ = crossing
    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start()
    db = tmp_path / "events.sqlite"
    config = tmp_path / "cameras.yaml"
    config.write_text(f"""
defaults:
  scale: 1
  every: 1
  summary_every: 2
  db: {db}
cameras:
  door:
    source: {clip}
    out: {tmp_path / "door.mp4"}
    zones: {{counter: [260,10, 470,10, 470,310, 260,310], corner: [0,0, 20,0, 20,20, 0,20]}}
    lines: {{door: "240,0,240,320", top: "0,3,480,3"}}
    webhooks:
      - url: {receiver.url}
        secret: ${{HOOK_SECRET}}
        timeout: 20
  hall:
    source: {tmp_path / "hall.mp4"}
""")
    cli = [sys.executable, "-m", "maskwatch.cli"]
    env = {**__import__("os").environ, "HOOK_SECRET": "abc"}
    try:
        several = subprocess.run([*cli, "watch", "--config", str(config)], capture_output=True, text=True, env=env)
        assert several.returncode == 2 and "choose one with --camera (door, hall)" in several.stderr
        run = subprocess.run([*cli, "watch", "--config", str(config), "--camera", "door", "--threads", "2"],
                             capture_output=True, text=True, env=env, timeout=300)
    finally:
        receiver.kill()
    assert run.returncode == 0, run.stderr
    assert "zone counter: with_mask 1, without_mask 1" in run.stdout and "line door: in 2, out 1" in run.stdout
    emitted = read_events(db)
    received = [json.loads(p["body"]) for p in receiver.posts()]
    assert [e["id"] for e in received] == [e["id"] for e in emitted] and {e["camera"] for e in received} == {"door"}
    assert all(p["headers"]["X-Maskwatch-Signature-256"].startswith("sha256=") for p in receiver.posts())
    assert (tmp_path / "door.zones.csv").exists()
    report = subprocess.run([*cli, "report", str(db), "--chart", str(tmp_path / "chart.png")], capture_output=True,
                            text=True)
    assert report.returncode == 0, report.stderr
    assert "zone counter: with_mask 1, without_mask 1; compliance 50%" in report.stdout
    people = next(line for line in report.stdout.splitlines() if line.startswith("people: "))
    assert f"; {people}" in run.stdout  # the same words as watch's own end line, classes at 0 included
    assert "line door: in 2, out 1" in report.stdout
    # Those nobody entered or crossed are counts too.
    assert "zone corner: nobody entered" in report.stdout and "line top: in 0, out 0" in report.stdout


CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


def walkers(people: int, lanes: int = 10, visible: int = 8, every: int = 3):
    """Detections per frame of `people` faces (30 px, score 0.9) walking right along horizontal lanes, one
    starting every `every` frames and seen for `visible` frames; person k is unmasked when k % 3 == 0. A lane is
    used again only after the tracker has forgotten its previous walker. Yields (frame index, detections)."""
    from maskwatch.predictions import detections_from_labels

    for index in range(people * every + visible + 40):
        boxes, labels = [], []
        for k in range(people):
            t = index - k * every
            if 0 <= t < visible:
                x, y = 20 + 10 * t, 10 + 45 * (k % lanes)
                boxes.append([x, y, x + 30, y + 30])
                labels.append("without_mask" if k % 3 == 0 else "with_mask")
        yield index, detections_from_labels(np.array(boxes, np.float32).reshape(-1, 4), labels,
                                            np.full(len(labels), 0.9), CLASSES)


def test_a_long_run_keeps_only_the_people_in_the_picture_and_counts_the_others():
    from maskwatch.video.emitter import EventEmitter
    from maskwatch.video.sources import Frame
    from maskwatch.video.tracking import FaceTracker
    from maskwatch.video.zones import ZoneCounter

    people, fps = 150, 10.0
    tracker = FaceTracker(CLASSES, fps)
    zones = ZoneCounter([Zone.parse("upper=0,0,640,0,640,220,0,220")], [Line.parse("gate=80,0,80,480")], (640, 480))
    emitter = EventEmitter("door", "run", CLASSES, zones, 2, tracker.lost_after_s)
    image = np.zeros((480, 640, 3), np.uint8)
    events, largest = [], 0
    for index, detections in walkers(people):
        frame = Frame(index, index / fps, image)
        tracked = tracker.update(detections, frame.time_s, index)
        events += emitter.detection_frame(frame, tracked, tracker.tracks)
        held = [len(tracker.tracks), len(emitter.confirmed), len(emitter.ended), len(emitter.alerted),
                *(len(z.inside) + len(z.entered) for z in zones.zones),
                *(len(x.crossed_in) + len(x.crossed_out) for x in zones.lines)]
        largest = max(largest, *held)
    events += emitter.finish(index / fps, index)
    # What a week-long camera needs: the state holds the few people in the picture, not everyone ever seen.
    assert largest <= 12, largest
    assert emitter.confirmed == {} and not tracker.tracks
    # And the counts are those of all 150 people, by class, per zone and per line.
    unmasked = len(range(0, people, 3))
    assert emitter.people() == {"with_mask": people - unmasked, "without_mask": unmasked, "mask_weared_incorrect": 0}
    types = [e.type for e in events]
    assert types.count("person.entered") == types.count("person.left") == people
    assert types.count("person.unmasked") == unmasked
    counts = emitter.zone_counts()
    upper = [k for k in range(people) if k % 10 < 5]  # lanes 0-4 are above y=220
    assert counts["zones"]["upper"]["people"] == {
        "with_mask": sum(k % 3 != 0 for k in upper), "without_mask": sum(k % 3 == 0 for k in upper),
        "mask_weared_incorrect": 0}
    assert counts["zones"]["upper"]["inside"] == 0
    assert counts["lines"]["gate"]["in"] == people and counts["lines"]["gate"]["out"] == 0
    assert counts["lines"]["gate"]["in_people"]["without_mask"] == unmasked


class ScriptedDetector:
    """Detections by frame, as a script says: the pipeline's decisions checked without a model."""

    classes = CLASSES

    def __init__(self, script: dict[int, list[tuple[list[float], str]]]):
        self.script, self.calls = script, 0

    def __call__(self, image, **options):
        from maskwatch.predictions import detections_from_labels

        faces = self.script.get(self.calls, [])
        self.calls += 1
        return detections_from_labels(np.array([b for b, _ in faces], np.float32).reshape(-1, 4),
                                      [label for _, label in faces], np.full(len(faces), 0.9), CLASSES)


@pytest.mark.parametrize("min_track_frames, people", [(2, {"with_mask": 1}), (1, {"with_mask": 1, "without_mask": 1})])
def test_only_confirmed_people_are_counted_anywhere(tmp_path, min_track_frames, people):
    """A person seen on 20 frames, and a flicker on 2 (one tracked frame): whether the flicker is a person is
    decided once, by min_track_frames, and the summary, windows, tracks, tracks.csv and report all agree."""
    script = {i: [([40 + 5 * i, 60, 100 + 5 * i, 130], "with_mask")] for i in range(20)}
    for i in (5, 6):
        script[i] = script[i] + [([220, 120, 280, 190], "without_mask")]
    frames = [np.full((240, 320, 3), 120, np.uint8) for _ in range(20)]
    db, out = tmp_path / "events.sqlite", tmp_path / "out.mp4"
    summary = VideoPipeline(ScriptedDetector(script), WatchOptions(every=1, min_track_frames=min_track_frames), db).run(
        GatedSource(frames, 10.0), out)
    expected = {c: people.get(c, 0) for c in CLASSES}
    assert summary.people == expected
    with sqlite3.connect(db) as stored:
        windows = stored.execute("SELECT label, SUM(people) FROM windows GROUP BY label").fetchall()
        tracks = stored.execute("SELECT label FROM tracks ORDER BY label").fetchall()
    assert dict(windows) == people and [t for (t,) in tracks] == sorted(people)
    assert read_report(db).people == expected  # (every class, as the summary and the live counts list them)
    rows = out.with_suffix(".tracks.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[1] for r in rows) == sorted(people)


def test_person_events_name_the_zone_the_face_is_in(tmp_path):
    """An unmasked person confirmed inside the queue, and a masked one outside any zone."""
    script = {i: [([60, 60, 110, 120], "without_mask"), ([400, 60, 450, 120], "with_mask")] for i in range(6)}
    frames = [np.full((240, 480, 3), 120, np.uint8) for _ in range(6)]
    events = []
    VideoPipeline(ScriptedDetector(script), zones=["queue=0,0,240,0,240,240,0,240"],
                  sinks=[CallbackSink(on_event=events.append)]).run(GatedSource(frames, 10.0))
    person = {(e.type, e.label): e.zone for e in events if e.type in ("person.entered", "person.unmasked")}
    assert person == {("person.entered", "without_mask"): "queue", ("person.unmasked", "without_mask"): "queue",
                      ("person.entered", "with_mask"): None}
    types = [e.type for e in events]
    assert types.index("person.entered") < types.index("zone.entered")  # the person first, then where they went


def test_a_relative_source_in_a_config_file_is_found_beside_it(tmp_path, monkeypatch):
    from maskwatch.video.config import load_config

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "door.mp4").write_bytes(b"")
    (tmp_path / "cfg" / "cameras.yaml").write_text("cameras:\n  door: {source: door.mp4, db: events.sqlite}\n"
                                                   "  cam: {source: '0'}\n  here: {source: local.mp4}\n")
    (tmp_path / "local.mp4").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    cameras = load_config(Path("cfg") / "cameras.yaml")
    assert cameras["door"].source == str(Path("cfg") / "door.mp4") and cameras["door"].db == Path("events.sqlite")
    assert cameras["cam"].source == "0" and cameras["here"].source == "local.mp4"  # a webcam; the working dir


def test_a_webhook_secret_that_signs_nothing_is_said_unless_the_config_uses_it(crossing_clip, tmp_path):
    from servers import WebhookReceiver, free_port

    receiver = WebhookReceiver(free_port(), tmp_path / "posts.jsonl").start()
    config = tmp_path / "cameras.yaml"
    cli = [sys.executable, "-m", "maskwatch.cli", "watch", "--max-frames", "2", "--scale", "1"]
    env = {**__import__("os").environ, "MASKWATCH_WEBHOOK_SECRET": "s3cret"}

    def warning(secret_line: str, *options: str, environment: dict = env) -> str:
        config.write_text(f"cameras:\n  door:\n    source: {crossing_clip}\n    db: {tmp_path / 'e.sqlite'}\n"
                          f"    webhooks:\n      - url: {receiver.url}\n{secret_line}")
        run = subprocess.run([*cli, "--config", str(config), *options], capture_output=True, text=True,
                             env=environment, timeout=300)
        assert run.returncode == 0, run.stderr
        said = (run.stdout + run.stderr).splitlines()
        return " ".join(line for line in said if "warning: --webhook-secret" in line)

    try:
        assert warning("        secret: ${MASKWATCH_WEBHOOK_SECRET}\n") == ""  # the README's example
        assert f"the config's webhook(s) {receiver.url} are sent unsigned" in warning("")
        plain = {k: v for k, v in env.items() if k != "MASKWATCH_WEBHOOK_SECRET"}
        assert "none was given" in warning("        secret: abc\n", "--webhook-secret", "x", environment=plain)
    finally:
        receiver.kill()


def test_the_run_is_recorded_before_the_network_outputs_wait_and_again_after(detector, crossing_clip, tmp_path):
    """A kill while a webhook receiver is awaited (docker stop: SIGKILL 10 s after SIGTERM) must not lose the run's
    summary and end row; what the network outputs lose at closing is added once they have closed."""
    from servers import wait_until

    out, db = tmp_path / "door.mp4", tmp_path / "events.sqlite"

    def finished() -> bool:
        with sqlite3.connect(db) as stored:
            return stored.execute("SELECT status FROM runs").fetchone()[0] == "finished"

    seen = {}

    class AwayReceiver(Sink):  # stands for a webhook whose receiver is away: it fails as it closes
        name = "receiver"
        required = True

        def close(self, end):
            seen["summary"] = out.with_suffix(".json").is_file()
            seen["end row"] = bool(wait_until(finished, "the run's end row, before the network outputs close", 30))
            raise MaskwatchError("3 event(s) lost")

    summary = VideoPipeline(detector, WatchOptions(every=1), db, [AwayReceiver()]).run(str(crossing_clip), out)
    assert seen == {"summary": True, "end row": True}
    assert "3 event(s) lost" in json.loads(out.with_suffix(".json").read_text())["sink_failures"]["receiver"]["first"]
    with sqlite3.connect(db) as stored:
        assert "3 event(s) lost" in stored.execute("SELECT message FROM runs").fetchone()[0]
    assert summary.failed_outputs == ["receiver"]


def test_a_mask_pulled_down_after_seconds_masked_is_alerted_within_seconds_and_counted_by_time():
    """Someone masked for 10 s who then pulls the mask down: the vote counted looks, and video looks often at a
    new face and rarely at a settled, still one, so the first seconds outvoted the rest: no person.unmasked ever,
    and the person counted with_mask however long they stood unmasked (an operator's trial)."""
    from maskwatch.predictions import detections_from_labels
    from maskwatch.video.emitter import EventEmitter
    from maskwatch.video.sources import Frame
    from maskwatch.video.tracking import FaceTracker
    from maskwatch.video.zones import ZoneCounter

    tracker = FaceTracker(CLASSES, 30.0)
    emitter = EventEmitter("door", "run", CLASSES, ZoneCounter([], [], (640, 480)), 2, tracker.lost_after_s)
    image = np.zeros((480, 640, 3), np.uint8)
    # Looked at every frame for its first 2 s, then once a second (settled and still); the mask comes down at 10 s
    # and is seen on every look from there, now every half second.
    times = [i / 30 for i in range(60)] + [float(t) for t in range(3, 11)] + [10 + k / 2 for k in range(1, 21)]
    events, alerted_at = [], None
    for index, time_s in enumerate(times):
        label = "with_mask" if time_s < 10 else "without_mask"
        box = np.array([[300, 200, 360, 270]], np.float32)
        tracked = tracker.update(detections_from_labels(box, [label], np.array([0.9]), CLASSES), time_s, index)
        new = emitter.detection_frame(Frame(index, time_s, image), tracked, tracker.tracks)
        if any(e.type == "person.unmasked" for e in new) and alerted_at is None:
            alerted_at = time_s
        events += new
    alerts = [e for e in events if e.type == "person.unmasked"]
    assert len(alerts) == 1 and alerts[0].label == "without_mask"
    assert 10 < alerted_at <= 13, alerted_at  # within about the vote's half-life after the first unmasked look
    assert list(tracked.data["class_name"]) == ["without_mask"]  # drawn as it is now
    events += emitter.finish(times[-1], len(times))
    left = [e for e in events if e.type == "person.left"]
    # About 10 s masked against 10 s unmasked: the whole visit's vote weighs time, not looks (67 masked looks
    # against 20 would give the winner a share of 0.77)
    assert len(left) == 1 and left[0].share < 0.6


def test_one_misread_look_as_a_track_starts_raises_no_alert():
    """The first look of a track had a weight of its own (0.1 s) against 1/30 s for each look after it, so one
    misread look as a face came into the picture outvoted the next and raised person.unmasked (a review)."""
    from maskwatch.predictions import detections_from_labels
    from maskwatch.video.emitter import EventEmitter
    from maskwatch.video.sources import Frame
    from maskwatch.video.tracking import FaceTracker
    from maskwatch.video.zones import ZoneCounter

    tracker = FaceTracker(CLASSES, 30.0)
    emitter = EventEmitter("door", "run", CLASSES, ZoneCounter([], [], (640, 480)), 2, tracker.lost_after_s)
    image = np.zeros((480, 640, 3), np.uint8)
    events = []
    for index in range(30):  # (ByteTrack's first frame gives no id: the track's first look is the second frame's)
        label, score = ("without_mask", 0.6) if index == 1 else ("with_mask", 0.9)
        box = np.array([[300 + index, 200, 360 + index, 270]], np.float32)
        tracked = tracker.update(detections_from_labels(box, [label], np.array([score]), CLASSES), index / 30, index)
        events += emitter.detection_frame(Frame(index, index / 30, image), tracked, tracker.tracks)
    events += emitter.finish(1.0, 30)
    assert [e.type for e in events if e.type.startswith("person.")] == ["person.entered", "person.left"]
    assert [e.label for e in events if e.type == "person.left"] == ["with_mask"]
