"""Inference variants of the shipped model on the validation split: what the shipped defaults were chosen against.

    .venv/bin/python bench/variants.py

Rows: refinement passes (0-3), flip averaging, a second upscaled face-finder pass (to 1200 px), and a dynamic
int8 head (onnxruntime quantize_dynamic). All with every plausible class listed per face, as `detect` writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from maskwatch.data import load_dataset
from maskwatch.data.images import read_image
from maskwatch.data.split import read_list
from maskwatch.detector import DEFAULT_HEAD, Detector
from maskwatch.evaluation import evaluate_coco
from maskwatch.predictions import ImagePredictions

ROOT = Path(__file__).resolve().parents[1]


def int8_head(folder: Path) -> Path:
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = folder / "prepared.onnx", folder / "mask_head.onnx"
    quant_pre_process(str(DEFAULT_HEAD), str(prepared))
    quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QUInt8)
    shutil.copy(DEFAULT_HEAD.with_suffix(".json"), quantized.with_suffix(".json"))
    return quantized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    parser.add_argument("--val", type=Path, default=ROOT / "splits" / "face-mask-voc" / "val.txt")
    args = parser.parse_args()
    val = load_dataset(args.data).subset(read_list(args.val))
    images = [read_image(s.image_path) for s in val.samples]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("shipped (1 refinement pass)", None, {}, (800,)),
                    ("0 refinement passes", None, {"refine_passes": 0}, (800,)),
                    ("2 refinement passes", None, {"refine_passes": 2}, (800,)),
                    ("3 refinement passes", None, {"refine_passes": 3}, (800,)),
                    ("flip averaging", None, {"flip_test": True}, (800,)),
                    ("upscaled passes to 800 and 1200 px", None, {}, (800, 1200)),
                    ("int8 head", int8_head(Path(tmp)), {}, (800,))]
        for name, model, config, upscale_to in variants:
            detector = Detector.load(model, threads=2)
            detector.config = dataclasses.replace(detector.config, **config)
            detector.policy.upscale_to = upscale_to
            started = time.perf_counter()
            predictions = [ImagePredictions(s.image_path.name, s.width, s.height,
                                            detector(image, min_score=0.01, all_classes=True))
                           for s, image in zip(val.samples, images)]
            ms = (time.perf_counter() - started) / len(images) * 1000
            three, face = evaluate_coco(val, predictions), evaluate_coco(val, predictions, "face")
            rows.append((name, three.summary["mAP50"], three.summary["mAP"],
                         three.per_class["mask_weared_incorrect"]["AP50"], face.summary["mAP50"], ms))
            print(f"{name}: mAP@.5 {rows[-1][1]:.3f}", flush=True)
    print("| variant | mAP@.5 | mAP@[.5:.95] | AP50 mask_weared_incorrect | face AP50 | ms / image |\n|---|---|---|---|---|---|")
    for name, map50, map_, rare, face50, ms in rows:
        print(f"| {name} | {map50:.3f} | {map_:.3f} | {rare:.3f} | {face50:.3f} | {ms:.0f} |")


if __name__ == "__main__":
    main()
