"""The maskwatch command as a user runs it (real subprocesses)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from clips import pan_frames, write_clip
from maskwatch.data import load_dataset
from servers import wait_until

MASKWATCH = [sys.executable, "-m", "maskwatch.cli"]


def run(*args: str, ok: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*MASKWATCH, *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_detect_writes_annotated_images_and_jsonl_and_goes_on_past_bad_files(small_voc, tmp_path):
    images = small_voc / "images"
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (images / "empty.png").write_bytes(b"")
    result = run("detect", str(images), "--out", str(tmp_path / "out"), "--json-out", str(tmp_path / "p.jsonl"))
    assert "6 image(s)" in result.stdout and "(score >= 0.4)" in result.stdout
    above = run("detect", str(images / "maksssksksss94.jpg"), "--no-images", "--conf", "0.6")
    assert "(score >= 0.6)" in above.stdout  # (what --conf does not keep is not counted: 0.4 was said)
    assert "broken.jpg" in result.stderr and "empty.png" in result.stderr
    assert "]ERROR" not in result.stderr  # each message on its own line, not glued to the progress bar
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 6
    record = next(r for r in records if r["image"] == "maksssksksss94.jpg")
    assert (record["width"], record["height"]) == (400, 226)
    assert record["detections"] and set(record["detections"][0]) >= {"bbox", "label", "score"}
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 6


def test_annotated_images_keep_their_input_format_without_opencv_warnings(small_voc, tmp_path):
    import cv2

    image = cv2.imread(str(small_voc / "images" / "maksssksksss94.jpg"))
    for suffix in (".png", ".webp"):
        cv2.imwrite(str(tmp_path / f"photo{suffix}"), image)
    result = run("detect", str(tmp_path / "photo.png"), str(tmp_path / "photo.webp"), "--out", str(tmp_path / "out"))
    assert "unsupported key" not in result.stderr and "WARN" not in result.stderr
    assert cv2.imread(str(tmp_path / "out" / "photo.png")).shape == image.shape
    assert cv2.imread(str(tmp_path / "out" / "photo.webp")).shape == image.shape


def test_detect_then_evaluate_round_trip(small_voc, tmp_path):
    run("detect", str(small_voc / "images"), "--no-images", "--json-out", str(tmp_path / "p.jsonl"), "--all-classes",
        cwd=tmp_path)
    assert not list(tmp_path.glob("*.jpg"))
    result = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "ev"))
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["images"] == 6 and report["summary"]["mAP50"] > 0.5
    assert "mAP50" in result.stdout


def test_evaluate_a_mask_data_set_that_lacks_a_class_against_three_class_predictions(tmp_path):
    from conftest import copy_voc

    voc = copy_voc(["maksssksksss0", "maksssksksss1"], tmp_path / "voc")  # with_mask and without_mask only
    record = {"image": "maksssksksss0.jpg", "detections": [
        {"bbox": [10, 10, 40, 40], "label": "mask_weared_incorrect", "score": 0.3}]}
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n")
    result = run("evaluate", "--gt", str(voc), "--pred", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "ev"))
    assert "has no mask_weared_incorrect" in result.stderr
    report = json.loads((tmp_path / "ev" / "report.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert report["ground_truth_boxes"] > 0 and "mask_weared_incorrect" in report["confusion_matrix"]["labels"]
    assert report["per_class"]["mask_weared_incorrect"]["AP50"] is None  # no ground truth: no AP
    present = [report["per_class"][c]["AP50"] for c in ("with_mask", "without_mask")]
    assert report["summary"]["mAP50"] == pytest.approx(sum(present) / 2)  # the mean of the classes present


def test_convert_stats_and_split_commands(small_voc, tmp_path):
    result = run("convert", str(small_voc), str(tmp_path / "coco"), "--to", "coco")
    assert "wrote 6 images" in result.stdout
    stats = run("data", "stats", str(tmp_path / "coco"), "--plot", str(tmp_path / "s.png"))
    voc = load_dataset(small_voc)
    assert f"6 images, {voc.num_boxes} boxes" in stats.stdout and (tmp_path / "s.png").is_file()
    for name, count in voc.class_counts().items():
        assert re.search(rf"{name}\W+{count}\W", stats.stdout), (name, count, stats.stdout)
    assert "every problem" not in stats.stdout and not (tmp_path / "problems.txt").exists()
    for i in range(12):  # more problems than the console shows: the file has every one
        (small_voc / "annotations" / f"broken{i}.xml").write_text("<annotation><filename>")
    stats = run("data", "stats", str(small_voc), "--plot", str(tmp_path / "s.png"), "--problems",
                str(tmp_path / "problems.txt"))
    assert f"every problem (12): {tmp_path / 'problems.txt'}" in stats.stdout
    assert sorted(line.split(":")[0] for line in (tmp_path / "problems.txt").read_text().splitlines()) == sorted(
        str(small_voc / "annotations" / f"broken{i}.xml") for i in range(12))
    run("data", "split", str(small_voc), "--val", "0.3", "--out", str(tmp_path / "split"))
    val = (tmp_path / "split" / "val.txt").read_text().split()
    train = (tmp_path / "split" / "train.txt").read_text().split()
    assert val and train and not set(val) & set(train) and len(val) + len(train) == 6


def test_user_errors_print_one_line_not_a_traceback(tmp_path):
    result = run("detect", str(tmp_path / "missing.jpg"), ok=False)
    assert result.returncode == 2
    assert "missing.jpg: no such file or folder" in result.stderr and "Traceback" not in result.stderr
    empty = run("detect", "", "--model", str(tmp_path / "no-model"), ok=False)  # the input is said before the model
    assert empty.returncode == 2 and "an empty input was given" in empty.stderr and "no-model" not in empty.stderr
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    bad_conf = run("detect", str(fake), "--conf", "2", ok=False)  # said before any image is read
    assert bad_conf.returncode == 2 and "--conf is a score from 0 to 1" in bad_conf.stderr
    photo = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "samples" / "crowd.jpg"
    for options, said in ((["--out", str(fake)], "is a file: annotated images go into a folder"),
                          (["--no-images", "--json-out", str(tmp_path)], "is a folder: name a file"),
                          (["--no-images", "--json-out", "/dev/full"], "/dev/full: cannot write the predictions")):
        refused = run("detect", str(photo), *options, ok=False)  # where results go: one line, not a traceback
        assert refused.returncode == 2 and said in refused.stderr and "Traceback" not in refused.stderr, options
    unread = run("detect", str(fake), "--no-images", ok=False)
    assert unread.returncode == 1 and unread.stderr.count("fake.jpg: not a readable image") == 1
    assert "0 image(s)" not in unread.stdout and "no image could be read" in unread.stderr
    result = run("convert", str(tmp_path), str(tmp_path / "x"), "--to", "coco", ok=False)
    assert result.returncode == 2 and "found no VOC" in result.stderr


def test_a_camera_that_is_not_there_gives_one_clear_line_without_opencvs_warnings(tmp_path):
    result = run("watch", "7", "--out", str(tmp_path / "cam.mp4"), ok=False)  # no /dev/video7 on a test machine
    assert result.returncode == 2 and "webcam 7: cannot open it (is a camera connected as /dev/video7" in result.stderr
    assert "WARN" not in result.stderr and "[ERROR" not in result.stderr and "global " not in result.stderr


def test_predictions_list_every_plausible_class_but_drawings_count_one_per_face(small_voc, tmp_path):
    run("detect", str(small_voc / "images" / "maksssksksss657.jpg"), "--out", str(tmp_path / "img"),
        "--json-out", str(tmp_path / "all.jsonl"))
    best = run("detect", str(small_voc / "images" / "maksssksksss657.jpg"), "--no-images", "--best-class-only",
               "--json-out", str(tmp_path / "best.jsonl"))
    every = json.loads((tmp_path / "all.jsonl").read_text())["detections"]
    one = json.loads((tmp_path / "best.jsonl").read_text())["detections"]
    assert len(every) > len(one)
    boxes = [tuple(d["bbox"]) for d in one]
    assert len(boxes) == len(set(boxes))  # best-class-only: one box per face
    # The extra boxes are other classes of the same faces: the same box, or (NMS runs per class when every class
    # is listed) another candidate box of that face.
    assert set(boxes) <= {tuple(d["bbox"]) for d in every}
    iou = sv.box_iou_batch(np.array([d["bbox"] for d in every], float), np.array(boxes, float))
    assert (iou.max(axis=1) >= 0.5).all()
    assert "image(s):" in best.stdout


@pytest.mark.slow
def test_train_one_stage_quick_then_detect_with_it(small_voc, tmp_path):
    pytest.importorskip("torch", reason="training needs `make install-train`")
    result = run("train", "--arch", "one-stage", "--data", str(small_voc), "--out", str(tmp_path / "run"), "--quick",
                 "--threads", "2")
    assert "onestage.onnx" in result.stdout and (tmp_path / "run" / "history.png").is_file()
    run("detect", str(small_voc / "images"), "--model", str(tmp_path / "run"), "--no-images",
        "--json-out", str(tmp_path / "p.jsonl"))
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 6 and sum(len(r["detections"]) for r in records) > 0
    bad = run("train", "--arch", "cascade", "--data", str(small_voc), "--out", str(tmp_path / "x"), ok=False)
    assert bad.returncode != 0 and "--arch must be" in bad.stderr


MASK_CLASSES = "with_mask,without_mask,mask_weared_incorrect"


def test_classes_fixes_the_list_for_every_command_that_reads_a_data_set(small_voc, tmp_path):
    xml = small_voc / "annotations" / "maksssksksss94.xml"
    xml.write_text(xml.read_text().replace("<name>with_mask</name>", "<name>dog</name>", 1))
    refused = "unknown labels 'dog' (1 box, first in "
    result = run("convert", str(small_voc), str(tmp_path / "coco"), "--to", "coco", "--classes", MASK_CLASSES,
                 ok=False)
    assert result.returncode == 2 and refused in result.stderr and "--label-map" in result.stderr
    from typer.testing import CliRunner  # the other commands in this process: the same code, without start-up

    from maskwatch.cli import app
    from maskwatch.errors import MaskwatchError

    for command in (["data", "stats", str(small_voc), "--plot", str(tmp_path / "s.png")],
                    ["data", "split", str(small_voc), "--out", str(tmp_path / "split")],
                    ["evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "p.jsonl")],
                    ["train", "--data", str(small_voc), "--out", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, [*command, "--classes", MASK_CLASSES])
        assert isinstance(result.exception, MaskwatchError) and refused in str(result.exception), command
    assert not (tmp_path / "coco").exists() and not (tmp_path / "run").exists()
    learnt = run("data", "stats", str(small_voc), "--plot", str(tmp_path / "s.png"))  # without: learnt, printed
    assert "classes of" in learnt.stderr and "dog" in learnt.stderr and "--classes" in learnt.stderr


def test_detect_fails_when_no_input_could_be_read(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    result = run("detect", str(tmp_path / "notes.jpg"), str(tmp_path / "empty.png"), "--no-images", ok=False)
    assert result.returncode == 1 and "notes.jpg" in result.stderr and "empty.png" in result.stderr
    result = run("detect", str(tmp_path / "notes.jpg"), "--out", str(tmp_path / "drawn"), ok=False)
    assert result.returncode == 1 and not (tmp_path / "drawn").exists()  # no empty folder left behind
    (tmp_path / "nothing").mkdir()
    result = run("detect", str(tmp_path / "nothing"), "--no-images", ok=False)
    assert result.returncode == 2 and "no images found" in result.stderr


def test_evaluate_warns_about_images_without_predictions_and_can_leave_them_out(small_voc, tmp_path):
    images = sorted((small_voc / "images").glob("*.jpg"))[:3]  # predictions (none found) for 3 of the 6
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"image": p.name, "detections": []}) + "\n" for p in images))
    result = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "p.jsonl"), "--out",
                 str(tmp_path / "all"))
    assert "3 of 6 image(s) have no predictions in" in result.stderr and "--only-predicted" in result.stderr
    assert json.loads((tmp_path / "all" / "report.json").read_text())["images"] == 6
    run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "some"),
        "--only-predicted", "--scheme", "2class")
    report = json.loads((tmp_path / "some" / "report.json").read_text())
    assert report["images"] == 3 and report["scheme"] == "2class"


def test_convert_does_not_link_images_from_outside_the_data_set(small_voc, tmp_path):
    xml = small_voc / "annotations" / "maksssksksss94.xml"
    text = xml.read_text().replace("<filename>maksssksksss94.jpg</filename>", "<filename>passwd</filename>")
    xml.write_text(text.replace("</annotation>", "<path>/etc/passwd</path></annotation>"))
    (small_voc / "images" / "maksssksksss94.jpg").unlink()  # (an image of that name inside would be taken)
    result = run("convert", str(small_voc), str(tmp_path / "yolo"), "--to", "yolo")
    assert "wrote 5 images" in result.stdout and "outside the data set" in result.stderr
    assert all(p.resolve() != Path("/etc/passwd") for p in (tmp_path / "yolo" / "images").iterdir())


def test_every_option_and_argument_explains_itself_and_flags_take_no_value():
    from typer.main import get_command
    from typer.testing import CliRunner

    from maskwatch.cli import app

    def help_text(*command: str) -> str:
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        return result.output

    def commands(group, prefix: str = ""):
        for name, command in getattr(group, "commands", {}).items():
            yield from commands(command, f"{prefix}{name} ") if hasattr(command, "commands") else [(prefix + name,
                                                                                                     command)]

    seen = 0
    for name, command in commands(get_command(app)):
        missing = [p.name for p in command.params if not getattr(p, "help", None)]
        assert not missing, f"{name}: no help for {missing}"
        text = help_text(*name.split())
        assert "<bool>" not in text, f"{name} --help shows a flag as taking a value:\n{text}"
        seen += 1
    assert seen == 10  # convert, train, evaluate, detect, watch, report, serve, batch, data stats, data split
    assert "--quick  " in help_text("train")


def test_detect_list_file_and_same_names_from_two_folders(small_voc, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "maksssksksss94.jpg").write_bytes((small_voc / "images" / "maksssksksss0.jpg").read_bytes())
    names = tmp_path / "val.txt"
    names.write_text("maksssksksss94\nmaksssksksss5\n")  # stems, as `data split` writes them
    result = run("detect", str(small_voc / "images"), str(other), "--list", str(names), "--out", str(tmp_path / "out"),
                 "--json-out", str(tmp_path / "p.jsonl"))
    assert "3 image(s)" in result.stdout
    records = [json.loads(line)["image"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert records == ["maksssksksss5.jpg", "images/maksssksksss94.jpg", "other/maksssksksss94.jpg"]
    drawn = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg"))
    assert drawn == ["images/maksssksksss94.jpg", "maksssksksss5.jpg", "other/maksssksksss94.jpg"]
    listing = tmp_path / "paths.txt"  # a .txt input lists image paths, as for batch
    listing.write_text(f"{small_voc / 'images' / 'maksssksksss0.jpg'}\n")
    assert "1 image(s)" in run("detect", str(listing), "--no-images").stdout


def test_data_split_writes_into_out_by_default(small_voc, tmp_path):
    run("data", "split", str(small_voc), "--val", "0.3", cwd=tmp_path)
    assert (tmp_path / "out" / "split" / "val.txt").is_file() and not (tmp_path / "splits").exists()


@pytest.mark.slow
def test_ray_engine_is_quiet_unless_verbose(small_voc, tmp_path):
    pytest.importorskip("ray")
    result = run("batch", str(small_voc / "images"), "--engine", "ray", "--actors", "1", "--out", str(tmp_path / "b"))
    assert "6 inputs: 6 processed now" in result.stdout
    noise = [line for line in re.split(r"[\r\n]", result.stderr) if line.strip()
             and not line.startswith("detecting (Ray)")]  # (our own progress bar, of the rows written)
    assert noise == [] and "detecting (Ray): 100%" in result.stderr, result.stderr  # no Ray logs nor C++ lines


def test_evaluate_reads_another_tools_coco_results_list_by_the_coco_ground_truths_ids(small_voc, tmp_path):
    """mmdetection, detectron2 and YOLO write COCO results lists (image and category ids, [x, y, w, h] boxes):
    they were refused ("cannot be matched here")."""
    run("convert", str(small_voc), str(tmp_path / "coco"), "--to", "coco")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    truth = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
             for a in coco["annotations"]]
    stems = {im["id"]: Path(im["file_name"]).stem for im in coco["images"]}
    (tmp_path / "results.json").write_text(json.dumps(truth[:-1]))  # (its last face missed)
    scored = run("evaluate", "--gt", str(tmp_path / "coco"), "--pred", str(tmp_path / "results.json"), "--out",
                 str(tmp_path / "ev"))
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["images"] == len(coco["images"]) and 0.8 < report["summary"]["mAP50"] < 1.0, scored.stdout
    assert not report["warnings"]  # (an image without results is one where nothing was found: COCO's rule)
    by_stem = [{**r, "image_id": stems[r["image_id"]]} for r in truth]  # YOLO's val --save-json: the stem
    (tmp_path / "yolo.json").write_text(json.dumps(by_stem))
    run("evaluate", "--gt", str(tmp_path / "coco"), "--pred", str(tmp_path / "yolo.json"), "--out", str(tmp_path / "y"))
    assert json.loads((tmp_path / "y" / "report.json").read_text())["summary"]["mAP50"] == pytest.approx(1.0)
    for results, said in (([{**truth[0], "category_id": 99}], "category_id 99 is not one of"),
                          ([{**truth[0], "image_id": 4242}], "name images that"),
                          ([{**truth[0], "bbox": [1, 2, 3]}], "is not 4 numbers [x, y, width, height]"),
                          ([{"image_id": 1, "segmentation": []}], "not a COCO result")):
        (tmp_path / "bad.json").write_text(json.dumps(results))
        refused = run("evaluate", "--gt", str(tmp_path / "coco"), "--pred", str(tmp_path / "bad.json"), ok=False)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
    voc = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "results.json"), ok=False)
    assert voc.returncode == 2 and "is not a COCO data set" in voc.stderr
    first = [r for r in truth if r["image_id"] == coco["images"][0]["id"]]  # one image's results alone
    (tmp_path / "one.json").write_text(json.dumps(first))
    run("evaluate", "--gt", str(tmp_path / "coco"), "--pred", str(tmp_path / "one.json"), "--only-predicted",
        "--out", str(tmp_path / "one"))
    assert json.loads((tmp_path / "one" / "report.json").read_text())["images"] == 1  # (it did nothing)
    run("convert", str(small_voc), str(tmp_path / "sides"), "--to", "coco", "--val", "0.3")
    several = run("evaluate", "--gt", str(tmp_path / "sides"), "--pred", str(tmp_path / "results.json"), ok=False)
    assert several.returncode == 2 and "holds 3 COCO files" in several.stderr  # (it read annotations.json)


def test_split_and_evaluate_take_label_map_and_convert_refuses_a_folder_in_use(small_voc, tmp_path):
    for xml in (small_voc / "annotations").glob("*.xml"):
        xml.write_text(xml.read_text().replace("<name>with_mask</name>", "<name>mask</name>"))
    fix = ["--label-map", "mask=with_mask", "--classes", MASK_CLASSES]
    split = run("data", "split", str(small_voc), "--out", str(tmp_path / "split"), *fix)
    assert "with_mask" in split.stdout
    names = sorted(p.name for p in (small_voc / "images").glob("*.jpg"))
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"image": n, "detections": []}) + "\n" for n in names))
    scored = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "p.jsonl"), "--out",
                 str(tmp_path / "eval"), *fix)
    assert (tmp_path / "eval" / "report.json").is_file(), scored.stderr
    # another tool's predictions, labelled its own way: a key only they use is not "unused"; a misspelt one is
    (tmp_path / "theirs.jsonl").write_text("".join(json.dumps({"image": n, "detections": [
        {"bbox": [1, 1, 30, 30], "label": "Masked", "score": 0.9}]}) + "\n" for n in names) + "{cut\n")
    theirs = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "theirs.jsonl"), "--out",
                 str(tmp_path / "eval2"), *fix, "--label-map", "Masked=with_mask", "--label-map", "Helmet=")
    said = " ".join((theirs.stdout + theirs.stderr).split())
    assert "names 'Helmet', which no box or class list here uses" in said and "nor a prediction" in said, said
    assert "names 'Masked'" not in said  # (it renamed the predictions' labels)
    assert said.count("not valid JSON") == 1  # (read once, though read before the ground truth)
    recorded = " ".join(json.loads((tmp_path / "eval2" / "report.json").read_text())["warnings"])
    assert "not valid JSON" in recorded and "names 'Helmet'" in recorded  # (read later, the report says them too)
    typo = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "theirs.jsonl"), "--out",
               str(tmp_path / "eval3"), *fix, "--label-map", "Masked=with_mak", ok=False)
    assert typo.returncode == 2 and "--label-map Masked=with_mak: the name after = must be a class" in typo.stderr
    run("convert", str(small_voc), str(tmp_path / "tf"), "--to", "tfrecord", *fix)
    again = run("convert", str(small_voc), str(tmp_path / "tf"), "--to", "tfrecord", "--val", "0.3", *fix, ok=False)
    assert again.returncode == 2 and "not empty" in again.stderr
    assert sorted(p.name for p in (tmp_path / "tf").iterdir()) == ["data.tfrecord", "label_map.pbtxt"]
    onto = run("convert", str(small_voc), str(small_voc), "--to", "voc", ok=False)
    assert onto.returncode == 2 and "holds the data set being read" in onto.stderr
    inside = run("convert", str(small_voc), str(small_voc / "yolo"), "--to", "yolo", ok=False)
    assert inside.returncode == 2 and "inside the data set being read" in inside.stderr


def test_convert_keeps_the_train_and_val_sides_its_source_names(small_voc, tmp_path):
    run("convert", str(small_voc), str(tmp_path / "tf"), "--to", "tfrecord", "--val", "0.3", "--shards", "2")
    run("data", "split", str(small_voc), "--val", "0.3", "--out", str(tmp_path / "s"))  # the same split, as lists
    kept = run("convert", str(tmp_path / "tf"), str(tmp_path / "as-voc"), "--to", "voc")
    assert "keeping the train / val sides" in kept.stdout
    sides = tmp_path / "as-voc" / "ImageSets" / "Main"
    assert (sides / "val.txt").read_text() == (tmp_path / "s" / "val.txt").read_text()
    assert len((sides / "train.txt").read_text().split()) + len((sides / "val.txt").read_text().split()) == 6
    from conftest import roboflow_export

    rf, _ = roboflow_export(small_voc, tmp_path)  # train, valid and test: its test images must not join train
    noted = run("convert", str(rf / "data.yaml"), str(tmp_path / "rf-voc"), "--to", "voc")
    assert "names train, val and test sides; sides are written only with --val or --split" in noted.stdout
    assert not (tmp_path / "rf-voc" / "ImageSets").exists()


def test_train_refuses_zero_epochs_before_anything_is_written(small_voc, tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from maskwatch.cli import app
    from maskwatch.errors import MaskwatchError

    result = CliRunner().invoke(app, ["train", "--data", str(small_voc), "--out", str(tmp_path / "run"),
                                      "--epochs", "0"])
    assert isinstance(result.exception, MaskwatchError) and "--epochs must be at least 1" in str(result.exception)
    assert not (tmp_path / "run").exists()


def test_detect_says_what_a_folder_is_when_it_is_not_what_was_expected(tmp_path):
    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "train.tfrecord").write_bytes(b"")
    result = run("detect", str(tmp_path / "tf"), "--no-images", ok=False)
    assert result.returncode == 2 and "holds TFRecord files, which embed their images" in result.stderr
    (tmp_path / "runs" / "first").mkdir(parents=True)  # the folder of runs, not a run
    photo = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "samples" / "crowd.jpg"
    result = run("detect", str(photo), "--no-images", "--model", str(tmp_path / "runs"), ok=False)
    assert result.returncode == 2 and "is not the folder of a `maskwatch train` run" in result.stderr
    (tmp_path / "runs" / "first" / "candidates.npz").write_bytes(b"")  # a run stopped before its first epoch ended
    result = run("detect", str(photo), "--no-images", "--model", str(tmp_path / "runs" / "first"), ok=False)
    assert result.returncode == 2 and "holds a `maskwatch train` run that has no model yet" in result.stderr
    assert "stopped before its first epoch ended" in result.stderr
    (tmp_path / "runs" / "first" / "last.pt").write_bytes(b"")  # epochs finished, stopped before the export
    result = run("detect", str(photo), "--no-images", "--model", str(tmp_path / "runs" / "first"), ok=False)
    assert "its last.pt holds the epochs it finished" in result.stderr and "first epoch" not in result.stderr


def test_evaluate_split_scores_the_listed_images_and_refuses_names_of_another_set(small_voc, tmp_path):
    from maskwatch.predictions import ImagePredictions, detections_from_labels, write_predictions

    dataset = load_dataset(small_voc)
    write_predictions([ImagePredictions(s.image_path.name, s.width, s.height, detections_from_labels(
        s.detections.xyxy, dataset.labels_of(s), np.full(len(s.detections), 0.9), dataset.classes))
        for s in dataset.samples], tmp_path / "all.jsonl")
    listed = tmp_path / "val.txt"
    listed.write_text("".join(s.stem + "\n" for s in dataset.samples[:3]))
    result = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "all.jsonl"), "--split", str(listed),
                 "--out", str(tmp_path / "eval"))
    assert "not in the ground truth" not in result.stderr  # the other images' lines are not strays
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["images"] == 3
    listed.write_text("maksssksksss0\nnot_here\n")
    result = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "all.jsonl"), "--split", str(listed),
                 ok=False)
    assert result.returncode == 2 and "1 of its 2 names are not images of the data set (not_here)" in result.stderr
    listed.write_text("\n")  # an empty list scored nothing, exit 0
    result = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "all.jsonl"), "--split", str(listed),
                 "--out", str(tmp_path / "empty"), ok=False)
    assert result.returncode == 2 and "no image names in it" in result.stderr and not (tmp_path / "empty").exists()
    # Plots written among the data set's images were read as images of it by the next load.
    result = run("evaluate", "--gt", str(small_voc), "--pred", str(tmp_path / "all.jsonl"), "--out",
                 str(small_voc / "images" / "eval"), ok=False)
    assert result.returncode == 2 and "where a load of" in result.stderr and "looks for its pictures" in result.stderr
    assert not (small_voc / "images" / "eval").exists()
    from maskwatch.data.inputs import check_outside_images
    from maskwatch.errors import MaskwatchError

    check_outside_images(small_voc / "eval", small_voc)  # (VOC reads only its image folders: beside them is fine)
    with pytest.raises(MaskwatchError, match="looks for its pictures"):  # YOLO reads every picture under its folder
        check_outside_images(small_voc / "eval", small_voc, "yolo")
    check_outside_images(small_voc / "images" / "eval", small_voc, "coco")  # (COCO: only the pictures it names)


def test_version_flag_prints_the_packages_version():
    from importlib.metadata import version

    from typer.testing import CliRunner

    from maskwatch.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"maskwatch {version('maskwatch')} (onnxruntime ")


def test_the_defaults_the_help_states_are_the_codes():
    """The CLI imports little at start-up, so some help texts state a default that lives in a module it does not
    import: each is checked against its one place here."""
    from typer.main import get_command

    from maskwatch.cli import app
    from maskwatch.crops import CROP_SIZE
    from maskwatch.video.pipeline import WatchOptions
    from maskwatch.video.store import DEFAULT_DB

    def help_of(command: str, option: str) -> str:
        group = get_command(app)
        params = {p.opts[0]: p for p in group.commands[command].params if p.opts}
        return " ".join(params[option].help.split())

    assert f"[default: {CROP_SIZE}]" in help_of("train", "--crop-size")
    assert f"[default: {DEFAULT_DB.as_posix()}]" in help_of("watch", "--db")
    assert f"else {DEFAULT_DB.as_posix()})" in help_of("serve", "--db")
    assert f"[default: {WatchOptions.summary_every:g}]" in help_of("watch", "--summary-every")
    assert f"[default: {WatchOptions.window_s:g}]" in help_of("watch", "--window")
    assert f"after {WatchOptions.camera_down_after_s:g} s without a frame" in help_of("watch", "--give-up-after")
    torch = pytest.importorskip("torch", reason="the training defaults live in the training extra's modules")
    del torch
    from maskwatch.training.engine import TrainConfig
    from maskwatch.training.one_stage import OneStageRecipe
    from maskwatch.training.two_stage import TwoStageRecipe

    assert f"[default: {TwoStageRecipe.finetuned_share:g}," in help_of("train", "--finetuned-share")
    assert (f"{TwoStageRecipe.batch_size} crops (two-stage) / {OneStageRecipe.batch_size} windows"
            in help_of("train", "--batch-size"))
    assert f"{TwoStageRecipe.lr:g} (two-stage) / {OneStageRecipe.lr:g} (one-stage)" in help_of("train", "--lr")
    params = {p.opts[0]: p for p in get_command(app).commands["train"].params if p.opts}
    assert (params["--epochs"].default, params["--patience"].default) == (TrainConfig.epochs, TrainConfig.patience)


def test_every_option_says_what_it_takes_in_the_help():
    """Typer's own placeholders (<str>, <int range>) say nothing: an option taking one of a few words lists them,
    as click writes a choice, and the others name what they take (N, NAME, ...)."""
    import click
    from typer.main import get_command

    from maskwatch.cli import app

    def commands(group, prefix=()):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, (*prefix, name))
            else:
                yield (*prefix, name), command

    vague = {}
    for name, command in commands(get_command(app)):
        with click.Context(command, info_name=name[-1]) as ctx:
            records = [param.get_help_record(ctx) for param in command.params if param.param_type_name == "option"]
        vague.update({f"{' '.join(name)} {record[0]}": record[0] for record in records
                      if record and ("<str>" in record[0] or "range>" in record[0])})
    assert not vague, vague
    help_of = {name[-1]: command for name, command in commands(get_command(app))}
    with click.Context(help_of["evaluate"]) as ctx:
        records = [param.get_help_record(ctx) for param in help_of["evaluate"].params]
    assert ("--scheme [3class|2class|face]", ) == tuple(r[0] for r in records if r and r[0].startswith("--scheme"))


def test_data_split_of_a_roboflow_export_leaves_its_test_side_out_and_names_its_own_val_side(small_voc, tmp_path):
    from conftest import roboflow_export

    rf, sides = roboflow_export(small_voc, tmp_path)
    result = run("data", "split", str(rf), "--val", "0.4", "--out", str(tmp_path / "split"))
    assert "leaving out the 1 test image(s)" in result.stdout and "names its own 2 validation images" in result.stdout
    listed = {line for side in ("train", "val") for line in (tmp_path / "split" / f"{side}.txt").read_text().split()}
    assert listed == set(sides["train"] + sides["valid"])


def test_a_bad_scheme_or_format_is_refused_before_the_data_set_is_read(tmp_path):
    missing = tmp_path / "not-read"  # a data set that is never opened: the option is refused first
    bad_scheme = run("evaluate", "--gt", str(missing), "--pred", str(missing / "p.jsonl"), "--scheme", "4class",
                     ok=False)
    assert bad_scheme.returncode == 2 and "unknown --scheme '4class'" in bad_scheme.stderr
    bad_format = run("convert", str(missing), str(tmp_path / "out"), "--to", "pascal", ok=False)
    assert bad_format.returncode == 2 and "unknown format 'pascal' for --to" in bad_format.stderr



@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # SIGTERM (a service manager's stop): rc 143
def test_train_stopped_by_ctrl_c_says_how_to_go_on_and_resume_refuses_other_data(small_voc, tmp_path, signum):
    pytest.importorskip("torch", reason="training needs `make install-train`")

    from conftest import SMALL_STEMS, copy_voc

    out = tmp_path / "run"
    command = [*MASKWATCH, "train", "--data", str(small_voc), "--out", str(out), "--quick", "--epochs", "2",
               "--threads", "2"]
    nothing = run(*command[3:], "--resume", ok=False)  # (command[3:]: without the interpreter and module)
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr and not out.exists()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:  # Ctrl-C once the first epoch is saved, as a user would after seeing it
        if line.startswith("epoch 1:"):
            process.send_signal(signum)
            break
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"kept in {out / 'last.pt'}; the same command with --resume goes on" in stderr
    assert not (out / "model").exists()
    again = run(*command[3:], ok=False)  # without --resume: the earlier run is not replaced silently
    assert again.returncode == 2 and "holds an earlier run" in again.stderr and "--overwrite" in again.stderr
    other = copy_voc(SMALL_STEMS[:-1], tmp_path / "other")  # other data: its weights are not this data's model
    validation = (out / "val.txt").read_text()
    refused = run("train", "--data", str(other), "--out", str(out), "--quick", "--epochs", "2", "--resume", ok=False)
    assert refused.returncode == 2 and "was trained with other" in refused.stderr
    assert (out / "val.txt").read_text() == validation  # refused before anything of the run is touched
    resumed = run(*command[3:], "--resume")
    assert "resumed from" in resumed.stdout and "at epoch 1" in resumed.stdout
    history = (out / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["1", "2"]
    assert "val.txt" in resumed.stdout and (out / "val.txt").read_text().split()
    replaced = run(*command[3:], "--epochs", "1", "--overwrite")
    assert "replaced (--overwrite)" in replaced.stderr and not (out / "replaced").exists()  # (kept until now)
    assert len((out / "history.csv").read_text().splitlines()) == 2  # one epoch: the old history is gone


def test_an_annotated_copy_never_takes_another_inputs_copy_nor_a_photo_beside_the_inputs(tmp_path, photo):
    """x.jfif's copy is x.jfif.jpg (OpenCV writes no .jfif), the name of an x.jfif.jpg among the inputs or beside
    them: neither copy replaces the other, and a photo beside the inputs is never written over."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo, photos / "x.jfif")
    cv2.imwrite(str(photos / "x.jfif.jpg"), cv2.flip(cv2.imread(str(photo)), 1))
    done = run("detect", str(photos), "--out", str(tmp_path / "out"))
    assert "the annotated copy of x.jfif is x-2.jfif.jpg" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["x-2.jfif.jpg", "x.jfif.jpg"]
    originals = {p.name: p.read_bytes() for p in photos.iterdir()}
    refused = run("detect", str(photos / "x.jfif"), "--out", str(photos), ok=False)
    assert refused.returncode == 2 and "would replace " + str(photos / "x.jfif.jpg") in refused.stderr
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == originals
    batch = run("batch", str(photos), "--out", str(tmp_path / "results"), "--annotate")
    assert "another input's copy" in batch.stderr
    assert sorted(p.name for p in (tmp_path / "results" / "annotated").iterdir()) == ["x-2.jfif.jpg", "x.jfif.jpg"]


def test_detect_never_writes_over_a_photo_it_did_not_write(tmp_path, photo):
    """`--out` naming a folder of the user's own photos (not inputs) replaced them with annotated copies of inputs
    of the same names; a run into the same --out again writes over the copies it wrote, and only those."""
    trip1, trip2 = tmp_path / "trip1", tmp_path / "trip2"
    for folder in (trip1, trip2):
        folder.mkdir()
    shutil.copy(photo, trip1 / "IMG_0001.jpg")
    cv2.imwrite(str(trip2 / "IMG_0001.jpg"), cv2.flip(cv2.imread(str(photo)), 1))  # another photo, same name
    mine = (trip2 / "IMG_0001.jpg").read_bytes()
    refused = run("detect", str(trip1), "--out", str(trip2), ok=False)
    assert refused.returncode == 2 and "1 annotated cop(ies) would replace files maskwatch has no record of " \
        f"writing there ({trip2 / 'IMG_0001.jpg'}): photos of yours" in refused.stderr
    assert (trip2 / "IMG_0001.jpg").read_bytes() == mine
    out = tmp_path / "out"
    for _ in range(2):  # its own copies: written over
        run("detect", str(trip1), "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == [".maskwatch-copies.txt", "IMG_0001.jpg"]
    inside = trip1 / "annotated"  # --out inside the input folder: its recorded copies are left out, not photos
    run("detect", str(trip1), "--out", str(inside))
    again = run("detect", str(trip1), "--out", str(inside), "--json-out", str(tmp_path / "p.jsonl"))
    assert "left out 1 image(s)" in again.stderr and "1 image(s)" in again.stdout
    shutil.copy(photo, inside / "mine.jpg")  # a photo the user puts there is an input, which its copy would replace
    kept = run("detect", str(trip1), "--out", str(inside), ok=False)
    assert kept.returncode == 2 and f"annotated copy of {inside / 'mine.jpg'} would replace it" in kept.stderr


def test_outputs_never_replace_or_feed_back_into_the_inputs(small_voc, tmp_path, photo):
    """An annotated copy never replaces its input, a run's own results are not read again as inputs by the next
    run, and a place nothing can be written to is said before any work."""
    images = small_voc / "images"
    originals = {p.name: p.read_bytes() for p in images.iterdir()}
    refused = run("detect", str(images), "--out", str(images), ok=False)
    assert refused.returncode == 2 and "would replace it" in refused.stderr
    assert {p.name: p.read_bytes() for p in images.iterdir()} == originals
    inside = images / "annotated"
    for _ in range(2):  # the second run does not take the first one's copies for photos
        again = run("detect", str(images), "--out", str(inside), "--json-out", str(tmp_path / "p.jsonl"))
        assert "6 image(s)" in again.stdout
    assert "left out 6 image(s)" in again.stderr and len(list(inside.glob("*.jpg"))) == 6
    assert {json.loads(line)["image"] for line in (tmp_path / "p.jsonl").read_text().splitlines()} == set(originals)
    shutil.rmtree(inside)
    batch = run("batch", str(images), "--out", str(images / "results"), "--annotate")
    batch = run("batch", str(images), "--out", str(images / "results"), "--annotate")
    assert "6 done before" in batch.stdout  # (its annotated copies were left out, not taken as 6 new inputs)
    shutil.rmtree(images / "results")
    for _ in range(2):  # the results in the photos' own folder: its annotated/ is still not read as photos
        batch = run("batch", str(images), "--out", str(images), "--annotate")
    assert "6 inputs" in batch.stdout and "6 done before" in batch.stdout
    clip = tmp_path / "door.mp4"
    write_clip(pan_frames(photo, size=(160, 120), frames=3, zoom=1.5), clip, fps=3)
    size = clip.stat().st_size
    (tmp_path / "folder.mp4").mkdir()
    for out, said in ((clip, "is the video being watched"), (tmp_path / "folder.mp4", "is a folder"),
                      (tmp_path / "a-file" / "x.mp4", "cannot write into")):
        (tmp_path / "a-file").write_text("")
        result = run("watch", str(clip), "--out", str(out), "--db", str(tmp_path / "e.sqlite"), ok=False)
        assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr
    assert clip.stat().st_size == size
    result = run("watch", str(clip), "--db", str(tmp_path / "a-file" / "e.sqlite"), ok=False)
    assert result.returncode == 2 and "cannot make the events database's folder" in result.stderr
    result = run("batch", str(images), "--out", str(tmp_path / "a-file"), ok=False)
    assert result.returncode == 2 and "a file of that name is there" in result.stderr
    video = run("detect", str(clip), ok=False)
    assert f"{clip}: a video, not an image: `maskwatch watch {clip}` reads videos" in video.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: the terminal closed (killed it)
def test_detect_stopped_by_sigterm_keeps_whole_lines_as_ctrl_c_does(data_dir, tmp_path, signum):
    images = data_dir / "images"
    process = subprocess.Popen([*MASKWATCH, "detect", str(images), "--no-images", "--json-out",
                                str(tmp_path / "p.jsonl")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for = tmp_path / "p.jsonl"
    wait_until(lambda: wait_for.exists() and wait_for.stat().st_size >= 2000, "some lines written", every=0.1)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted after " in err and " of 767 input(s)" in err
    lines = wait_for.read_text().splitlines()
    assert 0 < len(lines) < 767 and all(json.loads(line)["image"] for line in lines)


def test_convert_stopped_by_sigterm_leaves_no_half_written_folder_as_ctrl_c_does(data_dir, tmp_path):
    """A service manager's stop (SIGTERM) left half the images and no labels, and the same command was then refused
    (the folder not empty)."""
    out = tmp_path / "yolo"
    command = [*MASKWATCH, "convert", str(data_dir), str(out), "--to", "yolo", "--images", "copy"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (out / "images").is_dir() and any((out / "images").iterdir()), "some images written",
               every=0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert process.returncode == 130 and not out.exists()


@pytest.mark.slow
def test_the_commands_train_prints_at_the_end_work_as_printed(small_voc, tmp_path):
    """A YOLO set named by its data.yaml (as Ultralytics takes it), with its own class names: the detect and evaluate
    commands train prints carry the renaming, and run."""
    import shlex

    from maskwatch.data import save_dataset

    pytest.importorskip("torch")

    renamed = {"with_mask": "mask", "without_mask": "no_mask", "mask_weared_incorrect": "incorrect"}
    save_dataset(load_dataset(small_voc, label_map=renamed), tmp_path / "theirs", "yolo")
    assert (tmp_path / "theirs" / "data.yaml").is_file()
    maps = [arg for old, new in renamed.items() for arg in ("--label-map", f"{new}={old}")]
    result = run("train", "--data", str(tmp_path / "theirs" / "data.yaml"), "--out", str(tmp_path / "run dir"),
                 "--quick", "--threads", "2", *maps)
    printed = result.stdout.split("score it on its validation images: ", 1)[1].strip()
    detect, evaluate = printed.split(", then ")
    assert "--label-map mask=with_mask" in evaluate
    for command in (detect, evaluate):
        words = shlex.split(command)
        assert words[0] == "maskwatch"
        run(*words[1:], "--out", str(tmp_path / "eval")) if words[1] == "evaluate" else run(*words[1:])


@pytest.mark.parametrize("command", ["data split {voc} --out {out}", "convert {voc} {out} --to coco",
                                     "evaluate --gt {voc} --pred {pred} --out {out}",
                                     "train --data {voc} --out {out} --quick"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(small_voc, tmp_path, command):
    """It failed as a FileExistsError traceback, for train and evaluate after the whole load (and training)."""
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"image": "maksssksksss5.jpg", "detections": []}) + "\n")
    (tmp_path / "taken").write_text("a user's file")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for out, said in ((tmp_path / "taken", "is a file: it names a folder"),
                      (tmp_path / "taken" / "sub", "taken is a file, so no folder can be made under it"),
                      (tmp_path / "dangling", "dangling is a link to nothing")):
        result = run(*command.format(voc=small_voc, out=out, pred=pred).split(), ok=False)
        assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr
        assert "classes of" not in result.stdout + result.stderr  # refused before the data set was read
    assert (tmp_path / "taken").read_text() == "a user's file"


def test_evaluate_says_a_missing_class_is_left_out_of_the_mean_only_where_it_would_be(small_voc, tmp_path):
    """Under --scheme 2class it said 'scored with the three mask classes', the opposite of what was asked."""
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"image": "maksssksksss5.jpg", "detections": []}) + "\n")
    args = ["evaluate", "--gt", str(small_voc), "--pred", str(pred), "--label-map", "mask_weared_incorrect="]
    three = run(*args, "--out", str(tmp_path / "three"))
    assert "p.jsonl holds no detection left after --label-map" in three.stderr
    assert "scored with the three mask classes; " in three.stderr and "mask_weared_incorrect" in three.stderr
    two = run(*args, "--scheme", "2class", "--out", str(tmp_path / "two"))
    assert "three mask classes" not in two.stdout + two.stderr
    # A class without ground truth shows "-" in its rows: the legend says why, and the mean says over how many.
    assert "-: no ground-truth box of that size or class" in three.stdout
    assert "mAP is the mean over the 2 of 3 classes with ground-truth boxes here" in three.stdout
    assert "mean over the" not in two.stdout
    wrong = run(*args, "--score-threshold", "1.5", "--out", str(tmp_path / "wrong"), ok=False)
    assert wrong.returncode == 2 and "--score-threshold is a score from 0 to 1, got 1.5" in wrong.stderr


def test_outputs_deleted_while_watch_writes_them_are_said_not_named_as_written(data_dir, tmp_path):
    """A folder removed mid-run (its video and database written into nothing): the end lines named them as
    written and watch exited 0; the events after that point are lost, so it is an error."""
    frames = pan_frames(data_dir / "images" / "maksssksksss5.jpg", frames=150)
    clip = write_clip(frames, tmp_path / "pan.avi", codec="MJPG")
    out = tmp_path / "results"
    process = subprocess.Popen([*MASKWATCH, "watch", str(clip), "--out", str(out / "o.mp4"), "--db",
                                str(out / "e.sqlite"), "--max-fps", "15", "--every", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (out / "o.mp4").exists() and (out / "o.mp4").stat().st_size > 0, "the video begun",
               every=0.1)
    shutil.rmtree(out)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 1, stderr
    assert f"video: {out / 'o.mp4'} (deleted while it was written: nothing kept)" in stdout
    assert f"events: {out / 'e.sqlite'} (deleted while it was written" in stdout
    assert "error: deleted while this run wrote them" in stderr
    assert "the events database was deleted while this run wrote to it" in stderr  # said by the sink, as it ran
