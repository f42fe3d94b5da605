"""Evaluation against hand-checked cases."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from maskwatch.data import load_dataset
from maskwatch.errors import MaskwatchError
from maskwatch.evaluation import evaluate_coco, write_report
from maskwatch.predictions import ImagePredictions, detections_from_labels, read_predictions, write_predictions


def gt_as_predictions(ds, shift=0.0, relabel=None):
    preds = []
    for sample in ds.samples:
        labels = ds.labels_of(sample)
        if relabel:
            labels = [relabel(sample.stem, i, label) for i, label in enumerate(labels)]
        xyxy = sample.detections.xyxy + shift
        preds.append(ImagePredictions(sample.image_path.name, sample.width, sample.height,
                                      detections_from_labels(xyxy, labels, np.full(len(labels), 0.9), ds.classes)))
    return preds


@pytest.fixture(scope="module")
def small(data_dir):
    return load_dataset(data_dir).subset([f"maksssksksss{i}" for i in range(40)])


def test_ground_truth_as_predictions_scores_one(small):
    result = evaluate_coco(small, gt_as_predictions(small))
    assert result.summary["mAP"] == pytest.approx(1.0)
    assert result.summary["mAP50"] == pytest.approx(1.0)
    assert all(v["AP"] == pytest.approx(1.0) for v in result.per_class.values())


def test_two_class_ground_truth_scores_three_class_predictions_under_2class(small, data_dir):
    """A set labelled mask / no_mask (the 2class scheme's own names) is scored with the model's three classes."""
    two = load_dataset(data_dir, label_map={"with_mask": "mask", "without_mask": "no_mask",
                                            "mask_weared_incorrect": "no_mask"})
    two = two.subset([s.stem for s in small.samples])
    result = evaluate_coco(two, gt_as_predictions(small), scheme="2class")
    assert result.classes == ["mask", "no_mask"] and result.summary["mAP"] == pytest.approx(1.0)
    with pytest.raises(MaskwatchError) as refused:  # (the 3class default names the way out, first: an evaluate trial
        evaluate_coco(two, gt_as_predictions(small))  # renamed no_mask to without_mask, as suggested first: 0.78)
    hint = str(refused.value).split("is not one of the ground truth's classes ['mask', 'no_mask']", 1)[1]
    assert hint.startswith("; the ground truth has no class for a mask worn wrongly, so score mask against no mask: "
                           "--scheme 2class (or, if"), hint
    with pytest.raises(MaskwatchError, match=r"2class needs classes that say whether a mask is worn .* \['helmet'\]"):
        evaluate_coco(load_dataset(data_dir, label_map={"with_mask": "helmet"}).subset(["maksssksksss0"]),
                      gt_as_predictions(small), scheme="2class")


def test_2class_reads_another_tools_class_names_by_what_they_say_and_says_so(small, data_dir, caplog,
                                                                                 tmp_path):
    names = {"with_mask": "Mask", "without_mask": "face_nomask", "mask_weared_incorrect": "incorrect"}
    theirs = load_dataset(data_dir, label_map=names).subset([s.stem for s in small.samples])
    with caplog.at_level("WARNING"):
        result = evaluate_coco(theirs, gt_as_predictions(small), scheme="2class")  # (the model's own three names)
    assert result.classes == ["mask", "no_mask"] and result.summary["mAP"] == pytest.approx(1.0)
    assert "the ground truth's 'Mask' as mask, 'face_nomask' as no_mask, 'incorrect' as no_mask" in caplog.text
    own = gt_as_predictions(small, relabel=lambda stem, i, label: names[label])  # (a model of those names)
    with caplog.at_level("WARNING"):
        assert evaluate_coco(theirs, own, scheme="2class").summary["mAP"] == pytest.approx(1.0)
    assert "the predictions' 'Mask' as mask, 'face_nomask' as no_mask, 'incorrect' as no_mask" in caplog.text
    report = write_report(theirs, own, tmp_path / "r", scheme="2class")  # (said as it scored: recorded too)
    assert any("the predictions' 'Mask' as mask" in w for w in report["warnings"]), report["warnings"]


def test_predictions_of_a_model_of_other_class_names_are_told_how_to_match_the_ground_truth(small, data_dir):
    """A model trained on face_mask / face_nomask / chin, scored on a set labelled mask / no_mask / incorrect: the
    way out renames the predictions' labels to the ground truth's class of the same meaning."""
    names = {"with_mask": "mask", "without_mask": "no_mask", "mask_weared_incorrect": "incorrect"}
    gt = load_dataset(data_dir, label_map=names).subset([s.stem for s in small.samples])
    own = {"with_mask": "face_mask", "without_mask": "face_nomask", "mask_weared_incorrect": "chin"}
    predictions = gt_as_predictions(small, relabel=lambda stem, i, label: own[label])
    with pytest.raises(MaskwatchError) as refused:
        evaluate_coco(gt, predictions)
    assert ("rename the predictions' labels: --label-map chin=incorrect --label-map face_mask=mask --label-map "
            "face_nomask=no_mask" in str(refused.value))
    chinese = {"with_mask": "口罩", "without_mask": "no mask", "mask_weared_incorrect": "戴错"}  # (said nothing of)
    with pytest.raises(MaskwatchError) as refused:
        evaluate_coco(gt, gt_as_predictions(small, relabel=lambda stem, i, label: chinese[label]))
    assert ("rename the predictions' labels to the ground truth's: --label-map 'no mask=no_mask' --label-map "
            "'口罩=CLASS' --label-map '戴错=CLASS' (CLASS one of incorrect, mask, no_mask" in str(refused.value))
    renamed = gt_as_predictions(small, relabel=lambda stem, i, label: names[label])  # (what the renaming does)
    assert evaluate_coco(gt, renamed).summary["mAP"] == pytest.approx(1.0)


def test_boxes_shifted_off_score_about_zero(small):
    result = evaluate_coco(small, gt_as_predictions(small, shift=60.0))
    assert result.summary["mAP50"] < 0.02


def test_one_wrong_label_lowers_exactly_that_class(small):
    target = next(s for s in small.samples if "without_mask" in small.labels_of(s))
    index = small.labels_of(target).index("without_mask")

    def relabel(stem, i, label):
        return "with_mask" if (stem == target.stem and i == index) else label

    result = evaluate_coco(small, gt_as_predictions(small, relabel=relabel))
    assert result.per_class["without_mask"]["AP"] < 1.0
    assert result.per_class["mask_weared_incorrect"]["AP"] == pytest.approx(1.0)
    assert result.per_class["with_mask"]["AP"] < 1.0  # one false positive at the same score


def test_two_class_view_merges_wrong_masks_with_no_masks(small):
    def relabel(stem, i, label):  # confusing the two "no protection" classes costs nothing in 2class
        return {"without_mask": "mask_weared_incorrect", "mask_weared_incorrect": "without_mask"}.get(label, label)

    preds = gt_as_predictions(small, relabel=relabel)
    assert evaluate_coco(small, preds, "2class").summary["mAP"] == pytest.approx(1.0)
    assert evaluate_coco(small, preds, "3class").summary["mAP"] < 0.9


def test_faster_coco_eval_agrees_with_pycocotools_and_report_has_plots(small, tmp_path):
    rng = np.random.default_rng(0)
    preds = gt_as_predictions(small, shift=0.0)
    for p in preds:  # noisy boxes and scores so the numbers are not trivial
        p.detections.xyxy = p.detections.xyxy + rng.normal(0, 2.0, p.detections.xyxy.shape).astype(np.float32)
        p.detections.confidence = rng.uniform(0.1, 1.0, len(p.detections)).astype(np.float32)
    path = tmp_path / "preds.jsonl"
    write_predictions(preds, path)
    reread = list(read_predictions(path, small.classes))
    report = write_report(small, reread, tmp_path / "eval", "3class", score_threshold=0.5, cross_check=True)
    assert 0.2 < report["summary"]["mAP"] < 0.95
    assert report["max_difference_vs_pycocotools"] < 1e-3
    for name in ("confusion_matrix.png", "pr_with_mask.png", "pr_without_mask.png", "pr_mask_weared_incorrect.png",
                 "report.json"):
        assert (tmp_path / "eval" / name).stat().st_size > 1000, name
    matrix = np.array(json.loads((tmp_path / "eval" / "report.json").read_text())["confusion_matrix"]["matrix"])
    assert matrix.shape == (4, 4) and matrix[:3, :3].trace() > 0
    (tmp_path / "eval" / "pr_mine.png").write_bytes(b"a user's file")  # not a report's: left alone
    write_report(small, reread, tmp_path / "eval", "face")  # another scheme in the same folder
    assert sorted(p.name for p in (tmp_path / "eval").glob("pr_*.png")) == ["pr_face.png", "pr_mine.png"]


def test_predictions_that_would_skew_the_numbers_are_each_said(small):
    from dataclasses import replace

    from maskwatch.evaluation.report import prediction_problems

    preds = gt_as_predictions(small)
    assert prediction_problems(small, preds) == []
    first = preds[0]
    stranger = replace(first, image="not_annotated.jpg")
    resized = replace(preds[1], width=preds[1].width * 2, height=preds[1].height * 2)
    problems = prediction_problems(small, [*preds[2:], first, first, stranger, resized])
    assert any(f"1 image(s) have more than one line ({first.image.rsplit('.', 1)[0]})" in p for p in problems)
    assert any("1 prediction line(s) were made on a picture of another size" in p for p in problems)
    assert any("1 line(s) name images that are not in the ground truth (not_annotated.jpg)" in p for p in problems)
    helmet = small.with_classes([*small.classes, "helmet"])
    helmet.samples[0].detections.class_id[0] = 3
    assert any("'helmet' (1 box(es)) are never predicted" in p and "not a mask class" in p
               for p in prediction_problems(helmet, preds))
    no_wrong = [replace(p, detections=p.detections[p.detections.data["class_name"] != "mask_weared_incorrect"])
                for p in preds]
    assert any("'mask_weared_incorrect'" in p and "not a mask class" not in p
               for p in prediction_problems(small, no_wrong))  # never predicted: said, without a rename to offer
    assert prediction_problems(small, no_wrong, "2class") == []  # folded into no_mask, which is predicted
    assert prediction_problems(small, no_wrong, "face") == []


def test_batch_results_are_predictions_and_other_files_say_what_is_expected(small, tmp_path):
    from maskwatch.classes import MASK_CLASSES

    batch_out = tmp_path / "batch"
    batch_out.mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from maskwatch.predictions import row_schema

    rows = []
    for p in gt_as_predictions(small):
        record = p.to_record()
        rows.append({"path": f"/photos/{record['image']}", "width": record["width"], "height": record["height"],
                     "detections": json.dumps(record["detections"]), "faces": 0, "with_mask": 0, "without_mask": 0,
                     "mask_weared_incorrect": 0, "error": None})
    rows.append({**rows[0], "path": "/photos/broken.jpg", "detections": "[]", "error": "not a readable image"})
    pq.write_table(pa.Table.from_pylist(rows, schema=row_schema()), batch_out / "part-0.parquet")
    (batch_out / "_batch.json").write_text("{}")
    preds = list(read_predictions(batch_out, MASK_CLASSES))
    assert len(preds) == len(small)  # the error row is an image without predictions
    assert evaluate_coco(small, preds).summary["mAP"] == pytest.approx(1.0)
    (tmp_path / "coco.json").write_text('[\n  {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}\n]\n')
    with pytest.raises(MaskwatchError, match="a JSON array \\(a COCO results list\\?\\)"):
        list(read_predictions(tmp_path / "coco.json", MASK_CLASSES))
    (tmp_path / "preds.jsonl").write_bytes((batch_out / "part-0.parquet").read_bytes())
    with pytest.raises(MaskwatchError, match="not a text file; expected JSON Lines"):
        list(read_predictions(tmp_path / "preds.jsonl", MASK_CLASSES))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskwatchError, match="no predictions file or `maskwatch batch` results"):
        list(read_predictions(tmp_path / "empty", MASK_CLASSES))


def test_a_predictions_file_cut_short_scores_its_whole_lines_and_says_the_broken_one(small, tmp_path, caplog):
    from maskwatch.classes import MASK_CLASSES

    path = tmp_path / "cut.jsonl"
    write_predictions(gt_as_predictions(small), path)
    text = path.read_text()
    path.write_text(text[:-30])  # the last line cut (a copy or a disk that gave out)
    preds = list(read_predictions(path, MASK_CLASSES))
    assert len(preds) == len(small) - 1
    assert f"cut.jsonl:{len(small)}: not valid JSON" in caplog.text
    assert "counts as one without predictions" in caplog.text
    path.write_text("Traceback (most recent call last):\n" + text)  # line 1: not a predictions file at all
    with pytest.raises(MaskwatchError, match="cut.jsonl:1: not valid JSON .*expected JSON Lines"):
        list(read_predictions(path, MASK_CLASSES))


def test_the_label_map_renames_prediction_labels_too(small, tmp_path):
    renamed = [ImagePredictions(p.image, p.width, p.height, detections_from_labels(
        p.detections.xyxy, [label.title() for label in p.labels], p.detections.confidence, small.classes))
        for p in gt_as_predictions(small)]
    write_predictions(renamed, tmp_path / "preds.jsonl")
    mapping = {name.title(): name for name in small.classes}
    preds = list(read_predictions(tmp_path / "preds.jsonl", small.classes, mapping))
    assert evaluate_coco(small, preds).summary["mAP"] == pytest.approx(1.0)
    with pytest.raises(MaskwatchError, match="prediction label .W"):
        evaluate_coco(small, list(read_predictions(tmp_path / "preds.jsonl", small.classes)))


def test_write_report_from_python_warns_as_the_cli_does(small, tmp_path, caplog):
    import matplotlib

    five = gt_as_predictions(small)[:5]
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # a notebook's inline backend, say: the report must not switch it to Agg (it did)
    try:
        with caplog.at_level("WARNING"):
            report = write_report(small, five, str(tmp_path / "report"))  # a str folder is fine
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 10_000
    assert any(f"{len(small) - 5} of {len(small)} image(s) have no predictions" in w for w in report["warnings"])
    assert "have no predictions" in caplog.text
    assert write_report(small.subset([p.image for p in five]), five, tmp_path / "r2")["warnings"] == []


def test_prediction_lines_find_their_images_by_the_rule_split_lists_use(small):
    from maskwatch.predictions import stem_in

    stems = {"a", "a_jpg.rf.0123abcd", "b", "d"}
    names = ("a.jpg", "C:\\photos\\a.jpg", "x/a_jpg.rf.0123abcd.jpg", "a_jpg.rf.0123abcd", "a.PNG", "a.gif",
             "photos/b.jfif", "photos/d.mpo", "c.jpg")
    assert [stem_in(name, stems) for name in names] == ["a", "a", "a_jpg.rf.0123abcd", "a_jpg.rf.0123abcd", "a", "a",
                                                        "b", "d", "c"]


def test_a_line_naming_a_roboflow_stem_or_a_jfif_file_scores_its_image(small, tmp_path):
    import shutil

    from maskwatch.data import load_dataset, save_dataset

    voc = tmp_path / "voc"
    save_dataset(small.subset(["maksssksksss0", "maksssksksss1"]), voc, "voc", "copy")
    (voc / "images" / "maksssksksss0.jpg").rename(voc / "images" / "a_jpg.rf.0123abcd.jpg")
    (voc / "annotations" / "maksssksksss0.xml").rename(voc / "annotations" / "a_jpg.rf.0123abcd.xml")
    shutil.move(voc / "images" / "maksssksksss1.jpg", voc / "images" / "b.jfif")
    (voc / "annotations" / "maksssksksss1.xml").rename(voc / "annotations" / "b.xml")
    for xml, image in (("a_jpg.rf.0123abcd.xml", "a_jpg.rf.0123abcd.jpg"), ("b.xml", "b.jfif")):
        path = voc / "annotations" / xml
        text = path.read_text()
        start, end = text.index("<filename>") + 10, text.index("</filename>")
        path.write_text(text[:start] + image + text[end:])
    gt = load_dataset(voc)
    assert sorted(s.stem for s in gt.samples) == ["a_jpg.rf.0123abcd", "b"]
    preds = gt_as_predictions(gt)
    preds = [ImagePredictions(name, p.width, p.height, p.detections)
             for name, p in zip(["a_jpg.rf.0123abcd", "b.jfif"], preds)]  # a stem alone; an unusual suffix
    assert evaluate_coco(gt, preds).summary["mAP"] == pytest.approx(1.0)
    from maskwatch.evaluation.report import images_without_predictions, prediction_problems

    assert images_without_predictions(gt, preds) == [] and prediction_problems(gt, preds) == []


def test_predictions_of_photos_with_an_exif_rotation_are_scored_in_the_stored_pixels(small_voc, tmp_path):
    """`detect` predicts on the photo turned upright; the annotations describe its stored pixels (labelImg). A
    photo stored upside down with a rotation flag scores as the same photo stored upright."""
    import subprocess
    import sys

    from PIL import Image

    from maskwatch.data.images import annotated_image

    def write_set(folder, turn_first: bool):
        (folder / "images").mkdir(parents=True)
        (folder / "annotations").mkdir()
        for i, sample in enumerate(load_dataset(small_voc).samples):
            pixels, boxes = annotated_image(sample.image_path)[:, :, ::-1], sample.detections.xyxy
            labels = [load_dataset(small_voc).classes[c] for c in sample.detections.class_id]
            h, w = pixels.shape[:2]
            exif = Image.Exif()
            if turn_first and i == 0:  # stored upside down, flagged to be turned 180 degrees to show
                pixels, exif[0x0112] = pixels[::-1, ::-1], 3
                boxes = np.stack([w - boxes[:, 2], h - boxes[:, 3], w - boxes[:, 0], h - boxes[:, 1]], axis=1)
            Image.fromarray(np.ascontiguousarray(pixels)).save(folder / "images" / f"{sample.stem}.png",
                                                               exif=exif.tobytes())
            objects = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]:.0f}</xmin><ymin>{b[1]:.0f}</ymin>"
                              f"<xmax>{b[2]:.0f}</xmax><ymax>{b[3]:.0f}</ymax></bndbox></object>"
                              for n, b in zip(labels, boxes))
            (folder / "annotations" / f"{sample.stem}.xml").write_text(
                f"<annotation><filename>{sample.stem}.png</filename><size><width>{w}</width><height>{h}</height>"
                f"</size>{objects}</annotation>")

    scores, said = {}, {}
    for name, turn in (("upright", False), ("turned", True)):
        write_set(tmp_path / name, turn)
        cli = [sys.executable, "-m", "maskwatch.cli"]
        subprocess.run([*cli, "detect", str(tmp_path / name / "images"), "--no-images", "--json-out",
                        str(tmp_path / f"{name}.jsonl")], check=True, capture_output=True, timeout=300)
        run = subprocess.run([*cli, "evaluate", "--gt", str(tmp_path / name), "--pred", str(tmp_path / f"{name}.jsonl"),
                              "--out", str(tmp_path / f"eval-{name}")], check=True, capture_output=True, text=True,
                             timeout=300)
        said[name] = run.stdout + run.stderr
        scores[name] = json.loads((tmp_path / f"eval-{name}" / "report.json").read_text())["summary"]
    assert "1 photo(s) carry an EXIF rotation" in said["turned"] and "EXIF" not in said["upright"]
    assert scores["turned"]["mAP50"] == pytest.approx(scores["upright"]["mAP50"], abs=1e-3)
    assert scores["turned"]["mAP"] == pytest.approx(scores["upright"]["mAP"], abs=1e-3) and scores["upright"]["mAP50"] > 0.5


def test_write_report_takes_predictions_as_read_predictions_yields_them(small, tmp_path):
    """A generator is read once by each step of the report: it is taken whole first (it scored 0, silently)."""
    write_predictions(gt_as_predictions(small), tmp_path / "p.jsonl")
    report = write_report(small, read_predictions(tmp_path / "p.jsonl", small.classes), tmp_path / "r")
    assert report["summary"]["mAP50"] == pytest.approx(1.0) and not report["warnings"]


def test_detections_without_class_names_are_refused_not_dropped():
    import supervision as sv

    raw = sv.Detections(xyxy=np.array([[1, 2, 30, 40]], np.float32), confidence=np.array([0.9], np.float32),
                        class_id=np.array([0]))
    with pytest.raises(MaskwatchError, match="detections without class names"):
        ImagePredictions("u.jpg", 100, 100, raw).to_record()


def test_lines_of_another_format_or_matching_no_image_are_refused_not_scored_zero(small, tmp_path):
    """Lines without `detections` or without scores were read as images without faces, or as boxes all scored 1;
    lines naming no image of the ground truth (renamed, another data set, an empty file) scored mAP 0 in silence."""
    from maskwatch.classes import MASK_CLASSES

    records = [p.to_record() for p in gt_as_predictions(small)]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"image": r["image"], "boxes": r["detections"]}) + "\n" for r in records))
    with pytest.raises(MaskwatchError, match="other.jsonl:1: not a predictions record .no 'detections' key"):
        list(read_predictions(other, MASK_CLASSES))
    unscored = tmp_path / "unscored.jsonl"
    unscored.write_text("".join(json.dumps({**r, "detections": [{k: v for k, v in d.items() if k != "score"}
                                                                for d in r["detections"]]}) + "\n" for r in records))
    with pytest.raises(MaskwatchError, match="unscored.jsonl:1: not a predictions record .no 'score' key"):
        list(read_predictions(unscored, MASK_CLASSES))
    renamed = [ImagePredictions(f"IMG_{i:04d}.jpg", p.width, p.height, p.detections)
               for i, p in enumerate(gt_as_predictions(small))]
    with pytest.raises(MaskwatchError, match=f"none of its {len(small)} line.s. names an image of the ground truth "
                                             f".they name IMG_0000.jpg"):
        write_report(small, renamed, tmp_path / "report")
    with pytest.raises(MaskwatchError, match="no predictions line in it"):
        write_report(small, [], tmp_path / "report")
    assert not (tmp_path / "report" / "report.json").exists()
    report = write_report(small, gt_as_predictions(small)[:1] + renamed[1:], tmp_path / "report")  # one matches
    assert report["predicted_boxes"] == len(small.samples[0].detections)  # the boxes of the images scored


def test_a_size_without_ground_truth_boxes_is_none_not_minus_one(small, tmp_path):
    """COCO's -1 (no box of that size) read as a score in the table; report.json now says null, the table '-'."""
    import math

    stem = next(s.stem for s in small.samples if len(s.detections) and (
        (s.detections.xyxy[:, 2] - s.detections.xyxy[:, 0]) * (s.detections.xyxy[:, 3] - s.detections.xyxy[:, 1])
        < 96 ** 2).all())
    one = small.subset([stem])
    report = write_report(one, gt_as_predictions(one), tmp_path / "report")
    assert math.isnan(report["summary"]["mAP_large"]) and report["summary"]["mAP"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "report" / "report.json").read_text())["summary"]["mAP_large"] is None


def test_predictions_keep_boxes_to_a_thousandth_of_a_pixel():
    """Rounded to 1/100 px, the same detections scored face AP@.5 0.878 instead of 0.874 on the andrewmvd split
    (as bench/accuracy.py scores them, unrounded): `detect` then `evaluate` did not give the README's numbers."""
    record = ImagePredictions("x.jpg", 100, 100, detections_from_labels(
        np.array([[10.12345, 20.98765, 30.5, 40.0004]]), ["with_mask"], np.array([0.123456]), ["with_mask"])).to_record()
    assert record["detections"][0]["bbox"] == [10.123, 20.988, 30.5, 40.0] and record["detections"][0]["score"] == 0.12346


def test_a_box_on_a_face_the_label_map_left_out_is_neither_right_nor_wrong(data_dir, tmp_path):
    """--label-map mask_weared_incorrect= drops those boxes, but the faces stay in the photos: a detector that
    finds them (as any class) is not wrong there, in mAP and in the confusion matrix."""
    from maskwatch.evaluation.report import confusion_matrix

    stems = [f"maksssksksss{i}" for i in range(40)]
    full = load_dataset(data_dir).subset(stems)
    two = load_dataset(data_dir, label_map={"mask_weared_incorrect": ""}).subset(stems)
    assert sum(len(s.left_out) for s in two.samples) == sum(
        int((s.detections.class_id == full.classes.index("mask_weared_incorrect")).sum()) for s in full.samples) > 0
    # Every face found: the left-out ones called with_mask (they are no class of this ground truth).
    found = gt_as_predictions(full, relabel=lambda stem, i, label: "with_mask" if label == "mask_weared_incorrect"
                              else label)
    assert evaluate_coco(two, found).summary["mAP50"] == pytest.approx(1.0)
    matrix = confusion_matrix(two, found, "3class", score_threshold=0.5).matrix
    assert matrix[-1].sum() == 0  # no box counted as found where there is no face (the background row)


@pytest.mark.parametrize("detection, said", [
    ({"bbox": [1, 1, 9, 9], "label": "with_mask", "score": float("nan")}, "score NaN is not a number from 0 to 1"),
    ({"bbox": [1, 1, 9, 9], "label": "with_mask", "score": True}, "score true is not a number from 0 to 1"),
    ({"bbox": [1, 1, 9, 9], "label": "with_mask", "score": 87.5}, "score 87.5 is not a number from 0 to 1"),
    ({"bbox": [40, 30, 20, 25], "label": "with_mask", "score": 0.5}, "bbox [40, 30, 20, 25] ends before it starts"),
])
def test_a_score_that_cannot_rank_or_a_box_that_ends_before_it_starts_is_refused(detection, said, tmp_path):
    """A NaN score ended evaluate in faster-coco-eval's traceback; a bool, a percentage or an infinite score ranked
    boxes wrongly in silence, and boxes written as x, y, width, height scored as misses without a word."""
    from maskwatch.classes import MASK_CLASSES

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"image": "a.jpg", "detections": [detection]}) + "\n")
    with pytest.raises(MaskwatchError, match=f"p.jsonl:1: not a predictions record .{re.escape(said)}"):
        list(read_predictions(path, MASK_CLASSES))


def test_the_confusion_matrix_judges_a_face_listed_once_per_class_by_its_best_class(small):
    """detect lists a face once per class; under a low --score-threshold the matcher took the box of the
    annotated class however weak, called the face right, and counted its best class's box as a false positive."""
    from maskwatch.evaluation.report import confusion_matrix

    one = small.subset([s.stem for s in small.samples if "without_mask" in small.labels_of(s)][:1])
    sample = one.samples[0]
    labels = one.labels_of(sample)
    boxes, names, scores = [], [], []
    for box, label in zip(sample.detections.xyxy, labels):  # every face: its class at 0.25, another at 0.7
        other = "with_mask" if label != "with_mask" else "without_mask"
        boxes += [box, box]
        names += [label, other]
        scores += [0.25, 0.7]
    found = [ImagePredictions(sample.image_path.name, sample.width, sample.height,
                              detections_from_labels(np.array(boxes), names, np.array(scores), one.classes))]
    for threshold in (0.5, 0.2):
        matrix = confusion_matrix(one, found, "3class", score_threshold=threshold).matrix
        assert np.trace(matrix[:-1, :-1]) == 0 and matrix[:-1, :-1].sum() == len(labels), threshold
        assert matrix[-1].sum() == 0, threshold  # no box of a face counted as found where there is no face


def test_label_maps_given_as_another_tool_would_are_refused_or_said_plainly(small, tmp_path, caplog):
    """An evaluate trial: a comma-separated --label-map became one rename to `with_mask,NoMask=...`, a key given
    twice kept the last silently, a 6-number bbox was read across boxes (its message quoting a box not in the file),
    and --scheme face said '2class reads the predictions' ...'."""
    from maskwatch.classes import parse_label_map

    with pytest.raises(MaskwatchError, match="one OLD=NEW each; give --label-map once per label"):
        parse_label_map(["Mask=with_mask,NoMask=without_mask"])
    with pytest.raises(MaskwatchError, match="renames 'Mask' twice: to 'with_mask' and to 'without_mask'"):
        parse_label_map(["Mask=with_mask", "Mask=without_mask"])
    assert parse_label_map(["Mask=with_mask", "Mask=with_mask", "helmet="]) == {"Mask": "with_mask", "helmet": ""}
    six = tmp_path / "six.jsonl"
    six.write_text(json.dumps({"image": "a.jpg", "detections": [
        {"bbox": [1, 2, 30, 40, 0.9, 0], "label": "with_mask", "score": 0.9},
        {"bbox": [5, 6, 50, 60, 0.8, 1], "label": "without_mask", "score": 0.8}]}) + "\n")
    with pytest.raises(MaskwatchError, match=r"six.jsonl:1: .*bbox \[1, 2, 30, 40, 0.9, 0\] is not 4 numbers"):
        list(read_predictions(six, small.classes))
    renamed = [ImagePredictions(p.image, p.width, p.height, detections_from_labels(
        p.detections.xyxy, ["Face"] * len(p.detections), p.detections.confidence, ["Face"]))
        for p in gt_as_predictions(small)]
    caplog.set_level("WARNING")
    assert evaluate_coco(small, renamed, scheme="face").summary["mAP50"] == pytest.approx(1.0)
    assert "2class reads" not in caplog.text


def test_face_and_2class_count_one_faces_copies_in_classes_they_fold_together_as_one_box(small, tmp_path):
    """detect lists a face once per class its scores pass: scored apart under face (and 2class, for without_mask
    and mask_weared_incorrect), each copy after the first was a false positive ranked above weaker real faces."""
    preds = []
    for sample in small.samples:
        boxes, names, scores = [], [], []
        for k, box in enumerate(sample.detections.xyxy):
            if k % 2:  # a face alone, weak
                boxes, names, scores = boxes + [box], names + ["with_mask"], scores + [0.3]
            else:  # a face in two classes of one meaning under 2class: 0.6 + 0.35
                boxes += [box, box]
                names += ["without_mask", "mask_weared_incorrect"]
                scores += [0.6, 0.35]
        preds.append(ImagePredictions(sample.image_path.name, sample.width, sample.height,
                                      detections_from_labels(np.array(boxes).reshape(-1, 4), names,
                                                             np.array(scores), small.classes)))
    copies = sum(len(p.detections) for p in preds) - small.num_boxes
    face = evaluate_coco(small, preds, "face")
    assert face.summary["mAP50"] == pytest.approx(1.0) and face.folded == copies > 0
    two = evaluate_coco(small, preds, "2class")
    assert two.folded == copies
    assert evaluate_coco(small, preds, "3class").folded == 0
    report = write_report(small, preds, tmp_path / "r", scheme="face")
    assert report["folded_boxes"] == copies and "folded_boxes" not in write_report(small, preds, tmp_path / "t")

    twice = [ImagePredictions(p.image, p.width, p.height,  # the same box under the same label: two boxes still
                              detections_from_labels(np.tile(p.detections.xyxy, (2, 1)), list(p.labels) * 2,
                                                     np.tile(p.detections.confidence, 2), small.classes))
             for p in gt_as_predictions(small)]
    repeated = evaluate_coco(small, twice, "face")
    assert repeated.folded == 0 and repeated.summary["mAP50"] < 1.0


def test_a_predictions_file_written_by_windows_tools_reads_as_the_same_file(small, tmp_path):
    """Notepad's byte-order mark and Windows PowerShell's `>` (UTF-16) were refused: 'not valid JSON' at line 1,
    'not a text file'."""
    from maskwatch.classes import MASK_CLASSES

    plain = tmp_path / "plain.jsonl"
    write_predictions(gt_as_predictions(small), plain)
    text = plain.read_text(encoding="utf-8")
    for name, data in (("bom.jsonl", b"\xef\xbb\xbf" + text.encode("utf-8")),
                       ("powershell.jsonl", text.replace("\n", "\r\n").encode("utf-16"))):
        (tmp_path / name).write_bytes(data)
        read = list(read_predictions(tmp_path / name, MASK_CLASSES))
        assert [p.to_record() for p in read] == [p.to_record() for p in read_predictions(plain, MASK_CLASSES)], name


def test_coco_results_are_read_by_ids_or_by_stems_and_a_file_both_readings_place_differently_is_refused(tmp_path):
    """YOLO's val --save-json writes int(stem): id 2 was read as the file's id 2 (10.jpg), not as 2.jpg; text digits
    ("000011") were read as an id too."""
    from maskwatch.classes import MASK_CLASSES
    from maskwatch.evaluation.coco_results import read_coco_results

    names = ["1.jpg", "10.jpg", "2.jpg", "000011.jpg"]  # ids 1-4 in this order: id 2 is 10.jpg, stem 2 is 2.jpg
    coco = {"images": [{"id": i, "file_name": n, "width": 100, "height": 100} for i, n in enumerate(names, 1)],
            "categories": [{"id": 1, "name": "with_mask"}], "annotations": []}
    (tmp_path / "gt.json").write_text(json.dumps(coco))

    def read(image_ids, reading="auto"):
        (tmp_path / "r.json").write_text(json.dumps([{"image_id": i, "category_id": 1, "bbox": [1, 2, 3, 4],
                                                      "score": 0.5} for i in image_ids]))
        return sorted(p.image for p in read_coco_results(tmp_path / "r.json", tmp_path / "gt.json", MASK_CLASSES,
                                                         reading))

    with pytest.raises(MaskwatchError, match="read both as .* ids and as image stems, naming other images "
                                             r"\(image_id 2: id 2 is 10.jpg, the stem is 2.jpg\).*--results-ids"):
        read([1, 2])
    assert read([1, 2], "stem") == ["1.jpg", "2.jpg"] and read([1, 2], "id") == ["1.jpg", "10.jpg"]
    assert read([1, 2, 10]) == ["1.jpg", "10.jpg", "2.jpg"]  # (no id 10: only the stems place every result)
    assert read([10, 11]) == ["000011.jpg", "10.jpg"]  # (no id 10 or 11: stems, YOLO's int of 000011 too)
    assert read(["000011"]) == ["000011.jpg"] and read([3.0]) == ["2.jpg"]  # (text digits: a stem; 3.0: id 3)
    with pytest.raises(MaskwatchError, match=r"result 0: bbox \[1, 2, -3, 4\] has a negative width"):
        (tmp_path / "r.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 2, -3, 4],
                                                      "score": 0.5}]))
        read_coco_results(tmp_path / "r.json", tmp_path / "gt.json", MASK_CLASSES)
    (tmp_path / "gt.json").write_text("{broken")
    with pytest.raises(MaskwatchError, match="gt.json: not a valid COCO file"):
        read_coco_results(tmp_path / "r.json", tmp_path / "gt.json", MASK_CLASSES)


def test_cross_check_without_pycocotools_says_what_to_install(small_voc, tmp_path, monkeypatch):
    """It was a ModuleNotFoundError traceback after the whole load (pycocotools is in no extra but dev)."""
    import importlib.util

    from typer.testing import CliRunner

    from maskwatch.cli import app

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pycocotools" else found(name, *a))
    (tmp_path / "p.jsonl").write_text(json.dumps({"image": "x.jpg", "detections": []}) + "\n")
    result = CliRunner().invoke(app, ["evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "p.jsonl"),
                                      "--cross-check", "--out", str(tmp_path / "ev")])
    assert isinstance(result.exception, MaskwatchError) and "pip install pycocotools" in str(result.exception)
