"""Where maskwatch keeps work it can redo but need not (decoded TFRecord images, faces found in extra training
pictures): $MASKWATCH_CACHE, else ~/.cache/maskwatch. Entries are keyed by the file's path, size and modification
time, so a changed file is looked at again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """The cache folder of one kind of entry (`tfrecord`, `face_pictures`): under $MASKWATCH_CACHE, else
    ~/.cache/maskwatch."""
    return Path(os.environ.get("MASKWATCH_CACHE", Path.home() / ".cache" / "maskwatch")) / kind


def file_key(path: Path) -> str:
    """A short key of a file as it is now (its resolved path, size and modification time): a changed or moved file gets
    a new key, so its old entry is never read."""
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
