"""The one-stage alternative (CenterFace fine-tuned into a 3-class detector): conversion, targets, learning, export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import supervision as sv

torch = pytest.importorskip("torch", reason="training tests need `make install-train`")

from maskwatch.data import load_dataset  # noqa: E402
from maskwatch.data.images import read_image  # noqa: E402
from maskwatch.detector import Detector, OneStageDetector  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402
from maskwatch.face_finder import CENTERFACE_PATH, STRIDE, make_session  # noqa: E402
from maskwatch.models.onestage import OneStageNet, export_onnx  # noqa: E402
from maskwatch.training.engine import TrainConfig, fit  # noqa: E402
from maskwatch.training.one_stage import Windows, losses, make_batch, window_targets  # noqa: E402


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return OneStageNet(3).eval()


def test_untrained_network_is_centerface_and_its_onnx_matches_torch(net, tmp_path):
    """Before training, the converted trunk and the copied heads must reproduce CenterFace exactly."""
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 160, 224)).astype(np.float32)
    heatmap, size, offset, class_probs = make_session(export_onnx(net, tmp_path / "m.onnx")).run(None, {"image": x})
    ref_heat, ref_size, ref_offset, _ = make_session(CENTERFACE_PATH).run(None, {"input.1": x})
    np.testing.assert_allclose(heatmap, ref_heat, atol=1e-4)
    np.testing.assert_allclose(size, ref_size, atol=1e-3)
    np.testing.assert_allclose(offset, ref_offset, atol=1e-3)
    with torch.no_grad():
        _, logits, _, _ = net(torch.from_numpy(x))
    np.testing.assert_allclose(class_probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    assert class_probs.shape == (1, 3, 40, 56)


def test_a_one_stage_model_whose_config_names_other_classes_is_refused(net, tmp_path):
    model = export_onnx(net, tmp_path / "onestage.onnx")
    model.with_suffix(".json").write_text(json.dumps({"classes": ["mask", "no_mask"], "arch": "one-stage"}))
    with pytest.raises(MaskwatchError, match="gives 3 classes but its config names 2 \\(mask, no_mask\\)"):
        Detector.load(model)


def test_targets_decode_back_to_the_boxes():
    boxes = np.array([[10.0, 20.0, 50.0, 70.0], [100.3, 5.5, 108.9, 16.2]], np.float32)
    t = window_targets(boxes, np.array([0, 2]), 128)
    cells = 128 // STRIDE
    iy, ix = t["cell"] // cells, t["cell"] % cells
    cy, cx = (iy + t["offset"][:, 0] + 0.5) * STRIDE, (ix + t["offset"][:, 1] + 0.5) * STRIDE  # FaceFinder's decoding
    h, w = np.exp(t["size"][:, 0]) * STRIDE, np.exp(t["size"][:, 1]) * STRIDE
    np.testing.assert_allclose(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), boxes, atol=1e-3)
    assert t["heat"].flat[t["cell"]].tolist() == [1.0, 1.0] and t["heat"].max() == 1.0
    assert np.abs(t["offset"]).max() <= 0.5


def test_learns_a_fixed_batch(data_dir):
    """Ten steps on one batch of real windows must lower every loss: the targets and the gradients line up."""
    dataset = load_dataset(data_dir)
    samples = [s for s in dataset.samples if s.stem in ("maksssksksss0", "maksssksksss1", "maksssksksss94")]
    images = {s.stem: read_image(s.image_path) for s in samples}
    torch.manual_seed(0)
    model = OneStageNet(3)
    x, targets = make_batch(samples, images, Windows(size=256, zoom_prob=0), np.random.default_rng(0))
    assert len(targets["label"]) >= 3
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(10):
        parts = losses(model(x), targets, torch.ones(3))
        first = first or {k: v.item() for k, v in parts.items()}
        optimizer.zero_grad()
        sum(parts.values()).backward()
        optimizer.step()
    last = {k: v.item() for k, v in losses(model(x), targets, torch.ones(3)).items()}
    for key in first:
        assert last[key] < first[key], (key, first[key], last[key])


@pytest.mark.slow
def test_quick_one_stage_training_resumes_and_gives_a_detector(data_dir, tmp_path):
    config = dict(data=data_dir, out=tmp_path / "run", arch="one-stage", quick=True, threads=2)
    fit(TrainConfig(**config, epochs=1))
    onnx_path = fit(TrainConfig(**config, epochs=2, resume=True))  # goes on from epoch 1
    with (tmp_path / "run" / "history.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    assert onnx_path.name == "onestage.onnx" and not (tmp_path / "run" / "epoch.onnx").exists()
    config = json.loads(onnx_path.with_suffix(".json").read_text())  # the kept epoch's scores survive the resume
    assert config["val_scores"]["mAP50"] == config["val_mAP50"] and "AP50 mask_weared_incorrect" in config["val_scores"]
    detector = Detector.load(tmp_path / "run", threads=2)
    assert isinstance(detector, OneStageDetector)
    assert detector.classes == ["with_mask", "without_mask", "mask_weared_incorrect"]
    image = read_image(data_dir / "images" / "maksssksksss0.jpg")
    found = detector(image, min_score=0.01, all_classes=True)
    assert len(found) > 0 and set(found.data["class_name"]) <= set(detector.classes)
    # one box per face when asked for the best class
    best = detector(image, min_score=0.01)
    assert 0 < len(best) <= len(found)
    overlap = sv.box_iou_batch(best.xyxy, best.xyxy) - np.eye(len(best))
    assert overlap.max(initial=0) < 0.9, "a face listed twice (one box per class) in best-class mode"
    with pytest.raises(MaskwatchError, match="flip averaging"):  # detect --flip: a crop head's option
        Detector.load(tmp_path / "run", flip_test=True)


def test_the_shipped_centerface_is_refused_as_a_one_stage_model(tmp_path):
    (tmp_path / "centerface.json").write_text('{"classes": ["a"], "arch": "one-stage"}')
    (tmp_path / "centerface.onnx").write_bytes(CENTERFACE_PATH.read_bytes())
    with pytest.raises(MaskwatchError, match="not a one-stage model"):
        Detector.load(tmp_path / "centerface.onnx")


def test_an_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(MaskwatchError, match="--arch must be"):
        fit(TrainConfig(data=tmp_path, out=tmp_path / "run", arch="three-stage"))
