"""Make the 8-bit copies of the shipped networks (`--model shipped-int8`; run once, results shipped), or with
--head of trained heads, calibrated the same way (the model card's paired study of 8 bits).

    .venv/bin/python tools/quantize_models.py [--head RUN/model/mask_head.onnx ...]

Calibration (training/int8.py: what on; models/quantize.py: what is quantised and how) uses training data only,
never validation data: 50 photos of the training side of splits/face-mask-voc and the first 15 pictures of each
face-crops-2class folder for the face finder; 40 other training photos and every other one of the first 60
pictures of each folder for the head. Needs the train extra (onnx). Writes
src/maskwatch/weights/{centerface,mask_head}-int8.onnx, the same bytes each time (tests/test_detector.py checks the
shipped ones are what it makes, up to float noise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from maskwatch.data.images import annotated_image, list_images, read_image
from maskwatch.data.split import read_list
from maskwatch.detector import SHIPPED, SHIPPED_FILES, SHIPPED_INT8
from maskwatch.errors import MaskwatchError
from maskwatch.training.int8 import draw, write_int8_finder, write_int8_head

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


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
    parser.add_argument("--head", type=Path, action="append", default=[],
                        help="instead, a trained head (mask_head.onnx, its JSON beside it) to quantise the same way, "
                             "written beside it as mask_head-int8.onnx (repeatable; the model card's paired study)")
    args = parser.parse_args()
    for_finder, for_head = draw(read_list(args.train_list))

    def photos(stems: list[str]) -> list[np.ndarray]:
        return [annotated_image(args.data / "images" / f"{stem}.jpg") for stem in stems]

    if args.head:  # (each written beside its float head: --out is for the shipped pair)
        if args.out:
            parser.error("--out is for the shipped networks; a --head's copy is written beside it")
        calibration = photos(for_head), pictures(args.pictures, 2, 60)
        for trained in args.head:
            print(f"{write_int8_head(trained, *calibration, threads=2)}: written", flush=True)
        return
    (head, finder), (head_int8, finder_int8) = SHIPPED_FILES[SHIPPED], SHIPPED_FILES[SHIPPED_INT8]
    if args.out:  # (the tests compare a fresh copy with the shipped one)
        args.out.mkdir(parents=True, exist_ok=True)
        head_int8, finder_int8 = args.out / head_int8.name, args.out / finder_int8.name
    write_int8_finder(finder, photos(for_finder), pictures(args.pictures, 1, 15), finder_int8)
    print(f"{finder_int8}: written")
    write_int8_head(head, photos(for_head), pictures(args.pictures, 2, 60), head_int8, threads=2)
    print(f"{head_int8}: written")


if __name__ == "__main__":
    main()
