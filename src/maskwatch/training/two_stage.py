"""The two-stage recipe (`maskwatch train --arch two-stage`, what ships): a crop head behind the frozen face finder.

Face candidates are found once per training image (cached); each epoch draws crops of candidates matched to
faces, jittered ground-truth boxes (rare classes more often) and background candidates. With `--extra-faces`,
each epoch also draws the big, sharp pictures of a folder-per-class set once, their box target being the face
finder's own box (no annotator drew them: the head learns to leave such boxes alone, not to extrapolate the
training annotators' style to big faces), and with `--synthetic-wrong N`, N composites of masks worn below the
nose or on the chin (and, as controls, worn right: training/synthesis.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from maskwatch.classes import MASK_CLASSES, WITH_MASK, WITHOUT_MASK, WRONG_MASK, class_meaning
from maskwatch.crops import CROP_CONTEXT, CROP_SIZE, crop_faces, crops_to_blob, encode_deltas
from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError
from maskwatch.face_finder import ScalePolicy
from maskwatch.model_config import HeadConfig
from maskwatch.model_kinds import KINDS, TWO_STAGE
from maskwatch.models.crop_head import CropHead, export_onnx
from maskwatch.run_folder import CANDIDATES
from maskwatch.training.augment import augment_crop
from maskwatch.training.balance import copies_per_class
from maskwatch.training.candidates import Example, find_candidates, jittered_ground_truth, match_candidates
from maskwatch.training.engine import Recipe, TrainConfig
from maskwatch.training.face_pictures import FacePicture, load_face_pictures
from maskwatch.training.synthesis import composite, pick_kind


def jitter_box(box: np.ndarray, rng: np.random.Generator, shift: float = 0.12, scale: float = 0.2) -> np.ndarray:
    """The box moved and resized a little, as the face finder's boxes vary around a face."""
    w, h = box[2] - box[0], box[3] - box[1]
    cx = (box[0] + box[2]) / 2 + rng.uniform(-shift, shift) * w
    cy = (box[1] + box[3]) / 2 + rng.uniform(-shift, shift) * h
    s, a = np.exp(rng.uniform(-scale, scale)), np.exp(rng.uniform(-scale / 2, scale / 2))
    nw, nh = w * s * a, h * s / a
    return np.array([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], np.float32)


def cut_around(image: np.ndarray, box: np.ndarray, context: float) -> tuple[np.ndarray, np.ndarray]:
    """A region of `context` times the box's longer side around it (so a made-up picture need not be kept
    whole), and the box in the region's pixels."""
    side = max(box[2] - box[0], box[3] - box[1]) * context
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    h, w = image.shape[:2]
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(w, np.ceil(cx + side / 2))), int(min(h, np.ceil(cy + side / 2)))
    return image[y0:y1, x0:x1].copy(), box - np.array([x0, y0, x0, y0], np.float32)


MIN_CROP_SIZE = 32  # the head's MobileNetV2 divides its input by 32


SYNTHESIS_NEEDS = (f"--synthetic-wrong needs --extra-faces with pictures of a mask worn and of none, and one "
                   f"training class for each of {', '.join(MASK_CLASSES)} (or names that say them: mask, no_mask, "
                   f"incorrect)")


class TwoStageRecipe(Recipe):
    """The shipped design's training (model card): the crop head learns each candidate's class and box correction
    from the face finder's candidates matched to the annotated faces, jittered ground-truth boxes, the extra face
    pictures and the composites; exported as the head's ONNX and JSON, scored each epoch as it ships."""

    batch_size = 64
    lr = 2e-3
    takes_face_pictures = True
    crop_size: int = CROP_SIZE
    crop_context: float = CROP_CONTEXT
    negatives_per_positive: float = 0.6
    jitter_copies: float = 2.0  # jittered copies of each ground-truth box of the commonest class
    extra_copies: float = 1.0  # draws of each extra face picture per epoch
    candidate_upscale_to: tuple[int, ...] = (800,)  # upscaled face-finder passes that make training candidates
    # The exported detector looks twice (at the corrected box) only at faces under this height: the correction
    # and the second look are learnt on crowd faces (90 % of the training set's faces are under 80 px); bigger
    # faces keep their first look. Measured on both validation sets (model card).
    refine_max_px: float | None = 80.0
    # ... and only at candidates whose first look gives some class at least this probability: the others are
    # background to the head (most candidates on crowd photos); a second look at them cost time and changed
    # little (bench/variants.py, bench/speed.py, model card).
    refine_min_prob: float = 0.05
    # What ships is a weight-space ensemble (WiSE-FT, Wortsman et al., CVPR 2022) of the fine-tuned backbone and
    # the ImageNet one it started from: this share of the fine-tuned weights (BatchNorm statistics included), the
    # rest ImageNet's; the new class and box layers stay as trained. Fine-tuning on 653 crowd photos pulls the
    # backbone away from features that held on other photos; pulling it a tenth of the way back gave +1.6 / +1.5
    # mAP@.5 on andrewmvd / jolignier with v6's weights (0.75: -1.1 / +0.7; model card).
    finetuned_share: float = 0.9
    # The pretrained backbone learns at lr x this; the new class and box layers at lr.
    backbone_lr_factor: float = 1.0
    # Linear probing, then fine-tuning (LP-FT, Kumar et al., ICLR 2022): for this many first epochs only the new
    # class and box layers learn, on ImageNet's features as they are (their BatchNorm statistics too), so the
    # large gradients of freshly initialised layers do not distort the backbone; then everything learns.
    probe_epochs: int = 0

    @classmethod
    def check_settings(cls, cfg: TrainConfig) -> None:
        super().check_settings(cfg)
        for name, option in (("finetuned_share", "--finetuned-share"), ("backbone_lr_factor", "--backbone-lr-factor")):
            value = cfg.recipe.get(name, getattr(cls, name))
            if not 0 < value <= 1:
                raise MaskwatchError(f"{name} ({option}) must be in (0, 1], not {value}")
        probe_epochs = cfg.recipe.get("probe_epochs", cls.probe_epochs)
        if not 0 <= probe_epochs < cfg.epochs:
            raise MaskwatchError(f"probe_epochs (--probe-epochs) must be at least 0 and fewer than --epochs "
                                 f"({cfg.epochs}), not {probe_epochs}")
        crop_size = cfg.recipe.get("crop_size", cls.crop_size)
        if crop_size < MIN_CROP_SIZE:
            raise MaskwatchError(f"crop_size (--crop-size) must be at least {MIN_CROP_SIZE} pixels, not {crop_size}")
        if cfg.synthetic_wrong and not cfg.extra_faces:  # (said before the data is read; the classes after)
            raise MaskwatchError(SYNTHESIS_NEEDS)

    def build_model(self) -> torch.nn.Module:
        cfg = self.cfg
        self.pictures: list[FacePicture] = []
        if cfg.extra_faces:  # (first: a folder named after no class is said before the long search for candidates)
            self.pictures = load_face_pictures(cfg.extra_faces, self.classes, limit=32 if cfg.quick else None,
                                               label_map=cfg.label_map)
        if cfg.synthetic_wrong and not self._can_synthesise():  # (before the long search for candidates)
            raise MaskwatchError(f"{SYNTHESIS_NEEDS}; the classes are {', '.join(self.classes)}")
        candidates = find_candidates(self.images, cfg.out / CANDIDATES,
                                     policy=ScalePolicy(upscale_to=tuple(self.candidate_upscale_to), coarse_first=None))
        self.matched = {s.stem: match_candidates(s.stem, candidates[s.stem], s.detections, left_out=s.left_out)
                        for s in self.train_set.samples}
        self.copies = copies_per_class(self.train_set, self.jitter_copies, cfg.balance_classes)
        self.picture_images = {str(p.path): read_image(p.path) for p in self.pictures}
        head = CropHead(len(self.classes), pretrained=True)
        self.pretrained_backbone = {k: v.detach().clone() for k, v in head.features.state_dict().items()}
        return head

    def param_groups(self) -> list[dict]:
        """The backbone at `backbone_lr_factor` of the rate, the class and box layers (new) at the rate; one group
        at factor 1 (as before the option, so older checkpoints resume)."""
        if self.backbone_lr_factor == 1:
            return super().param_groups()
        head = [p for name, p in self.model.named_parameters() if not name.startswith("features.")]
        return [{"params": list(self.model.features.parameters()), "lr_factor": self.backbone_lr_factor},
                {"params": head, "lr_factor": 1.0}]

    def train_mode(self, epoch: int) -> None:
        """While probing, the backbone is frozen as ImageNet left it: no gradients, batch-norm statistics kept."""
        probing = epoch < self.probe_epochs
        self.model.train()
        self.model.features.requires_grad_(not probing)
        if probing:
            self.model.features.eval()

    def _meant(self, meaning: str) -> str | None:
        """The training class that stands for a mask class (with_mask, or a data set's `mask`)."""
        return class_meaning(self.classes, meaning)

    def _can_synthesise(self) -> bool:
        labels = {self.classes[p.label] for p in self.pictures}
        return (None not in (self._meant(WITH_MASK), self._meant(WITHOUT_MASK), self._meant(WRONG_MASK))
                and {self._meant(WITH_MASK), self._meant(WITHOUT_MASK)} <= labels)

    def extra_examples(self, rng: np.random.Generator) -> list[Example]:
        """Jittered crops of the extra pictures; their box target is the face finder's own box."""
        examples = []
        n = int(round(self.extra_copies * len(self.pictures)))
        for i in rng.integers(len(self.pictures), size=n) if self.pictures else []:
            picture = self.pictures[int(i)]
            box = jitter_box(picture.box, rng)
            examples.append(Example(str(picture.path), box, picture.label + 1,
                                    encode_deltas(box[None], picture.box[None])[0]))
        return examples

    def synthetic_examples(self, count: int, rng: np.random.Generator) -> list[Example]:
        """Composites of a masked face's lower part on an unmasked face, labelled by where the mask sits."""
        masked = [p for p in self.pictures if self.classes[p.label] == self._meant(WITH_MASK)]
        bare = [p for p in self.pictures if self.classes[p.label] == self._meant(WITHOUT_MASK)]
        examples = []
        for _ in range(count):
            base, mask = bare[int(rng.integers(len(bare)))], masked[int(rng.integers(len(masked)))]
            kind = pick_kind(rng)
            image = composite(self.picture_images[str(base.path)], base, self.picture_images[str(mask.path)], mask,
                              kind, rng)
            if image is None:
                continue
            region, face = cut_around(image, base.box, 2.5)
            box = jitter_box(face, rng)
            label = self.classes.index(self._meant(WITH_MASK if kind == "right" else WRONG_MASK)) + 1
            examples.append(Example(f"synthetic-{kind}", box, label, encode_deltas(box[None], face[None])[0],
                                    image=region))
        return examples

    def epoch(self, epoch: int, rng: np.random.Generator) -> list[list[Example]]:
        examples, negatives = [], []
        for sample in self.train_set.samples:
            positives, negs = self.matched[sample.stem]
            examples += positives
            examples += jittered_ground_truth(sample.stem, sample.detections, self.copies, rng)
            negatives += negs
        n_neg = min(len(negatives), int(self.negatives_per_positive * len(examples)))
        if n_neg:
            examples += [negatives[i] for i in rng.choice(len(negatives), n_neg, replace=False)]
        examples += self.extra_examples(rng)
        if self.cfg.synthetic_wrong:
            count = min(self.cfg.synthetic_wrong, 16) if self.cfg.quick else self.cfg.synthetic_wrong
            examples += self.synthetic_examples(count, rng)
        examples = [examples[i] for i in rng.permutation(len(examples))]
        steps = math.ceil(len(examples) / self.batch_size)
        return [examples[i * self.batch_size:(i + 1) * self.batch_size] for i in range(steps)]

    def image_of(self, example: Example) -> np.ndarray:
        if example.image is not None:
            return example.image
        return self.images[example.stem] if example.stem in self.images else self.picture_images[example.stem]

    def make_batch(self, spec: list[Example], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        crops, deltas = [], []
        for ex in spec:
            crop = crop_faces(self.image_of(ex), ex.box[None], self.crop_size, self.crop_context)[0]
            d = ex.deltas.copy()
            if rng.random() < 0.5:  # mirror the face: the horizontal shift changes sign
                crop = crop[:, ::-1]
                d[0] = -d[0]
            crops.append(augment_crop(crop, rng))
            deltas.append(d)
        return (torch.from_numpy(crops_to_blob(np.stack(crops))), torch.tensor([ex.label for ex in spec]),
                torch.from_numpy(np.stack(deltas)))

    def losses(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, labels, deltas = batch
        logits, predicted = self.model(x)
        loss_cls = F.cross_entropy(logits.float(), labels, label_smoothing=0.05)
        positive = labels > 0
        loss_box = (F.smooth_l1_loss(predicted[positive].float(), deltas[positive], beta=0.5)
                    if positive.any() else predicted.sum() * 0)
        return {"loss_cls": loss_cls, "loss_box": loss_box}

    def head_config(self) -> HeadConfig:
        return HeadConfig(classes=list(self.classes), crop_size=self.crop_size, crop_context=self.crop_context,
                          refine_max_px=self.refine_max_px, refine_min_prob=self.refine_min_prob)

    def shipping_model(self) -> torch.nn.Module:
        """The trained head with its backbone moved `1 - finetuned_share` of the way back to ImageNet's."""
        model = super().shipping_model()
        share = self.finetuned_share
        if share < 1:
            model.features.load_state_dict({
                k: share * v + (1 - share) * self.pretrained_backbone[k] if v.is_floating_point() else v
                for k, v in model.features.state_dict().items()})
        return model

    def export(self, folder: Path, **extra: Any) -> Path:
        path = export_onnx(self.shipping_model(), folder / KINDS[TWO_STAGE].model_file, self.crop_size)
        self.head_config().write(path.with_suffix(".json"), **extra)
        return path

    def export_int8(self, model_path: Path, photos: dict[str, np.ndarray]) -> Path:
        """mask_head-int8.onnx beside the head, calibrated as the shipped one is (training/int8.py): 40 training
        photos and every other one of the first 60 extra face pictures of each class."""
        from maskwatch.training.int8 import draw, write_int8_head

        _, for_head = draw(list(photos))
        by_class: dict[int, list[np.ndarray]] = {}
        for picture in self.pictures:
            by_class.setdefault(picture.label, []).append(self.picture_images[str(picture.path)])
        pictures = [image for images in by_class.values() for image in images[:60:2]]  # as the shipped head's
        return write_int8_head(model_path, [photos[stem] for stem in for_head], pictures, threads=self.cfg.threads)
