"""Output folders, checked before any work: a folder that cannot be made (the path is a file, or lies under one)
would otherwise fail as a traceback after the load, the training or the scoring it was to hold."""

from __future__ import annotations

import os
from pathlib import Path

from maskwatch.errors import MaskwatchError


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Refuse a folder to write into that is a file, lies under a file, or lies in a folder this user cannot
    write to; a folder that exists or can be made passes (nothing is made here)."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise MaskwatchError(f"{option} {folder} is a link to nothing ({os.readlink(folder)}); give another path")
    if folder.exists() and not folder.is_dir():
        raise MaskwatchError(f"{option} {folder} is a file: it names a folder to write into; give another path")
    existing = next(p for p in [folder.absolute(), *folder.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise MaskwatchError(f"{option} {folder}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MaskwatchError(f"{option} {folder}: {existing} is not writable by this user")
