"""Shared fixtures: real images and annotations from the training set in ../shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "datasets" / "face-mask-voc").resolve()
# A few real images covering all three classes, small and big faces, and a box ending one pixel past the edge
# (maksssksksss5).
SMALL_STEMS = ["maksssksksss5", "maksssksksss94", "maksssksksss139", "maksssksksss657", "maksssksksss0",
               "maksssksksss1"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"the training set is expected at {DATA}"
    return DATA


def shipped_head_named(folder: Path, classes: list[str]) -> Path:
    """The shipped head under other class names (a model trained on a data set of the user's own names, without
    training one): its .onnx in `folder`, beside a copy of its JSON listing `classes`."""
    import json

    from maskwatch.detector import DEFAULT_HEAD

    folder.mkdir(parents=True, exist_ok=True)
    head = Path(shutil.copy(DEFAULT_HEAD, folder / DEFAULT_HEAD.name))
    config = json.loads(DEFAULT_HEAD.with_suffix(".json").read_text())
    head.with_suffix(".json").write_text(json.dumps({**config, "classes": classes}, ensure_ascii=False))
    return head


def seed_old_and_recent_events(db: Path) -> tuple[str, str]:
    """A database as a server left it: one event 40 days old (and its window), one a day old; their ids."""
    import time
    from datetime import datetime, timedelta, timezone

    from maskwatch.video.events import Event
    from maskwatch.video.store import EventStore

    store = EventStore(db)
    run_id = store.start_run("old.mp4", "door", "oldrun")
    store.save_window(run_id, 0.0, {"with_mask": 1})
    ids = []
    for days in (40, 1):
        moment = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="milliseconds")
        event = Event("person.entered", "door", "oldrun", 0.0, time=moment, track_id=days, label="with_mask")
        store.save_event(run_id, event)
        ids.append(event.id)
    store.db.execute("UPDATE runs SET started_at = ? WHERE id = ?", (time.time() - 40 * 86400, run_id))
    store.finish_run(run_id, 1, "finished")
    store.close()
    return ids[0], ids[1]


def copy_voc(stems: list[str], dst: Path) -> Path:
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "annotations").mkdir(parents=True, exist_ok=True)
    for stem in stems:
        shutil.copy(DATA / "images" / f"{stem}.jpg", dst / "images")
        shutil.copy(DATA / "annotations" / f"{stem}.xml", dst / "annotations")
    return dst


@pytest.fixture
def small_voc(tmp_path: Path, data_dir: Path) -> Path:
    """A writable copy of a few real VOC images and XMLs."""
    return copy_voc(SMALL_STEMS, tmp_path / "voc")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MASKWATCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


FACE_CROPS = (ROOT / ".." / "shared" / "datasets" / "face-crops-2class").resolve()
# Real pictures of face-crops-2class, each with one clear face: close-ups, whole photos, pasted-on masks.
FACE_PICTURES = {"with_mask": ["0129.jpg", "0_0_15_copy_4.jpg", "167.jpg", "221.jpg", "with_mask121.jpg", "68.jpg"],
                 "without_mask": ["0.jpg", "0_0_guanyue_0083.jpg", "17.jpg", "1_0_aidai_0183.jpg", "341.jpg",
                                  "1_0_anhu_0204.jpg"]}


@pytest.fixture(scope="session")
def extra_faces_dir(tmp_path_factory) -> Path:
    """A folder per class of a dozen face pictures, as `train --extra-faces` takes them."""
    root = tmp_path_factory.mktemp("extra") / "faces"
    for label, names in FACE_PICTURES.items():
        (root / label).mkdir(parents=True)
        for name in names:
            shutil.copy(FACE_CROPS / label / name, root / label / name)
    return root


@pytest.fixture(scope="session")
def detector():
    """The shipped detector at scale 1 (the faces of the test clips are large), loaded once for the session."""
    from maskwatch import Detector

    return Detector.load(threads=2, scale=1.0)


@pytest.fixture(scope="session")
def photo(data_dir) -> Path:
    """A real crowd photo of the training set, 400x267, with faces of all three classes."""
    return data_dir / "images" / "maksssksksss657.jpg"


@pytest.fixture(scope="session")
def faces(data_dir):
    """A masked and an unmasked face (BGR crops) from training photos; the shipped model calls them so at 0.9."""
    from clips import crossing_faces

    return crossing_faces(data_dir)


@pytest.fixture(scope="session")
def crossing_clip(data_dir, tmp_path_factory) -> Path:
    """The two faces crossing a door, as an MJPG file (clips.write_crossing_clip)."""
    from clips import write_crossing_clip

    return write_crossing_clip(data_dir, tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def rtsp(photo, tmp_path_factory):
    """A real RTSP camera on loopback (Debian's gst-rtsp-server) playing a pan across the crowd photo, per module."""
    from clips import write_pan_jpegs
    from servers import RtspCamera, free_port

    camera = RtspCamera(free_port(), write_pan_jpegs(photo, tmp_path_factory.mktemp("rtsp")))
    camera.start()
    yield camera
    camera.kill()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (browsers.chromium), per module."""
    from browsers import chromium

    with chromium() as browser:
        yield browser


def roboflow_export(voc: Path, folder: Path, fmt: str = "yolo") -> tuple[Path, dict[str, list[str]]]:
    """The 6-image VOC set as a Roboflow export, 3 / 2 / 1 images in train/, valid/ and test/: YOLO (data.yaml
    beside the sides, each with images/ and labels/) or COCO (each side's images beside its
    _annotations.coco.json, whose first category is the project, `faces`, the others' supercategory, with
    the classes in alphabetical order). Returns the export's folder and each side's stems."""
    import json

    import yaml

    from maskwatch.data import load_dataset, save_dataset
    from maskwatch.data.coco import to_coco_dict  # (its category ids count from 1, as Roboflow's classes do)

    dataset = load_dataset(voc)
    stems = [s.stem for s in dataset.samples]
    sides = {"train": stems[:3], "valid": stems[3:5], "test": stems[5:]}
    rf = folder / "rf"
    if fmt == "coco":
        names = sorted(dataset.classes)
        for side, chosen in sides.items():
            part = dataset.subset(chosen)
            coco = to_coco_dict(part, names)
            coco["categories"] = [{"id": 0, "name": "faces", "supercategory": "none"},
                                  *({"id": i, "name": name, "supercategory": "faces"}
                                    for i, name in enumerate(names, 1))]
            (rf / side).mkdir(parents=True)
            for sample in part.samples:
                shutil.copy(sample.image_path, rf / side)
            (rf / side / "_annotations.coco.json").write_text(json.dumps(coco))
        return rf, sides
    for side, names in sides.items():
        save_dataset(dataset.subset(names), folder / side, "yolo")
        (rf / side).mkdir(parents=True)
        for part in ("images", "labels"):
            shutil.move(folder / side / part, rf / side / part)
    (rf / "data.yaml").write_text(yaml.safe_dump({  # as Roboflow writes it
        "train": "../train/images", "val": "../valid/images", "test": "../test/images",
        "nc": len(dataset.classes), "names": dataset.classes}))
    return rf, sides

