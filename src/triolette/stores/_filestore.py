"""The base of the backends that own one file: its path, its lock, opened on first use."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

from triolette.core.errors import StoreOpenError
from triolette.stores._encoded import EncodedStore, QuarantineReport
from triolette.stores._files import FileLock, check_folder, logger, make_folder

OnDamage = Literal["start-empty", "refuse"]
ON_DAMAGE: tuple[OnDamage, ...] = ("start-empty", "refuse")


class LockedFileStore(EncodedStore):
    """Creates the folder (owner-only) and takes the file's lock before reading it.

    Subclasses implement :meth:`_open_locked` (read the file; on failure clean up what it
    opened) and :meth:`_close_locked`; the lock is held exactly while the store is open. Any
    failure to open becomes a one-line :class:`~triolette.StoreOpenError` naming the path.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, on_damage: OnDamage = "start-empty"
    ) -> None:
        if on_damage not in ON_DAMAGE:
            raise ValueError(f"on_damage must be 'start-empty' or 'refuse', not {on_damage!r}")
        super().__init__()
        self.path = Path(path).absolute()
        self.on_damage = on_damage
        self._lock = FileLock(self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _open_locked(self) -> dict[str, str]:
        raise NotImplementedError

    def _close_locked(self) -> None:
        """Release what :meth:`_open_locked` acquired (the lock is released afterwards)."""

    def _open(self) -> dict[str, str]:
        try:
            make_folder(self.path.parent)
            check_folder(self.path.parent)
            self._lock.acquire()
        except OSError as exc:
            raise StoreOpenError(self.path, self._cause(exc)) from exc
        try:
            return self._open_locked()
        except BaseException as exc:
            self._lock.release()
            if isinstance(exc, OSError | sqlite3.Error):
                raise StoreOpenError(self.path, self._cause(exc)) from exc
            raise

    def _release(self) -> None:
        try:
            self._close_locked()
        finally:
            self._lock.release()

    def _cause(self, error: BaseException) -> str:
        """Say what went wrong, naming the file concerned when it is not the store's own."""
        if not isinstance(error, OSError) or error.strerror is None:
            return str(error)
        if error.filename is None or Path(error.filename) == self.path:
            return error.strerror
        return f"{error.filename}: {error.strerror}"

    def _check_loss(self, what: str, reason: str) -> None:
        """Raise :class:`StoreOpenError` when ``on_damage="refuse"`` forbids losing ``what``.

        Called before anything is moved, so the damage stays in place and a restart (systemd
        restarts every few seconds) refuses again instead of starting from empty.
        """
        if self.on_damage == "refuse":
            raise StoreOpenError(
                self.path,
                f"{what} is damaged ({reason}) and no good copy is left to fall back on; "
                "refusing to start without that data (on_damage='refuse'): repair it, or move "
                "it aside to start from empty",
            )

    def _report(self, report: QuarantineReport, *, lost: str | None = None) -> None:
        """Record and log ``report``; ``lost`` names the state that now starts from empty
        (``"EVERY DEVICE"``, ``"DEVICE 'x'"``), ``None`` when nothing was lost.

        A loss is logged at CRITICAL, in one line that says how to refuse instead; damage
        that cost nothing (a last good copy was restored) at ERROR.
        """
        self.quarantined.append(report)
        damaged = f"store file {report.path} was damaged ({report.reason})"
        moved = f"its bytes were moved to {report.moved_to}"
        if lost is None:
            restored = report.restored_from
            logger.error(
                "%s: %s; %s",
                damaged,
                moved,
                f"restored the last good copy {restored}" if restored else "not used",
            )
            return
        logger.critical(
            "%s: %s STARTS FROM EMPTY; %s; %s(..., on_damage='refuse') refuses to start instead",
            damaged,
            lost,
            moved,
            type(self).__name__,
        )
