"""Every reader's bad-input path: a clear message naming the file, and the rest loads."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from maskwatch.data import load_dataset, save_dataset
from maskwatch.errors import MaskwatchError


def _xml(path: Path) -> str:
    return path.read_text()


def test_unparsable_xml_is_named_and_skipped(small_voc, caplog):
    bad = small_voc / "annotations" / "maksssksksss94.xml"
    bad.write_text(_xml(bad)[:200])
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(small_voc)
    assert len(ds) == 5
    assert any("maksssksksss94.xml" in p and "unparsable XML" in p for p in ds.problems)
    assert "maksssksksss94.xml" in caplog.text


def test_box_far_outside_is_clipped_with_a_message_and_zero_size_box_dropped(small_voc):
    path = small_voc / "annotations" / "maksssksksss94.xml"
    text = _xml(path)
    first = text.index("<bndbox>")
    end = text.index("</bndbox>", first)
    text = text[:first] + "<bndbox><xmin>-50</xmin><ymin>10</ymin><xmax>30</xmax><ymax>40</ymax>" + text[end:]
    second = text.index("<bndbox>", text.index("</bndbox>") + 1)
    end = text.index("</bndbox>", second)
    text = text[:second] + "<bndbox><xmin>50</xmin><ymin>10</ymin><xmax>50</xmax><ymax>40</ymax>" + text[end:]
    third = text.index("<bndbox>", text.index("</bndbox>", second) + 1)
    end = text.index("</bndbox>", third)
    text = text[:third] + "<bndbox><xmin>9000</xmin><ymin>10</ymin><xmax>9040</xmax><ymax>50</ymax>" + text[end:]
    path.write_text(text)
    ds = load_dataset(small_voc)
    sample = next(s for s in ds.samples if s.stem == "maksssksksss94")
    assert len(sample.detections) == 4  # 6 boxes, the zero-size one and the one wholly outside dropped
    assert sample.detections.xyxy[:, 0].min() == 0
    assert any("(-50, 10, 30, 40) lies outside" in p and "clipped" in p for p in ds.problems)
    assert any("zero size" in p and "dropped" in p for p in ds.problems)
    outside = [p for p in ds.problems if "9000" in p]  # said once, as what it is (not clipped, then zero size)
    assert len(outside) == 1 and "(9000, 10, 9040, 50) lies wholly outside" in outside[0] and "dropped" in outside[0]


def test_unknown_label_lists_known_ones_and_label_map_fixes_it(small_voc):
    path = small_voc / "annotations" / "maksssksksss94.xml"
    path.write_text(_xml(path).replace("<name>without_mask</name>", "<name>no-mask</name>"))
    classes = ["with_mask", "without_mask", "mask_weared_incorrect"]
    with pytest.raises(MaskwatchError) as err:
        load_dataset(small_voc, classes=classes)
    assert "no-mask" in str(err.value) and "with_mask" in str(err.value) and "--label-map" in str(err.value)
    ds = load_dataset(small_voc, classes=classes, label_map={"no-mask": "without_mask"})
    assert ds.class_counts()["without_mask"] > 0


def test_missing_image_is_reported_and_skipped(small_voc):
    (small_voc / "images" / "maksssksksss94.jpg").unlink()
    ds = load_dataset(small_voc)
    assert len(ds) == 5
    assert any("maksssksksss94" in p and "missing" in p for p in ds.problems)


def test_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "a.xml").write_text("<annotation><object>")
    with pytest.raises(MaskwatchError, match="no usable annotated images"):
        load_dataset(tmp_path, "voc")


def test_unknown_folder_layout_is_an_error_that_says_what_the_folder_holds(small_voc, tmp_path):
    with pytest.raises(MaskwatchError, match="found no VOC"):
        load_dataset(tmp_path)
    with pytest.raises(MaskwatchError, match=r"found no VOC.* \(6 image\(s\) but no annotations"):
        load_dataset(small_voc / "images")


def test_yolo_bad_lines_and_class_index(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    label = tmp_path / "y" / "labels" / "maksssksksss94.txt"
    lines = label.read_text().splitlines()
    label.write_text("\n".join(lines[:-2] + ["0 0.5 oops", "7 0.5 0.5 0.1 0.1"]) + "\n")
    ds = load_dataset(tmp_path / "y")
    assert len(next(s for s in ds.samples if s.stem == "maksssksksss94").detections) == len(lines) - 2
    assert any("maksssksksss94.txt:" in p and "expected 'class xc yc w h'" in p for p in ds.problems)
    assert any("class index 7" in p for p in ds.problems)


def test_yolo_images_without_a_label_file_are_read_as_pictures_without_faces_and_named(small_voc, tmp_path, caplog):
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    (tmp_path / "y" / "labels" / "maksssksksss94.txt").unlink()
    with caplog.at_level("WARNING"):
        ds = load_dataset(tmp_path / "y")
    assert len(next(s for s in ds.samples if s.stem == "maksssksksss94").detections) == 0
    assert "1 image(s) without a label file, read as pictures without faces" in caplog.text
    assert "maksssksksss94.jpg" in caplog.text


def test_yolo_polygons_score_columns_pixels_and_a_byte_order_mark(small_voc, tmp_path, caplog):
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    classes = tmp_path / "y" / "classes.txt"
    classes.write_text("\ufeff" + classes.read_text())  # Windows Notepad's byte-order mark
    label = tmp_path / "y" / "labels" / "maksssksksss94.txt"
    label.write_text("0 0.1 0.2 0.3 0.2 0.2 0.4\n"  # a segmentation polygon: its bounding box
                     "1 0.5 0.5 0.1 0.1 0.9\n"  # a prediction line: the box, the score ignored
                     "0 150 80 30 40\n"  # pixels, not fractions
                     "0 0.5 0.5 0.1\n")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(tmp_path / "y")
    assert ds.classes == ["with_mask", "without_mask", "mask_weared_incorrect"]
    sample = next(s for s in ds.samples if s.stem == "maksssksksss94")
    w, h = sample.width, sample.height
    assert sample.detections.xyxy[0] == pytest.approx([0.1 * w, 0.2 * h, 0.3 * w, 0.4 * h], abs=0.01)
    assert sample.detections.xyxy[1] == pytest.approx([0.45 * w, 0.45 * h, 0.55 * w, 0.55 * h], abs=0.01)
    assert len(sample.detections) == 2
    assert "1 segmentation polygon(s) read as their bounding boxes" in caplog.text
    assert "sixth number" in caplog.text and "predictions rather than labels" in caplog.text
    assert any("maksssksksss94.txt:3: coordinates above 1" in p and "not pixels" in p for p in ds.problems)
    assert any("maksssksksss94.txt:4: expected 'class xc yc w h'" in p for p in ds.problems)


def test_label_map_to_nothing_leaves_a_class_out_of_ground_truth_and_predictions(small_voc, tmp_path):
    from maskwatch.classes import parse_label_map
    from maskwatch.predictions import read_predictions

    path = small_voc / "annotations" / "maksssksksss94.xml"
    path.write_text(_xml(path).replace("<name>without_mask</name>", "<name>helmet</name>", 1))
    full = load_dataset(small_voc)
    assert "helmet" in full.classes
    dropped = load_dataset(small_voc, label_map=parse_label_map(["helmet="]))
    assert "helmet" not in dropped.classes and dropped.num_boxes == full.num_boxes - 1
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"image": "maksssksksss94.jpg", "width": 400, "height": 300, "detections": [
        {"bbox": [1, 1, 20, 20], "label": "helmet", "score": 0.9},
        {"bbox": [30, 30, 50, 50], "label": "with_mask", "score": 0.8}]}) + "\n")
    read = list(read_predictions(preds, dropped.classes, {"helmet": ""}))
    assert len(read[0].detections) == 1 and read[0].labels == ["with_mask"]
    with pytest.raises(MaskwatchError, match="OLD=NEW"):
        parse_label_map(["=with_mask"])
    misspelt = load_dataset(small_voc, label_map=parse_label_map(["Helmet="]))  # a key no label uses is said
    assert any("--label-map names 'Helmet', which no box" in p and "helmet" in p for p in misspelt.problems)


def test_two_images_of_one_name_without_suffix_stop_the_load_naming_both(small_voc):
    image = small_voc / "images" / "maksssksksss94.jpg"
    twin = small_voc / "images" / "maksssksksss94.png"
    twin.write_bytes(image.read_bytes())
    xml = small_voc / "annotations" / "maksssksksss94.xml"
    (small_voc / "annotations" / "twin.xml").write_text(
        _xml(xml).replace("<filename>maksssksksss94.jpg</filename>", "<filename>maksssksksss94.png</filename>"))
    with pytest.raises(MaskwatchError) as error:
        load_dataset(small_voc)
    assert "maksssksksss94.jpg and" in str(error.value) and "maksssksksss94.png" in str(error.value)
    assert "rename one" in str(error.value)


def test_yolo_without_class_names_says_what_is_needed(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    (tmp_path / "y" / "classes.txt").unlink()
    (tmp_path / "y" / "data.yaml").unlink()
    with pytest.raises(MaskwatchError, match="classes.txt, data.yaml or obj.names"):
        load_dataset(tmp_path / "y", "yolo")
    with pytest.raises(MaskwatchError, match=r"6 image\(s\) and .txt files: a YOLO set needs its class names"):
        load_dataset(tmp_path / "y")


def test_yolo_text_files_saved_as_utf16_are_read_and_one_in_no_text_encoding_is_named(small_voc, tmp_path):
    dataset = load_dataset(small_voc)
    save_dataset(dataset, tmp_path / "y", "yolo")
    (tmp_path / "y" / "data.yaml").unlink()
    for path in (tmp_path / "y" / "classes.txt", tmp_path / "y" / "labels" / "maksssksksss94.txt"):
        path.write_bytes(path.read_text().encode("utf-16"))  # Windows Notepad's "Unicode", with its mark
    loaded = load_dataset(tmp_path / "y")
    assert loaded.classes == dataset.classes and loaded.class_counts() == dataset.class_counts()
    broken = tmp_path / "y" / "labels" / "maksssksksss0.txt"
    broken.write_bytes(broken.read_bytes() + b"\xff\xfe\x00garbage\x81")
    loaded = load_dataset(tmp_path / "y")
    assert len(loaded) == len(dataset) - 1  # its boxes unknown: the image is left out, not taken as faceless
    assert any("maksssksksss0.txt: not a text file in UTF-8 or UTF-16" in p for p in loaded.problems)


def test_a_cvat_yolo_export_names_its_classes_in_obj_names(small_voc, tmp_path):
    """CVAT's "YOLO 1.1" (Darknet): obj.names, obj.data, train.txt and obj_train_data/ with each image's .txt."""
    dataset = load_dataset(small_voc)
    save_dataset(dataset, tmp_path / "y", "yolo")
    cvat = tmp_path / "cvat"
    (cvat / "obj_train_data").mkdir(parents=True)
    for folder in ("images", "labels"):
        for path in (tmp_path / "y" / folder).iterdir():
            path.rename(cvat / "obj_train_data" / path.name)
    (tmp_path / "y" / "classes.txt").rename(cvat / "obj.names")
    (cvat / "obj.data").write_text("classes = 3\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    (cvat / "train.txt").write_text("".join(f"data/obj_train_data/{s.image_path.name}\n" for s in dataset.samples))
    loaded = load_dataset(cvat)
    assert loaded.classes == dataset.classes and loaded.class_counts() == dataset.class_counts()


def test_coco_invalid_json_and_unknown_category(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    coco["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "c")
    assert ds.num_boxes == len(coco["annotations"]) - 1
    assert any("annotation 1" in p and "99" in p for p in ds.problems)
    path.write_text("{not json")
    with pytest.raises(MaskwatchError, match="annotations.json: not a valid COCO file"):
        load_dataset(tmp_path / "c")


def test_truncated_tfrecord_keeps_the_records_before_the_damage(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "t", "tfrecord")
    record = tmp_path / "t" / "data.tfrecord"
    data = record.read_bytes()
    record.write_bytes(data[: int(len(data) * 0.6)])
    ds = load_dataset(tmp_path / "t")
    assert 1 <= len(ds) < 6
    assert any("data.tfrecord" in p and "truncated" in p for p in ds.problems)


def test_a_damaged_tfrecord_record_is_named_by_its_checksum_and_the_others_kept(small_voc, tmp_path, caplog):
    import struct

    save_dataset(load_dataset(small_voc), tmp_path / "t", "tfrecord")
    record = tmp_path / "t" / "data.tfrecord"
    data = bytearray(record.read_bytes())
    second = 12 + struct.unpack("<Q", data[:8])[0] + 4  # record 1 starts after record 0's header, data and crc
    middle = second + 12 + struct.unpack("<Q", data[second:second + 8])[0] // 2
    data[middle:middle + 50] = bytes(b ^ 0xFF for b in data[middle:middle + 50])  # inside its picture
    record.write_bytes(bytes(data))
    ds = load_dataset(tmp_path / "t")
    assert len(ds) == 5
    assert any("data.tfrecord: record 1: its data does not match its checksum" in p for p in ds.problems)
    data[4] ^= 0xFF  # record 0's length: nothing after it can be found
    record.write_bytes(bytes(data))
    with pytest.raises(MaskwatchError, match="no usable annotated images"):
        load_dataset(tmp_path / "t")
    assert "corrupt or truncated TFRecord (ValueError: record 0's length does not match its checksum)" in caplog.text


def test_a_tfrecord_naming_classes_only_by_id_needs_its_label_map(small_voc, tmp_path):
    from tfrecord import TFRecordWriter

    from maskwatch.data.tfrecord import _example

    ds = load_dataset(small_voc)
    (tmp_path / "t").mkdir()
    writer = TFRecordWriter(str(tmp_path / "t" / "data.tfrecord"))
    for sample in ds.samples:  # ids only, as many TF OD API exports write them
        writer.write({k: v for k, v in _example(ds, sample).items() if k != "image/object/class/text"})
    writer.close()
    with pytest.raises(MaskwatchError, match="class ids \\(1 \\(\\d+ boxes\\).*no label_map.pbtxt"):
        load_dataset(tmp_path / "t")
    (tmp_path / "t" / "label_map.pbtxt").write_text("item {\n  id: 1\n  name: 'with_mask'\n}\n")
    partial = load_dataset(tmp_path / "t")  # ids the map does not name: skipped, said once
    assert partial.classes == ["with_mask"] and partial.num_boxes == ds.class_counts()["with_mask"]
    assert len([p for p in partial.problems if "does not name" in p]) == 1


def test_a_tfrecord_stating_another_size_than_its_image_keeps_its_boxes(small_voc, tmp_path):
    """Its boxes are fractions of the image: multiplied by a stale stated size they moved, or fell outside."""
    from tfrecord import TFRecordWriter

    from maskwatch.data.tfrecord import _example

    ds = load_dataset(small_voc)
    (tmp_path / "t").mkdir()
    writer = TFRecordWriter(str(tmp_path / "t" / "data.tfrecord"))
    for sample in ds.samples:
        example = _example(ds, sample)
        example["image/width"], example["image/height"] = (sample.width * 2, "int"), (sample.height * 2, "int")
        writer.write(example)
    writer.close()
    again = load_dataset(tmp_path / "t")
    assert again.num_boxes == ds.num_boxes and any("annotation says" in p for p in again.problems)
    for before, after in zip(ds.samples, again.samples):
        np.testing.assert_allclose(after.detections.xyxy, before.detections.xyxy, atol=0.01)


def test_a_class_list_from_the_file_keeps_its_order_and_orphan_labels_are_named(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc, label_map={"with_mask": "mask", "without_mask": "no_mask",
                                                     "mask_weared_incorrect": "incorrect"}), tmp_path / "y", "yolo")
    (tmp_path / "y" / "classes.txt").write_text("mask\nno_mask\nincorrect\n")
    (tmp_path / "y" / "data.yaml").unlink()
    assert load_dataset(tmp_path / "y").classes == ["mask", "no_mask", "incorrect"]  # not alphabetical
    (tmp_path / "y" / "images" / "maksssksksss94.jpg").unlink()
    ds = load_dataset(tmp_path / "y")
    assert any("1 label file(s) without an image" in p and "maksssksksss94.txt" in p for p in ds.problems)


def test_a_missing_voc_image_is_named_where_it_belongs(small_voc):
    (small_voc / "images" / "maksssksksss94.jpg").unlink()
    ds = load_dataset(small_voc)
    assert any(str(small_voc / "images" / "maksssksksss94") in p and "missing" in p for p in ds.problems)


def test_label_map_without_names_is_an_error(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "t", "tfrecord")
    (tmp_path / "t" / "label_map.pbtxt").write_text("item {\n  id: 1\n}\n")
    with pytest.raises(MaskwatchError, match="label_map.pbtxt: an item without id or name"):
        load_dataset(tmp_path / "t")


def test_a_label_map_from_id_0_or_disagreeing_with_the_records_texts_is_said(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "t", "tfrecord")  # ids 1, 2, 3 with their texts
    (tmp_path / "t" / "label_map.pbtxt").write_text("".join(
        f"item {{\n  id: {i}\n  name: '{name}'\n}}\n"
        for i, name in enumerate(["with_mask", "without_mask", "mask_weared_incorrect"])))  # off by one
    data = load_dataset(tmp_path / "t")
    assert any("id 0 names 'with_mask', but in the TF Object Detection API id 0 is the background" in p
               for p in data.problems)
    assert any("the boxes' class ids and texts disagree" in p and "id 1 with text 'with_mask', which the map calls "
               "'without_mask'" in p for p in data.problems)
    assert data.class_counts() == load_dataset(small_voc).class_counts()  # each box's text is used


def _set_first_box(path: Path, xmin: str, ymin: str = "10", xmax: str = "30", ymax: str = "40") -> None:
    text = path.read_text()
    start = text.index("<bndbox>")
    end = text.index("</bndbox>", start)
    path.write_text(text[:start] + f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
                    f"<ymax>{ymax}</ymax>" + text[end:])


def test_non_finite_coordinates_are_dropped_with_a_message_in_every_format(small_voc, tmp_path):
    boxes = load_dataset(small_voc).num_boxes
    _set_first_box(small_voc / "annotations" / "maksssksksss94.xml", "nan")
    _set_first_box(small_voc / "annotations" / "maksssksksss0.xml", "10", xmax="inf")
    voc = load_dataset(small_voc)
    assert voc.num_boxes == boxes - 2
    assert any("maksssksksss94.xml" in p and "not a finite number" in p for p in voc.problems)
    assert any("maksssksksss0.xml" in p and "not a finite number" in p for p in voc.problems)
    save_dataset(voc, tmp_path / "c", "coco")  # what is left converts
    coco_path = tmp_path / "c" / "annotations.json"
    coco = json.loads(coco_path.read_text())
    coco["annotations"][0]["bbox"][0] = float("nan")  # json writes NaN, and reads it back
    coco["images"][1]["width"] = "abc"
    coco["images"][2]["height"] = float("inf")
    coco_path.write_text(json.dumps(coco))
    read = load_dataset(tmp_path / "c")
    assert len(read) == len(voc) - 2 and any("not a finite number" in p for p in read.problems)
    assert sum("width and height must be whole numbers" in p for p in read.problems) == 2
    save_dataset(voc, tmp_path / "y", "yolo")
    label = tmp_path / "y" / "labels" / "maksssksksss94.txt"
    lines = label.read_text().splitlines()
    label.write_text("\n".join(["0 nan 0.5 0.1 0.1", "1 0.5 0.5 inf 0.1"] + lines[2:]) + "\n")
    yolo = load_dataset(tmp_path / "y")
    assert yolo.num_boxes == voc.num_boxes - 2
    assert sum("maksssksksss94.txt" in p and "not a finite number" in p for p in yolo.problems) == 2


@pytest.mark.parametrize("names", ["with_mask", "{0: with_mask, x: no_mask}", "[[a, b]]", "null"])
def test_a_yolo_data_yaml_without_a_usable_names_list_says_what_is_expected(small_voc, tmp_path, names):
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    (tmp_path / "y" / "classes.txt").unlink()
    (tmp_path / "y" / "data.yaml").write_text(f"names: {names}\n")
    with pytest.raises(MaskwatchError, match="data.yaml: 'names' must be a list of class names"):
        load_dataset(tmp_path / "y")
    (tmp_path / "y" / "data.yaml").write_text("- a list, not a mapping\n")
    with pytest.raises(MaskwatchError, match="data.yaml: 'names' must be"):
        load_dataset(tmp_path / "y")


def test_a_yolo_names_mapping_that_skips_an_index_is_refused_not_shifted(small_voc, tmp_path):
    """names {0, 1, 3} (a class deleted from the mapping): read as a list, index 2's lines became the third class."""
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    (tmp_path / "y" / "classes.txt").unlink()
    (tmp_path / "y" / "data.yaml").write_text("names: {0: with_mask, 1: without_mask, 3: mask_weared_incorrect}\n")
    with pytest.raises(MaskwatchError, match="numbers its classes 0, 1, 3, without 2: .*every index from 0"):
        load_dataset(tmp_path / "y")
    (tmp_path / "y" / "data.yaml").write_text("names: {2: mask_weared_incorrect, 0: with_mask, 1: without_mask}\n")
    assert load_dataset(tmp_path / "y").classes == ["with_mask", "without_mask", "mask_weared_incorrect"]


def test_spellings_of_another_tools_name_are_renamed_to_the_mask_class_it_means(small_voc):
    """'Mask' and 'mask' (neither a class of the project's): the hint renamed one to the other, and the next
    warning both to with_mask; now one hint, to with_mask."""
    for i, xml in enumerate(sorted((small_voc / "annotations").glob("*.xml"))):
        xml.write_text(xml.read_text().replace("<name>with_mask</name>", f"<name>{'mask' if i % 3 else 'Mask'}</name>"))
    warning = next(p for p in load_dataset(small_voc).problems if "differ only by case" in p)
    assert "--label-map Mask=with_mask --label-map mask=with_mask" in warning or \
        "--label-map mask=with_mask --label-map Mask=with_mask" in warning, warning


def test_labels_differing_only_in_spelling_are_named_with_their_files(small_voc):
    path = small_voc / "annotations" / "maksssksksss94.xml"
    path.write_text(path.read_text().replace("<name>with_mask</name>", "<name>With_Mask</name>", 1))
    ds = load_dataset(small_voc)  # learnt classes: the typo becomes a class, and is named
    assert "With_Mask" in ds.classes
    warning = next(p for p in ds.problems if "differ only by case" in p)
    assert "'With_Mask' in " in warning and "maksssksksss94.xml" in warning
    assert "--label-map With_Mask=with_mask" in warning
    with pytest.raises(MaskwatchError, match="unknown labels 'With_Mask' \\(1 box, first in .*maksssksksss94.xml\\); "
                       "known labels are with_mask"):
        load_dataset(small_voc, classes=["with_mask", "without_mask", "mask_weared_incorrect"])


def test_labels_that_are_not_mask_classes_are_named_with_the_renaming_their_names_suggest(small_voc, tmp_path):
    path = small_voc / "annotations" / "maksssksksss94.xml"
    path.write_text(path.read_text().replace("<name>with_mask</name>", "<name>nomask</name>", 1))
    ds = load_dataset(small_voc)  # a stray label among the mask classes: a class of its own, said
    warning = next(p for p in ds.problems if "not among maskwatch's classes" in p)
    assert "'nomask' is not among" in warning and "--label-map nomask=without_mask" in warning
    renamed = load_dataset(small_voc, label_map={"with_mask": "mask", "without_mask": "no_mask",
                                                 "mask_weared_incorrect": "incorrect", "nomask": "no_mask"})
    # A set of one's own names that say what they mean is no problem (read by meaning: README, Data formats) ...
    assert not [p for p in renamed.problems if "not among maskwatch's classes" in p]
    helmets = load_dataset(small_voc, label_map={"with_mask": "mask", "without_mask": "helmet", "nomask": "helmet",
                                                 "mask_weared_incorrect": "incorrect"})
    warning = next(p for p in helmets.problems if "not among maskwatch's classes" in p)  # ... one that says nothing is
    assert "'helmet', 'incorrect', 'mask' are not among" in warning
    for pair in ("mask=with_mask", "incorrect=mask_weared_incorrect"):
        assert f"--label-map {pair}" in warning
    save_dataset(renamed, tmp_path / "y", "yolo")  # another tool's names: evaluating mask predictions says how
    from maskwatch.evaluation.coco_metrics import coco_inputs
    from maskwatch.predictions import ImagePredictions

    shipped_like = []
    for sample in renamed.samples:
        detections = sample.detections[:]
        detections.data = {"class_name": np.array(["with_mask"] * len(detections))}
        shipped_like.append(ImagePredictions(sample.image_path.name, sample.width, sample.height, detections))
    with pytest.raises(MaskwatchError, match="rename them: --label-map") as refused:
        coco_inputs(load_dataset(tmp_path / "y"), shipped_like)
    for pair in ("mask=with_mask", "no_mask=without_mask", "incorrect=mask_weared_incorrect"):
        assert f"--label-map {pair}" in str(refused.value)


@pytest.mark.parametrize("label, meant", [("mask", "with_mask"), ("Mask On", "with_mask"), ("no_mask", "without_mask"),
                                          ("mask_off", "without_mask"), ("not_masked", "without_mask"),
                                          ("maskless", "without_mask"), ("NoMask", "without_mask"),
                                          ("incorrect", "mask_weared_incorrect"),
                                          ("mask_chin", "mask_weared_incorrect"),
                                          ("unknown", None), ("helmet", None)])
def test_the_suggested_renaming_reads_negations_and_suggests_nothing_for_other_names(label, meant):
    from maskwatch.classes import likely_mask_class

    assert likely_mask_class(label) == meant


def test_a_coco_category_that_is_its_own_supercategory_stays_a_class(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    for category in coco["categories"]:
        category["supercategory"] = category["name"]  # as some converters write it
    rare = next(c["id"] for c in coco["categories"] if c["name"] == "mask_weared_incorrect")
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != rare]  # no box of it here
    path.write_text(json.dumps(coco))
    assert load_dataset(tmp_path / "c").classes == ["with_mask", "without_mask", "mask_weared_incorrect"]


def test_a_typo_commoner_than_the_right_name_is_still_the_one_to_rename(small_voc):
    """The suggested --label-map renames toward the project's class name, however many files use the typo."""
    for xml in sorted((small_voc / "annotations").glob("*.xml"))[:4]:
        xml.write_text(xml.read_text().replace("<name>with_mask</name>", "<name>With Mask</name>", 1))
    ds = load_dataset(small_voc)
    warning = next(p for p in ds.problems if "differ only by case" in p)
    assert "--label-map 'With Mask=with_mask'" in warning and "=With Mask" not in warning


def test_unknown_labels_stop_the_load_with_one_message_not_one_per_box(small_voc, caplog):
    for xml in (small_voc / "annotations").glob("*.xml"):
        xml.write_text(xml.read_text().replace("<name>with_mask</name>", "<name>mask</name>"))
    with caplog.at_level(logging.WARNING), pytest.raises(MaskwatchError, match="unknown labels 'mask' \\(\\d+ boxes"):
        load_dataset(small_voc, classes=["with_mask", "without_mask", "mask_weared_incorrect"])
    assert not [r for r in caplog.records if "mask" in r.getMessage()]


def test_voc_image_paths_outside_the_data_set_are_not_followed(small_voc, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes((small_voc / "images" / "maksssksksss94.jpg").read_bytes())
    xml = small_voc / "annotations" / "maksssksksss0.xml"
    text = xml.read_text().replace("<filename>maksssksksss0.jpg</filename>", "<filename>secret.jpg</filename>")
    assert "secret.jpg" in text
    xml.write_text(text.replace("</annotation>", f"<path>{outside / 'secret.jpg'}</path></annotation>"))
    (small_voc / "images" / "maksssksksss0.jpg").unlink()
    ds = load_dataset(small_voc)
    assert "maksssksksss0" not in [s.stem for s in ds.samples] and "secret" not in [s.stem for s in ds.samples]
    assert any("secret.jpg" in p and "outside the data set" in p for p in ds.problems)
    allowed = load_dataset(small_voc, allow_outside_images=True)
    assert (outside / "secret.jpg") in [s.image_path for s in allowed.samples]
    # An image inside the data set wins over a <path> outside it (labelImg writes the annotator's own paths).
    (small_voc / "images" / "secret.jpg").write_bytes((outside / "secret.jpg").read_bytes())
    inside = load_dataset(small_voc)
    assert small_voc / "images" / "secret.jpg" in [s.image_path for s in inside.samples]


def test_coco_file_names_leading_out_of_the_data_set_are_not_followed(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    coco["images"][0]["file_name"] = "/etc/passwd"
    coco["images"][1]["file_name"] = "../../../../../../../etc/hostname"
    path.write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "c")
    assert len(ds) == 4 and sum("outside the data set" in p for p in ds.problems) == 2
    assert not any(str(s.image_path).startswith("/etc") for s in ds.samples)


def test_a_coco_folder_of_several_files_says_which_one_it_read(small_voc, tmp_path, caplog):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    folder = tmp_path / "c"
    (folder / "annotations").mkdir()
    for name in ("instances_train.json", "instances_val.json"):  # the COCO layout, without annotations.json
        (folder / "annotations" / name).write_text((folder / "annotations.json").read_text())
    (folder / "annotations.json").unlink()
    with caplog.at_level(logging.WARNING):
        load_dataset(folder)
    assert any("2 COCO files" in r.getMessage() and "reading annotations/instances_train.json only" in r.getMessage()
               for r in caplog.records)


def test_list_files_keep_dotted_names_and_labelimg_classes_txt_is_no_label_file(small_voc, tmp_path):
    from maskwatch.data.split import read_list

    listed = tmp_path / "val.txt"
    listed.write_text("a_jpg.rf.0123abcd\nimages/b.jpg\nc.PNG\nd\n")
    assert read_list(listed) == ["a_jpg.rf.0123abcd", "b", "c", "d"]
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    (tmp_path / "y" / "labels" / "classes.txt").write_text((tmp_path / "y" / "classes.txt").read_text())  # labelImg
    assert not [p for p in load_dataset(tmp_path / "y").problems if "without an image" in p]


def test_a_tfrecord_with_its_label_map_takes_label_map_renames(small_voc, tmp_path):
    """The label map's names are the file's class list, as COCO's categories are: --label-map renames them too
    (they were a fixed list before, and the renamed label stopped the load as unknown)."""
    original = load_dataset(small_voc)
    save_dataset(original, tmp_path / "t", "tfrecord")  # writes label_map.pbtxt naming the three classes
    ds = load_dataset(tmp_path / "t", label_map={"with_mask": "mask"})
    assert ds.classes == ["mask", "without_mask", "mask_weared_incorrect"]  # the map's order
    assert ds.class_counts()["mask"] == original.class_counts()["with_mask"]


def test_an_image_whose_suffix_differs_in_case_from_its_xml_is_found(small_voc):
    image = small_voc / "images" / "maksssksksss94.jpg"
    image.rename(image.with_suffix(".JPG"))  # as cameras name them; the XML still says .jpg
    ds = load_dataset(small_voc)
    assert "maksssksksss94.JPG" in {s.image_path.name for s in ds.samples} and not ds.problems


def test_coco_layout_of_coco_itself_and_what_is_wrong_with_an_annotation(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    coco = json.loads((tmp_path / "c" / "annotations.json").read_text())
    (tmp_path / "c" / "images").rename(tmp_path / "c" / "val2017")  # COCO's own layout
    (tmp_path / "c" / "annotations").mkdir()
    first = coco["annotations"][0]
    coco["annotations"] += [{**first, "id": 901, "bbox": [], "segmentation": [[1, 1, 5, 1, 5, 5]]},
                            {**first, "id": 902, "category_id": 77},
                            {**first, "id": 903, "bbox": [50, 50, -10, 20]}]
    (tmp_path / "c" / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    (tmp_path / "c" / "annotations.json").unlink()
    ds = load_dataset(tmp_path / "c")
    assert len(ds) == 6
    assert any("annotation 901: it has no bbox (a segmentation-only" in p for p in ds.problems)
    assert any("annotation 902: its category_id 77 is not among" in p for p in ds.problems)
    assert any("(50, 50, 40, 70) is inverted" in p for p in ds.problems)
    (tmp_path / "c" / "val2017").rename(tmp_path / "c" / "elsewhere")
    with pytest.raises(MaskwatchError, match="none of its 6 images"):
        load_dataset(tmp_path / "c")


def test_a_conversion_that_fails_half_way_leaves_no_half_written_folder(small_voc, tmp_path, monkeypatch):
    import maskwatch.data.formats as formats

    def failing(dataset, out_dir, images, split):
        (out_dir / "images").mkdir(parents=True)
        (out_dir / "images" / "a.jpg").write_bytes(b"x")
        raise MaskwatchError("disk full")

    monkeypatch.setattr(formats, "write_yolo", failing)
    dataset = load_dataset(small_voc)
    with pytest.raises(MaskwatchError, match="disk full"):
        save_dataset(dataset, tmp_path / "new", "yolo")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskwatchError, match="disk full"):
        save_dataset(dataset, tmp_path / "empty", "yolo")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_an_empty_image_and_a_stale_annotated_size_are_named_at_load(small_voc):
    (small_voc / "images" / "maksssksksss94.jpg").write_bytes(b"")
    xml = small_voc / "annotations" / "maksssksksss0.xml"
    text = _xml(xml)
    width = text[text.index("<width>") + 7:text.index("</width>")]
    xml.write_text(text.replace(f"<width>{width}</width>", f"<width>{int(width) // 2}</width>"))
    ds = load_dataset(small_voc)
    assert "maksssksksss94" not in {s.stem for s in ds.samples}
    assert any("maksssksksss94.jpg: empty file" in p and "skipped" in p for p in ds.problems)
    assert any(f"annotation says {int(width) // 2}x" in p and f"maksssksksss0.jpg is {width}x" in p
               for p in ds.problems), ds.problems
    sample = ds.samples[[s.stem for s in ds.samples].index("maksssksksss0")]
    assert sample.width == int(width)  # the image as it is: YOLO's fractions of it give the same boxes back
    save_dataset(ds, small_voc.parent / "yolo", "yolo")
    again = load_dataset(small_voc.parent / "yolo")
    back = again.samples[[s.stem for s in again.samples].index("maksssksksss0")]
    np.testing.assert_allclose(back.detections.xyxy, sample.detections.xyxy, atol=0.01)


def test_an_image_annotated_twice_and_unnamed_records_of_two_tfrecords(small_voc, tmp_path):
    xml = small_voc / "annotations" / "maksssksksss94.xml"
    (small_voc / "annotations" / "copy.xml").write_text(_xml(xml))  # names the same image
    with pytest.raises(MaskwatchError, match="1 image.s. annotated twice.*maksssksksss94.jpg") as refused:
        load_dataset(small_voc)
    assert "copy.xml" in str(refused.value) and "maksssksksss94.xml" in str(refused.value)  # both files named
    (small_voc / "annotations" / "copy.xml").unlink()
    from maskwatch.data.tfrecord import write_tfrecord
    from maskwatch.data.split import split_dataset

    dataset = load_dataset(small_voc)
    write_tfrecord(dataset, tmp_path / "tf", split_dataset(dataset, 0.34, seed=3))
    records = tmp_path / "tf"
    for record in records.glob("*.tfrecord"):  # records without image/filename, as some exporters write them
        from tfrecord.reader import tfrecord_loader
        from tfrecord.writer import TFRecordWriter

        examples = list(tfrecord_loader(str(record), None))
        writer = TFRecordWriter(str(record))
        for example in examples:
            writer.write({k: (v.tobytes() if hasattr(v, "tobytes") and k.startswith("image/encoded") else v, t)
                          for k, (v, t) in _typed(example).items() if k not in ("image/filename", "image/source_id")})
        writer.close()
    (records / "all.tfrecord").unlink(missing_ok=True)
    loaded = load_dataset(records)
    assert len(loaded) == len(dataset)


def _typed(example: dict) -> dict:
    """A record read back, with the feature types the writer needs."""
    typed = {}
    for key, value in example.items():
        if key in ("image/encoded", "image/format", "image/object/class/text"):
            kind = "byte"
        elif key.startswith("image/object/bbox") :
            kind = "float"
        else:
            kind = "int"
        typed[key] = (value, kind)
    return typed


def test_a_coco_annotation_that_is_not_an_object_is_named(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    coco["annotations"].append([1, 2, 3])
    path.write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "c")
    assert any(f"annotation {len(coco['annotations']) - 1}: it has no bbox" in p for p in ds.problems)


def test_voc_annotations_in_subfolders_find_their_images_in_the_same_subfolders(small_voc, tmp_path):
    nested = tmp_path / "cams"
    for n, xml in enumerate(sorted((small_voc / "annotations").glob("*.xml"))):
        folder = f"cam {n % 2}/day1"
        (nested / "annotations" / folder).mkdir(parents=True, exist_ok=True)
        (nested / "images" / folder).mkdir(parents=True, exist_ok=True)
        xml.rename(nested / "annotations" / folder / xml.name)
        image = small_voc / "images" / f"{xml.stem}.jpg"
        image.rename(nested / "images" / folder / image.name)
    ds = load_dataset(nested)
    assert len(ds) == 6 and not ds.problems


def test_the_pascal_voc_layout_of_annotations_and_jpegimages_is_read(small_voc):
    (small_voc / "annotations").rename(small_voc / "Annotations")
    (small_voc / "images").rename(small_voc / "JPEGImages")
    ds = load_dataset(small_voc)
    assert len(ds) == 6 and not ds.problems


def test_voc_images_that_no_xml_names_are_said(small_voc):
    (small_voc / "annotations" / "maksssksksss94.xml").unlink()
    ds = load_dataset(small_voc)
    assert len(ds) == 5
    assert any("1 image(s) that no annotation file names are left out (maksssksksss94.jpg)" in p for p in ds.problems)


def test_a_thousand_bad_lines_log_twenty_and_a_count(small_voc, tmp_path, caplog):
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    (tmp_path / "y" / "labels" / "maksssksksss94.txt").write_text("0 0.5 oops\n" * 1000)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(tmp_path / "y")
    assert len(ds.problems) == 1000
    assert caplog.text.count("expected 'class xc yc w h'") == 20 and "980 more problems, not all like those above" in caplog.text


def test_nested_annotations_with_all_images_in_one_folder_and_a_skipped_xml_is_not_unannotated(small_voc, tmp_path):
    (small_voc / "annotations" / "cam A").mkdir()
    for xml in sorted((small_voc / "annotations").glob("*.xml"))[:3]:
        xml.rename(small_voc / "annotations" / "cam A" / xml.name)  # images stay in images/
    bad = small_voc / "annotations" / "maksssksksss94.xml"
    bad.write_text(_xml(bad).replace("<xmin>", "<xmin>1,", 1))  # malformed: skipped, said as such
    ds = load_dataset(small_voc)
    assert len(ds) == 5
    assert any("maksssksksss94.xml: malformed numbers" in p for p in ds.problems)
    assert not any("no annotation file names" in p for p in ds.problems), ds.problems


def test_coco_file_names_that_are_another_machines_paths_are_found_by_their_file_name(small_voc, tmp_path, caplog):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    for i, image in enumerate(coco["images"]):  # written on a Linux box and a Windows one
        image["file_name"] = f"/home/me/masks/images/{image['file_name']}" if i % 2 else \
            f"C:\\data\\masks\\{image['file_name']}"
    path.write_text(json.dumps(coco))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(tmp_path / "c")
    assert len(ds) == 6 and ds.num_boxes == load_dataset(small_voc).num_boxes
    assert "6 file_name(s) are paths elsewhere" in caplog.text


def test_a_missing_coco_image_is_named_where_its_file_name_leads(small_voc, tmp_path):
    """file_name images/x.jpg, read from the file's folder: a missing one was named as images/images/x.jpg."""
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    for image in coco["images"]:
        image["file_name"] = f"images/{image['file_name']}"
    path.write_text(json.dumps(coco))
    (tmp_path / "c" / "images" / "maksssksksss94.jpg").unlink()
    problems = load_dataset(tmp_path / "c").problems
    assert any(f"{tmp_path / 'c' / 'images' / 'maksssksksss94.jpg'} is missing" in p for p in problems), problems


def test_a_file_name_decomposed_on_disk_matches_its_composed_spelling_in_the_xml(small_voc, tmp_path, caplog):
    """macOS stores "é" as e + a combining accent (NFD); labelImg and most tools write it composed (NFC)."""
    import unicodedata

    composed = "Caf\u00e9 45"
    xml = small_voc / "annotations" / "maksssksksss94.xml"
    text = xml.read_text().replace("maksssksksss94", composed)
    xml.unlink()
    (small_voc / "annotations" / f"{composed}.xml").write_text(text)
    (small_voc / "images" / "maksssksksss94.jpg").rename(small_voc / "images" /
                                                        f"{unicodedata.normalize('NFD', composed)}.jpg")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(small_voc)
    assert len(ds) == 6 and "missing" not in caplog.text and "left out" not in caplog.text


def test_a_voc_image_beside_the_one_its_xml_names_under_the_same_name_is_said(small_voc, caplog):
    """x.png beside the x.jpg that x.xml names was left out without a word (detect then read both, and evaluate
    scored both lines against x.jpg's boxes)."""
    photo = sorted((small_voc / "images").glob("*.jpg"))[0]
    shutil.copy(photo, photo.with_suffix(".png"))
    with caplog.at_level("WARNING"):
        data = load_dataset(small_voc)
    assert {s.image_path.suffix for s in data.samples} == {".jpg"}
    assert f"1 image(s) left out that share a name with the image their annotation file names ({photo.stem}.png " \
           f"beside {photo.name})" in caplog.text


def test_images_with_damaged_pixel_data_are_named_and_left_out_by_data_stats_and_convert(small_voc, tmp_path):
    """A load reads headers only: a JPEG cut short was counted by `data stats` and copied by `convert`."""
    from typer.testing import CliRunner

    from maskwatch.cli import app

    photo = sorted((small_voc / "images").glob("*.jpg"))[0]
    photo.write_bytes(photo.read_bytes()[:3000])
    whole = load_dataset(small_voc)
    assert photo.stem in {s.stem for s in whole.samples}  # (its header is fine)
    checked = whole.without_damaged_images()
    assert {s.stem for s in checked.samples} == {s.stem for s in whole.samples} - {photo.stem}
    assert any(f"{photo}: its pixel data is damaged (image file is truncated" in p for p in checked.problems)
    stats = CliRunner().invoke(app, ["data", "stats", str(small_voc), "--problems", str(tmp_path / "p.txt"),
                                     "--plot", str(tmp_path / "s.png")])
    assert stats.exit_code == 0 and f"{len(checked)} images" in stats.output
    assert "its pixel data is damaged" in (tmp_path / "p.txt").read_text()
    converted = CliRunner().invoke(app, ["convert", str(small_voc), str(tmp_path / "yolo"), "--to", "yolo"])
    assert converted.exit_code == 0 and f"wrote {len(checked)} images" in converted.output


def test_a_split_list_naming_an_image_whose_annotation_was_skipped_goes_on_without_it(small_voc, tmp_path, caplog):
    """A broken XML leaves its image out at load: a val list naming that image is not 'another data set's list'."""
    from maskwatch.data.split import listed_names

    (small_voc / "annotations" / "maksssksksss94.xml").write_text("<annotation><object>")
    val = tmp_path / "val.txt"
    val.write_text("maksssksksss94\nmaksssksksss5\nmaksssksksss139\n")
    dataset = load_dataset(small_voc)
    with caplog.at_level("WARNING"):
        assert listed_names(dataset, val) == ["maksssksksss5", "maksssksksss139"]
    assert "1 of its names are images left out as the data set was read (maksssksksss94" in caplog.text
    val.write_text("maksssksksss94\n")  # nothing left: refused, not 0 images scored or validated on
    with pytest.raises(MaskwatchError, match="every one of its 1 names is an image left out"):
        listed_names(dataset, val)
    val.write_text("maksssksksss94\nmaksssksksss5\nnot_here\n")  # a name no problem explains still stops it
    with pytest.raises(MaskwatchError, match="1 of its 3 names are not images of the data set \\(not_here\\)"):
        listed_names(dataset, val)


def test_a_coco_file_whose_images_or_categories_share_an_id_is_refused(small_voc, tmp_path):
    """Two exports merged by hand (each counting from 1): the boxes of one image landed on another, images
    vanished, a category renamed every box of another, all unsaid."""
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    merged = {**coco, "images": coco["images"] + [{**coco["images"][0], "file_name": "other.jpg"}]}
    path.write_text(json.dumps(merged))
    with pytest.raises(MaskwatchError, match=r"1 image id\(s\) are used more than once \(id 1: .*, other.jpg\)"):
        load_dataset(tmp_path / "c")
    helmet = {**coco, "categories": coco["categories"] + [{"id": coco["categories"][0]["id"], "name": "helmet"}]}
    path.write_text(json.dumps(helmet))
    with pytest.raises(MaskwatchError, match=r"1 category id\(s\) are used more than once .*helmet"):
        load_dataset(tmp_path / "c")


def test_a_coco_file_name_written_on_windows_as_a_relative_path_is_found(small_voc, tmp_path):
    save_dataset(load_dataset(small_voc), tmp_path / "c", "coco")
    path = tmp_path / "c" / "annotations.json"
    coco = json.loads(path.read_text())
    (tmp_path / "c" / "images" / "sub").mkdir()
    for image in coco["images"]:
        (tmp_path / "c" / "images" / image["file_name"]).rename(tmp_path / "c" / "images" / "sub" / image["file_name"])
        image["file_name"] = f"sub\\{image['file_name']}"
    path.write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "c")
    assert len(ds) == 6 and ds.num_boxes == load_dataset(small_voc).num_boxes and not ds.problems


def test_a_yolo_set_whose_data_yaml_and_classes_txt_disagree_says_which_is_read(small_voc, tmp_path, caplog):
    """maskwatch writes both: an edit to classes.txt changed nothing, unsaid."""
    save_dataset(load_dataset(small_voc), tmp_path / "y", "yolo")
    with caplog.at_level(logging.WARNING):
        load_dataset(tmp_path / "y")
    assert "classes.txt" not in caplog.text  # (as written: the same)
    (tmp_path / "y" / "classes.txt").write_text("mask\nno_mask\nincorrect\n")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(tmp_path / "y")
    assert ds.classes == ["with_mask", "without_mask", "mask_weared_incorrect"]
    assert "but classes.txt mask, no_mask, incorrect; data.yaml's are used" in caplog.text
