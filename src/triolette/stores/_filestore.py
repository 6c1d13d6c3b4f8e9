"""The base of the backends that own one file: its path, its lock, opened on first use."""

from __future__ import annotations

import os
from pathlib import Path

from triolette.stores._encoded import EncodedStore
from triolette.stores._files import FileLock


class LockedFileStore(EncodedStore):
    """Creates the folder (owner-only) and takes the file's lock before reading it.

    Subclasses implement :meth:`_open_locked` (read the file; on failure clean up what it
    opened) and :meth:`_close_locked`; the lock is held exactly while the store is open.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path).absolute()
        self._lock = FileLock(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _open_locked(self) -> dict[str, str]:
        raise NotImplementedError

    def _close_locked(self) -> None:
        """Release what :meth:`_open_locked` acquired (the lock is released afterwards)."""

    def _open(self) -> dict[str, str]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock.acquire()
        try:
            return self._open_locked()
        except BaseException:
            self._lock.release()
            raise

    def _release(self) -> None:
        try:
            self._close_locked()
        finally:
            self._lock.release()
