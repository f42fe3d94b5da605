"""Every limit maskwatch puts on what users hand it, in one place with names (README: "Security and limits").

A limit that a user may need to move is read from an environment variable here, or has a command-line option
whose default is the value here; nothing else in the package writes these numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

from maskwatch.errors import MaskwatchError


def _int_from_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        parsed = int(value)
    except ValueError:
        parsed = 0
    if parsed <= 0:
        raise MaskwatchError(f"{name}={value!r}: expected a whole number above 0 (e.g. {name}={default}), or unset "
                             f"it for the default of {default:,}")
    return parsed


# Environment variables that hold secrets (set them instead of --api-key / --webhook-secret: not in `ps`).
API_KEY_ENV = "MASKWATCH_API_KEY"
WEBHOOK_SECRET_ENV = "MASKWATCH_WEBHOOK_SECRET"

# Pixels of one image or video frame. Decoding a 10000x10000 RGB image takes 300 MB, and detection, drawing and
# encoding hold a few copies: refuse before decoding rather than swap. Set MASKWATCH_MAX_PIXELS to move it.
DEFAULT_MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    """The pixel limit now: read when an image is checked, not at import, so a bad MASKWATCH_MAX_PIXELS is a
    clear error of the command that uses it (not a traceback of every command)."""
    return _int_from_env("MASKWATCH_MAX_PIXELS", DEFAULT_MAX_PIXELS)

# Image formats that are decoded: those whose header Pillow reads without decoding (so the size is checked first)
# and that OpenCV decodes to 8 bits. Others OpenCV knows (Radiance HDR, OpenEXR, PFM: 32-bit float, no cheap
# header) are refused. Keys are Pillow's format names (MPO: a camera JPEG; DIB: a BMP).
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "DIB", "WEBP", "TIFF"})

# H.264 in yuv420p needs at least 2x2 pixels; smaller frames cannot hold a face either.
MIN_FRAME_SIDE = 2


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity (a container's CPU set, taskset), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# The server (maskwatch serve): upload size (--max-upload-mb), worker threads for decoding and detection
# (--workers: one per core, so throughput grows with the cores; at least 2, so one big image does not hold up
# the others) and how many requests may wait for one (--max-queue) before the server answers 503.
MAX_UPLOAD_MB = 200.0
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # form field headers around the file in a multipart upload
SERVE_WORKERS = max(2, usable_cores())
SERVE_MAX_QUEUE = 16
SERVE_MAX_QUEUED_VIDEOS = 20  # video jobs waiting to run (each keeps its upload on disk); more get 503
SERVE_DATA_DIR = Path("out/serve")  # where its video jobs and results are kept (--data-dir)

# Webhooks (watch --webhook-timeout, a camera config's `timeout:`): how long a receiver may take to answer an event
# before it is sent again (it should answer first and work after).
WEBHOOK_TIMEOUT_S = 5.0

# Batch: the local engine writes a Parquet part every this many rows or seconds, whichever comes first (a crash
# loses at most the rows of that time; slow images, big photos, come out in smaller parts); the Ray engine's blocks,
# each written as one part, hold about as many (a million images: some 5,000 parts, not 125,000 of 8 rows).
BATCH_PART_ROWS = 200
BATCH_PART_SECONDS = 30.0
