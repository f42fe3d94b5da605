"""The one-stage alternative: CenterFace itself fine-tuned into a 3-class detector (one forward pass per image).

CenterFace's MobileNetV2 + FPN trunk is converted from its ONNX file (models/pretrained.py) and trained end to end.
Its face heatmap, size and offset heads are kept (initialised from CenterFace, fine-tuned on our boxes, so they
learn this data's box style); landmarks are dropped. A 1x1 class layer on CenterFace's 24-channel stride-4
feature cannot tell masks apart (shared notes), so the class branch also reads the 96-channel stride-16
backbone feature, where it is cheap (a 3x3 conv at 1/16 resolution, upsampled). Scores are factored as
p(face) x p(class | face), the same form as the two-stage model, so rare classes get their own softmax
instead of competing for a heatmap peak.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from maskwatch.face_finder import CENTERFACE_PATH

HEAD_FEATURE = "535"  # 24 channels, stride 4: what CenterFace's heads read
DEEP_FEATURE = "474"  # 96 channels, stride 16: backbone, before the FPN
CENTERFACE_HEADS = {"face": "head.pos_conv", "size": "head.reg_conv", "offset": "head.off_conv"}


def centerface_trunk(model: onnx.ModelProto) -> nn.Module:
    """CenterFace without its heads, as a trainable torch module returning (head feature, deep feature).
    `model` is the prepared file (tools/prepare_centerface.py: weights not listed as graph inputs); its head
    nodes and outputs are cut in place, its weights left alone."""
    from maskwatch.models.pretrained import OnnxGraphModule

    head_nodes = [n for n in model.graph.node if HEAD_FEATURE in n.input or n.op_type == "Sigmoid"]
    for node in head_nodes:
        model.graph.node.remove(node)
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
                              for name in (HEAD_FEATURE, DEEP_FEATURE))
    return OnnxGraphModule(model)


def _centerface_head(weights: dict[str, np.ndarray], prefix: str) -> nn.Conv2d:
    weight, bias = torch.from_numpy(weights[f"{prefix}.weight"].copy()), torch.from_numpy(weights[f"{prefix}.bias"].copy())
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


class OneStageNet(nn.Module):
    """Outputs at stride 4: face logit (B,1), class logits (B,C), log size (h, w), centre offset (y, x)."""

    def __init__(self, num_classes: int, centerface_path: Path = CENTERFACE_PATH, class_channels: int = 64):
        super().__init__()
        centerface = onnx.load(str(centerface_path))
        weights = {i.name: numpy_helper.to_array(i) for i in centerface.graph.initializer}
        self.trunk = centerface_trunk(centerface)
        self.face = _centerface_head(weights, CENTERFACE_HEADS["face"])
        self.size = _centerface_head(weights, CENTERFACE_HEADS["size"])
        self.offset = _centerface_head(weights, CENTERFACE_HEADS["offset"])
        self.class_deep = nn.Sequential(nn.Conv2d(96, class_channels, 3, padding=1), nn.ReLU(inplace=True),
                                        nn.Conv2d(class_channels, num_classes, 1))
        self.class_fine = nn.Conv2d(24, num_classes, 1)
        nn.init.zeros_(self.class_fine.weight)
        nn.init.zeros_(self.class_fine.bias)

    def heads(self) -> list[nn.Module]:
        return [self.face, self.size, self.offset, self.class_deep, self.class_fine]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feature, deep = self.trunk(x)
        class_logits = self.class_fine(feature) + F.interpolate(self.class_deep(deep), scale_factor=4.0,
                                                                mode="bilinear", align_corners=False)
        return self.face(feature), class_logits, self.size(feature), self.offset(feature)


class ExportedOneStage(nn.Module):
    """What ships: CenterFace's own output layout (heatmap, size, offset) plus class probabilities, so the face
    finder's decoder reads it unchanged."""

    def __init__(self, net: OneStageNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        face, classes, size, offset = self.net(x)
        return torch.sigmoid(face), size, offset, torch.softmax(classes, dim=1)


def export_onnx(net: OneStageNet, path: Path) -> Path:
    """The net as it ships (ExportedOneStage), for any batch and image size; returns `path`."""
    module = ExportedOneStage(net).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["heatmap", "size", "offset", "class_probs"]
    dynamic = {name: {0: "B", 2: "h", 3: "w"} for name in names}
    torch.onnx.export(module, (torch.zeros(1, 3, 256, 320),), str(path), input_names=["image"], output_names=names,
                      dynamic_axes={"image": {0: "B", 2: "H", 3: "W"}, **dynamic}, opset_version=17, dynamo=False)
    return path
