"""Make the 8-bit copies of the shipped networks (`--model shipped-int8`); run once, results shipped.

    .venv/bin/python tools/quantize_models.py

Calibration (models/quantize.py says what is quantised and how) uses training data only, never validation data:
the face finder sees 50 photos of the training side of splits/face-mask-voc (a seeded draw) at 1x and 2x and 30
face-crops-2class pictures at most 480 px long; the head sees the crops of the face finder's candidates (score
>= 0.05, at most 12 per photo) in 40 other training photos and of the clear faces in 60 face pictures, 384 crops
in 6 batches. Needs the train extra (onnx). Writes src/maskwatch/weights/{centerface,mask_head}-int8.onnx, the
same bytes each time (tests/test_detector.py checks the shipped ones are what it makes).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from maskwatch.crops import crop_faces, crops_to_blob
from maskwatch.data.images import annotated_image, list_images, read_image
from maskwatch.data.split import read_list
from maskwatch.detector import SHIPPED, SHIPPED_FILES, SHIPPED_INT8, Detector
from maskwatch.errors import MaskwatchError
from maskwatch.models.quantize import quantize_face_finder, quantize_head

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def finder_blob(image: np.ndarray, scale: float) -> np.ndarray:
    """The face finder's input for `image` at `scale`, as FaceFinder.at_scale builds it."""
    h, w = image.shape[:2]
    new_w, new_h = max(32, int(round(w * scale))), max(32, int(round(h * scale)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    resized = cv2.copyMakeBorder(resized, 0, -new_h % 32, 0, -new_w % 32, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return resized[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)


def pictures(folder: Path, every: int, count: int) -> list[np.ndarray]:
    """Every `every`-th of the first `count` face pictures of each class folder, readable ones only."""
    images = []
    for kind in ("with_mask", "without_mask"):
        for path in list_images(folder / kind)[:count:every]:
            try:
                images.append(read_image(path))
            except MaskwatchError:
                continue
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATASETS / "face-mask-voc")
    parser.add_argument("--pictures", type=Path, default=DATASETS / "face-crops-2class")
    parser.add_argument("--train-list", type=Path, default=ROOT / "splits" / "face-mask-voc" / "train.txt")
    parser.add_argument("--out", type=Path, default=None, help="folder to write to [default: the package's weights]")
    args = parser.parse_args()
    names = read_list(args.train_list)
    photos = {stem: args.data / "images" / f"{stem}.jpg" for stem in names}
    (head, finder), (head_int8, finder_int8) = SHIPPED_FILES[SHIPPED], SHIPPED_FILES[SHIPPED_INT8]
    if args.out:  # (the tests compare a fresh copy with the shipped one)
        args.out.mkdir(parents=True, exist_ok=True)
        head_int8, finder_int8 = args.out / head_int8.name, args.out / finder_int8.name

    drawn = sorted(photos)
    random.Random(0).shuffle(drawn)
    blobs = [finder_blob(annotated_image(photos[stem]), scale) for stem in drawn[:50] for scale in (1.0, 2.0)]
    blobs += [finder_blob(im, min(1.0, 480 / max(im.shape[:2]))) for im in pictures(args.pictures, 1, 15)]
    quantize_face_finder(finder, finder_int8, blobs)
    print(f"{finder_int8}: calibrated on {len(blobs)} inputs")

    detector = Detector.load(threads=2)
    config = detector.config
    random.Random(1).shuffle(drawn)
    crops = []
    for stem in drawn[:40]:
        image = annotated_image(photos[stem])
        faces = detector.find_faces(image)
        faces = faces[faces.confidence >= 0.05]
        crops.append(crop_faces(image, faces.xyxy[:12], config.crop_size, config.crop_context))
    for image in pictures(args.pictures, 2, 60):
        faces = detector.find_faces(image)
        faces = faces[faces.confidence >= 0.3]
        crops.append(crop_faces(image, faces.xyxy[:2], config.crop_size, config.crop_context))
    crops = np.concatenate(crops)
    np.random.default_rng(0).shuffle(crops)
    crops = crops[:len(crops) // 64 * 64]  # equal batches: the percentile calibration stacks them
    quantize_head(head, head_int8, [crops_to_blob(crops[i:i + 64]) for i in range(0, len(crops), 64)])
    print(f"{head_int8}: calibrated on {len(crops)} crops")


if __name__ == "__main__":
    main()
