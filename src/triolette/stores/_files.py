"""File-system building blocks shared by the file backends.

* :func:`replace_durably`: the crash-safe replace (unique temp file in the same folder, write,
  fsync, rename over the target, fsync the folder), optionally keeping the replaced file as the
  last good copy through a hard link, which costs no data write.
* :func:`sweep_temps`: removes temp files a killed writer left behind.
* :func:`quarantine`: moves a damaged file aside under a timestamped name, never deleting it.
* :class:`FileLock`: an exclusive ``flock`` that names its holder.

Every call blocks on disk: run them on the persistence worker thread, never on the trio loop.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import socket
import tempfile
from pathlib import Path

from triolette.core.errors import StoreLockedError


def temp_prefix(path: Path) -> str:
    """The name prefix of ``path``'s temp files, recognisable for :func:`sweep_temps`."""
    return f".{path.name}.tmp-"


def fsync_folder(folder: Path) -> None:
    """Make renames and creations inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def replace_durably(path: Path, data: bytes, *, keep_previous: Path | None = None) -> None:
    """Atomically and durably make ``data`` the content of ``path`` (created owner-only).

    With ``keep_previous``, the file being replaced stays reachable under that name (a hard
    link, swapped in atomically before the rename). On any error the temp file is removed, the
    target keeps its previous content, and the ``OSError`` propagates.
    """
    folder = path.parent
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=temp_prefix(path))
    temps = [temp_name]
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if keep_previous is not None and path.exists():
            link_name = f"{temp_name}-prev"
            os.link(path, link_name)
            temps.append(link_name)
            os.chmod(link_name, 0o600)  # a file from elsewhere may have been world-readable
            os.replace(link_name, keep_previous)
        os.replace(temp_name, path)
        temps.remove(temp_name)
        fsync_folder(folder)
    finally:
        for name in temps:
            with contextlib.suppress(OSError):
                os.unlink(name)


def sweep_temps(path: Path) -> list[Path]:
    """Delete the temp files of ``path`` left by an interrupted write; return what was removed."""
    prefix = temp_prefix(path)
    removed = []
    with os.scandir(path.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def quarantine(path: Path, *, keep_in_place: bool = False) -> Path:
    """Move ``path`` aside to ``<name>.corrupt-<UTC timestamp>`` and return the new path.

    With ``keep_in_place`` the file is hard-linked instead, so ``path`` never disappears: the
    caller is about to replace it atomically. The move is made durable before returning.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while True:
        try:
            os.link(path, target)
            break
        except FileExistsError:
            counter += 1
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    if not keep_in_place:
        os.unlink(path)
    fsync_folder(path.parent)
    return target


class FileLock:
    """An exclusive advisory lock on ``<path>.lock``, held until :meth:`release`.

    The lock file records its holder (process id, program, host, time), which a second process
    reads to say who is in the way. ``flock`` locks belong to an open file, so a second store
    object on the same path inside one process is refused too.
    """

    def __init__(self, path: Path) -> None:
        self.store_path = path
        self.path = path.with_name(f"{path.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLockedError` naming the current holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise StoreLockedError(self.store_path, holder or "another process") from None
        since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        try:
            program = Path(os.readlink("/proc/self/exe")).name
        except OSError:
            program = "unknown program"
        record = f"process {os.getpid()} ({program}) on {socket.gethostname()} since {since}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the lock file stays: removing it would race with the next holder)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
