"""Robustness of the detector outside the training photos' look (issue: close-ups, low light, haze, scale).

    .venv/bin/python bench/robustness.py [--model runs/NAME] [--scale auto|FLOAT] [--min-face-score F] [--limit N]

Builds shifted copies of the validation images only (never training images), then reports for each set:
class-agnostic face AP@.5 and AP, 2-class AP@.5, 3-class mAP@.5 for the detector, and face AP@.5 / AP for
zero-shot CenterFace (the same face finder, no head) as the reference. Writes out/bench/robustness[-MODEL].json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


from maskwatch.data import load_dataset
from maskwatch.data.images import annotated_image
from maskwatch.data.split import read_list
from maskwatch.detector import Detector
from maskwatch.evaluation import evaluate_coco
from maskwatch.evaluation.shifts import shifted_sets, zero_shot_faces
from maskwatch.face_finder import FaceFinder
from maskwatch.predictions import ImagePredictions
from maskwatch.thresholds import FOR_METRICS, MIN_FACE_SCORE

ROOT = Path(__file__).resolve().parents[1]


def predict(dataset, fn) -> list[ImagePredictions]:
    return [ImagePredictions(s.image_path.name, s.width, s.height, fn(annotated_image(s.image_path)))
            for s in dataset.samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets" / "face-mask-voc")
    parser.add_argument("--val", type=Path, default=ROOT / "splits" / "face-mask-voc" / "val.txt")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N validation images")
    parser.add_argument("--scales", default="0.25,0.5,1,2,3")
    parser.add_argument("--scale", default="auto", help="the detector's --scale (default auto)")
    parser.add_argument("--min-face-score", type=float, default=MIN_FACE_SCORE,
                        help=f"face-finder candidates the head classifies (default {MIN_FACE_SCORE}, the detector's)")
    args = parser.parse_args()
    val = load_dataset(args.data).subset(read_list(args.val))
    if args.limit:
        val.samples = val.samples[: args.limit]
    detector = Detector.load(args.model, threads=2, scale=args.scale, min_face_score=args.min_face_score)
    zero_shot = zero_shot_faces(FaceFinder(threads=2), detector.policy)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scales = tuple(float(s) for s in args.scales.split(","))
        for name, dataset in shifted_sets(val, Path(tmp), scales).items():
            ours = predict(dataset, lambda im: detector(im, min_score=FOR_METRICS.min_score,
                                                          all_classes=FOR_METRICS.all_classes))
            ref = predict(dataset, zero_shot)
            face, two, three = (evaluate_coco(dataset, ours, s) for s in ("face", "2class", "3class"))
            ref_face = evaluate_coco(dataset, ref, "face")
            rows.append({"set": name, "images": len(dataset), "boxes": dataset.num_boxes,
                         "face_AP50": face.summary["mAP50"], "face_AP": face.summary["mAP"],
                         "2class_AP50": two.summary["mAP50"], "3class_mAP50": three.summary["mAP50"],
                         "zero_shot_face_AP50": ref_face.summary["mAP50"], "zero_shot_face_AP": ref_face.summary["mAP"]})
            r = rows[-1]
            print(f"{name}: face AP50 {r['face_AP50']:.3f} (zero-shot {r['zero_shot_face_AP50']:.3f})", flush=True)
    header = ["set", "images", "boxes", "face AP50", "face AP", "2-class AP50", "3-class mAP50",
              "zero-shot face AP50", "zero-shot face AP"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['set']} | {r['images']} | {r['boxes']} | {r['face_AP50']:.3f} | {r['face_AP']:.3f} | "
              f"{r['2class_AP50']:.3f} | {r['3class_mAP50']:.3f} | {r['zero_shot_face_AP50']:.3f} | "
              f"{r['zero_shot_face_AP']:.3f} |")
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    name = "robustness" + (f"-{Path(args.model).name}" if args.model else "") + (f"-scale{args.scale}" if args.scale != "auto" else "")
    name += (f"-candidates{args.min_face_score:g}" if args.min_face_score != MIN_FACE_SCORE else "") + ".json"
    (out / name).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
