"""Inference variants of a head on both validation sets: what the shipped defaults were chosen against.

    .venv/bin/python bench/variants.py [--model shipped|runs/NAME]

Rows: the refined look (none, for every face instead of faces under `refine_max_px`, or also for candidates
whose first look gives no class >= `refine_min_prob`), flip averaging, fewer candidates classified (the face
finder's score floor raised from thresholds.MIN_FACE_SCORE), a second upscaled face-finder pass (to 1200 px), the
coarse look at half scale that replaces the full first pass when its faces are big (none, or kept only when they
are 60 px there, or already from 32 or 28 px; ScalePolicy.coarse_first, coarse_accept_px), the final NMS at IoU
0.4 or 0.6 (the head's nms_iou) and a dynamic int8 head (onnxruntime quantize_dynamic). Every class a face
plausibly is is listed, as `detect` writes; the columns are bench/accuracy.py's (both sets, ms per image and per
640x480 frame).
Writes out/bench/variants.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from accuracy import ROOT, run, validation_set
from maskwatch.data.images import annotated_image
from maskwatch.detector import Detector


def int8_head(head: Path, folder: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = folder / "prepared.onnx", folder / "mask_head.onnx"
    quant_pre_process(str(head), str(prepared))
    quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QUInt8)
    shutil.copy(head.with_suffix(".json"), quantized.with_suffix(".json"))
    return quantized


def adjusted(config: dict | None = None, policy: dict | None = None, min_face_score: float | None = None):
    """A change to the loaded detector: its head's config, its scale policy, its candidate floor."""
    def adjust(detector: Detector) -> None:
        detector.config = dataclasses.replace(detector.config, **(config or {}))
        detector.policy = dataclasses.replace(detector.policy, **(policy or {}))
        if min_face_score is not None:
            detector.min_face_score = min_face_score
    return adjust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shipped", help="'shipped' or a trained model / run folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "variants.json")
    args = parser.parse_args()
    loaded = Detector.load(None if args.model == "shipped" else args.model)
    if not isinstance(loaded, Detector):
        raise SystemExit(f"{args.model}: the variants are those of a two-stage model (a crop head)")
    head, rare = loaded.model_path, loaded.classes[-1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("as configured", args.model, adjusted()),
                    ("no refined look", args.model, adjusted({"refine_passes": 0})),
                    ("refined look for every face", args.model, adjusted({"refine_max_px": None})),
                    ("refined look also where the first sees no class (refine_min_prob 0)", args.model,
                     adjusted({"refine_min_prob": 0.0})),
                    ("flip averaging", args.model, adjusted({"flip_test": True})),
                    ("candidates >= 0.1", args.model, adjusted(min_face_score=0.1)),
                    ("candidates >= 0.2", args.model, adjusted(min_face_score=0.2)),
                    ("upscaled passes to 800 and 1200 px", args.model, adjusted(policy={"upscale_to": (800, 1200)})),
                    ("no coarse look first", args.model, adjusted(policy={"coarse_first": None})),
                    ("coarse look first kept from 60 px", args.model, adjusted(policy={"coarse_accept_px": 60.0})),
                    ("coarse look first kept from 32 px", args.model, adjusted(policy={"coarse_accept_px": 32.0})),
                    ("coarse look first kept from 28 px", args.model, adjusted(policy={"coarse_accept_px": 28.0})),
                    ("final NMS at IoU 0.4", args.model, adjusted({"nms_iou": 0.4})),
                    ("final NMS at IoU 0.6", args.model, adjusted({"nms_iou": 0.6})),
                    ("int8 head", str(int8_head(head, Path(tmp))), adjusted())]
        for set_name in ("andrewmvd", "jolignier"):
            dataset = validation_set(set_name)
            images = [annotated_image(s.image_path) for s in dataset.samples]
            for name, model, adjust in variants:
                row = run(model, "auto", dataset, set_name, True, args.threads, images, [], adjust)
                rows.append({"variant": name, **row})
                print(f"{set_name}, {name}: mAP@.5 {row['mAP50']:.3f}", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(rows, indent=2))  # after each row: a crash loses only the rest
    print(f"\n| variant | set | mAP@.5 | mAP@[.5:.95] | AP50 {rare} | face AP50 | face AP | ms / image "
          "| ms / 640x480 frame |\n|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: [v[0] for v in variants].index(r["variant"])):
        print(f"| {r['variant']} | {r['set']} | {r['mAP50']:.3f} | {r['mAP']:.3f} | "
              f"{r['per_class_AP50'][rare]:.3f} | {r['face_AP50']:.3f} | {r['face_AP']:.3f} | "
              f"{r['ms_per_image']:.0f} | {r['ms_640x480']:.0f} |")


if __name__ == "__main__":
    main()
