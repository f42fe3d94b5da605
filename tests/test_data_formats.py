from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from maskwatch.data import FORMATS, Dataset, load_dataset, save_dataset
from maskwatch.errors import MaskwatchError


def assert_same_boxes(a, b):
    assert a.classes == b.classes
    assert [s.stem for s in a.samples] == [s.stem for s in b.samples]
    for sa, sb in zip(a.samples, b.samples):
        assert (sa.width, sa.height) == (sb.width, sb.height)
        assert a.labels_of(sa) == b.labels_of(sb)
        np.testing.assert_allclose(sa.detections.xyxy, sb.detections.xyxy, atol=1e-3)


def test_reads_the_training_set_with_its_documented_counts(data_dir):
    ds = load_dataset(data_dir)
    assert len(ds) == 767 and ds.num_boxes == 3701
    assert ds.class_counts() == {"with_mask": 2922, "without_mask": 666, "mask_weared_incorrect": 113}
    assert ds.problems == []  # the 11 boxes one pixel past the edge are clipped silently


def test_boxes_one_pixel_past_the_edge_are_clipped(data_dir):
    ds = load_dataset(data_dir)
    sample = next(s for s in ds.samples if s.stem == "maksssksksss5")  # (364, 30, 401, 66) in a 400x266 image
    assert sample.detections.xyxy[:, 2].max() == 400
    for s in ds.samples:
        assert (s.detections.xyxy[:, [0, 2]] <= s.width).all() and (s.detections.xyxy[:, [1, 3]] <= s.height).all()


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "voc"])
def test_voc_to_format_and_back_keeps_every_box(data_dir, tmp_path, fmt):
    original = load_dataset(data_dir)
    save_dataset(original, tmp_path / fmt, fmt)
    converted = load_dataset(tmp_path / fmt)
    save_dataset(converted, tmp_path / "back", "voc")
    back = load_dataset(tmp_path / "back")
    assert back.num_boxes == 3701
    assert_same_boxes(original, converted)
    assert_same_boxes(original, back)


def test_tfrecord_layout_is_what_the_tf_object_detection_api_reads(small_voc, tmp_path):
    from tfrecord.reader import tfrecord_loader

    ds = load_dataset(small_voc)
    save_dataset(ds, tmp_path / "tf", "tfrecord")
    label_map = (tmp_path / "tf" / "label_map.pbtxt").read_text()
    assert 'item {\n  id: 1\n  name: "with_mask"\n}' in label_map
    record = next(iter(tfrecord_loader(str(tmp_path / "tf" / "data.tfrecord"), None)))
    for key in ("image/encoded", "image/format", "image/height", "image/width", "image/object/bbox/xmin",
                "image/object/bbox/ymax", "image/object/class/text", "image/object/class/label"):
        assert key in record
    assert record["image/encoded"][:2] == b"\xff\xd8"  # the JPEG itself
    assert 0 <= float(np.min(record["image/object/bbox/xmin"])) <= 1


def label_map_as_the_tf_od_api_reads_it(path: Path) -> list[tuple[int, str]]:
    """label_map.pbtxt parsed by protobuf's text format into the TF OD API's StringIntLabelMap (its fields)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

    proto = descriptor_pb2.FileDescriptorProto(name="label_map.proto", package="od", syntax="proto2")
    item = proto.message_type.add(name="StringIntLabelMapItem")
    for name, number, kind in (("name", 1, 9), ("id", 2, 5), ("display_name", 3, 9)):
        item.field.add(name=name, number=number, type=kind, label=1)
    items = proto.message_type.add(name="StringIntLabelMap")
    items.field.add(name="item", number=1, type=11, label=3, type_name=".od.StringIntLabelMapItem")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName("od.StringIntLabelMap"))()
    text_format.Parse(path.read_text(encoding="utf-8"), message)
    return [(i.id, i.name) for i in message.item]


def test_class_names_with_quotes_backslashes_or_accents_survive_the_label_map(small_voc, tmp_path):
    """`don't` was written as name: 'don't': read back as two classes, and refused by protobuf's parser."""
    from maskwatch.data.tfrecord import read_label_map, write_label_map

    names = ["don't", 'say "hi"', "back\\slash", "masqué", "a } b { id: 9"]
    write_label_map(names, tmp_path / "label_map.pbtxt")
    assert read_label_map(tmp_path / "label_map.pbtxt") == dict(enumerate(names, 1))
    assert label_map_as_the_tf_od_api_reads_it(tmp_path / "label_map.pbtxt") == list(enumerate(names, 1))
    # as protobuf writes a map (non-ASCII as octal bytes, either quote)
    (tmp_path / "theirs.pbtxt").write_text("item { name: 'masqu\\303\\251' id: 1 }\nitem {\n id: 2\n "
                                           "display_name: \"it\\'s\" }\n")
    assert read_label_map(tmp_path / "theirs.pbtxt") == {1: "masqué", 2: "it's"}
    (tmp_path / "commented.pbtxt").write_text(  # a comment with a quote, a nested block: the item was lost
        "item {\n  id: 1\n  name: 'with_mask'  # the person's mask\n  keypoints { id: 0 label: \"nose\" }\n}\n"
        "item { id: 2 name: 'without_mask' }\n")
    assert read_label_map(tmp_path / "commented.pbtxt") == {1: "with_mask", 2: "without_mask"}
    for text, read in (("item { id: 1, name: 'a', }; item { id: 2; name: \"b\" }", {1: "a", 2: "b"}),  # separators
                       ("item { display_name: 'With mask' name: 'with_mask' id: 1 }", {1: "with_mask"}),  # name first
                       ("item { id: 1 name: \"m\\u00e1scara\" }", {1: "máscara"}),
                       ("item { id: 1 name: \"with\" \"_mask\" }", {1: "with_mask"})):  # adjacent strings
        (tmp_path / "their.pbtxt").write_text(text)
        assert read_label_map(tmp_path / "their.pbtxt") == read == dict(
            label_map_as_the_tf_od_api_reads_it(tmp_path / "their.pbtxt")), text
    (tmp_path / "twice.pbtxt").write_text("item { id: 1 name: 'a' } item { id: 1 name: 'b' }")
    with pytest.raises(MaskwatchError, match="id 1 names two classes"):
        read_label_map(tmp_path / "twice.pbtxt")
    ds = load_dataset(small_voc, label_map={"with_mask": "don't", "without_mask": 'say "hi"'})
    save_dataset(ds, tmp_path / "tf", "tfrecord")
    assert load_dataset(tmp_path / "tf").classes == ds.classes
    negatives = Dataset([], [replace(ds.samples[0], detections=ds.samples[0].detections[:0])])  # (photos without
    save_dataset(negatives, tmp_path / "none", "tfrecord")  # faces: read back, "no item { id: N ...} entries")
    back = load_dataset(tmp_path / "none")
    assert len(back) == 1 and back.num_boxes == 0 and back.classes == []


def test_difficult_boxes_survive_every_format_that_can_say_so_and_are_ignored_in_scoring(small_voc, tmp_path,
                                                                                         caplog):
    from maskwatch.data.dataset import difficult_of
    from maskwatch.evaluation import evaluate_coco
    from maskwatch.evaluation.report import confusion_matrix
    from maskwatch.predictions import ImagePredictions, detections_from_labels

    xml = sorted((small_voc / "annotations").glob("*.xml"))[0]
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    original = load_dataset(small_voc)
    marked = {s.stem: difficult_of(s.detections).tolist() for s in original.samples}
    assert original.num_difficult == 1 and marked[xml.stem][0]
    for fmt in ("coco", "tfrecord", "voc"):
        save_dataset(original, tmp_path / f"as_{fmt}", fmt)
        back = load_dataset(tmp_path / f"as_{fmt}")
        assert {s.stem: difficult_of(s.detections).tolist() for s in back.samples} == marked, fmt
    save_dataset(original, tmp_path / "yolo", "yolo")
    assert "1 box(es) marked difficult are written as ordinary boxes" in caplog.text
    # Scoring: the difficult face missed costs nothing, and found it is no false positive.
    def predictions(keep_difficult: bool) -> list[ImagePredictions]:
        preds = []
        for sample in original.samples:
            keep = ~difficult_of(sample.detections) | keep_difficult
            labels = [label for label, k in zip(original.labels_of(sample), keep) if k]
            preds.append(ImagePredictions(sample.image_path.name, sample.width, sample.height, detections_from_labels(
                sample.detections.xyxy[keep], labels, np.full(len(labels), 0.9), original.classes)))
        return preds

    for keep_difficult in (False, True):
        assert evaluate_coco(original, predictions(keep_difficult)).summary["mAP"] == pytest.approx(1.0)
        matrix = confusion_matrix(original, predictions(keep_difficult), "3class", 0.5).matrix
        assert matrix.sum() == original.num_boxes - 1 and np.trace(matrix) == matrix.sum()  # no error, no miss
    plain = load_dataset(small_voc)
    for sample in plain.samples:
        sample.detections.data.pop("difficult")
    assert evaluate_coco(plain, predictions(False)).summary["mAP"] < 1.0  # as an ordinary box, it is missed


def test_saving_into_a_folder_that_holds_files_is_refused_from_python_too(small_voc, tmp_path):
    from maskwatch.errors import MaskwatchError

    ds = load_dataset(small_voc)
    save_dataset(ds, tmp_path / "out", "voc")
    with pytest.raises(MaskwatchError, match="the output folder is not empty"):
        save_dataset(ds.subset([ds.samples[0].stem]), tmp_path / "out", "coco")
    assert len(load_dataset(tmp_path / "out")) == len(ds)


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_a_photo_with_an_exif_rotation_is_written_as_stored_so_other_tools_read_its_boxes_where_they_are(
        small_voc, tmp_path, fmt):
    """Its boxes are in the stored pixels, but the file went out hard-linked with its rotation: OpenCV (so
    Ultralytics and supervision) turned it upright and put every box on the turned picture."""
    import cv2
    from PIL import Image

    from maskwatch.data.images import annotated_image, image_header

    photo = sorted((small_voc / "images").glob("*.jpg"))[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees to be shown
    Image.open(photo).save(photo, exif=exif.tobytes(), quality=95)
    stored = annotated_image(photo)
    ds = load_dataset(small_voc)
    save_dataset(ds, tmp_path / "out", fmt)
    written = tmp_path / "out" / "images" / photo.name
    assert image_header(photo, "x", orientation=True).orientation == 6  # (the source untouched, though hard-linked)
    assert image_header(written, "x", orientation=True).orientation == 1
    assert np.array_equal(cv2.imread(str(written)), stored)  # the same pixels, not re-encoded, as stored
    assert load_dataset(tmp_path / "out").num_boxes == ds.num_boxes


def test_images_whose_names_differ_only_in_case_are_said_when_converted(small_voc, tmp_path, caplog):
    """Written side by side, they were fine here and one overwrote the other once unzipped on macOS or Windows."""
    import logging
    import shutil

    photo = sorted((small_voc / "images").glob("*.jpg"))[0]
    upper = photo.with_name(photo.stem.upper() + ".jpg")
    shutil.copy(photo, upper)
    xml = (small_voc / "annotations" / f"{photo.stem}.xml").read_text()
    (small_voc / "annotations" / f"{upper.stem}.xml").write_text(xml.replace(photo.name, upper.name))
    with caplog.at_level(logging.WARNING):
        save_dataset(load_dataset(small_voc), tmp_path / "out", "yolo")
    assert f"1 image name(s) differ only in case ({upper.name} and {photo.name})" in caplog.text


def test_images_that_are_symlinks_go_out_as_the_images_themselves(small_voc, tmp_path):
    """A subset made of relative symlinks: hard-linking the link itself left links dangling in the output (or
    absolute ones), in a folder meant to stand on its own."""
    import os

    linked = tmp_path / "linked"
    (linked / "images").mkdir(parents=True)
    (linked / "annotations").mkdir()
    for photo in sorted((small_voc / "images").glob("*.jpg")):
        os.symlink(os.path.relpath(photo, linked / "images"), linked / "images" / photo.name)
        (linked / "annotations" / f"{photo.stem}.xml").write_bytes(
            (small_voc / "annotations" / f"{photo.stem}.xml").read_bytes())
    save_dataset(load_dataset(linked), tmp_path / "deeper" / "out", "coco")
    written = sorted((tmp_path / "deeper" / "out" / "images").iterdir())
    assert written and not any(p.is_symlink() for p in written)
    assert all(p.read_bytes() == (small_voc / "images" / p.name).read_bytes() for p in written)
