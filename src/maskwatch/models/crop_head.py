"""Stage 2: a MobileNetV2 (ImageNet) that looks at one face crop and says which class it is (or background)
and how to move the face finder's box onto the box our annotators would draw."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from maskwatch.models.pretrained import mobilenet_v2


class CropHead(nn.Module):
    """The trainable head: class logits (index 0: background) and box deltas (crops.encode_deltas) for each crop. The
    box layer starts at zero, so training begins from the face finder's own boxes."""

    def __init__(self, num_classes: int, pretrained: bool = True):
        super().__init__()
        backbone = mobilenet_v2(pretrained)  # torchvision's layout and ImageNet weights, without torchvision
        self.features = backbone.features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classify = nn.Linear(1280, num_classes + 1)  # index 0 is background
        self.regress = nn.Linear(1280, 4)
        nn.init.zeros_(self.regress.weight)
        nn.init.zeros_(self.regress.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.pool(self.features(x)).flatten(1)
        return self.classify(self.dropout(features)), self.regress(features)


class ExportedHead(nn.Module):
    """What ships: probabilities instead of logits, so the ONNX runtime side stays plain numpy."""

    def __init__(self, head: CropHead):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = self.head(x)
        return torch.softmax(logits, dim=1), deltas


def export_onnx(head: CropHead, path: Path, crop_size: int) -> Path:
    """The head as it ships (ExportedHead: probabilities and deltas), for any number of crops at once; returns
    `path`."""
    module = ExportedHead(head).eval()
    dummy = torch.zeros(2, 3, crop_size, crop_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, (dummy,), str(path), input_names=["crops"], output_names=["probs", "deltas"],
                      dynamic_axes={"crops": {0: "n"}, "probs": {0: "n"}, "deltas": {0: "n"}}, opset_version=17,
                      dynamo=False)
    return path
