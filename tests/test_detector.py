"""The shipped detector on real training images, and its handling of bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import supervision as sv

from maskwatch import Detector
from maskwatch.data import load_dataset
from maskwatch.data.images import read_image
from maskwatch.detector import DEFAULT_HEAD
from maskwatch.errors import MaskwatchError

from conftest import FACE_CROPS


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(threads=2)


@pytest.fixture(scope="module")
def crowd(data_dir):
    ds = load_dataset(data_dir).subset(["maksssksksss657", "maksssksksss94", "maksssksksss139"])
    return ds


@pytest.mark.parametrize("model", ["shipped", "shipped-int8"])
def test_shipped_model_finds_and_labels_the_faces_of_real_images(model, crowd):
    detector = Detector.load(model, threads=2)
    found = labelled = total = 0
    for sample in crowd.samples:
        image = cv2.imread(str(sample.image_path))
        detections = detector(image, min_score=0.3)
        assert set(detections.data["class_name"]) <= set(detector.classes)
        total += len(sample.detections)
        if len(detections) == 0:
            continue
        iou = sv.box_iou_batch(sample.detections.xyxy, detections.xyxy)
        for gt_index, row in enumerate(iou):
            if row.max() >= 0.5:
                found += 1
                labelled += detections.data["class_name"][row.argmax()] == crowd.labels_of(sample)[gt_index]
    assert found / total >= 0.8, (found, total)
    assert labelled / found >= 0.85, (labelled, found)


def test_detections_carry_scores_class_ids_and_names(detector, crowd):
    image = cv2.imread(str(crowd.samples[0].image_path))
    detections = detector(image)
    assert len(detections) > 0
    assert detections.confidence.min() >= 0.01 and detections.confidence.max() <= 1
    names = detections.data["class_name"]
    assert [detector.classes[i] for i in detections.class_id] == list(names)
    h, w = image.shape[:2]
    assert (detections.xyxy >= 0).all() and (detections.xyxy[:, [0, 2]] <= w).all() and (detections.xyxy[:, [1, 3]] <= h).all()


def test_a_face_filling_the_frame_is_found(detector, data_dir):
    """A close-up: one face cropped out of a crowd photo and enlarged, as a webcam at a door sees it."""
    ds = load_dataset(data_dir).subset(["maksssksksss94"])
    sample = ds.samples[0]
    widths = sample.detections.xyxy[:, 2] - sample.detections.xyxy[:, 0]
    x1, y1, x2, y2 = sample.detections.xyxy[int(widths.argmax())]
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 2.2
    image = cv2.imread(str(sample.image_path))
    crop = image[max(0, int(cy - side / 2)):int(cy + side / 2), max(0, int(cx - side / 2)):int(cx + side / 2)]
    closeup = cv2.resize(crop, (480, 480), interpolation=cv2.INTER_CUBIC)
    detections = detector(closeup, min_score=0.3)
    assert len(detections) >= 1
    biggest = detections.xyxy[np.argmax(detections.area)]
    assert (biggest[2] - biggest[0]) > 480 * 0.25


def test_wrong_input_types_are_refused(detector):
    with pytest.raises(MaskwatchError, match="8-bit BGR"):
        detector(np.zeros((50, 50), np.uint8))
    with pytest.raises(MaskwatchError, match="8-bit BGR"):
        detector(np.zeros((50, 50, 3), np.float32))
    for score in ("0.4", True, 1.5):  # a string from a form, a bool: refused rather than read
        with pytest.raises(MaskwatchError, match="min_score is a score from 0 to 1"):
            detector(np.zeros((50, 50, 3), np.uint8), min_score=score)
    assert len(detector(np.zeros((50, 50, 3), np.uint8), min_score=np.float32(0.4))) == 0


def test_a_pil_image_is_taken_upright_and_drawn_as_seen_and_one_of_16_bits_or_closed_is_refused(detector, photo,
                                                                                                   tmp_path):
    from PIL import Image, ImageOps

    from maskwatch.annotate import annotate

    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown turned a quarter clockwise
    Image.open(photo).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    phone = Image.open(tmp_path / "phone.jpg")
    found = detector(phone, min_score=0.4)
    upright = ImageOps.exif_transpose(phone)
    assert len(found) >= 5 and (found.xyxy[:, 2] <= upright.width).all() and found.xyxy[:, 2].max() > phone.width
    drawn = annotate(phone, found, detector.classes)  # on the upright picture, as a BGR array
    assert drawn.shape == (upright.height, upright.width, 3)
    for mode in ("I;16", "F"):
        with pytest.raises(MaskwatchError, match="16-bit or float"):
            detector(Image.open(photo).convert("L").convert(mode))
    with Image.open(photo) as closed:
        pass
    with pytest.raises(MaskwatchError, match="could not read the PIL image"):
        detector(closed)


def test_annotate_colours_each_face_by_its_class_name_and_refuses_what_it_cannot_draw_on(detector, photo):
    from maskwatch.annotate import annotate
    from maskwatch.classes import CLASS_COLOURS_BGR

    from maskwatch.predictions import detections_from_labels

    names = ["with_mask", "face_nomask", "chin"]  # (a model's own names: coloured by what they mean)
    own = detections_from_labels(np.array([[10, 40, 90, 190], [110, 40, 190, 190], [210, 40, 290, 190]], float),
                                 names, np.full(3, 0.9), names)
    drawn = annotate(np.zeros((200, 300, 3), np.uint8), own)  # (the class names are in the detections)
    meant = ["with_mask", "without_mask", "mask_weared_incorrect"]
    from maskwatch.annotate import drawable, drawn_name

    assert [drawn_name(n) for n in ("with_mask", "máscara mal", "口罩")] == ["mask", "mascara mal", "??"]
    assert drawable("entrée: 2 in") == "entree: 2 in"  # (a zone's name too)
    assert [tuple(drawn[190, x]) for x in (50, 150, 250)] == [CLASS_COLOURS_BGR[name] for name in meant]
    image = read_image(photo)
    found = detector(image, min_score=0.4)
    for bad in (image[..., 0], image.astype(np.float32), np.dstack([image, image[..., :1]])):
        with pytest.raises(MaskwatchError, match="8-bit BGR image"):
            annotate(bad, found)
    with pytest.raises(MaskwatchError, match="must be writable and C-contiguous"):
        annotate(image[..., ::-1], found, copy=False)  # (OpenCV's "Layout ... incompatible")


def test_blank_and_tiny_images_give_no_faces(detector, photo):
    assert len(detector(np.full((240, 320, 3), 127, np.uint8), min_score=0.3)) == 0
    empty = detector(np.zeros((8, 8, 3), np.uint8))
    assert len(empty) == 0
    # what a result carries is there on an empty one too, so per-frame code need not test for it
    image = read_image(photo)
    for result in (empty, detector(image, min_score=0.999)):
        assert set(result.data) == set(detector(image).data) == {"class_name", "face_confidence"}
        assert result.data["face_confidence"].dtype == np.float32


def test_a_bad_face_score_or_a_model_named_by_a_string_says_so(detector, photo):
    image = read_image(photo)
    with pytest.raises(MaskwatchError, match="min_face_score is a score from 0 to 1"):
        detector(image, min_face_score="x")
    with pytest.raises(MaskwatchError, match="min_face_score is a score from 0 to 1, got 2"):
        detector(image, min_face_score=2)
    with pytest.raises(MaskwatchError, match="nope.onnx: model file not found"):
        Detector("nope.onnx")


@pytest.mark.parametrize("settings, error", [
    ({"min_face_score": 2}, "min_face_score is a score from 0 to 1, got 2"),  # (every call found nothing)
    ({"flip_test": "yes"}, "flip_test is True, False or None"),
    ({"threads": 0}, "threads is a whole number, 1 or more"),
    ({"threads": 2.5}, "threads is a whole number, 1 or more"),  # (pybind's TypeError about SessionOptions)
])
def test_settings_a_detector_cannot_use_are_refused_when_it_is_loaded(settings, error):
    with pytest.raises(MaskwatchError, match=error):
        Detector.load(**settings)


def test_a_detector_goes_to_a_process_pool_and_finds_there_what_it_finds_here(photo, tmp_path):
    """onnxruntime's sessions cannot be pickled: a Detector is sent as how it was made and loaded again there."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from conftest import shipped_head_named

    for detector in (Detector.load(threads=1, scale=1.0),
                     Detector.load(shipped_head_named(tmp_path / "own", ["mask", "no_mask", "incorrect"]), threads=1)):
        crowd = read_image(photo)
        again = pickle.loads(pickle.dumps(detector))
        assert repr(again) == repr(detector) and again.classes == detector.classes
        np.testing.assert_allclose(again(crowd).xyxy, detector(crowd).xyxy)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(detector, crowd, min_score=0.4).result(timeout=120)
    here = detector(crowd, min_score=0.4)
    assert list(there.data["class_name"]) == list(here.data["class_name"]) and len(here) >= 5


def test_a_model_path_that_is_not_a_model_says_so(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(MaskwatchError, match="photo.jpg: not a model"):
        Detector.load(photo)
    with pytest.raises(MaskwatchError, match="runs/v9: no such model file or run folder"):
        Detector.load(tmp_path / "runs" / "v9")


@pytest.mark.parametrize("config, error", [
    ('{"classes": ["with_mask"', "not readable JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('{"classes": ["a", "b", "c"]}', "lacks crop_size, crop_context"),
    ('{"classes": "abc", "crop_size": 80, "crop_context": 1.5}', "classes 'abc': they must be a list of distinct"),
    ('{"classes": ["a", "a", "b"], "crop_size": 80, "crop_context": 1.5}', "must be a list of distinct names"),
    ('{"classes": ["a", "b", "c"], "crop_size": 80, "crop_context": 1.5, "nms_iou": "0.5"}', "nms_iou '0.5'"),
    ('{"classes": ["a", "b", "c"], "crop_size": 80.5, "crop_context": 1.5}', "crop_size 80.5: a whole number"),
    ('{"classes": ["a", "b", "c"], "crop_size": 80, "crop_context": 1.5, "arch": "yolo"}', "arch 'yolo'"),
    ('{"classes": ["a", "b"], "crop_size": 80, "crop_context": 1.5}', "gives 3 classes but .* names 2 \\(a, b\\)"),
    ('{"classes": ["a", "b", "c"], "crop_size": 64, "crop_context": 1.5}', "takes 80-px crops but .* crop_size 64"),
])
def test_a_head_config_cut_short_edited_wrongly_or_from_another_run_is_refused_by_name(tmp_path, config, error):
    head = tmp_path / "mask_head.onnx"
    head.write_bytes(DEFAULT_HEAD.read_bytes())
    head.with_suffix(".json").write_text(config)
    with pytest.raises(MaskwatchError, match=error):
        Detector.load(head)


def test_a_head_config_with_whole_numbers_written_as_floats_is_read(tmp_path):
    head = tmp_path / "mask_head.onnx"
    head.write_bytes(DEFAULT_HEAD.read_bytes())
    head.with_suffix(".json").write_text('{"classes": ["a", "b", "c"], "crop_size": 80.0, "crop_context": 1.5}')
    assert Detector.load(head).config.crop_size == 80


def test_scale_option_is_checked():
    with pytest.raises(MaskwatchError, match="--scale"):
        Detector.load(scale="big")
    with pytest.raises(MaskwatchError, match="between"):
        Detector.load(scale=50)


def test_the_scale_policy_goes_up_for_small_faces_and_down_for_big_ones(data_dir):
    """The first pass decides: a crowd photo gets an upscaled pass, a face filling a 640x480 frame a downscaled
    one, and a big photo is first shrunk to the policy's long side."""
    from maskwatch.face_finder import FaceFinder, ScalePolicy

    finder, policy = FaceFinder(threads=2), ScalePolicy(coarse_first=None)
    crowd = read_image(data_dir / "images" / "maksssksksss12.jpg")  # 400 px wide, 13 faces about 17 px high
    passes = finder.scales_for(crowd, finder.at_scale(crowd, 1.0), policy, 1.0)
    assert len(passes) == 1 and passes[0] >= 2.0
    face = read_image(FACE_CROPS / "without_mask" / "17.jpg")
    door = cv2.resize(cv2.copyMakeBorder(face, 0, 0, 60, 60, cv2.BORDER_REPLICATE), (640, 480))
    first = finder.at_scale(door, 1.0)
    passes = finder.scales_for(door, first, policy, 1.0)
    assert len(passes) == 1 and passes[0] < 1.0
    big = finder(door, policy)[0:1]
    assert (big.xyxy[0, 3] - big.xyxy[0, 1]) > 200  # the downscaled pass's boxes are mapped back to the frame
    huge = cv2.resize(crowd, None, fx=4, fy=4)  # 1600 px long: the first pass shrinks it to 960
    assert finder.scales_for(huge, finder.at_scale(huge, 960 / 1600), policy, 960 / 1600)[0] > 960 / 1600


def record_scales(finder) -> list[float]:
    """The scales the face finder runs at, in order, from now on."""
    scales, at_scale = [], finder.at_scale
    finder.at_scale = lambda image, scale, *args, **kwargs: scales.append(scale) or at_scale(image, scale, *args,
                                                                                               **kwargs)
    return scales


def test_a_coarse_look_first_stands_in_for_the_first_pass_only_when_its_faces_are_big(data_dir):
    """ScalePolicy.coarse_first, which `--scale auto` sets: a face filling a 640x480 frame is found at half scale
    and the full pass is skipped; a crowd photo's small faces send it to the full pass (and the upscaled one); an
    image too small to hold a big face at half scale skips the coarse look."""
    from maskwatch.face_finder import FaceFinder, ScalePolicy

    finder, policy = FaceFinder(threads=2), ScalePolicy.parse("auto")
    scales = record_scales(finder)
    face = read_image(FACE_CROPS / "without_mask" / "17.jpg")
    door = cv2.resize(cv2.copyMakeBorder(face, 0, 0, 60, 60, cv2.BORDER_REPLICATE), (640, 480))
    coarse = finder(door, policy)
    assert scales[0] == 0.5 and 1.0 not in scales
    scales.clear()
    full = finder(door, ScalePolicy.parse("auto-full"))  # --scale auto-full: no coarse look
    assert scales[0] == 1.0 and 0.5 not in scales
    assert sv.box_iou_batch(coarse.xyxy[:1], full.xyxy[:1])[0, 0] > 0.8  # the same face, boxed alike
    scales.clear()
    crowd = read_image(data_dir / "images" / "maksssksksss12.jpg")
    assert len(finder(crowd, policy)) >= 10 and scales[:2] == [0.5, 1.0] and scales[2] >= 2.0
    scales.clear()
    finder(np.zeros((60, 40, 3), np.uint8), policy)
    assert 0.5 not in scales
    with pytest.raises(MaskwatchError, match="coarse_first"):
        ScalePolicy(coarse_first=1.0)


def test_a_detector_loaded_with_auto_full_keeps_it_when_video_asks_for_auto(crowd):
    """Video's scale chooser asks for "auto" on some frames: a detector loaded with --scale auto-full must keep
    its own policy (no coarse look) rather than fall back to the default's."""
    detector = Detector.load(scale="auto-full", threads=2)
    scales = record_scales(detector.faces)
    image = read_image(crowd.samples[0].image_path)
    detector.find_faces(image, scale="auto")
    assert scales and 0.5 not in scales
    default = Detector.load(threads=2)
    scales = record_scales(default.faces)
    default.find_faces(image, scale="auto")
    assert scales[0] == 0.5


def test_flip_averaging_is_the_mean_of_a_crop_and_its_mirror_image(detector, crowd):
    """detect --flip: each crop is also classified mirrored; the two looks are averaged, and the box correction's
    horizontal shift of the mirrored look changes sign."""
    from maskwatch.crops import crop_faces

    image = read_image(crowd.samples[0].image_path)
    faces = detector.find_faces(image)[:8]
    crops = crop_faces(image, faces.xyxy, detector.config.crop_size, detector.config.crop_context)
    probs, deltas = detector._run_head(crops)
    mirrored_probs, mirrored_deltas = detector._run_head(np.ascontiguousarray(crops[:, :, ::-1]))
    mirrored_deltas[:, 0] *= -1
    flipping = Detector.load(threads=2, flip_test=True)
    both_probs, both_deltas = flipping.classify(image, faces)
    assert not np.allclose(both_probs, probs, atol=1e-3)
    np.testing.assert_allclose(both_probs, (probs + mirrored_probs) / 2, atol=1e-5)
    np.testing.assert_allclose(both_deltas, (deltas + mirrored_deltas) / 2, atol=1e-5)
    assert not detector.config.flip_test  # the shipped head's own setting: off


def test_only_faces_smaller_than_refine_max_px_get_the_refined_look(crowd):
    """The refined look (a second crop at the corrected box) is what the head learnt on crowd faces; bigger faces
    keep their first look. refine_max_px 0 equals no refinement, a limit above every face equals refining all;
    likewise for refine_min_prob, the class probability a first look must give for a second."""
    image = cv2.imread(str(crowd.samples[0].image_path))

    def run(passes: int, limit: float | None, min_prob: float = 0.0) -> sv.Detections:
        detector = Detector.load(threads=2)
        detector.config.refine_passes, detector.config.refine_max_px = passes, limit
        detector.config.refine_min_prob = min_prob
        return detector(image)

    def same(a: sv.Detections, b: sv.Detections) -> bool:
        return len(a) == len(b) and np.allclose(a.xyxy, b.xyxy) and np.allclose(a.confidence, b.confidence)

    assert same(run(1, 0), run(0, None))
    assert same(run(1, 10_000), run(1, None))
    assert not same(run(1, None), run(0, None))  # the refined look changes something on these crowd faces
    faces = Detector.load(threads=2).find_faces(image)
    heights = faces.xyxy[:, 3] - faces.xyxy[:, 1]
    middle = float(np.median(heights))
    partly = run(1, middle)  # some faces refined, some not: neither extreme
    assert not same(partly, run(1, None)) and not same(partly, run(0, None))
    assert same(run(1, None, 1.01), run(0, None))  # no first look gives a class probability above 1
    gated = run(1, None, 0.05)  # the candidates the first look calls background are not looked at again
    assert not same(gated, run(1, None)) and not same(gated, run(0, None))


def test_a_high_min_score_classifies_fewer_candidates_and_keeps_the_same_detections(detector, crowd):
    """A candidate the face finder scores c ends at most at c ** face_score_power: under a high min_score (the
    people's 0.4) the hopeless ones are not cropped, and what is kept is what the low tail held above it."""
    asked: list[int] = []
    run_head = detector._run_head

    def counting(crops):
        asked.append(len(crops))
        return run_head(crops)

    detector._run_head = counting
    try:
        # 0.4: candidates under 0.16 left out; 0.7: under 0.4 (capped), the scale policy's own floor.
        for sample, kept in [(sample, kept) for sample in crowd.samples for kept in (0.4, 0.7)]:
            image = cv2.imread(str(sample.image_path))
            asked.clear()
            tail = detector(image, min_score=0.01, all_classes=True)
            crops_for_tail = sum(asked)
            asked.clear()
            people = detector(image, min_score=kept, all_classes=True)
            assert sum(asked) < crops_for_tail, sample.image_path.name
            above = tail[tail.confidence >= kept]
            order_a, order_b = (np.lexsort((d.class_id, *d.xyxy.T)) for d in (above, people))  # a face's classes too
            assert len(people) == len(above) > 0
            np.testing.assert_allclose(people.xyxy[order_b], above.xyxy[order_a], atol=1e-3)
            np.testing.assert_allclose(people.confidence[order_b], above.confidence[order_a], atol=1e-4)
            assert list(people.data["class_name"][order_b]) == list(above.data["class_name"][order_a])
    finally:
        detector._run_head = run_head
    assert detector.hopeless_below(0.4) == pytest.approx(0.16)  # 0.4 ** (1 / 0.5)
    assert detector.hopeless_below(0.9) == pytest.approx(0.4)  # capped: the scale policy sees the same faces


def test_the_8_bit_model_agrees_with_the_float_one_and_is_what_the_tool_makes(detector, crowd, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from maskwatch.detector import SHIPPED_FILES, SHIPPED_INT8

    int8 = Detector.load("shipped-int8", threads=2)
    assert int8.config == detector.config  # one JSON for both
    matched = total = 0
    for sample in crowd.samples:
        image = cv2.imread(str(sample.image_path))
        a, b = detector(image, min_score=0.4), int8(image, min_score=0.4)
        total += len(a) + len(b)
        if len(a) and len(b):
            iou = sv.box_iou_batch(a.xyxy, b.xyxy)
            same = (iou.max(axis=1) >= 0.5) & (b.data["class_name"][iou.argmax(axis=1)] == a.data["class_name"])
            matched += 2 * int(same.sum())
    assert matched / total >= 0.85, (matched, total)  # F1 of the faces shown, the same class
    pytest.importorskip("onnx")  # the train extra: making the files needs it, running them does not
    tool = Path(__file__).resolve().parents[1] / "tools" / "quantize_models.py"
    subprocess.run([sys.executable, str(tool), "--out", str(tmp_path)], check=True, capture_output=True, timeout=600)
    # The same networks as shipped, up to float noise (the calibration runs the float networks, whose last bits
    # may differ with another onnxruntime or CPU): the same answers on the same inputs.
    from maskwatch.crops import crop_faces, crops_to_blob
    from maskwatch.face_finder import make_session

    image = cv2.imread(str(crowd.samples[0].image_path))
    h, w = image.shape[0] // 32 * 32, image.shape[1] // 32 * 32
    inputs = [image[:h, :w, ::-1].transpose(2, 0, 1)[None].astype(np.float32),
              crops_to_blob(crop_faces(image, crowd.samples[0].detections.xyxy, detector.config.crop_size,
                                       detector.config.crop_context))]
    for shipped, blob in zip(SHIPPED_FILES[SHIPPED_INT8][::-1], inputs):  # (head, face finder) -> finder first
        made, ours = make_session(tmp_path / shipped.name, 1), make_session(shipped, 1)
        feed = {made.get_inputs()[0].name: blob}
        first = made.run(None, feed)[0]
        assert np.abs(first - ours.run(None, feed)[0]).max() < 0.03, shipped.name  # float vs 8 bits: 0.09-0.11


def test_the_networks_inputs_are_the_plain_formulas(crowd):
    """The inputs are built plane by plane for speed: the same float values as the one-line formulas."""
    from maskwatch.crops import crops_to_blob
    from maskwatch.face_finder import finder_input

    image = cv2.imread(str(crowd.samples[0].image_path))
    crops = np.stack([image[:80, :80], image[-80:, -80:]])
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255
    plain = ((crops[..., ::-1].astype(np.float32) - mean) / std).transpose(0, 3, 1, 2)
    assert np.array_equal(crops_to_blob(crops), plain)
    blob, (w, h) = finder_input(image, 1.0)
    assert (w, h) == (image.shape[1], image.shape[0]) and blob.shape[2] % 32 == 0 and blob.shape[3] % 32 == 0
    assert np.array_equal(blob[0, :, :h, :w], image[:, :, ::-1].transpose(2, 0, 1).astype(np.float32))


def test_a_quick_model_is_said_to_be_one_once_however_often_it_is_loaded(tmp_path, caplog):
    """A server loads a model for uploads and again for its cameras: the --quick warning came twice."""
    import json

    head = tmp_path / "mask_head.onnx"
    head.write_bytes(DEFAULT_HEAD.read_bytes())
    config = json.loads(DEFAULT_HEAD.with_suffix(".json").read_text()) | {"train_options": {"quick": True}}
    head.with_suffix(".json").write_text(json.dumps(config))
    caplog.set_level("WARNING")
    Detector.load(head, threads=1)
    Detector.load(head, threads=1, scale=1)
    assert caplog.text.count("was trained with --quick") == 1
