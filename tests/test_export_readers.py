"""What `maskwatch convert` writes opens in other tools' own readers (pycocotools, faster-coco-eval, supervision,
the tfrecord package with the TF OD API keys), after the folder was zipped, moved and the source images deleted.
Ultralytics is not installed here (it needs opencv-python and torchvision beside ours)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
import yaml

from maskwatch.data import load_dataset

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


def convert(src: Path, dst: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "maskwatch.cli", "convert", str(src), str(dst), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def moved(folder: Path, source: Path, to: Path) -> Path:
    """The folder zipped, unzipped elsewhere, and the source data set deleted: what another machine sees."""
    archive = shutil.make_archive(str(to / "archive"), "zip", folder)
    with zipfile.ZipFile(archive) as z:
        z.extractall(to / "unzipped")
    shutil.rmtree(source)
    return to / "unzipped"


def boxes_by_stem(dataset) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    return {s.stem: sorted((label, tuple(np.round(box, 2))) for label, box in
                           zip(dataset.labels_of(s), s.detections.xyxy.tolist())) for s in dataset.samples}


def sv_boxes(ds: sv.DetectionDataset) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    out = {}
    for path, _image, detections in ds:
        out[Path(path).stem] = sorted((ds.classes[int(c)], tuple(np.round(box, 2)))
                                      for c, box in zip(detections.class_id, detections.xyxy.tolist()))
    return out


@pytest.fixture
def source(small_voc) -> tuple[Path, dict]:
    return small_voc, boxes_by_stem(load_dataset(small_voc))


def test_coco_opens_in_pycocotools_faster_coco_eval_and_supervision_after_a_move(source, tmp_path):
    src, expected = source
    out = convert(src, tmp_path / "coco", "--to", "coco", "--val", "0.34")
    assert "wrote 6 images" in out and "(train 3, val 3 images)" in out  # grouped, stratified: 3 + 3 of 6
    assert not any(p.is_symlink() for p in (tmp_path / "coco" / "images").iterdir())
    folder = moved(tmp_path / "coco", src, tmp_path / "elsewhere")

    from faster_coco_eval import COCO as FasterCOCO
    from pycocotools.coco import COCO

    for reader in (COCO, FasterCOCO):
        coco = reader(str(folder / "annotations.json"))
        assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) == sum(map(len, expected.values()))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    COCO(str(folder / "annotations.json")).info()  # raised KeyError without the `info` key
    assert json.loads((folder / "annotations.json").read_text())["licenses"] == []
    ds = sv.DetectionDataset.from_coco(str(folder / "images"), str(folder / "annotations.json"))
    assert sv_boxes(ds) == expected
    sides = [COCO(str(folder / f"instances_{name}.json")) for name in ("train", "val")]
    names = [{img["file_name"] for img in side.dataset["images"]} for side in sides]
    assert (len(names[0]), len(names[1])) == (3, 3) and not names[0] & names[1]
    assert boxes_by_stem(load_dataset(folder)) == expected


def test_yolo_opens_in_supervision_with_relative_data_yaml_and_train_val_lists(source, tmp_path):
    src, expected = source
    val_list = tmp_path / "val.txt"
    val_list.write_text("maksssksksss94\nmaksssksksss5\n")
    convert(src, tmp_path / "yolo", "--to", "yolo", "--split", str(val_list))
    folder = moved(tmp_path / "yolo", src, tmp_path / "elsewhere")
    data = yaml.safe_load((folder / "data.yaml").read_text())
    assert "path" not in data and (data["train"], data["val"]) == ("train.txt", "val.txt")
    assert data["names"] == dict(enumerate(CLASSES))
    val_images = (folder / "val.txt").read_text().split()
    assert val_images == ["./images/maksssksksss5.jpg", "./images/maksssksksss94.jpg"]
    assert all((folder / line).is_file() for line in val_images + (folder / "train.txt").read_text().split())
    ds = sv.DetectionDataset.from_yolo(str(folder / "images"), str(folder / "labels"), str(folder / "data.yaml"))
    got = sv_boxes(ds)
    assert got.keys() == expected.keys()
    for stem in expected:  # YOLO stores normalised centres: equal to 1/100 px after the round trip
        assert [label for label, _ in got[stem]] == [label for label, _ in expected[stem]]
        np.testing.assert_allclose([b for _, b in got[stem]], [b for _, b in expected[stem]], atol=0.02)


def test_voc_has_images_beside_the_xml_and_no_absolute_paths(source, tmp_path):
    src, expected = source
    convert(src, tmp_path / "voc_out", "--to", "voc", "--val", "0.34")
    for xml in (tmp_path / "voc_out" / "annotations").glob("*.xml"):
        root = ET.parse(xml).getroot()
        assert root.findtext("folder") == "images" and root.find("path") is None
        assert str(src) not in xml.read_text()
    folder = moved(tmp_path / "voc_out", src, tmp_path / "elsewhere")
    ds = sv.DetectionDataset.from_pascal_voc(str(folder / "images"), str(folder / "annotations"))
    # supervision reads VOC's corners as 1-based (xmin - 1, ymin - 1); maskwatch keeps the numbers as written
    shifted = {stem: sorted((label, (x1 - 1, y1 - 1, x2, y2)) for label, (x1, y1, x2, y2) in boxes)
               for stem, boxes in expected.items()}
    assert len(ds) == 6 and sv_boxes(ds) == shifted
    train, val = ((folder / "ImageSets" / "Main" / f"{n}.txt").read_text().split() for n in ("train", "val"))
    assert len(train) + len(val) == 6 and not set(train) & set(val)
    assert boxes_by_stem(load_dataset(folder)) == expected


def test_tfrecord_sharded_train_and_val_hold_every_image_once(source, tmp_path):
    from tfrecord.reader import tfrecord_loader

    src, expected = source
    convert(src, tmp_path / "tf", "--to", "tfrecord", "--val", "0.34", "--shards", "2")
    files = sorted(p.name for p in (tmp_path / "tf").iterdir())
    assert files == ["label_map.pbtxt", "train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002",
                     "val.tfrecord-00000-of-00002", "val.tfrecord-00001-of-00002"]
    names = {side: [r["image/filename"].decode() for f in sorted((tmp_path / "tf").glob(f"{side}.tfrecord-*"))
                    for r in tfrecord_loader(str(f), None)] for side in ("train", "val")}
    assert (len(names["train"]), len(names["val"])) == (3, 3)
    assert not set(names["train"]) & set(names["val"])
    assert boxes_by_stem(load_dataset(moved(tmp_path / "tf", src, tmp_path / "elsewhere"))) == expected


def test_symlinks_only_on_request(source, tmp_path):
    src, _ = source
    convert(src, tmp_path / "linked", "--to", "coco", "--images", "symlink")
    links = list((tmp_path / "linked" / "images").iterdir())
    assert len(links) == 6 and all(p.is_symlink() and p.resolve().parent == src / "images" for p in links)
    convert(src, tmp_path / "copied", "--to", "yolo", "--images", "copy")
    copies = list((tmp_path / "copied" / "images").iterdir())
    assert len(copies) == 6 and not any(p.is_symlink() or p.samefile(src / "images" / p.name) for p in copies)
