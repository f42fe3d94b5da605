from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError


@pytest.fixture
def face_rgb(data_dir) -> np.ndarray:
    return cv2.imread(str(data_dir / "images" / "maksssksksss94.jpg"))


def test_grey_rgba_and_16_bit_pngs_become_8_bit_bgr(tmp_path, face_rgb):
    grey = cv2.cvtColor(face_rgb, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(face_rgb, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(tmp_path / "deep.png"), face_rgb.astype(np.uint16) * 257)
    for name in ("grey.png", "rgba.png", "deep.png"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.shape == face_rgb.shape, name
    assert np.abs(read_image(tmp_path / "deep.png").astype(int) - face_rgb).max() <= 1
    as_grey = read_image(tmp_path / "grey.png").astype(int)  # grey in all three channels, the same values
    assert (as_grey == as_grey[..., :1]).all() and np.abs(as_grey[..., 0] - grey).max() <= 1
    assert np.abs(read_image(tmp_path / "rgba.png").astype(int) - face_rgb).max() == 0


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"hello, not an image", "not a readable image")])
def test_not_an_image_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(MaskwatchError, match=message) as err:
        read_image(path)
    assert "photo.jpg" in str(err.value)


def test_a_jpeg_cut_off_before_its_end_says_so(tmp_path, face_rgb):
    whole = cv2.imencode(".jpg", face_rgb)[1].tobytes()
    path = tmp_path / "download.jpg"
    path.write_bytes(whole[: len(whole) // 2])  # the header and half the data
    with pytest.raises(MaskwatchError, match="download.jpg: not a readable image .a JPEG file cut off"):
        read_image(path)


def test_a_jpeg_with_corrupt_data_but_its_end_marker_is_read_and_said_by_name(tmp_path, caplog):
    """OpenCV decodes it with grey where the data broke and prints a line without the file's name."""
    whole = (Path(__file__).parents[1] / "src" / "maskwatch" / "samples" / "crowd.jpg").read_bytes()
    middle = len(whole) // 2
    damaged = whole[:middle] + bytes(range(256)) * 8 + whole[middle + 2048:]  # the end marker kept
    (tmp_path / "whole.jpg").write_bytes(whole)
    (tmp_path / "damaged.jpg").write_bytes(damaged)
    assert read_image(tmp_path / "whole.jpg").shape == read_image(tmp_path / "damaged.jpg").shape
    assert "damaged.jpg: a JPEG file whose data is corrupt" in caplog.text and "whole.jpg" not in caplog.text


def test_huge_image_is_refused_before_decoding(tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")
    with pytest.raises(MaskwatchError, match="over the limit"):
        read_image(tmp_path / "huge.png")


def test_missing_file(tmp_path):
    with pytest.raises(MaskwatchError, match="no such image file"):
        read_image(tmp_path / "nope.jpg")


def test_a_header_is_read_without_decoding_pixels_even_for_a_png_with_exif(tmp_path, monkeypatch):
    """The pixel limit is checked on the header before anything is decoded (an upload's decompression bomb), and
    a data set's load reads every header: Pillow's getexif() would decode a PNG's pixels to look for EXIF."""
    from PIL import Image, PngImagePlugin

    from maskwatch.data.images import image_header

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (640, 480)).save(tmp_path / "phone.png", exif=exif.tobytes())

    def decoded(self):
        raise AssertionError("pixels decoded for a header")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", decoded)
    assert image_header(tmp_path / "phone.png", "phone.png", orientation=True) == ("PNG", 640, 480, 6)
    assert image_header((tmp_path / "phone.png").read_bytes(), "upload") == ("PNG", 640, 480, 1)


def test_a_photo_stored_sideways_with_an_exif_rotation_is_detected_upright(tmp_path):
    """Phones store portrait photos sideways with an EXIF orientation; sideways, the crowd's faces are not found."""
    import maskwatch.samples
    from maskwatch import Detector
    from maskwatch.data.images import annotated_image
    from maskwatch.thresholds import FOR_PEOPLE

    upright = Image.open(maskwatch.samples.CROWD)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    shown, stored = read_image(tmp_path / "phone.jpg"), annotated_image(tmp_path / "phone.jpg")
    assert shown.shape[:2] == (upright.height, upright.width) and stored.shape[:2] == (upright.width, upright.height)
    detector = Detector.load(threads=2)
    found = len(detector(shown, min_score=FOR_PEOPLE.min_score))
    assert found >= 8 and len(detector(stored, min_score=FOR_PEOPLE.min_score)) < found / 2


def test_loading_a_data_set_with_exif_rotated_images_says_in_which_frame_boxes_are_read(small_voc, caplog):
    from maskwatch.data import load_dataset

    photo = sorted((small_voc / "images").glob("*.jpg"))[0]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(photo).save(photo, exif=exif.tobytes(), quality=95)
    with caplog.at_level("WARNING"):
        load_dataset(small_voc)
    assert f"1 image(s) carry an EXIF rotation ({photo.name})" in caplog.text and "auto-orient" in caplog.text


def test_an_iphone_heic_photo_is_read_when_pillow_heif_is_installed(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")  # the `heic` extra (make install-dev has it)
    import maskwatch.samples
    from maskwatch import Detector
    from maskwatch.data.inputs import collect_images
    from maskwatch.thresholds import FOR_PEOPLE

    pillow_heif.register_heif_opener()
    Image.open(maskwatch.samples.CROWD).save(tmp_path / "IMG_0001.HEIC", quality=90)
    (tmp_path / "broken.heic").write_bytes((tmp_path / "IMG_0001.HEIC").read_bytes()[:2000])
    assert [p.name for p in collect_images([tmp_path])] == ["IMG_0001.HEIC", "broken.heic"]
    image = read_image(tmp_path / "IMG_0001.HEIC")
    assert image.shape == (267, 400, 3) and image.dtype == np.uint8
    assert len(Detector.load(threads=2)(image, min_score=FOR_PEOPLE.min_score)) >= 8
    with pytest.raises(MaskwatchError, match="broken.heic: not a readable image"):
        read_image(tmp_path / "broken.heic")
    from maskwatch.detect import run_detect  # its annotated copy: a JPEG beside the input's name (OpenCV
                                             # writes no HEIC), kept apart from a JPEG of the same stem
    photos = tmp_path / "phone"
    photos.mkdir()
    (tmp_path / "IMG_0001.HEIC").rename(photos / "IMG_0001.HEIC")
    shutil.copy(maskwatch.samples.CROWD, photos / "IMG_0001.jpg")
    summary = run_detect(Detector.load(threads=2), collect_images([photos]), tmp_path / "out", None)
    assert summary.images == 2 and not summary.failed and not summary.not_written
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["IMG_0001.HEIC.jpg", "IMG_0001.jpg"]


def test_an_avif_photo_is_read_upright_where_pillow_decodes_avif(tmp_path):
    from PIL import features

    import maskwatch.samples
    from maskwatch.data.images import annotated_image, image_header
    from maskwatch.data.inputs import collect_images

    if not features.check("avif"):
        pytest.skip("this Pillow was built without libavif")
    upright = Image.open(maskwatch.samples.CROWD)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.avif", exif=exif.tobytes(), quality=90)
    (tmp_path / "broken.avif").write_bytes((tmp_path / "phone.avif").read_bytes()[:1000])
    assert [p.name for p in collect_images([tmp_path])] == ["broken.avif", "phone.avif"]
    shown, stored = read_image(tmp_path / "phone.avif"), annotated_image(tmp_path / "phone.avif")
    assert shown.shape == (267, 400, 3) and stored.shape == (400, 267, 3)
    assert image_header(tmp_path / "phone.avif", "x", orientation=True).orientation == 6
    assert np.abs(shown.astype(int) - read_image(maskwatch.samples.CROWD).astype(int)).mean() < 8
    with pytest.raises(MaskwatchError, match="broken.avif: not a readable image"):
        read_image(tmp_path / "broken.avif")


def test_a_tiff_of_32_bit_floats_says_so_rather_than_corrupt(tmp_path):
    Image.fromarray(np.random.default_rng(0).random((50, 60), dtype=np.float32)).save(tmp_path / "f.tiff")  # mode F
    with pytest.raises(MaskwatchError, match="a TIFF of 32-bit samples .*convert it to 8 or 16 bits"):
        read_image(tmp_path / "f.tiff")


def test_a_tiff_of_several_pages_says_only_the_first_is_read(tmp_path, caplog):
    pages = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    first = read_image(tmp_path / "scan.tif")
    assert first.shape == (30, 40, 3) and tuple(first[0, 0]) == (0, 0, 255)  # BGR: the red first page
    assert "scan.tif: a TIFF of 3 pages; only the first is read" in caplog.text
    caplog.clear()
    pages[0].save(tmp_path / "one.tif")
    read_image(tmp_path / "one.tif")
    assert caplog.text == ""


def test_an_image_that_cannot_be_read_is_named_with_the_reason(photo, monkeypatch):
    """No permission (as another user), a disk error: one file skipped with its reason, not a crash of the run."""
    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(MaskwatchError, match=r"maksssksksss657.jpg: cannot be read \(Permission denied\)"):
        read_image(photo)
