"""Reading images that users hand us: any bit depth, grey or RGBA, with a clear error when it is not an image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Decoding a 20000x20000 RGB image takes 1.2 GB; refuse before that rather than swap.
MAX_PIXELS = 100_000_000


def image_size_from_header(path: Path) -> tuple[int, int] | None:
    """Return (width, height) without decoding pixels, or None when the file is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded bytes into an 8-bit BGR array; grey, RGBA and 16-bit inputs are converted."""
    if not data:
        raise MaskwatchError(f"{name}: empty file (0 bytes), not an image")
    from PIL import Image, UnidentifiedImageError
    import io

    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.width, im.height
    except Image.DecompressionBombError:
        width, height = MAX_PIXELS, 2  # PIL refuses to even report it; it is too big either way
    except (UnidentifiedImageError, OSError):
        width = height = 0  # OpenCV may still know the format; it decides below.
    if width * height > MAX_PIXELS:
        size = f"{width}x{height} pixels" if height > 2 else f"more than {MAX_PIXELS:,} pixels"
        raise MaskwatchError(f"{name}: image is {size}, over the limit of {MAX_PIXELS:,}; resize it first")
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise MaskwatchError(f"{name}: not a readable image (unknown or corrupt format)")
    return to_bgr8(image)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Bring any decoded array to 3-channel uint8 BGR, the one layout the detector takes."""
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise MaskwatchError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as 8-bit BGR, or raise MaskwatchError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"{path}: no such image file")
    return decode_image(path.read_bytes(), str(path))


def list_images(folder: Path) -> list[Path]:
    """All image files under a folder, sorted, so runs are repeatable."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def link_images(paths: list[Path], images_dir: Path) -> None:
    """Place images into a format's folder as symlinks: formats that need images beside labels get them
    without copying gigabytes."""
    images_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for src in paths:
        if src.name in seen:
            raise MaskwatchError(f"two images are both named {src.name}; file names must be unique to convert")
        seen.add(src.name)
        dst = images_dir / src.name
        if dst.is_symlink() or dst.exists():
            if dst.resolve() == src.resolve():
                continue
            dst.unlink()
        dst.symlink_to(src.resolve())
