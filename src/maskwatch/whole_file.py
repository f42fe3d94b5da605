"""A file replaced whole or not at all: written under another name beside it, then renamed over it. A reader (or a
resumed run) sees the earlier file or the new one, never half of one, whatever stops the writing (a full disk, a
crash, Ctrl-C)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def written_whole(path: Path, partial_name: str | None = None) -> Iterator[Path]:
    """The path to write `path`'s new content to (`partial_name` beside it; default a hidden `.NAME.partial`, which
    readers of the folder skip): renamed over `path` when the block ends, removed if it fails."""
    path = Path(path)
    partial = path.with_name(partial_name or f".{path.name}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
