"""Training end to end on a handful of real images, and the exported ONNX against the torch model."""

from __future__ import annotations

import csv

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="training tests need `make install-train`")

from maskwatch.crops import crops_to_blob  # noqa: E402
from maskwatch.detector import Detector  # noqa: E402
from maskwatch.models.crop_head import CropHead, export_onnx  # noqa: E402
from maskwatch.training.loop import TrainConfig, train  # noqa: E402


@pytest.mark.slow
def test_quick_training_runs_end_to_end_and_the_loss_falls(data_dir, tmp_path):
    onnx_path = train(TrainConfig(data=data_dir, out=tmp_path / "run", quick=True, threads=2, epochs=2))
    with (tmp_path / "run" / "history.csv").open() as f:
        history = list(csv.DictReader(f))
    assert len(history) == 2
    assert float(history[1]["loss"]) < float(history[0]["loss"])
    assert (tmp_path / "run" / "history.png").is_file() and (tmp_path / "run" / "last.pt").is_file()
    detector = Detector.load(tmp_path / "run", threads=2)
    assert detector.classes == ["with_mask", "without_mask", "mask_weared_incorrect"]
    assert onnx_path.stat().st_size > 1_000_000


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


def test_class_balancing_favours_the_rare_class_and_can_be_switched_off(data_dir):
    from maskwatch.data import load_dataset
    from maskwatch.training.loop import class_balance, copies_per_class, rarest_class

    dataset = load_dataset(data_dir)  # 2922 / 666 / 113 boxes
    assert copies_per_class(dataset, 2.0).tolist() == [2, 4, 10]
    assert copies_per_class(dataset, 2.0, balance=False).tolist() == [2, 2, 2]
    image_weights, class_weights = class_balance(dataset)
    assert rarest_class(dataset) == 2 and class_weights[2] > class_weights[1] > class_weights[0] == 1
    with_rare = [i for i, s in enumerate(dataset.samples) if 2 in s.detections.class_id]
    assert image_weights[with_rare].min() > image_weights.min()
    image_weights, class_weights = class_balance(dataset, balance=False)
    assert np.allclose(image_weights, image_weights[0]) and class_weights.tolist() == [1, 1, 1]
