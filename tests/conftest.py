"""Shared fixtures: real images and annotations from the training set in ../shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "datasets" / "face-mask-voc").resolve()
# A few real images covering all three classes, small and big faces, and a box ending one pixel past the edge
# (maksssksksss5).
SMALL_STEMS = ["maksssksksss5", "maksssksksss94", "maksssksksss139", "maksssksksss657", "maksssksksss0",
               "maksssksksss1"]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"the training set is expected at {DATA}"
    return DATA


def copy_voc(stems: list[str], dst: Path) -> Path:
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "annotations").mkdir(parents=True, exist_ok=True)
    for stem in stems:
        shutil.copy(DATA / "images" / f"{stem}.jpg", dst / "images")
        shutil.copy(DATA / "annotations" / f"{stem}.xml", dst / "annotations")
    return dst


@pytest.fixture
def small_voc(tmp_path: Path, data_dir: Path) -> Path:
    """A writable copy of a few real VOC images and XMLs."""
    return copy_voc(SMALL_STEMS, tmp_path / "voc")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MASKWATCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
