"""The pixel limit holds for every way an image or a frame comes in: the size is read from the header, and only
formats whose header can be read that way are decoded (to 8 bits)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskwatch.data.images import read_image
from maskwatch.errors import MaskwatchError
from maskwatch.limits import DEFAULT_MAX_PIXELS
from maskwatch.video.sources import FileSource


def radiance_header(width: int, height: int) -> bytes:
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()


def test_radiance_hdr_is_refused_before_decoding(tmp_path):
    # What bypassed the limit: Pillow cannot read HDR headers, and OpenCV decoded it as 32-bit float.
    small = tmp_path / "small.hdr"
    cv2.imwrite(str(small), np.full((48, 64, 3), 0.5, np.float32))
    assert cv2.imread(str(small), cv2.IMREAD_UNCHANGED).dtype == np.float32  # a real HDR OpenCV decodes
    with pytest.raises(MaskwatchError, match="not a readable image") as err:
        read_image(small)
    assert "small.hdr" in str(err.value) and "accepted: " in str(err.value)
    huge = tmp_path / "huge.hdr"  # 10500x10000 float pixels claimed by a tiny file
    huge.write_bytes(radiance_header(10500, 10000) + b"\x02\x02\x29\x04" * 64)
    with pytest.raises(MaskwatchError, match="accepted: "):  # refused by the header check, before decoding
        read_image(huge)


def test_formats_outside_the_list_are_named_and_refused(tmp_path, data_dir):
    face = cv2.imread(str(data_dir / "images" / "maksssksksss94.jpg"))
    cv2.imwrite(str(tmp_path / "face.ppm"), face)  # OpenCV decodes it, but it is not on the list
    with pytest.raises(MaskwatchError, match="face.ppm: PPM images are not accepted; convert it to JPEG or PNG"):
        read_image(tmp_path / "face.ppm")


def test_an_image_just_over_the_limit_is_refused_with_its_size(tmp_path):
    width = 10_001
    height = DEFAULT_MAX_PIXELS // width + 1
    Image.new("1", (width, height)).save(tmp_path / "wide.png")
    with pytest.raises(MaskwatchError, match=f"{width}x{height} pixels, over the limit"):
        read_image(tmp_path / "wide.png")


@pytest.mark.parametrize("name", ["frame.png", "frame_without_suffix"])
def test_a_video_source_over_the_limit_is_refused_before_its_first_frame(tmp_path, name):
    # FFmpeg opens a PNG as a one-frame video: a 10500x10000 one took gigabytes in the video pipeline.
    path = tmp_path / name
    Image.new("1", (10500, 10000)).save(path, format="PNG")
    with pytest.raises(MaskwatchError, match="10500x10000 pixels, over the limit"):
        FileSource(Path(path))


def test_a_still_image_too_big_for_ffmpeg_to_decode_is_refused_with_its_size(tmp_path):
    path = tmp_path / "giant.png"  # 400 M pixels: FFmpeg decodes no frame of it at all
    Image.new("1", (20000, 20000)).save(path)
    with pytest.raises(MaskwatchError, match="giant.png: 20000x20000 pixels, over the limit"):
        FileSource(path)


def test_a_pixel_limit_that_is_not_a_number_is_a_clear_error_of_the_command(photo, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "maskwatch.cli", "detect", str(photo), "--no-images"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MASKWATCH_MAX_PIXELS": "lots"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr  # no image could be read
    assert "MASKWATCH_MAX_PIXELS='lots': expected a whole number above 0" in result.stderr
    monkeypatch.setenv("MASKWATCH_MAX_PIXELS", "1000")  # read when an image is checked, not at import
    with pytest.raises(MaskwatchError, match="over the limit of 1,000"):
        read_image(photo)


def test_the_pixel_limit_can_be_raised_past_pillows_own_and_is_what_refuses(tmp_path, monkeypatch):
    from maskwatch.data.images import checked_header

    panorama = tmp_path / "panorama.png"  # 190 M pixels: over Pillow's default refusal (2 x 89.5 M)
    Image.new("1", (19000, 10000)).save(panorama)
    data = panorama.read_bytes()
    monkeypatch.setenv("MASKWATCH_MAX_PIXELS", "200000000")
    assert checked_header(data, "panorama.png") == ("PNG", 19000, 10000)
    monkeypatch.setenv("MASKWATCH_MAX_PIXELS", "100000000")
    with pytest.raises(MaskwatchError, match="panorama.png: 19000x10000 pixels, over the limit of 100,000,000"):
        checked_header(data, "panorama.png")
    monkeypatch.setenv("MASKWATCH_MAX_PIXELS", "50000000")  # more than twice over: Pillow refuses; the size is said
    with pytest.raises(MaskwatchError, match="panorama.png: 19000x10000 pixels, over the limit of 50,000,000"):
        checked_header(data, "panorama.png")
