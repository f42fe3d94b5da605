"""The detector: CenterFace finds faces, the crop head classifies each and refines its box; onnxruntime only.

    from maskwatch import Detector
    detector = Detector.load()
    detections = detector(image_bgr)          # sv.Detections, class names in detections.data["class_name"]

`Detector.load(path)` also opens a one-stage model (`maskwatch train --arch one-stage`), which answers the same
calls from a single fine-tuned CenterFace.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import supervision as sv

from maskwatch.crops import crop_faces, crops_to_blob, decode_deltas
from maskwatch.data.images import as_bgr_image
from maskwatch.face_finder import AUTO, CENTERFACE_PATH, CLASS_PROBS, WEIGHTS_DIR, FaceFinder, ScalePolicy, make_session
from maskwatch.errors import MaskwatchError
from maskwatch.model_config import HeadConfig, ScoringConfig
from maskwatch.model_kinds import TWO_STAGE, kind_of, model_in
from maskwatch.predictions import FACE_CONFIDENCE, detections_from_labels
from maskwatch.run_folder import LAST, MODEL, REPLACED, has_started, run_of
from maskwatch.thresholds import (CONFIDENT_FACE_SCORE, DETECTOR_ALL_CLASSES, DETECTOR_MIN_SCORE, MIN_FACE_SCORE,
                                  check_score)

if TYPE_CHECKING:
    import PIL.Image

log = logging.getLogger(__name__)
DEFAULT_HEAD = WEIGHTS_DIR / kind_of(TWO_STAGE).model_file
INT8_SUFFIX = "-int8"


def int8_twin(network: Path) -> Path:
    """Where the 8-bit copy of a network file lives: beside it, `-int8` added to its name."""
    return network.with_name(network.stem + INT8_SUFFIX + network.suffix)


# The shipped model by name, as `--model` takes it: the float networks (the default), or their 8-bit copies
# (tools/quantize_models.py; faster on CPUs with 8-bit dot products, accuracy on both validation sets in the README).
SHIPPED = "shipped"
SHIPPED_INT8 = "shipped-int8"
SHIPPED_FILES = {SHIPPED: (DEFAULT_HEAD, CENTERFACE_PATH),
                 SHIPPED_INT8: (int8_twin(DEFAULT_HEAD), int8_twin(CENTERFACE_PATH))}


def is_shipped_name(model: str | Path | None) -> bool:
    """Whether `--model` names a shipped model (no path): callers keep such a name as it is."""
    return model is not None and str(model) in SHIPPED_FILES


@dataclass(frozen=True)
class ModelFiles:
    """The files a `--model` value stands for: what `Detector.load` opens and `model_fingerprint` hashes."""

    network: Path  # the head (two-stage) or the whole network (one-stage)
    config: Path  # its JSON (an 8-bit head shares its float twin's)
    face_finder: Path  # the CenterFace a head runs behind (the 8-bit one behind an 8-bit head)


def model_files(model: str | Path | None) -> ModelFiles:
    """Which files a model name, run folder or .onnx path means (the path itself where it is not a model: load
    says what is wrong with it)."""
    if model is None or is_shipped_name(model):
        head, finder = SHIPPED_FILES[str(model or SHIPPED)]
        return ModelFiles(head, DEFAULT_HEAD.with_suffix(".json"), finder)
    path = Path(model)
    path = model_in(path) if path.is_dir() else path
    if path.stem.endswith(INT8_SUFFIX):  # a trained head's 8-bit copy: its float twin's JSON, the 8-bit finder
        float_twin = path.with_name(path.stem.removesuffix(INT8_SUFFIX) + path.suffix)
        return ModelFiles(path, float_twin.with_suffix(".json"), int8_twin(CENTERFACE_PATH))
    return ModelFiles(path, path.with_suffix(".json"), CENTERFACE_PATH)


def model_fingerprint(model: str | Path | None) -> str:
    """A hash of the files a model is loaded from (`Detector.load`'s argument): the same for the same weights
    whatever the path, another for a model trained again in place. Files that are not there are left out (load
    says what is missing)."""
    import hashlib

    files = model_files(model)
    digest = hashlib.sha256()
    for file in (files.network, files.config, files.face_finder):
        if file.is_file():
            with open(file, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()[:16]


def assemble_detections(faces: sv.Detections, probs: np.ndarray, deltas: np.ndarray, config: ScoringConfig,
                        image_shape: tuple[int, ...], min_score: float = DETECTOR_MIN_SCORE,
                        all_classes: bool = DETECTOR_ALL_CLASSES) -> sv.Detections:
    """Turn face candidates and head outputs into final detections.

    all_classes: emit one box per class whose score passes (what mAP rewards); otherwise the best class only
    (what a person wants to see)."""
    if len(faces) == 0:
        return with_face_confidence(detections_from_labels(np.zeros((0, 4)), [], np.zeros(0), config.classes),
                                    np.zeros(0, np.float32))
    h, w = image_shape[:2]
    boxes = decode_deltas(faces.xyxy, deltas)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    scores = probs[:, 1:] * (faces.confidence[:, None] ** config.face_score_power)
    if all_classes:
        rows, cols = np.nonzero(scores >= min_score)
    else:
        rows = np.arange(len(scores))
        cols = scores.argmax(axis=1)
        keep = scores[rows, cols] >= min_score
        rows, cols = rows[keep], cols[keep]
    labels = [config.classes[c] for c in cols]
    detections = with_face_confidence(detections_from_labels(boxes[rows], labels, scores[rows, cols], config.classes),
                                      scores.sum(axis=1)[rows].astype(np.float32))
    if len(detections) == 0:
        return detections
    return detections.with_nms(threshold=config.nms_iou, class_agnostic=not all_classes)


def with_face_confidence(detections: sv.Detections, face_scores: np.ndarray) -> sv.Detections:
    """`data["face_confidence"]`: how sure the detector is that each box is a face, every class together (also
    on an empty result, so per-frame code can read it whatever the frame)."""
    detections.data[FACE_CONFIDENCE] = np.asarray(face_scores, np.float32)
    return detections


_said_quick: set[tuple[str, int]] = set()


def say_if_quick(model: Path, config: Path) -> None:
    """A model trained with `train --quick` is said to be one wherever it is loaded: its numbers come from a few
    images and two epochs. Once per process and file (a server loads it for uploads and again for its cameras)."""
    try:
        quick = json.loads(config.read_text()).get("train_options", {}).get("quick")
        said = (str(model.resolve()), model.stat().st_mtime_ns)
    except (OSError, ValueError, AttributeError):  # (a missing or odd config is said where it is read)
        return
    if quick and said not in _said_quick:
        _said_quick.add(said)
        log.warning("%s was trained with --quick: a check of the pipeline on a few images, not a model to use", model)


class _FaceDetector:
    """What both designs share: a model file with its JSON config, a face finder run under a scale policy, and
    the call `detector(image) -> sv.Detections`."""

    config_type: type[ScoringConfig] = ScoringConfig

    def __init__(self, model_path: Path, face_finder_path: Path, threads: int | None, scale: str | float,
                 min_face_score: float, config_path: Path | None = None):
        model_path = Path(model_path)
        if not model_path.is_file():
            run = run_of(model_path)
            replaced = (f"; the run it replaces (--overwrite) is kept until then: --model {run / REPLACED}"
                        if (run / REPLACED / MODEL).is_dir() else "")
            stopped = (f"its {LAST} holds the epochs it finished, and the model is exported when the last one "
                       f"ends: it was stopped, or is still running; `train ... --resume` goes on and exports it"
                       if (run / LAST).is_file() else
                       "it stopped before its first epoch ended, or is still running; `train ... --resume` goes on "
                       "with a run that finished an epoch")
            hint = "" if (run / MODEL).is_dir() or model_path.suffix != ".onnx" or not run.is_dir() else (
                f" ({run} holds a `maskwatch train` run that has no model yet: {stopped}{replaced})"
                if has_started(run) else
                f" ({run} is not the folder of a `maskwatch train` run: give RUN, the folder with model/ inside)")
            raise MaskwatchError(f"{model_path}: model file not found{hint}")
        self.model_path = Path(model_path)
        self.config = self.config_type.read(Path(config_path or self.model_path.with_suffix(".json")))
        self.faces = FaceFinder(face_finder_path, threads)
        self.policy = ScalePolicy.parse(scale)
        self.min_face_score = check_score(min_face_score, "min_face_score")

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    def __reduce__(self):
        """Pickled as how it was made, and loaded again from its files where it is unpickled (onnxruntime's
        sessions cannot be pickled): a detector can go to a process pool's workers."""
        return type(self), self._made_with

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.model_path)!r}, classes={self.classes}, scale={self.policy.mode!r})"

    def find_faces(self, image_bgr: np.ndarray, min_face_score: float | None = None,
                   scale: str | float | None = None, min_score: float = 0.0) -> sv.Detections:
        """Face candidates under the detector's scale policy, or `scale` for this call only (video chooses the
        scale from the faces of the previous frames). min_score: the lowest final score the caller keeps; a
        candidate that cannot reach it is left out here, so it costs no crop."""
        image_bgr = as_bgr_image(image_bgr)
        # "auto" for one call (video's scale chooser says it) keeps the detector's own auto policy (auto-full stays)
        keep_own = scale is None or (scale == AUTO and self.policy.mode == AUTO)
        policy = self.policy if keep_own else ScalePolicy.parse(scale)
        floor = self.min_face_score if min_face_score is None else check_score(min_face_score, "min_face_score")
        return self.faces(image_bgr, policy, max(floor, self.hopeless_below(min_score)))

    def hopeless_below(self, min_score: float) -> float:
        """The face score under which a candidate cannot reach `min_score`: its final score is at most
        face_score ** face_score_power (a class probability is at most 1), so leaving it out changes no detection
        (nor the NMS, where a lower box never removes a higher one), up to float noise and ties of equal scores.
        Capped at the score the scale policy judges face sizes by, so the policy sees the same faces and chooses
        the same passes."""
        power = self.config.face_score_power
        if min_score <= 0 or power <= 0:
            return 0.0
        return min(CONFIDENT_FACE_SCORE, float(min_score) ** (1.0 / power))


class Detector(_FaceDetector):
    """The two-stage mask detector: CenterFace finds faces, a crop head says which of the three classes each is.

        detector = maskwatch.Detector.load()            # the shipped model; .load("runs/NAME") a trained one
        faces = detector(maskwatch.read_image("x.jpg"), min_score=0.4)
        Counter(faces.data["class_name"])               # people per class

    `Detector.load` returns a OneStageDetector for a one-stage model; both take the same calls."""

    config_type = HeadConfig

    def __init__(self, head_path: Path = DEFAULT_HEAD, face_finder_path: Path | None = None,
                 threads: int | None = None, scale: str | float = AUTO, min_face_score: float = MIN_FACE_SCORE,
                 flip_test: bool | None = None, config_path: Path | None = None):
        """flip_test: also classify each crop mirrored and average (None: as the head's config says).
        config_path: the head's JSON, where it is not beside the head (the 8-bit head shares the float one's)."""
        super().__init__(head_path, face_finder_path or CENTERFACE_PATH, threads, scale, min_face_score,
                         config_path)
        self._made_with = (head_path, face_finder_path, threads, scale, min_face_score, flip_test, config_path)
        self.head = make_session(Path(head_path), threads)
        self._check_head_fits(Path(head_path), Path(config_path or Path(head_path).with_suffix(".json")))
        if flip_test is not None:
            if not isinstance(flip_test, bool):
                raise MaskwatchError(f"flip_test is True, False or None (as the head's config says), got "
                                     f"{flip_test!r}")
            self.config = replace(self.config, flip_test=flip_test)

    @classmethod
    def load(cls, path: str | Path | None = None, **kwargs) -> "Detector | OneStageDetector":
        """The shipped model (None, "shipped", or "shipped-int8" for its 8-bit copy), or a trained one: an .onnx
        file or a run folder (its model/ folder holds it). A one-stage model comes back as a OneStageDetector,
        which takes the same calls. Keyword arguments: threads (onnxruntime's per call; default all cores), scale
        ("auto", "auto-full" or a number: the face finder's input scale), min_face_score (candidates the face
        finder scores lower are not classified), flip_test (two-stage: also classify each face mirrored).
        One detector may serve several threads at once (onnxruntime's sessions are safe to share)."""
        shipped = path is None or is_shipped_name(path)
        if not shipped and not Path(path).exists():
            raise MaskwatchError(f"{path}: no such model file or run folder (the shipped models are named "
                                 f"{', '.join(SHIPPED_FILES)})")
        if not shipped and Path(path).is_file() and Path(path).suffix.lower() != ".onnx":
            raise MaskwatchError(f"{path}: not a model (give an .onnx file with its .json beside it, or the folder "
                                 f"of a `maskwatch train` run)")
        files = model_files(path)
        if not shipped:
            say_if_quick(files.network, files.config)
        if shipped or files.network.stem.endswith(INT8_SUFFIX):  # (8-bit copies are of two-stage heads)
            return cls(files.network, files.face_finder, config_path=files.config, **kwargs)
        arch = ScoringConfig.read(files.config).arch if files.config.is_file() else TWO_STAGE
        return kind_of(arch).load_runtime()(files.network, **kwargs)

    def _check_head_fits(self, head_path: Path, config_path: Path) -> None:
        """A head and a config from different runs (another class list, another crop size) are refused here,
        not found out as an index error on the first face."""
        shapes = {node.name: node.shape for node in [*self.head.get_inputs(), *self.head.get_outputs()]}
        if "crops" not in shapes or "probs" not in shapes:
            raise MaskwatchError(f"{head_path}: not a maskwatch crop head (it takes {', '.join(shapes)})")
        width, size = shapes["probs"][-1], shapes["crops"][-1]
        wanted = len(self.config.classes) + 1
        if isinstance(width, int) and width != wanted:
            raise MaskwatchError(f"{head_path} gives {width - 1} classes but {config_path} names {wanted - 1} "
                                 f"({', '.join(self.config.classes)}): they are not from the same training run")
        if isinstance(size, int) and size != self.config.crop_size:
            raise MaskwatchError(f"{head_path} takes {size}-px crops but {config_path} says crop_size "
                                 f"{self.config.crop_size}: they are not from the same training run")

    def _run_head(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, deltas = [], []
        for start in range(0, len(crops), 64):
            p, d = self.head.run(None, {"crops": crops_to_blob(crops[start:start + 64])})
            probs.append(p)
            deltas.append(d)
        return np.concatenate(probs), np.concatenate(deltas)

    def classify(self, image_bgr: np.ndarray, faces: sv.Detections) -> tuple[np.ndarray, np.ndarray]:
        """Head outputs (class probabilities with background first, box deltas) for given face boxes."""
        if len(faces) == 0:
            return np.zeros((0, len(self.config.classes) + 1), np.float32), np.zeros((0, 4), np.float32)
        crops = crop_faces(image_bgr, faces.xyxy, self.config.crop_size, self.config.crop_context)
        probs, deltas = self._run_head(crops)
        if self.config.flip_test:
            flipped_probs, flipped_deltas = self._run_head(np.ascontiguousarray(crops[:, :, ::-1]))
            flipped_deltas[:, 0] *= -1  # a mirrored face moves the other way
            probs, deltas = (probs + flipped_probs) / 2, (deltas + flipped_deltas) / 2
        return probs, deltas

    def refine(self, image_bgr: np.ndarray, faces: sv.Detections) -> tuple[sv.Detections, np.ndarray, np.ndarray]:
        """Head outputs, after `refine_passes` extra looks at the boxes the head itself proposed."""
        probs, deltas = self.classify(image_bgr, faces)
        limit = self.config.refine_max_px
        look = np.ones(len(faces), bool) if limit is None else (faces.xyxy[:, 3] - faces.xyxy[:, 1]) < limit
        look &= probs[:, 1:].max(axis=1, initial=0.0) >= self.config.refine_min_prob
        for _ in range(self.config.refine_passes):
            if not look.any():
                break
            boxes = faces.xyxy.copy()
            boxes[look] = decode_deltas(faces.xyxy[look], deltas[look])
            faces = sv.Detections(xyxy=boxes, confidence=faces.confidence, class_id=faces.class_id)
            probs, deltas = probs.copy(), deltas.copy()
            probs[look], deltas[look] = self.classify(image_bgr, faces[look])
        return faces, probs, deltas

    def __call__(self, image_bgr: "np.ndarray | PIL.Image.Image", min_score: float = DETECTOR_MIN_SCORE,
                 all_classes: bool = DETECTOR_ALL_CLASSES, min_face_score: float | None = None,
                 scale: str | float | None = None) -> sv.Detections:
        """The faces of one picture as `sv.Detections`: `xyxy` boxes in its pixels, `confidence`, `class_id` and
        `data["class_name"]` (with_mask, without_mask, mask_weared_incorrect), `data["face_confidence"]`.

        image_bgr: an 8-bit BGR array as cv2.imread and maskwatch.read_image give. A PIL image is converted and turned
        upright as its EXIF orientation says (as read_image turns a file): its boxes are in the pixels of
        `PIL.ImageOps.exif_transpose(image)`, which `maskwatch.annotate.annotate` draws on when given the PIL image.
        min_score: the lowest score kept. The default 0.01 keeps faint faces for mAP; to count people, keep what
        the drawings and counts keep: `min_score=maskwatch.thresholds.FOR_PEOPLE.min_score` (0.4).
        all_classes: a box for every class a face scores at least min_score in (what COCO mAP rewards; a face
        may then appear twice); False (the default) keeps one box per face, its best class.
        min_face_score: candidates the face finder scores lower are not classified (default: the detector's;
        raise it where speed matters more than recall of faint faces, as on live video). scale: the face finder's
        input scale for this call only (default: the detector's policy)."""
        image_bgr, min_score = as_bgr_image(image_bgr), check_score(min_score)
        faces, probs, deltas = self.refine(image_bgr, self.find_faces(image_bgr, min_face_score, scale, min_score))
        return assemble_detections(faces, probs, deltas, self.config, image_bgr.shape, min_score, all_classes)


class OneStageDetector(_FaceDetector):
    """A CenterFace fine-tuned to give faces and classes in one pass (models/onestage.py); no crop head."""

    def __init__(self, model_path: Path, threads: int | None = None, scale: str | float = AUTO,
                 min_face_score: float = MIN_FACE_SCORE, flip_test: bool | None = None):
        if flip_test:
            raise MaskwatchError(f"{model_path}: flip averaging is a crop head's (two-stage models), not a "
                                 f"one-stage model's")
        super().__init__(model_path, Path(model_path), threads, scale, min_face_score)
        self._made_with = (model_path, threads, scale, min_face_score, flip_test)
        if not self.faces.has_classes:
            raise MaskwatchError(f"{model_path}: not a one-stage model (no {CLASS_PROBS} output)")
        width = next(o.shape for o in self.faces.session.get_outputs() if o.name == CLASS_PROBS)[1]
        if isinstance(width, int) and width != len(self.config.classes):
            raise MaskwatchError(f"{model_path} gives {width} classes but its config names "
                                 f"{len(self.config.classes)} ({', '.join(self.config.classes)}): they are not from "
                                 f"the same training run")

    def __call__(self, image_bgr: "np.ndarray | PIL.Image.Image", min_score: float = DETECTOR_MIN_SCORE,
                 all_classes: bool = DETECTOR_ALL_CLASSES, min_face_score: float | None = None,
                 scale: str | float | None = None) -> sv.Detections:
        """As Detector.__call__."""
        image_bgr, min_score = as_bgr_image(image_bgr), check_score(min_score)
        faces = self.find_faces(image_bgr, min_face_score, scale, min_score)
        probs = np.zeros((len(faces), len(self.config.classes) + 1), np.float32)
        if len(faces):
            probs[:, 1:] = faces.data[CLASS_PROBS]
        no_shift = np.zeros((len(faces), 4), np.float32)  # the fine-tuned size/offset heads already drew our boxes
        return assemble_detections(faces, probs, no_shift, self.config, image_bgr.shape, min_score, all_classes)
