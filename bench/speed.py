"""Speed, from one run: the detector (ms per 640x480 frame) and `maskwatch watch` (frames/s on 30 fps clips).

    .venv/bin/python bench/speed.py [--photos 30] [--seconds 10] [--levers] [--only detector|video]

Detector table: crowd photos of the validation split (the most faces) and web photos with bigger faces
(jolignier-val, measuring-only data), each resized to 640x480. Per configuration: the mean over photos of the
fastest of `--repeats` runs (configurations interleaved photo by photo, so a busy machine slows them alike),
and the ratio to the face finder alone at 1x, the reference measured in the same run. The default row keeps the
low-scored tail that mAP needs (score >= 0.01); the row "score >= 0.4 kept" is what a caller that keeps only the
people's threshold pays (the API, drawn images, batch rows): candidates that cannot reach 0.4 are not classified.
For the shipped model the table adds its 8-bit copy (`--model shipped-int8`): the face finder alone, the default
and the 0.4 rows. `--model shipped-int8` runs every row (and the video table) on the 8-bit copy.

Video table: 30 fps H.264 clips made from those photos, as tests/clips.py makes them: a door camera (jolignier
photos with 1-4 big faces, the empty doorway between people) and a crowd (a pan across crowd photos), at 640x480
and 1920x1080. Each runs as `maskwatch watch CLIP --out OUT.mp4` does by default (annotated video, events
database), and as before the real-time work (the reference row: the detector on every frame with the still-image
scale policy, decoding and encoding on the pipeline's thread). "agreement": mean over frames of the F1 (IoU 0.5)
between the faces shown (score >= 0.4) and those of the reference run on the same frame; "people": as counted
(the reference counts each tracked face once).
`--levers` adds one row per lever switched off (640x480), to show what each pays.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from accuracy import validation_set  # noqa: E402
from clips import crowd_pan_frames, door_frames, write_h264  # noqa: E402
from maskwatch.detector import Detector  # noqa: E402
from maskwatch.video.bus import CallbackSink  # noqa: E402
from maskwatch.video.config import CameraConfig  # noqa: E402
from maskwatch.thresholds import FOR_PEOPLE  # noqa: E402
from maskwatch.video.realtime import REALTIME  # noqa: E402
from supervision.detection.utils.iou_and_nms import box_iou_batch  # noqa: E402
from video_people import door_photos  # noqa: E402

SHOWN = FOR_PEOPLE.min_score  # what a drawing, the API and a batch row keep (the 0.4 rows)

FPS = 30.0
SIZES = {"640x480": (640, 480), "1080p": (1920, 1080)}
BEFORE = replace(REALTIME, choose_scale=False, reuse_head=False, motion_gating=False, predict_boxes=False,
                 compensate_camera=False, read_ahead=0, encode_queue=0, encode_preset="veryfast")
LEVERS = {  # each row switches one lever off, the rest as by default
    "no scale from previous faces": replace(REALTIME, choose_scale=False),
    "no head answers reused": replace(REALTIME, reuse_head=False),
    "no motion gating": replace(REALTIME, motion_gating=False),
    "boxes stay between detections": replace(REALTIME, predict_boxes=False),
    "no camera motion": replace(REALTIME, compensate_camera=False),
    "decode and encode on the loop": replace(REALTIME, read_ahead=0, encode_queue=0),
    "x264 veryfast (before)": replace(REALTIME, encode_preset="veryfast"),
}


def crowd_photos(count: int) -> list[Path]:
    """The validation photos with the most faces."""
    ranked = sorted(validation_set("andrewmvd").samples, key=lambda s: (-len(s.detections), s.image_path.name))
    return [s.image_path for s in ranked[:count]]


def web_photos(count: int, door: bool = False) -> list[Path]:
    """jolignier-val photos by name; with `door`: landscape ones with 1-4 faces, each at least 80 px tall at 480."""
    if door:
        return door_photos("jolignier", 80, count)[0]
    return [s.image_path for s in sorted(validation_set("jolignier").samples, key=lambda s: s.image_path.name)][:count]


def read_640x480(paths: list[Path]) -> list[np.ndarray]:
    return [cv2.resize(cv2.imread(str(p)), (640, 480), interpolation=cv2.INTER_AREA) for p in paths]


def detector_table(detector: Detector, photos: int, repeats: int, int8: Detector | None = None) -> None:
    sets = {"crowd (val split)": read_640x480(crowd_photos(photos)),
            "web (jolignier-val)": read_640x480(web_photos(photos))}
    before = copy.copy(detector)  # the same sessions, as v6 shipped: no coarse look first, every small face looked
    before.config = replace(detector.config, refine_min_prob=0.0)  # at twice
    before.policy = replace(detector.policy, coarse_first=None)
    configs = {
        "face finder alone, 1x (reference)": lambda im: detector.find_faces(im, scale=1.0),
        "detector, --scale auto (default)": lambda im: detector(im),
        "detector, --scale auto, score >= 0.4 kept (API, drawings, batch)": lambda im: detector(im, min_score=SHOWN),
        "detector, --scale auto as v6 shipped (before)": lambda im: before(im),
        "detector, --scale 1": lambda im: detector(im, scale=1.0),
        "detector, --scale 0.5": lambda im: detector(im, scale=0.5),
    }
    if int8 is not None:  # the shipped model's 8-bit copy (--model shipped-int8), in the same run
        configs |= {
            "face finder alone, 1x, 8 bits": lambda im: int8.find_faces(im, scale=1.0),
            "detector in 8 bits (--model shipped-int8), --scale auto": lambda im: int8(im),
            "detector in 8 bits, --scale auto, score >= 0.4 kept": lambda im: int8(im, min_score=SHOWN),
        }
    ms: dict[tuple[str, str], float] = {}
    faces: dict[str, float] = {}
    for set_name, images in sets.items():
        for im in images[:2]:
            for run in configs.values():
                run(im)  # warm up
        best = {name: np.full(len(images), np.inf) for name in configs}
        for _ in range(repeats):
            for i, im in enumerate(images):
                for name, run in configs.items():
                    started = time.perf_counter()
                    run(im)
                    best[name][i] = min(best[name][i], time.perf_counter() - started)
        for name in configs:
            ms[set_name, name] = float(best[name].mean() * 1000)
        faces[set_name] = float(np.mean([len(detector(im, min_score=SHOWN)) for im in images]))
    names = list(sets)
    print(f"\nDetector, ms per 640x480 frame ({photos} photos per set, fastest of {repeats}, "
          f"onnxruntime threads as --threads); "
          f"faces per photo (score >= {SHOWN}): " + ", ".join(f"{n} {faces[n]:.1f}" for n in names))
    print("| configuration | " + " | ".join(f"{n} ms | x finder 1x" for n in names) + " |")
    print("|---|" + "---|---|" * len(names))
    reference = next(iter(configs))
    for name in configs:
        cells = [f"{ms[n, name]:.1f} | {ms[n, name] / ms[n, reference]:.2f}" for n in names]
        print(f"| {name} | " + " | ".join(cells) + " |")


def make_clips(folder: Path, seconds: float) -> dict[str, Path]:
    door, crowd = web_photos(4, door=True), crowd_photos(4)
    clips = {}
    for size_name, size in SIZES.items():
        zoom = 2.0 if size[0] <= 640 else 5.0
        for kind, frames in (("door", lambda: door_frames(door, size, FPS, seconds)),
                             ("crowd", lambda: crowd_pan_frames(crowd, size, FPS, seconds, zoom))):
            clips[f"{kind} {size_name}"] = write_h264(frames(), folder / f"{kind}_{size_name}.mp4", FPS)
            print(f"clip {kind} {size_name}: {clips[f'{kind} {size_name}']}", file=sys.stderr, flush=True)
    return clips


def watch_once(detector: Detector, clip: Path, folder: Path, every: int | None, settings) -> tuple:
    """A run as `maskwatch watch CLIP --out OUT.mp4` (the CLI's defaults), and the boxes shown on each frame."""
    shown: dict[int, np.ndarray] = {}

    def keep(view) -> None:
        t = view.tracked
        shown[view.frame.index] = t.xyxy[t.confidence >= SHOWN] if len(t) else np.zeros((0, 4))

    setup = CameraConfig(name="bench", source=str(clip), out=folder / "out.mp4", db=folder / "events.sqlite",
                         every=every)
    pipeline = setup.pipeline(detector)
    pipeline.options.realtime = settings
    pipeline.sinks.append(CallbackSink(on_frame=keep))
    summary = pipeline.run(setup.source, setup.out, overwrite=True)  # (one out.mp4 for every row)
    return summary, shown


def agreement(shown: dict[int, np.ndarray], reference: dict[int, np.ndarray]) -> float:
    scores = []
    for index, ref in reference.items():
        got = shown.get(index, np.zeros((0, 4)))
        if len(ref) == 0 and len(got) == 0:
            scores.append(1.0)
            continue
        if len(ref) == 0 or len(got) == 0:
            scores.append(0.0)
            continue
        iou = box_iou_batch(ref, got)
        matched, used = 0, set()
        for flat in np.argsort(-iou, axis=None):
            i, j = np.unravel_index(flat, iou.shape)
            if iou[i, j] < 0.5:
                break
            if i not in used and ("g", j) not in used:
                used |= {i, ("g", j)}
                matched += 1
        scores.append(2 * matched / (len(ref) + len(got)))
    return float(np.mean(scores))


def video_table(detector: Detector, seconds: float, levers: bool) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = make_clips(folder, seconds)
        for name, clip in clips.items():
            runs = [("before: every frame, still-image scale, one thread (reference)", 1, BEFORE),
                    ("default", None, REALTIME)]
            if levers and "640x480" in name:
                runs += [(label, None, settings) for label, settings in LEVERS.items()]
            reference = None
            for label, every, settings in runs:
                summary, shown = watch_once(detector, clip, folder, every, settings)
                reference = reference or shown
                rows.append((name, label, summary, agreement(shown, reference)))
                s = summary
                print(f"{name} | {label}: {s.fps:.1f} frames/s, {s.seconds:.1f} s for {s.frames / FPS:.1f} s; "
                      f"{s.detected_frames} detected, {s.tracked_frames} tracked-only, {s.dropped_frames} dropped; "
                      f"scales {s.scales}", file=sys.stderr, flush=True)
    print(f"\nwatch, 30 fps clips of {seconds:g} s (annotated MP4 and events database written)")
    print("| clip | settings | frames/s | wall s / clip s | real time | detected / tracked-only / dropped | "
          "face-finder scales | agreement | people |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, label, s, agree in rows:
        clip_s = s.frames / FPS
        scales = ", ".join(f"{k} x{v}" for k, v in sorted(s.scales.items()))
        print(f"| {name} | {label} | {s.fps:.1f} | {s.seconds:.1f} / {clip_s:.1f} | "
              f"{'yes' if s.seconds < clip_s else 'no'} | {s.detected_frames} / {s.tracked_frames} / "
              f"{s.dropped_frames} | {scales} | {agree:.2f} | {sum(s.people.values())} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=30, help="photos per set in the detector table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--levers", action="store_true", help="also each lever switched off (640x480 clips)")
    parser.add_argument("--only", choices=["detector", "video"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="a trained model or run folder (default: shipped)")
    args = parser.parse_args()
    detector = Detector.load(args.model, threads=args.threads)
    if args.only != "video":
        int8 = Detector.load("shipped-int8", threads=args.threads) if args.model in (None, "shipped") else None
        detector_table(detector, args.photos, args.repeats, int8)
    if args.only != "detector":
        video_table(detector, args.seconds, args.levers)


if __name__ == "__main__":
    main()
