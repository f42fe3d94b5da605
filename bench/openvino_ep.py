"""Does onnxruntime's OpenVINO execution provider pay on this CPU? The face finder at the 1x input of a 640x480
frame and the mask head on 16 crops, CPU provider against OpenVINO provider, 2 threads each, twice in turn.

onnxruntime-openvino is a separate build of onnxruntime (the same `onnxruntime` module), so it runs in its own
virtual environment, not in the project's:

    python3 -m venv /tmp/ovenv && /tmp/ovenv/bin/pip install onnxruntime-openvino numpy opencv-python-headless
    /tmp/ovenv/bin/python bench/openvino_ep.py

Prints median ms per call and the largest difference of the face finder's heatmap between the two providers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "maskwatch" / "weights"
IMAGES = ROOT / ".." / "shared" / "datasets" / "face-mask-voc" / "images"


def session(path: Path, provider: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    if provider == "openvino":
        providers = [("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": 2})]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


def median_ms(run, inputs: list) -> float:
    for x in inputs[:3]:
        run(x)
    times = []
    for x in inputs:
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    frames = [cv2.resize(cv2.imread(str(p)), (640, 480)) for p in sorted(IMAGES.glob("*.jpg"))[:20]]
    blobs = [np.ascontiguousarray(f[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)) for f in frames]
    side = json.loads((WEIGHTS / "mask_head.json").read_text())["crop_size"]  # the shipped head's (80 since v6)
    crops = [np.random.default_rng(i).random((16, 3, side, side), dtype=np.float32) for i in range(20)]
    print("| provider | face finder, 640x480 ms | head, 16 crops ms | heatmap max diff vs CPU |\n|---|---|---|---|")
    reference = None
    for provider in ("cpu", "openvino", "cpu", "openvino"):
        finder, head = session(WEIGHTS / "centerface.onnx", provider), session(WEIGHTS / "mask_head.onnx", provider)
        finder_input, head_input = finder.get_inputs()[0].name, head.get_inputs()[0].name
        finder_ms = median_ms(lambda x: finder.run(None, {finder_input: x}), blobs)
        head_ms = median_ms(lambda x: head.run(None, {head_input: x}), crops)
        heatmap = finder.run(None, {finder_input: blobs[0]})[0]
        reference = heatmap if reference is None else reference
        print(f"| {provider} | {finder_ms:.1f} | {head_ms:.1f} | {float(np.abs(heatmap - reference).max()):.1e} |")


if __name__ == "__main__":
    main()
