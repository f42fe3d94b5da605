"""Reading images that users hand us: any bit depth, grey or RGBA, with a clear error when it is not an image,
and never more pixels than the limit (the size is read from the header before anything is decoded)."""

from __future__ import annotations

import io
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Collection, Iterator, NamedTuple

import cv2
import numpy as np

from maskwatch.errors import MaskwatchError, TooManyPixels, install_hint, name_some
from maskwatch.limits import IMAGE_FORMATS, max_pixels

log = logging.getLogger(__name__)


def _heif_opener() -> bool:
    """HEIC / HEIF (iPhones' photos) are read when the optional pillow-heif is installed (`maskwatch[heic]`: its
    wheel bundles libheif and codecs under LGPL and GPL licences, hence not a dependency of everyone)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _avif_decoder() -> bool:
    """AVIF photos are read where Pillow was built with libavif (its wheels since 11.2)."""
    from PIL import features

    try:
        return bool(features.check("avif"))
    except Exception:  # an older Pillow that does not know the name
        return False


HEIF_READ = _heif_opener()
AVIF_READ = _avif_decoder()
HEIF_SUFFIXES = (".heic", ".heif")
IMAGE_SUFFIXES = ((".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff")
                  + (HEIF_SUFFIXES if HEIF_READ else ()) + ((".avif",) if AVIF_READ else ()))
# Pillow's names of what is decoded
ACCEPTED_FORMATS = IMAGE_FORMATS | ({"HEIF"} if HEIF_READ else set()) | ({"AVIF"} if AVIF_READ else set())
DECODED_BY_PILLOW = ("HEIF", "AVIF")
ACCEPTED_NAMES = ", ".join(sorted(ACCEPTED_FORMATS - {"MPO", "DIB"}))  # as a user knows them (MPO is a JPEG, DIB a BMP)


def stem_of(name: str | Path) -> str:
    """The image a name refers to (a line of a split list, a predictions line's `image`), as a stem: folders
    (/ or Windows' \\) and an image suffix cut (a.jpg -> a), but nothing else (Roboflow's a_jpg.rf.0123abcd is a
    stem already). The one rule by which names find their images everywhere."""
    base = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    return Path(base).stem if Path(base).suffix.lower() in IMAGE_SUFFIXES + UNREAD_IMAGE_SUFFIXES else base


def check_pixels(width: int, height: int, name: str) -> None:
    """Refuse an image or frame over the pixel limit, naming it and the way out."""
    limit = max_pixels()
    if width * height > limit:
        raise TooManyPixels(f"{name}: {width}x{height} pixels, over the limit of {limit:,}; resize it first "
                            f"(or raise MASKWATCH_MAX_PIXELS)")


class ImageHeader(NamedTuple):
    """What an image file's header says: Pillow's format name, the stored pixels' size, and the EXIF orientation
    (1: stored upright; 2-8: to be flipped or turned to show; 1 where there is none, it cannot be read, or it was
    not asked for)."""
    format: str
    width: int
    height: int
    orientation: int


def _orientation(image) -> int:
    """The EXIF orientation from what Pillow read at open, without decoding pixels: Pillow's getexif() loads a
    PNG's pixels (to find an eXIf chunk after them), so a PNG's is taken from the chunks before its pixels only."""
    from PIL import Image

    try:
        if image.format == "PNG":
            raw = image.info.get("exif")
            exif = Image.Exif()
            if raw:
                exif.load(raw)
        else:
            exif = image.getexif()
        value = exif.get(0x0112, 1)
    except Exception:  # a broken EXIF block is no reason to refuse the image: it is shown as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def image_header(source: bytes | Path, name: str, orientation: bool = False) -> ImageHeader:
    """Format, size and (with `orientation`) the EXIF orientation from the header alone (Pillow opens lazily; no
    pixel is decoded), or MaskwatchError when it is not a readable image.

    Pillow's own decompression-bomb limit is set from ours (it warns above MAX_IMAGE_PIXELS and refuses above
    twice that), so raising MASKWATCH_MAX_PIXELS raises both and `check_pixels` is what refuses an image over
    the limit, with its size (also above twice the limit: the header is then read again without Pillow's check)."""
    from PIL import Image, UnidentifiedImageError

    def opened():
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)

    limit = max_pixels()
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with opened() as im:
                return ImageHeader(str(im.format), int(im.width), int(im.height),
                                   _orientation(im) if orientation else 1)
    except Image.DecompressionBombError:  # over twice our limit: read the size without Pillow's check, to say it
        Image.MAX_IMAGE_PIXELS = None  # (only the header is read; nothing is decoded by Pillow here)
        try:
            with opened() as im:
                width, height = int(im.width), int(im.height)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        check_pixels(width, height, name)  # over twice the limit: this refuses, naming the size
        raise MaskwatchError(f"{name}: {width}x{height} pixels, refused by Pillow") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        empty = not source if isinstance(source, bytes) else source.is_file() and source.stat().st_size == 0
        if empty:
            raise MaskwatchError(f"{name}: empty file (0 bytes), not an image") from None
        raise MaskwatchError(f"{name}: not a readable image (unknown or corrupt format; accepted: "
                             f"{ACCEPTED_NAMES})") from None


def checked_header(data: bytes, name: str) -> tuple[str, int, int]:
    """`image_header`, then MaskwatchError when the format is not one maskwatch decodes or the size is over the
    limit. Nothing is decoded before this passes."""
    fmt, width, height, _ = image_header(data, name)
    if fmt not in ACCEPTED_FORMATS:
        raise MaskwatchError(f"{name}: {fmt} images are not accepted; convert it to JPEG or PNG "
                             f"(accepted: {ACCEPTED_NAMES})")
    check_pixels(width, height, name)
    return fmt, width, height


def decode_image(data: bytes, name: str = "<bytes>", upright: bool = True) -> np.ndarray:
    """Decode encoded bytes into an 8-bit BGR array; grey, RGBA and 16-bit inputs are converted.

    The format and size are checked from the header first (`checked_header`), and OpenCV decodes straight to
    8-bit BGR, so neither a huge image nor a 32-bit float one is ever held in memory. upright: turn the picture
    as its EXIF orientation says, as every photo viewer does (a phone's portrait photo is often stored sideways
    with a rotation flag: sideways, its faces are not found); False: the stored pixels, for annotated data sets,
    whose boxes `data` reads in the stored pixels' frame (annotated_image)."""
    if not data:
        raise MaskwatchError(f"{name}: empty file (0 bytes), not an image")
    fmt, width, height = checked_header(data, name)
    if fmt in DECODED_BY_PILLOW:
        return _decode_with_pillow(data, name, fmt, upright)
    flags = cv2.IMREAD_COLOR if upright else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:  # the header was fine: say what the rest is
        if fmt == "TIFF" and _pillow_mode(data) in ("F", "I"):
            raise MaskwatchError(f"{name}: a TIFF of 32-bit samples (float or integer), which is not decoded; "
                                 f"convert it to 8 or 16 bits")
        cut = fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9")  # JPEG's end-of-image marker
        what = "cut off before its end: an unfinished download or copy" if cut else "whose data is corrupt"
        raise MaskwatchError(f"{name}: not a readable image (a {fmt} file {what})")
    if image.shape[:2] not in ((height, width), (width, height) if upright else (height, width)):  # a header lying
        raise MaskwatchError(f"{name}: its header says {width}x{height} pixels but it decodes to "
                             f"{image.shape[1]}x{image.shape[0]}; the file is corrupt")
    if fmt in ("JPEG", "MPO") and _filled_to_the_end(image) and (damage := pixel_damage(data)):
        _say("%s: a JPEG file whose data is corrupt (%s): parts of the picture are missing (grey), and faces "
             "there are not found", name, damage)
    if fmt == "TIFF" and (pages := _pillow_frames(data)) > 1:  # a scan or fax of several pages: only one is seen
        _say("%s: a TIFF of %d pages; only the first is read (split it into one file per page to read "
             "them all)", name, pages)
    return image


def as_bgr_image(image) -> np.ndarray:
    """The picture as the detector and the drawing take it: an 8-bit BGR array (H x W x 3), as OpenCV and
    maskwatch.read_image give. A PIL image is converted and, as read_image does with a file, turned upright as
    its EXIF orientation says: the boxes found in it are in `PIL.ImageOps.exif_transpose(image)`'s pixels. Anything
    else (and a PIL image of 16-bit or float samples, which Pillow would clip to black or white) is a
    MaskwatchError saying what came instead."""
    if isinstance(image, (str, Path)):
        raise MaskwatchError(f"the detector takes the picture, not its path ({image}); read it with "
                             f"maskwatch.read_image(path)")
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):  # PIL.Image
        return _pil_as_bgr(image)
    if image is None:
        raise MaskwatchError("the detector got None instead of a picture (cv2.imread gives None for a file it "
                             "cannot read; maskwatch.read_image says why)")
    if not isinstance(image, np.ndarray):
        raise MaskwatchError(f"the detector takes an 8-bit BGR image (a numpy array H x W x 3), not "
                             f"{type(image).__name__}; read files with maskwatch.read_image")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MaskwatchError(f"the detector takes an 8-bit BGR image (H x W x 3), got {image.dtype} "
                             f"{' x '.join(map(str, image.shape))}; maskwatch.read_image converts grey, RGBA and "
                             f"16-bit files, cv2.cvtColor arrays (an RGB array must be turned to BGR too)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise MaskwatchError(f"an empty image ({image.shape[1]} x {image.shape[0]} pixels)")
    return image


def _pil_as_bgr(image) -> np.ndarray:
    from PIL import ImageOps

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        raise MaskwatchError(f"a PIL image of {image.mode} samples (16-bit or float), which Pillow cannot turn into "
                             f"8-bit colour without clipping; give the file to maskwatch.read_image, or scale it to "
                             f"8 bits first")
    try:
        upright = ImageOps.exif_transpose(image)  # as maskwatch.read_image turns a photo
        rgb = np.asarray(upright.convert("RGB"))
    except (AssertionError, OSError, ValueError) as exc:  # a closed image (AssertionError), a truncated file
        raise MaskwatchError(f"could not read the PIL image ({exc or 'closed?'}); read it with "
                             f"maskwatch.read_image(path)") from None
    return as_bgr_image(np.ascontiguousarray(rgb[:, :, ::-1]))  # (an empty one is said as for an array)


def _pillow_mode(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.mode
    except Exception:
        return None


_heard: ContextVar[list[str] | None] = ContextVar("maskwatch_image_warnings", default=None)


@contextmanager
def decoding_warnings() -> Iterator[list[str]]:
    """The warnings that decoding says within the block (a damaged JPEG, a TIFF of several pages), as well as
    logged: the server hands them to its client, who never sees its log."""
    heard: list[str] = []
    token = _heard.set(heard)
    try:
        yield heard
    finally:
        _heard.reset(token)


def _say(message: str, *args) -> None:
    log.warning(message, *args)
    if (heard := _heard.get()) is not None:
        heard.append(message % args)


def _filled_to_the_end(image: np.ndarray) -> bool:
    """Whether a decoded JPEG's last 8 rows are one flat colour, as libjpeg leaves the part of a picture after
    its data broke off: then (and only then, as it costs half a decode on small photos) Pillow is asked whether
    the data is damaged. A photo whose bottom is truly flat (30 of the 5,245 JPEGs of the data sets here) passes."""
    bottom = image[-8:]
    return bool((bottom == bottom[-1:, -1:]).all())


def pixel_damage(data: bytes) -> str | None:
    """What Pillow says of the pixel data of a JPEG or PNG whose header reads fine (a file cut short, broken
    data); None when it is whole (and for other formats). A JPEG is decoded at an eighth of its size, which reads
    every byte for less than a full decode (a tenth of one on a 12-megapixel photo, half on a small one); a PNG's
    chunks are checked against their CRCs. OpenCV decodes a damaged JPEG anyway (a flat colour where it broke),
    printing a line without the file's name."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            elif image.format == "PNG":
                image.verify()
    except Exception as exc:  # Pillow's OSError: "broken data stream when reading image file", "truncated"
        return str(exc) or type(exc).__name__
    return None


def _pillow_frames(data: bytes) -> int:
    """How many pictures (pages, frames) a file holds, as Pillow counts them; 1 where it cannot tell."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:
        return 1


def _decode_with_pillow(data: bytes, name: str, fmt: str, upright: bool) -> np.ndarray:
    """A picture OpenCV does not decode, through Pillow: HEIF by pillow-heif, which applies the file's own rotation
    and mirroring as it decodes (HEIF stores them beside the pixels, and its EXIF orientation is then 1); AVIF by
    Pillow's libavif, turned as its EXIF orientation says where `upright`, like a JPEG."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.asarray((ImageOps.exif_transpose(image) if upright else image).convert("RGB"))
    except Exception as exc:  # libheif's and libavif's errors: a truncated or damaged file
        raise MaskwatchError(f"{name}: not a readable image (a {fmt} file whose data is corrupt: {exc})") from None
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


HEIF_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"}  # images in MP4's boxes


def is_heif_header(head: bytes) -> bool:
    """Whether a file's first 12 bytes are an HEIF / AVIF photo's: MP4's boxes with an image brand."""
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def is_video_header(head: bytes) -> bool:
    """Whether a file's first 12 bytes are a video container's: MP4 / MOV (but not an HEIF / AVIF photo's
    brand), AVI, Matroska / WebM."""
    return ((head[4:8] == b"ftyp" and not is_heif_header(head)) or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:4] == b"\x1aE\xdf\xa3")


def upright_to_stored(xyxy: np.ndarray, orientation: int, stored_width: int, stored_height: int) -> np.ndarray:
    """Boxes drawn on a photo turned upright as its EXIF orientation says (what `read_image` returns) moved to
    its stored pixels (where annotations are read): the inverse of each orientation's turn or mirror."""
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    w, h = float(stored_width), float(stored_height)
    u1, v1, u2, v2 = xyxy.T
    corners = {  # an upright point (u, v) in the stored pixels, per orientation
        2: lambda u, v: (w - u, v), 3: lambda u, v: (w - u, h - v), 4: lambda u, v: (u, h - v),
        5: lambda u, v: (v, u), 6: lambda u, v: (v, h - u), 7: lambda u, v: (w - v, h - u),
        8: lambda u, v: (w - v, u)}.get(orientation)
    if corners is None:
        return xyxy
    (xa, ya), (xb, yb) = corners(u1, v1), corners(u2, v2)
    return np.stack([np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb)], axis=1)


def read_image(path: str | Path, upright: bool = True) -> np.ndarray:
    """Read an image file as 8-bit BGR, turned upright as its EXIF orientation says (see decode_image), or raise
    MaskwatchError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"{path}: no such image file")
    try:
        data = path.read_bytes()
    except OSError as exc:  # no permission, a disk error: this file is skipped, the others go on
        raise MaskwatchError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return decode_image(data, str(path), upright)
    except MaskwatchError:
        if is_video_header(data[:12]):
            raise MaskwatchError(f"{path}: a video, not an image: `maskwatch watch {path}` reads videos") from None
        raise


def annotated_image(path: str | Path) -> np.ndarray:
    """An image of an annotated data set: its stored pixels, in whose frame the data set's boxes are read (VOC,
    COCO and TFRecord sizes and boxes describe the stored pixels, as labelImg shows them)."""
    return read_image(path, upright=False)


def annotated_copy_name(name: str) -> str:
    """The file name an annotated copy of input `name` is written under: the input's own where OpenCV writes
    that format, else with .jpg added (an iPhone's IMG_1.heic -> IMG_1.heic.jpg; .jfif, .mpo, no suffix), which
    also keeps it apart from an IMG_1.jpg beside it."""
    suffix = Path(name).suffix  # (OpenCV is asked of the suffix alone: a name that is not UTF-8 crashes it)
    return name if suffix.isascii() and cv2.haveImageWriter(f"x{suffix}") else f"{name}.jpg"


def save_annotated_copy(folder: Path, name: str, image: np.ndarray, jpeg_quality: int = 92) -> Path:
    """The annotated copy of input `name` (data.inputs.output_names) written into `folder` under
    annotated_copy_name, its subfolders made; MaskwatchError naming it when it cannot be written (a full disk, a
    file where a folder should be), so the caller says so and goes on with the next image."""
    target = Path(folder) / annotated_copy_name(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not write_image(target, image, jpeg_quality):
            raise OSError("OpenCV could not write it")
    except (OSError, cv2.error) as exc:
        raise MaskwatchError(f"annotated copy {target} not written ({exc})") from exc
    return target


def write_image(path: Path, image: np.ndarray, jpeg_quality: int = 92) -> bool:
    """Write an image in the format its suffix names; the JPEG quality only for JPEG (OpenCV warns about it on
    every other format). False when OpenCV cannot encode it; OSError when the file cannot be written. Encoded by
    OpenCV, written by Python: OpenCV's own writing crashes on a path that is not UTF-8."""
    suffix = Path(path).suffix
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    try:
        ok, encoded = cv2.imencode(suffix, image, params)
    except cv2.error:  # no encoder for that suffix
        return False
    if not ok:
        return False
    Path(path).write_bytes(encoded.tobytes())
    return True


# Pictures in formats not read here: named when a folder holds them (other files, such as annotations, are not).
UNREAD_IMAGE_SUFFIXES = tuple(s for s in (".gif", ".heic", ".heif", ".avif", ".jp2", ".jxl", ".svg", ".ico", ".psd",
                                         ".dng", ".cr2", ".nef", ".arw") if s not in IMAGE_SUFFIXES)


def list_images(folder: Path) -> list[Path]:
    """All image files under a folder, sorted, so runs are repeatable. Pictures in formats not read here are
    reported by name (a warning), not silently left out."""
    images, unread, closed, seen = [], [], [], set()
    top = Path(os.path.realpath(folder))
    # A linked folder is followed where it leads out of the folder searched (photos gathered by links); one that
    # leads inside it is found under its real name anyway, and one that leads to the folder or above it would
    # search all of that. Each real folder once; folders that cannot be opened are named.
    for root, dirs, files in os.walk(folder, followlinks=True, onerror=lambda exc: closed.append(exc.filename)):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))
                   or not (top.is_relative_to(target := Path(os.path.realpath(os.path.join(root, d))))
                           or target.is_relative_to(top))]
        for name in files:
            path, suffix = Path(root) / name, Path(name).suffix.lower()
            if suffix in IMAGE_SUFFIXES and (path.is_file() or path.is_symlink() and not path.exists()):
                images.append(path)
            elif suffix in UNREAD_IMAGE_SUFFIXES and path.is_file():
                unread.append(path)
    if closed:
        log.warning("%s: %d folder(s) could not be opened and were not searched (%s)", folder, len(closed),
                    name_some(closed))
    warn_unread(unread, str(folder))
    return without_broken_links(sorted(images), str(folder))


def without_broken_links(paths: list[Path], where: str) -> list[Path]:
    """The paths less links whose target is gone, which are named in a warning (by the link's own name: the
    target's says nothing to whoever made the folder)."""
    broken = [p for p in paths if p.is_symlink() and not p.exists()]
    if not broken:
        return paths
    log.warning("%s: %d link(s) to a missing file skipped (%s)", where, len(broken), name_some(broken))
    skipped = set(broken)
    return [p for p in paths if p not in skipped]


def warn_unread(paths: list[Path], where: str) -> None:
    """Name the pictures in formats not read here among `paths` (a folder's or a glob's), once."""
    unread = sorted(p for p in paths if p.suffix.lower() in UNREAD_IMAGE_SUFFIXES)
    if unread:
        heif = any(p.suffix.lower() in HEIF_SUFFIXES for p in unread)
        log.warning("%s: %d picture(s) in a format not read here skipped (%s); convert them to JPEG or PNG%s",
                    where, len(unread), name_some(unread),
                    f" (HEIC / HEIF photos are read once pillow-heif is installed: {install_hint('heic')})"
                    if heif else "")


IMAGE_MODES = ("hardlink", "copy", "symlink")


def check_image_mode(mode: str) -> None:
    """Refuse an --images mode that place_images does not know; convert checks it before any data is read."""
    if mode not in IMAGE_MODES:
        raise MaskwatchError(f"--images must be one of {', '.join(IMAGE_MODES)}, got {mode!r}")


def place_images(paths: list[Path], images_dir: Path, mode: str = "hardlink", turned: Collection[Path] = ()) -> None:
    """Put the images a format needs beside its labels, so the folder stands on its own (moved, zipped, copied to
    another machine, read by other tools): hard links where the file system allows (no extra space), else
    copies; `copy` always copies; `symlink` links to the source by absolute path (no space, but the folder then
    needs the source images where they are). `turned`: images with an EXIF rotation, whose boxes are in the stored
    pixels: written as copies whose rotation says "as stored" (exif_rotation_cleared), since the tools that read
    the folder turn photos upright (Ultralytics, detectron2, supervision, OpenCV) and would misplace the boxes."""
    check_image_mode(mode)
    images_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    kept_turned: list[str] = []
    for src in paths:
        if src.name in seen:
            raise MaskwatchError(f"two images are both named {src.name}; file names must be unique to convert")
        seen.add(src.name)
        dst = images_dir / src.name
        if src in turned:
            cleared = exif_rotation_cleared(src.read_bytes())
            if cleared is not None:
                if dst.is_symlink() or dst.exists():
                    dst.unlink()
                dst.write_bytes(cleared)
                continue
            kept_turned.append(src.name)
        if dst.is_symlink() or dst.exists():  # a rerun into the same folder: keep what is already right
            if mode == "symlink" and dst.is_symlink() and dst.resolve() == src.resolve():
                continue
            if mode == "hardlink" and not dst.is_symlink() and dst.samefile(src):
                continue
            dst.unlink()
        if mode == "symlink":
            dst.symlink_to(src.resolve())
            continue
        if mode == "hardlink":
            try:
                os.link(os.path.realpath(src), dst)  # (a link to the image itself: linking a symlink links the
                # symlink, left dangling or absolute in the folder that was to stand on its own)
                continue
            except OSError:  # another file system, or links not allowed: copy instead
                pass
        shutil.copyfile(src, dst)
    by_case: dict[str, list[str]] = {}
    for name in seen:
        by_case.setdefault(name.casefold(), []).append(name)
    clashes = [" and ".join(sorted(names)) for names in by_case.values() if len(names) > 1]
    if clashes:  # (fine here; unzipped on macOS or Windows, one would overwrite the other)
        log.warning("%s: %d image name(s) differ only in case (%s): on macOS and Windows, whose file names ignore "
                    "case, one would overwrite the other; rename them before moving the folder there", images_dir,
                    len(clashes), name_some(clashes))
    if kept_turned:
        log.warning("%d image(s) keep their rotation (%s: not a JPEG whose EXIF orientation can be cleared without "
                    "decoding it, or a rotation given in XMP); tools that turn photos upright will misplace their "
                    "boxes: save them turned (e.g. `mogrify -auto-orient`) and annotate them so", len(kept_turned),
                    name_some(kept_turned))


def exif_rotation_cleared(data: bytes) -> bytes | None:
    """A JPEG's bytes with its EXIF orientation set to 1 (stored as shown), the pixels untouched (no re-encoding);
    None where there is no JPEG EXIF orientation to set (another format, a damaged header)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if marker in (0xD9, 0xDA) or length < 2:  # (the image data: no metadata after it)
            return None
        if marker == 0xE1 and data[at + 4:at + 10] == b"Exif\x00\x00":
            tiff = at + 10
            order = {b"II": "little", b"MM": "big"}.get(data[tiff:tiff + 2])
            if order is None:
                return None
            ifd = tiff + int.from_bytes(data[tiff + 4:tiff + 8], order)
            entries = int.from_bytes(data[ifd:ifd + 2], order)
            for entry in range(ifd + 2, min(ifd + 2 + 12 * entries, at + 2 + length) - 11, 12):
                if int.from_bytes(data[entry:entry + 2], order) == 0x0112:  # Orientation, a SHORT held in place
                    cleared = bytearray(data)
                    cleared[entry + 8:entry + 10] = (1).to_bytes(2, order)
                    return bytes(cleared)
            return None
        at += 2 + length
    return None
