"""A model's JSON config, written beside its ONNX by training and read by the detector: its classes, how its outputs
become scores and, for a crop head, how faces are cropped. Refused, naming the field, when a file was cut short,
edited wrongly or comes from another run."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.model_kinds import KINDS, TWO_STAGE


@dataclass
class ScoringConfig:
    """Stored beside a model's ONNX as JSON: its classes and how its outputs become scores."""

    classes: list[str]
    face_score_power: float = 0.5  # final score = p(class) * face_score ** power
    nms_iou: float = 0.5
    arch: str = TWO_STAGE

    @classmethod
    def read(cls, path: Path):
        """The config a training run wrote; a file edited by hand or cut short is refused, saying what is wrong,
        rather than failing later inside the detector."""
        if not path.is_file():
            raise MaskwatchError(f"{path}: the model's config file is missing")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise MaskwatchError(f"{path}: the model's config is not readable JSON ({error})") from None
        if not isinstance(data, dict):
            raise MaskwatchError(f"{path}: the model's config must be a JSON object, got {type(data).__name__}")
        fields = [f for f in dataclass_fields(cls) if f.init]
        missing = [f.name for f in fields if f.name not in data
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise MaskwatchError(f"{path}: the model's config lacks {', '.join(missing)}")
        config = cls(**{f.name: data[f.name] for f in fields if f.name in data})
        problem = config.problem()
        if problem:
            raise MaskwatchError(f"{path}: the model's config has {problem}")
        whole = {f.name: int(getattr(config, f.name)) for f in fields if f.type == "int"}  # (80.0 -> 80)
        return replace(config, **whole)

    def problem(self) -> str | None:
        """What is wrong with the values, if anything (None: fine)."""
        classes = self.classes
        if (not isinstance(classes, list) or not classes or len(set(map(str, classes))) != len(classes)
                or not all(isinstance(c, str) and c.strip() for c in classes)):
            return f"classes {classes!r}: they must be a list of distinct names"
        if self.arch not in KINDS:
            return f"arch {self.arch!r}: one of {', '.join(KINDS)}"
        for name, low, high in (("face_score_power", 0, 10), ("nms_iou", 0, 1)):
            value = getattr(self, name)
            if not _number_within(value, low, high):
                return f"{name} {value!r}: a number from {low} to {high}"
        return None

    def write(self, path: Path, **extra) -> None:
        path.write_text(json.dumps({**self.__dict__, **extra}, indent=2))


@dataclass(kw_only=True)
class HeadConfig(ScoringConfig):
    """The crop head's framing on top of the scoring."""

    crop_size: int
    crop_context: float
    flip_test: bool = False  # also classify the mirrored crop and average
    refine_passes: int = 1  # re-crop at the refined box and ask the head again (1 measured best)
    refine_max_px: float | None = None  # only faces shorter than this get the refined look (None: all)
    refine_min_prob: float = 0.0  # and only candidates whose first look gives some class at least this probability

    def problem(self) -> str | None:
        checks = (("crop_size", 8, 1024, True), ("crop_context", 0.5, 10, False), ("refine_passes", 0, 8, True),
                  ("refine_min_prob", 0, 1, False))
        for name, low, high, whole in checks:
            value = getattr(self, name)
            if not _number_within(value, low, high) or (whole and value != int(value)):
                return f"{name} {value!r}: a {'whole ' if whole else ''}number from {low} to {high}"
        if self.refine_max_px is not None and not _number_within(self.refine_max_px, 1, 1e6):
            return f"refine_max_px {self.refine_max_px!r}: a number of pixels, or null for every face"
        if not isinstance(self.flip_test, bool):
            return f"flip_test {self.flip_test!r}: true or false"
        return super().problem()


def _number_within(value: object, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)
