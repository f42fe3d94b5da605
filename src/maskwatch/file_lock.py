"""One process at a time on a folder (a server's data directory, a batch's results folder): an exclusive lock on a
file in it. The kernel drops the lock when the process ends, however it ends, so a crash never leaves it stale."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockHeld(Exception):
    """Another process holds the lock; `owner` is what it wrote in the file ("pid 1234")."""

    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


class FileLock:
    """Held from creation until `release` (or the end of a `with` block). Raises LockHeld at once where another
    process holds it, and OSError where the file cannot be made (no permission, a folder of that name)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(self.fd, 200).decode(errors="replace").strip() or "another process"
            self.release()
            raise LockHeld(owner) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()}".encode())

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file releases the lock
            self.fd = None

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
