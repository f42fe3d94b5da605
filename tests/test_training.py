"""Training end to end on a handful of real images, and the exported ONNX against the torch model."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="training tests need `make install-train`")

from maskwatch.crops import crops_to_blob  # noqa: E402
from maskwatch.detector import Detector  # noqa: E402
from maskwatch.models.crop_head import CropHead, export_onnx  # noqa: E402
from maskwatch.training.engine import TrainConfig, fit  # noqa: E402


@pytest.mark.slow
def test_quick_training_runs_end_to_end_and_the_loss_falls(data_dir, tmp_path, caplog):
    caplog.set_level("WARNING")
    onnx_path = fit(TrainConfig(data=data_dir, out=tmp_path / "run", quick=True, threads=2, epochs=2))
    assert "was trained with --quick" not in caplog.text  # (train says it its own way, once)
    with (tmp_path / "run" / "history.csv").open() as f:
        history = list(csv.DictReader(f))
    assert len(history) == 2
    assert float(history[1]["loss"]) < float(history[0]["loss"])
    assert (tmp_path / "run" / "history.png").is_file() and (tmp_path / "run" / "last.pt").is_file()
    detector = Detector.load(tmp_path / "run", threads=2)
    assert "was trained with --quick" in caplog.text  # said where it is used, not only where it was made
    caplog.clear()
    assert detector.classes == ["with_mask", "without_mask", "mask_weared_incorrect"]
    assert onnx_path.stat().st_size > 1_000_000
    # its 8-bit copy, beside it: loads with the float head's settings and the 8-bit face finder, and answers alike
    from maskwatch.data import load_dataset
    from maskwatch.data.images import annotated_image
    from maskwatch.detector import CENTERFACE_PATH, int8_twin

    int8 = Detector.load(int8_twin(onnx_path), threads=2)
    assert "mask_head-int8.onnx was trained with --quick" in caplog.text  # (its float twin's JSON says it)
    assert int8.config == detector.config and int8.faces.path == int8_twin(CENTERFACE_PATH)
    image = annotated_image(load_dataset(data_dir).subset(["maksssksksss94"]).samples[0].image_path)
    a, b = detector(image, min_score=0.01), int8(image, min_score=0.01)
    assert abs(len(a) - len(b)) <= max(2, len(a) // 5), (len(a), len(b))


def test_onnx_export_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = CropHead(3, pretrained=True).eval()
    path = export_onnx(model, tmp_path / "head.onnx", 64)
    crops = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    blob = crops_to_blob(crops)
    with torch.no_grad():
        logits, deltas = model(torch.from_numpy(blob))
    probs_onnx, deltas_onnx = ort.InferenceSession(str(path)).run(None, {"crops": blob})
    np.testing.assert_allclose(probs_onnx, torch.softmax(logits, 1).numpy(), atol=1e-4)
    np.testing.assert_allclose(deltas_onnx, deltas.numpy(), atol=1e-4)


def test_what_ships_is_the_backbone_moved_back_towards_imagenet_by_finetuned_share():
    """TwoStageRecipe.shipping_model (WiSE-FT): every backbone weight and BatchNorm statistic is
    share * trained + (1 - share) * ImageNet; the class and box layers stay as trained; the model itself is not
    changed (training goes on from it)."""
    from maskwatch.training.two_stage import TwoStageRecipe

    recipe = object.__new__(TwoStageRecipe)  # the mixing alone: no data needed
    recipe.model = CropHead(3, pretrained=True)
    recipe.pretrained_backbone = {k: v.clone() for k, v in recipe.model.features.state_dict().items()}
    with torch.no_grad():
        for name, value in recipe.model.state_dict().items():
            if value.is_floating_point():
                value += 1.0  # "training" moved every float by 1
    trained = {k: v.clone() for k, v in recipe.model.state_dict().items()}
    recipe.finetuned_share = 0.9
    shipped = recipe.shipping_model().state_dict()
    for name in ("features.0.0.weight", "features.0.1.running_mean", "features.18.1.running_var"):
        key = name.removeprefix("features.")
        torch.testing.assert_close(shipped[name], recipe.pretrained_backbone[key] + 0.9)
    torch.testing.assert_close(shipped["classify.weight"], trained["classify.weight"])
    assert torch.equal(recipe.model.state_dict()["features.0.0.weight"], trained["features.0.0.weight"])
    recipe.finetuned_share = 1.0
    torch.testing.assert_close(recipe.shipping_model().state_dict()["features.0.0.weight"], trained["features.0.0.weight"])


@pytest.mark.parametrize("setting", ["finetuned_share", "backbone_lr_factor"])
def test_a_share_or_factor_outside_0_to_1_is_refused(setting, data_dir, tmp_path):
    from maskwatch.errors import MaskwatchError

    with pytest.raises(MaskwatchError, match=rf"{setting} \(--[a-z-]+\) must be in"):
        fit(TrainConfig(data=data_dir, out=tmp_path / "run", quick=True, threads=2, recipe={setting: 0.0}))
    assert not (tmp_path / "run").exists()  # refused before the data is read


@pytest.mark.parametrize("option, said", [
    ({"lr": -1.0}, "must be"), ({"batch_size": 0}, "must be"), ({"recipe": {"crop_size": 0}}, "must be"),
    ({"recipe": {"crop_sise": 80}}, "--crop-sise is not a setting of --arch two-stage"),
    ({"recipe": {"probe_epochs": 12}}, "must be"), ({"recipe": {"probe_epochs": -1}}, "must be"),
    # Options of the two-stage recipe given to the one-stage one: an internal name, or silently ignored.
    ({"arch": "one-stage", "recipe": {"crop_size": 96}}, "--crop-size is not a setting of --arch one-stage"),
    ({"arch": "one-stage", "extra_faces": Path("faces")}, "--extra-faces: face pictures are for --arch two-stage"),
    ({"arch": "one-stage", "synthetic_wrong": 100}, "--synthetic-wrong: face pictures are for --arch two-stage"),
    ({"synthetic_wrong": -5}, "--synthetic-wrong is a count of composites per epoch: 0 or more")])
def test_values_training_cannot_use_are_refused_before_the_data_is_read(option, said, tmp_path):
    from maskwatch.errors import MaskwatchError

    with pytest.raises(MaskwatchError, match=said):
        fit(TrainConfig(data=tmp_path / "not-read", out=tmp_path / "run", **option))


def test_the_backbone_learns_at_its_factor_of_the_rate_and_the_new_layers_at_the_rate():
    from maskwatch.training.two_stage import TwoStageRecipe

    recipe = object.__new__(TwoStageRecipe)  # the parameter groups alone: no data needed
    recipe.model, recipe.backbone_lr_factor = CropHead(3, pretrained=False), 0.25
    groups = recipe.param_groups()
    assert [g["lr_factor"] for g in groups] == [0.25, 1.0]
    backbone, new = ({id(p) for p in g["params"]} for g in groups)
    assert backbone == {id(p) for p in recipe.model.features.parameters()}
    assert new == {id(p) for p in [*recipe.model.classify.parameters(), *recipe.model.regress.parameters()]}
    recipe.backbone_lr_factor = 1.0  # one group, as before the option: checkpoints of older runs still resume
    assert [g["lr_factor"] for g in recipe.param_groups()] == [1.0]


def test_while_probing_only_the_new_layers_learn_and_the_backbone_keeps_its_statistics():
    from maskwatch.training.two_stage import TwoStageRecipe

    recipe = object.__new__(TwoStageRecipe)  # the training mode alone: no data needed
    recipe.model, recipe.probe_epochs, recipe.backbone_lr_factor = CropHead(3, pretrained=False), 1, 1.0
    before = {k: v.clone() for k, v in recipe.model.state_dict().items()}
    optimizer = torch.optim.AdamW(recipe.param_groups(), lr=1e-2)

    def one_step(epoch: int) -> dict:
        recipe.train_mode(epoch)
        logits, deltas = recipe.model(torch.randn(8, 3, 64, 64))
        optimizer.zero_grad(set_to_none=True)
        (logits.logsumexp(1).sum() + deltas.square().sum()).backward()
        optimizer.step()
        return {k: v.clone() for k, v in recipe.model.state_dict().items()}

    probed = one_step(0)
    assert all(torch.equal(before[k], probed[k]) for k in before if k.startswith("features."))  # BN statistics too
    assert not torch.equal(before["classify.weight"], probed["classify.weight"])
    tuned = one_step(1)
    assert not torch.equal(probed["features.0.0.weight"], tuned["features.0.0.weight"])
    assert not torch.equal(probed["features.0.1.running_mean"], tuned["features.0.1.running_mean"])


def test_class_balancing_favours_the_rare_class_and_can_be_switched_off(data_dir):
    from maskwatch.data import load_dataset
    from maskwatch.training.balance import class_balance, copies_per_class, rarest_class

    dataset = load_dataset(data_dir)  # 2922 / 666 / 113 boxes
    assert copies_per_class(dataset, 2.0).tolist() == [2, 4, 10]
    assert copies_per_class(dataset, 2.0, balance=False).tolist() == [2, 2, 2]
    image_weights, class_weights = class_balance(dataset)
    assert rarest_class(dataset) == 2 and class_weights[2] > class_weights[1] > class_weights[0] == 1
    with_rare = [i for i, s in enumerate(dataset.samples) if 2 in s.detections.class_id]
    assert image_weights[with_rare].min() > image_weights.min()
    image_weights, class_weights = class_balance(dataset, balance=False)
    assert np.allclose(image_weights, image_weights[0]) and class_weights.tolist() == [1, 1, 1]


@pytest.mark.slow
@pytest.mark.parametrize("names", [None, {"with_mask": "mask", "without_mask": "no_mask",
                                          "mask_weared_incorrect": "incorrect"}])
def test_quick_training_with_extra_faces_and_synthetic_wrong_masks(data_dir, extra_faces_dir, tmp_path, names):
    """The two-stage recipe also learns from a folder per class of face pictures and from composites (also for a
    data set of other class names: the folders and composites go to the classes of the same meaning); the run's
    model records what it was trained with and loads as the detector; --val-every skips validations."""
    extra = extra_faces_dir
    if names:  # folders named otherwise again, neither as the classes nor as the label map's keys
        extra = tmp_path / "faces"
        for folder, theirs in (("with_mask", "face_masked"), ("without_mask", "face_bare")):
            shutil.copytree(extra_faces_dir / folder, extra / theirs)
    onnx_path = fit(TrainConfig(data=data_dir, out=tmp_path / "run", quick=True, threads=2, epochs=2,
                                extra_faces=extra, synthetic_wrong=8, device="cpu", keep="last",
                                val_every=2, recipe={"crop_size": 48}, label_map=names or {}))
    classes = sorted(names.values()) if names else ["with_mask", "without_mask", "mask_weared_incorrect"]
    config = json.loads(onnx_path.with_suffix(".json").read_text())
    assert config["recipe"]["extra_copies"] == 1.0 and config["kept"] == "last" and config["epoch"] == 2
    assert config["crop_size"] == 48  # --crop-size: what the head learnt on is what the detector crops
    with (tmp_path / "run" / "history.csv").open() as f:  # validated every 2nd epoch (and after the last)
        validated = [not np.isnan(float(row["val_mAP50"])) for row in csv.DictReader(f)]
    assert validated == [False, True]
    # The kept epoch's validation is stored per class beside the model (the CV bench reads it, not predicting again)
    assert config["val_scores"]["mAP50"] == config["val_mAP50"]
    assert {f"AP50 {name}" for name in classes} <= set(config["val_scores"])
    detector = Detector.load(tmp_path / "run", threads=2)
    assert detector.classes == classes


def test_synthesis_needs_the_pictures_it_composes(data_dir, tmp_path):
    from maskwatch.errors import MaskwatchError

    with pytest.raises(MaskwatchError, match="--synthetic-wrong needs --extra-faces"):
        fit(TrainConfig(data=data_dir, out=tmp_path / "run", quick=True, threads=2, synthetic_wrong=8))
    assert not (tmp_path / "run").exists()  # (refused before the data was read: it left candidates.npz, which
    # made `detect --model OUT` call it a run still going)


def test_device_choice(tmp_path):
    from maskwatch.errors import MaskwatchError
    from maskwatch.training.engine import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(MaskwatchError, match="--device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MaskwatchError, match="sees no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here: the GPU path runs where there is one")
def test_quick_training_on_the_gpu(data_dir, tmp_path):
    onnx_path = fit(TrainConfig(data=data_dir, out=tmp_path / "run", quick=True, threads=2, epochs=1, device="cuda"))
    assert Detector.load(onnx_path, threads=2).classes == ["with_mask", "without_mask", "mask_weared_incorrect"]


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from maskwatch.training.engine import CosineSchedule

    schedule = CosineSchedule(1e-3, epochs=2, warmup_steps=10)
    assert schedule(0, 0, 100) == pytest.approx(1e-4)
    assert schedule(0, 50, 100) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.25)))
    assert schedule(1, 50, 100) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.75)))
    assert schedule(2, 0, 100) == pytest.approx(0.0)
    # epochs of different lengths: progress is by epoch, not by a global step count
    assert schedule(1, 0, 300) == pytest.approx(5e-4)


def test_every_model_kind_names_a_recipe_a_runtime_and_the_file_a_run_leaves(tmp_path):
    """The registry names, for each kind, a recipe the engine can drive, a detector class that runs its file, and
    the file a run folder is recognised by (training and loading each kind: the quick training tests)."""
    from maskwatch.detector import _FaceDetector
    from maskwatch.model_kinds import KINDS, model_in
    from maskwatch.training.engine import Recipe

    runtimes = set()
    for kind in KINDS.values():
        assert issubclass(kind.load_recipe(), Recipe)
        assert issubclass(kind.load_runtime(), _FaceDetector)
        runtimes.add(kind.load_runtime())
        model = tmp_path / kind.name / "model" / kind.model_file
        model.parent.mkdir(parents=True)
        model.write_bytes(b"")
        assert model_in(tmp_path / kind.name) == model
    assert len(runtimes) == len(KINDS)  # each kind its own detector class


@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco", "tfrecord"])
def test_training_validates_on_the_val_side_a_converted_set_names(small_voc, tmp_path, fmt):
    from maskwatch.data import load_dataset, save_dataset
    from maskwatch.data.split import split_dataset
    from maskwatch.training.engine import split_for_training

    dataset = load_dataset(small_voc)
    sides = split_dataset(dataset, 0.34, seed=3)
    save_dataset(dataset, tmp_path / f"as_{fmt}", fmt, "hardlink", sides)  # (small_voc is tmp_path / "voc")
    converted = load_dataset(tmp_path / f"as_{fmt}")
    train, val = split_for_training(converted, TrainConfig(data=tmp_path / f"as_{fmt}", out=tmp_path / "run", seed=0))
    assert sorted(s.stem for s in val.samples) == sorted(sides.val)
    assert sorted(s.stem for s in train.samples) == sorted(sides.train)


def test_a_val_list_that_does_not_split_the_set_is_said_and_the_usual_split_used(small_voc, tmp_path, caplog):
    from maskwatch.data import load_dataset
    from maskwatch.training.balance import rarest_class
    from maskwatch.training.engine import split_for_training

    dataset = load_dataset(small_voc)
    (small_voc / "val.txt").write_text("not_an_image_here\n")  # a stray list
    train, val = split_for_training(dataset, TrainConfig(data=small_voc, out=tmp_path / "run"))
    assert len(train) and len(val) and "names none of the data set's 6 images" in caplog.text
    # A class the file lists but no box uses is not "the rarest": its AP would be NaN every epoch.
    listed = dataset.with_classes([*dataset.classes, "unused"])
    assert listed.classes[rarest_class(listed)] != "unused"
    from maskwatch.training.engine import warn_unseen_classes

    assert warn_unseen_classes(listed) == ["unused"] and "no training box of unused" in caplog.text
    assert warn_unseen_classes(dataset) == []


def test_an_unreadable_image_is_left_out_with_a_warning_and_one_image_is_refused(small_voc, tmp_path, caplog):
    from maskwatch.data import load_dataset
    from maskwatch.errors import MaskwatchError
    from maskwatch.training.engine import read_images, split_for_training

    broken = small_voc / "images" / "maksssksksss94.jpg"
    broken.write_bytes(broken.read_bytes()[:2000])  # a download cut short: the header reads, the pixels do not
    dataset = load_dataset(small_voc)
    config = TrainConfig(data=small_voc, out=tmp_path / "run")
    train, val = split_for_training(dataset, config)  # the duplicate search does not trip on it
    assert "cannot be read, so they are not compared for duplicates" in caplog.text
    train, val, images = read_images(train, val)
    assert "maksssksksss94" not in images and len(train) + len(val) == len(dataset) - 1
    assert "1 image(s) cannot be read and are left out" in caplog.text and "maksssksksss94.jpg" in caplog.text
    with pytest.raises(MaskwatchError, match="at least one on each side"):
        split_for_training(dataset.subset(["maksssksksss0"]), config)


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_a_roboflow_export_validates_on_its_valid_folder_and_leaves_its_test_folder_out(small_voc, tmp_path, fmt,
                                                                                        caplog):
    from conftest import roboflow_export
    from maskwatch.data import load_dataset
    from maskwatch.training.engine import split_for_training

    dataset = load_dataset(small_voc)
    rf, sides = roboflow_export(small_voc, tmp_path, fmt)
    loaded = load_dataset(rf)  # the folder above the sides, read whole
    assert len(loaded) == 6 and loaded.num_boxes == dataset.num_boxes
    assert loaded.classes == dataset.classes  # (COCO: the project's category `faces`, which groups them, is no class)
    assert loaded.class_counts() == dataset.class_counts() and "not among" not in caplog.text
    train, val = split_for_training(loaded, TrainConfig(data=rf, out=tmp_path / "run"))
    assert sorted(s.stem for s in val.samples) == sorted(sides["valid"])
    assert sorted(s.stem for s in train.samples) == sorted(sides["train"])


def test_cached_face_candidates_belong_to_the_pixels_not_only_the_name(data_dir, tmp_path):
    from maskwatch.data.images import annotated_image
    from maskwatch.training.candidates import find_candidates

    image = annotated_image(data_dir / "images" / "maksssksksss94.jpg")
    cache = tmp_path / "candidates.npz"
    found = find_candidates({"0001": image}, cache)["0001"]
    assert len(found)
    black = find_candidates({"0001": np.zeros_like(image)}, cache)["0001"]  # another set, the same name
    assert len(black) == 0
    assert np.array_equal(find_candidates({"0001": image}, cache)["0001"], found)


def test_boxes_the_label_map_left_out_are_regions_to_ignore_not_background_to_learn(data_dir):
    """A candidate on a box --label-map OLD= left out (a face shield: a face) is neither a positive nor a negative;
    one elsewhere is a negative as before; the one-stage heatmap's loss is not taken there (neither face nor
    background: the box may hold a helmet), except on a labelled face inside it."""
    import supervision as sv

    from maskwatch.data import load_dataset
    from maskwatch.training.candidates import match_candidates
    from maskwatch.training.one_stage import window_targets

    gt = sv.Detections(xyxy=np.array([[10, 10, 40, 40]], np.float32), class_id=np.array([0]))
    left_out = np.array([[100, 100, 130, 130]], np.float32)
    candidates = np.array([[11, 11, 41, 41, 0.9], [101, 99, 131, 129, 0.8], [200, 10, 230, 40, 0.5]], np.float32)
    positives, negatives = match_candidates("x", candidates, gt, left_out=left_out)
    assert [p.label for p in positives] == [1]
    assert [n.box.tolist() for n in negatives] == [[200, 10, 230, 40]]
    assert len(match_candidates("x", candidates, gt)[1]) == 2  # without it, the left-out face was background
    face = np.array([[4, 4, 12, 12]], np.float32)
    targets = window_targets(face, np.array([0]), 64, ignore=np.array([[0, 0, 32, 32]], np.float32))
    assert targets["heat"].max() == pytest.approx(1.0) and targets["heat"][4:, 4:].max() == 0  # no face made
    assert targets["care"][:8, :8].min() == 0 and targets["care"][8:, 8:].min() == 1  # (8 cells: 32 px, stride 4)
    assert (targets["care"][targets["heat"] > 0] == 1).all()  # the labelled face inside it is still taught
    loaded = load_dataset(data_dir, label_map={"mask_weared_incorrect": ""})
    assert sum(len(s.left_out) for s in loaded.samples) > 100  # the training set's 113 such faces, as left out


def test_extra_face_folders_take_the_label_map_of_the_data_set(extra_faces_dir, tmp_path):
    """Folders named as another tool names the classes (Mask, no_mask) were refused, with no hint, after the search
    for candidates; the --label-map that renames the data set's labels now renames them too, and names that say
    what they are are taken as that class."""
    import shutil

    from maskwatch.errors import MaskwatchError
    from maskwatch.training.face_pictures import list_face_pictures

    classes = ["with_mask", "without_mask", "mask_weared_incorrect"]
    theirs = tmp_path / "theirs"
    shutil.copytree(extra_faces_dir / "with_mask", theirs / "Mask")
    shutil.copytree(extra_faces_dir / "without_mask", theirs / "no_mask")
    (theirs / "face_shield").mkdir()
    with pytest.raises(MaskwatchError, match="found \\['Mask', 'face_shield', 'no_mask'\\].*--label-map face_shield= "
                                             "leaves face_shield out"):
        list_face_pictures(theirs, classes)
    assert list_face_pictures(theirs, classes, {"face_shield": ""}) == list_face_pictures(
        theirs, classes, {"Mask": "with_mask", "no_mask": "without_mask", "face_shield": ""})
    listed = list_face_pictures(theirs, classes, {"Mask": "with_mask", "no_mask": "without_mask", "face_shield": ""})
    assert sorted({index for _, index in listed}) == [0, 1]
    assert len(listed) == len(list_face_pictures(extra_faces_dir, classes))


def test_overwrite_keeps_the_earlier_finished_run_until_the_new_one_has_its_model(tmp_path):
    """--overwrite deleted the earlier run at the start: a new run stopped in its first epoch left no model at all."""
    import shutil

    from maskwatch.run_folder import REPLACED
    from maskwatch.training.engine import set_earlier_run_aside

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mask_head.onnx").write_text("the earlier model")
    for name in ("last.pt", "history.csv", "val.txt", "candidates.npz"):
        (tmp_path / name).write_text(name)
    set_earlier_run_aside(tmp_path)
    assert (tmp_path / REPLACED / "model" / "mask_head.onnx").read_text() == "the earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.npz", REPLACED]  # (a cache, reused)
    (tmp_path / "last.pt").write_text("one epoch of the new run, stopped")  # then --overwrite again
    set_earlier_run_aside(tmp_path)
    assert not (tmp_path / "last.pt").exists()
    assert (tmp_path / REPLACED / "model" / "mask_head.onnx").read_text() == "the earlier model"
    from maskwatch.errors import MaskwatchError
    from maskwatch.training.engine import check_run_folder

    plain = TrainConfig(data=tmp_path, out=tmp_path)  # a run without --overwrite would delete it when done
    with pytest.raises(MaskwatchError, match="holds an earlier run \\(replaced\\)"):
        check_run_folder(plain)
    shutil.rmtree(tmp_path / REPLACED)
    (tmp_path / REPLACED).write_text("a file of the user's")
    with pytest.raises(MaskwatchError, match="replaced is not a folder"):
        check_run_folder(TrainConfig(data=tmp_path, out=tmp_path, overwrite=True))


def test_a_run_stopped_while_it_saves_its_checkpoint_keeps_the_one_before_whole(tmp_path, monkeypatch):
    """last.pt was written in place: Ctrl-C during the save left a truncated file, and every epoch was lost."""
    from maskwatch.training import engine

    cfg = TrainConfig(data=tmp_path, out=tmp_path)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    row = {"epoch": 1, "loss": 1.0, "val_mAP50": 0.5}
    engine.checkpoint(cfg, model, optimizer, [], row, -1.0)

    def cut_short(state, path):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(KeyboardInterrupt):
        engine.checkpoint(cfg, model, optimizer, [row], {**row, "epoch": 2}, 0.5)
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 1


def test_early_stopping_is_decided_by_validated_epochs_only():
    """With --val-every 3 --patience 2, two epochs not validated after the best stopped the run unscored."""
    from maskwatch.training.engine import early_stop_due

    cfg = TrainConfig(data=Path("d"), out=Path("o"), patience=2)
    nan = float("nan")
    scores = lambda *values: [{"val_mAP50": v} for v in values]  # noqa: E731
    assert not early_stop_due(scores(0.3, nan, nan), cfg)
    assert early_stop_due(scores(0.3, nan, nan, 0.2), cfg) and not early_stop_due(scores(0.3, nan, nan, 0.4), cfg)
    assert not early_stop_due(scores(0.3, 0.2, 0.1), TrainConfig(data=Path("d"), out=Path("o"), keep="last"))


def test_a_run_that_stopped_early_resumes_only_where_its_patience_would_go_on(tmp_path):
    """It trained one more epoch at every --resume (and replaced its model)."""
    from maskwatch.training.engine import resume

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    history = [{"epoch": 1, "val_mAP50": 0.5}, {"epoch": 2, "val_mAP50": 0.4}]
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 2, "history": history,
             "best": 0.5, "epochs": 5, "stopped_early": True}
    start, _, _ = resume(TrainConfig(data=tmp_path, out=tmp_path, epochs=5, patience=1), state, model, optimizer)
    assert start == 5  # nothing more to train
    start, _, _ = resume(TrainConfig(data=tmp_path, out=tmp_path, epochs=5, patience=3), state, model, optimizer)
    assert start == 2  # a larger patience goes on


@pytest.mark.parametrize("change, said", [
    ({"out": "DATA"}, "is the data set's own folder"),
    ({"resume": True, "overwrite": True}, "give one of them"),
    ({"patience": 0}, "--patience must be at least 1 epoch"),
])
def test_train_options_that_cannot_work_are_refused_before_anything_is_read(small_voc, tmp_path, change, said):
    """--out as the data folder replaced the data set's val.txt; --resume --overwrite ignored --overwrite;
    --patience 0 stopped after the first epoch."""
    from maskwatch.errors import MaskwatchError

    options = {"data": small_voc, "out": tmp_path / "run", "quick": True, "threads": 2, **change}
    options["out"] = small_voc if options["out"] == "DATA" else options["out"]
    with pytest.raises(MaskwatchError, match=said):
        fit(TrainConfig(**options))
    assert not (tmp_path / "run").exists()


def test_validation_images_without_a_face_are_refused_before_training(small_voc, tmp_path):
    """Every epoch scored NaN ("not validated"), then the run crashed at its end: no best.pt."""
    from maskwatch.errors import MaskwatchError

    stems = sorted(p.stem for p in (small_voc / "annotations").glob("*.xml"))
    for stem in stems[:2]:  # two photos whose faces are not annotated: negatives
        xml = small_voc / "annotations" / f"{stem}.xml"
        text = xml.read_text()
        xml.write_text(text[:text.index("<object>")] + "</annotation>\n")
    (tmp_path / "val.txt").write_text("\n".join(stems[:2]) + "\n")
    with pytest.raises(MaskwatchError, match="validation image\\(s\\) hold no face to find"):
        fit(TrainConfig(data=small_voc, out=tmp_path / "run", val_split=tmp_path / "val.txt", threads=2, quick=True))


def test_interrupted_before_its_first_epoch_an_overwrite_run_does_not_offer_the_earlier_runs_checkpoint(
        small_voc, tmp_path, monkeypatch):
    """It said "the epochs finished are kept in OUT/last.pt; --resume goes on", of the run it was replacing."""
    from typer.testing import CliRunner

    from maskwatch.cli import app
    from maskwatch.training import engine

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"the earlier run's")
    earlier = 1_000_000_000
    import os

    os.utime(tmp_path / "run" / "last.pt", (earlier, earlier))

    def stopped(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "fit", stopped)
    result = CliRunner().invoke(app, ["train", "--data", str(small_voc), "--out", str(tmp_path / "run"),
                                      "--overwrite"])
    assert result.exit_code == 130
    assert "before this run's first epoch ended: the earlier run in" in result.output
    assert "--resume" not in result.output


@pytest.mark.slow
def test_a_resumed_run_goes_on_as_the_uninterrupted_one_and_refuses_other_settings(data_dir, tmp_path, monkeypatch):
    """Resumed after epoch 1, a run ended elsewhere (dropout drew from a fresh generator: val mAP@.5 0.54 against
    0.65); resumed with --crop-size 128 it exported a head trained on 64-px crops as a 128-px one."""
    from maskwatch.errors import MaskwatchError
    from maskwatch.training import engine

    def run(out, **options):
        return fit(TrainConfig(data=data_dir, out=tmp_path / out, quick=True, threads=2, epochs=2, **options))

    def history(out):
        with (tmp_path / out / "history.csv").open() as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    run("whole")
    one_epoch = engine.train_one_epoch

    def stop_at_the_second(recipe, optimizer, schedule, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return one_epoch(recipe, optimizer, schedule, epoch, *args)

    monkeypatch.setattr(engine, "train_one_epoch", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run("cut")
    monkeypatch.undo()
    with pytest.raises(MaskwatchError, match="other settings \\(crop_size [0-9]+ there, 96 now\\)"):
        run("cut", resume=True, recipe={"crop_size": 96})
    run("cut", resume=True)
    assert history("cut") == history("whole")


def test_a_second_training_into_a_folder_another_is_writing_is_refused(small_voc, tmp_path):
    """Two trainings into one --out wrote over each other's checkpoints and model."""
    import os

    from maskwatch.errors import MaskwatchError
    from maskwatch.file_lock import FileLock
    from maskwatch.run_folder import TRAIN_LOCK

    (tmp_path / "run").mkdir()
    with FileLock(tmp_path / "run" / TRAIN_LOCK):  # (as the first training holds it)
        with pytest.raises(MaskwatchError, match=f"another training \\(pid {os.getpid()}\\) is writing there"):
            fit(TrainConfig(data=small_voc, out=tmp_path / "run", quick=True, threads=2))
    assert not (tmp_path / "run" / "val.txt").exists()


def test_resume_refuses_a_data_set_whose_boxes_or_labels_were_edited_since(small_voc, tmp_path):
    """With the same images (a --val-split fixing the sides), relabelled boxes were resumed on without a word."""
    from maskwatch.data import load_dataset
    from maskwatch.errors import MaskwatchError
    from maskwatch.training.engine import resumable_checkpoint, run_identity, save_whole

    cfg = TrainConfig(data=small_voc, out=tmp_path, resume=True)
    dataset = load_dataset(small_voc)
    train, val = dataset.subset([s.stem for s in dataset.samples[:4]]), dataset.subset([dataset.samples[4].stem])
    save_whole({"arch": cfg.arch, "identity": run_identity(cfg, train, val)}, tmp_path / "last.pt")
    assert resumable_checkpoint(cfg, run_identity(cfg, train, val), {}) is not None
    xml = next(x for x in sorted((small_voc / "annotations").glob("*.xml")) if "<name>with_mask<" in x.read_text())
    xml.write_text(xml.read_text().replace("<name>with_mask</name>", "<name>without_mask</name>", 1))
    edited = load_dataset(small_voc)
    train, val = edited.subset([s.stem for s in train.samples]), edited.subset([s.stem for s in val.samples])
    with pytest.raises(MaskwatchError, match="other boxes or labels"):
        resumable_checkpoint(cfg, run_identity(cfg, train, val), {})


def test_a_face_candidates_cache_cut_short_is_found_again(small_voc, tmp_path, caplog):
    """A candidates.npz cut short (a crash while it was written) made every later run in the folder a traceback."""
    from maskwatch.data.images import annotated_image
    from maskwatch.training.candidates import find_candidates

    photo = sorted((small_voc / "images").glob("*.jpg"))[0]
    (tmp_path / "candidates.npz").write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level("WARNING"):
        found = find_candidates({photo.stem: annotated_image(photo)}, tmp_path / "candidates.npz")
    assert len(found[photo.stem]) and "unreadable" in caplog.text
    assert set(np.load(tmp_path / "candidates.npz")) and not list(tmp_path.glob("*.partial*"))


def test_the_data_set_files_own_folder_is_no_run_folder_for_a_coco_file_either(small_voc, tmp_path):
    from maskwatch.data import load_dataset, save_dataset
    from maskwatch.errors import MaskwatchError

    save_dataset(load_dataset(small_voc), tmp_path / "coco", "coco")
    with pytest.raises(MaskwatchError, match="is the data set's own folder"):
        fit(TrainConfig(data=tmp_path / "coco" / "annotations.json", out=tmp_path / "coco", quick=True))
