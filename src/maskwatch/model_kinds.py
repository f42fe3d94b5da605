"""The one place that knows each kind of model (in the spirit of ultralytics' task map).

A kind names the ONNX file a training run leaves, the class that runs it (onnxruntime, no torch) and the recipe
that trains it (torch). Both are named as "module:attribute" strings and imported on use, so the detector never
imports torch and adding a kind is one entry here plus its two modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskwatch.errors import MaskwatchError
from maskwatch.run_folder import MODEL


@dataclass(frozen=True)
class ModelKind:
    """One kind of model (an entry of KINDS): its file, and the classes that run and train it, named as strings so that
    running a model never imports torch."""

    name: str  # the value of `maskwatch train --arch` and of "arch" in the model's JSON
    model_file: str  # what a run leaves in its model/ folder
    runtime: str  # "module:Class" that answers detector(image) -> sv.Detections
    recipe: str  # "module:Class" that the training engine drives
    summary: str  # one line for --help

    def load_runtime(self) -> Any:
        return _load(self.runtime)

    def load_recipe(self) -> Any:
        return _load(self.recipe)


TWO_STAGE = "two-stage"
ONE_STAGE = "one-stage"

KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind(TWO_STAGE, "mask_head.onnx", "maskwatch.detector:Detector", "maskwatch.training.two_stage:TwoStageRecipe",
              "a crop head behind the shipped face finder (what ships)"),
    ModelKind(ONE_STAGE, "onestage.onnx", "maskwatch.detector:OneStageDetector",
              "maskwatch.training.one_stage:OneStageRecipe",
              "CenterFace itself fine-tuned to find and classify (faster, less accurate)"),
)}


def kind_of(name: str) -> ModelKind:
    """The kind an --arch value (or a model JSON's "arch") names; an unknown one is a user error listing the kinds."""
    if name not in KINDS:
        raise MaskwatchError(f"--arch must be one of {', '.join(KINDS)}, got {name!r}")
    return KINDS[name]


def model_in(folder: Path) -> Path:
    """The model file a run folder (or its model/ folder, or a folder of model files) holds, of whichever kind;
    the two-stage file's path where there is none."""
    folder = folder / MODEL if (folder / MODEL).is_dir() else folder
    found = [folder / kind.model_file for kind in KINDS.values() if (folder / kind.model_file).is_file()]
    return found[0] if found else folder / KINDS[TWO_STAGE].model_file


def _load(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)
