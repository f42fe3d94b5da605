"""8-bit copies of the two networks (static QDQ quantisation, weights per channel), for CPUs with 8-bit dot
products (AVX-512 VNNI, AVX-VNNI), where they run faster than the float networks.

Static: the activations' ranges are measured once on calibration inputs (training photos and face crops, never
validation data) and fixed in the file, unlike dynamic quantisation, which measured slower and less accurate on
the head (bench/variants.py). Where 8 bits cost accuracy, the layers stay in float: the face finder's output
layers (heatmap, box size and offset, whose small values set where a box goes) and its upsampling; the head's
class and box layers. The face finder's ranges come from the extremes (MinMax), the head's from the 99.99th
percentile (a few extreme activations of a crop would otherwise waste the 256 levels on them). Needs the `onnx`
package (the train extra), only to make the files; running them needs onnxruntime alone.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np


def quantize_face_finder(src: Path, dst: Path, blobs: Iterable[np.ndarray]) -> None:
    """CenterFace in 8 bits; `blobs` are its inputs (1x3xHxW float RGB 0..255, sides multiples of 32)."""
    from onnxruntime.quantization import CalibrationMethod

    def keep_float(model) -> list[str]:
        outputs = {o.name for o in model.graph.output}
        producers = {out: node for node in model.graph.node for out in node.output}
        float_nodes = [n for n in model.graph.node if set(n.output) & outputs or n.op_type == "ConvTranspose"]
        for node in list(float_nodes):  # the layer under the heatmap's sigmoid
            if node.op_type == "Sigmoid":
                float_nodes.append(producers[node.input[0]])
        return [n.name for n in float_nodes]

    _quantize(src, dst, blobs, keep_float, CalibrationMethod.MinMax)


def quantize_head(src: Path, dst: Path, blobs: Iterable[np.ndarray]) -> None:
    """The mask head in 8 bits; `blobs` are batches of its input (Nx3xSxS, crops_to_blob), all of one size."""
    from onnxruntime.quantization import CalibrationMethod

    def keep_float(model) -> list[str]:
        return [n.name for n in model.graph.node if n.op_type in ("Gemm", "Softmax")]

    _quantize(src, dst, blobs, keep_float, CalibrationMethod.Percentile)


def _quantize(src: Path, dst: Path, blobs: Iterable[np.ndarray], keep_float, method) -> None:
    import onnx
    import onnxruntime
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader

    model = onnx.load(str(src))
    input_name = model.graph.input[0].name
    if model.opset_import[0].version < 13:  # per-channel scales need opset 13's axis on DequantizeLinear
        model = version_converter.convert_version(model, 13)
    for index, node in enumerate(model.graph.node):  # the quantiser tells nodes apart by name
        node.name = node.name or f"{node.op_type}_{index}"

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.inputs = iter({input_name: blob} for blob in blobs)

        def get_next(self):
            return next(self.inputs, None)

    onnxruntime.set_default_logger_severity(3)  # its notes on unused initialisers (BatchNorm counters) are noise here
    try:
        _write(model, dst, Reader(), keep_float, method)
    finally:
        onnxruntime.set_default_logger_severity(2)  # onnxruntime's default, for the sessions that follow


def _write(model, dst: Path, reader, keep_float, method) -> None:
    """Shape inference, then the quantiser, through files in a temporary folder (as the quantiser wants)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as folder:
        named, prepared = Path(folder) / "named.onnx", Path(folder) / "prepared.onnx"
        onnx.save(model, str(named))
        quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its histogram progress
            quantize_static(str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=keep_float(onnx.load(str(prepared))), calibrate_method=method,
                            extra_options={"CalibPercentile": 99.99})
