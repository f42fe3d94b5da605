"""Extra training faces (a folder per class of face pictures) and the synthetic mask-worn-wrongly composites,
on real pictures of face-crops-2class."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError
from maskwatch.face_finder import LANDMARKS, FaceFinder

torch = pytest.importorskip("torch", reason="training tests need `make install-train`")

from maskwatch.training.face_pictures import find_face, list_face_pictures, load_face_pictures  # noqa: E402
from maskwatch.training.synthesis import composite  # noqa: E402
from conftest import FACE_CROPS  # noqa: E402

CROPS = FACE_CROPS
CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


@pytest.fixture
def pictures_dir(extra_faces_dir) -> Path:
    return extra_faces_dir


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder(threads=2)


def test_landmarks_lie_on_the_face(finder):
    image = read_image(CROPS / "without_mask" / "17.jpg")
    faces = finder.at_scale(image, 1.0, landmarks=True)
    best = int(np.argmax(faces.confidence))
    (x1, y1, x2, y2), points = faces.xyxy[best], faces.data[LANDMARKS][best].reshape(5, 2)
    assert ((points[:, 0] > x1) & (points[:, 0] < x2) & (points[:, 1] > y1) & (points[:, 1] < y2)).all()
    eyes, nose, mouth = points[:2], points[2], points[3:]
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()  # eyes above the nose tip, above the mouth
    assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]
    assert LANDMARKS not in finder.at_scale(image, 1.0).data  # only when asked


def test_one_clear_face_is_kept_and_a_picture_of_two_people_is_not(finder):
    one = read_image(CROPS / "without_mask" / "17.jpg")
    found = find_face(finder, one)
    assert found is not None
    box, _ = found
    assert (box[2] - box[0]) > 0.3 * one.shape[1]
    two = np.hstack([one, cv2.flip(one, 1)])
    assert find_face(finder, two) is None


def test_folders_must_be_named_after_classes_or_what_they_mean(pictures_dir, tmp_path, capsys):
    assert len(list_face_pictures(pictures_dir, CLASSES)) == 12
    # A data set of other names (mask / no_mask / incorrect): with_mask/ and without_mask/ are taken as what they mean.
    own = list_face_pictures(pictures_dir, ["incorrect", "mask", "no_mask"])
    assert own == [(path, {0: 1, 1: 2}[label]) for path, label in list_face_pictures(pictures_dir, CLASSES)]
    assert "with_mask/ taken as mask, without_mask/ taken as no_mask" in capsys.readouterr().out
    shutil.copytree(pictures_dir, tmp_path / "faces")
    (tmp_path / "faces" / "helmet").mkdir()
    with pytest.raises(MaskwatchError, match="helmet"):
        list_face_pictures(tmp_path / "faces", CLASSES)
    with pytest.raises(MaskwatchError, match="not a folder"):
        list_face_pictures(tmp_path / "missing", CLASSES)


def test_face_search_is_cached(pictures_dir, tmp_path, finder, monkeypatch):
    monkeypatch.setenv("MASKWATCH_CACHE", str(tmp_path / "cache"))
    first = load_face_pictures(pictures_dir, CLASSES, finder)
    assert len(first) >= 10 and {p.label for p in first} == {0, 1}
    assert len(list((tmp_path / "cache" / "face_pictures").glob("*.json"))) == 1

    def no_search(*args):
        raise AssertionError("searched again")

    monkeypatch.setattr("maskwatch.training.face_pictures.find_face", no_search)
    again = load_face_pictures(pictures_dir, CLASSES, finder)
    assert [str(p.path) for p in again] == [str(p.path) for p in first]
    np.testing.assert_allclose(again[0].box, first[0].box)


@pytest.mark.parametrize("kind", ["nose", "chin", "right"])
def test_the_mask_is_pasted_from_the_line_its_kind_names(kind, pictures_dir, finder):
    pictures = {p.path.name: p for p in load_face_pictures(pictures_dir, CLASSES, finder)}
    bare, masked = pictures["17.jpg"], pictures["0129.jpg"]
    base, mask = read_image(bare.path), read_image(masked.path)
    out = composite(base, bare, mask, masked, kind, np.random.default_rng(0))
    changed = np.abs(out.astype(int) - base.astype(int)).sum(axis=2) > 30
    points = bare.landmarks.reshape(5, 2).astype(int)
    eyes_y, nose, mouth_y = points[:2, 1].mean(), points[2], int(points[3:, 1].mean())
    assert not changed[: int(eyes_y)].any()  # the eyes and above are the base face's
    nose_patch = changed[nose[1] - 2:nose[1] + 3, nose[0] - 2:nose[0] + 3].mean()
    mouth_patch = changed[mouth_y - 2:mouth_y + 3, points[3, 0]:points[4, 0]].mean()
    if kind == "right":
        assert nose_patch > 0.5 and mouth_patch > 0.5  # nose and mouth covered
    elif kind == "nose":
        assert nose_patch == 0 and mouth_patch > 0.5  # nose shows, mouth covered
    else:
        assert nose_patch == 0 and mouth_patch == 0  # only the chin is covered
        assert changed[int(bare.box[3]) - 3].any()
