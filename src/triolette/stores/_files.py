"""File-system building blocks shared by the file backends.

* :func:`replace_durably`: the crash-safe replace (unique temp file in the same folder, write,
  fsync, rename over the target, fsync the folder), optionally keeping the replaced file as the
  last good copy through a hard link, which costs no data write.
* :func:`sweep_temps`: removes temp files a killed writer left behind.
* :func:`quarantine`: moves a damaged file aside under a timestamped name, never deleting it.
* :class:`FileLock`: an exclusive ``flock`` that names its holder.
* :func:`read_file`, :func:`make_folder`, :func:`check_folder`: the opening side.

The state folder may be writable by others, while the bridge often runs as root: no file in it
is ever opened, read or chmod-ed through a symbolic link (``O_NOFOLLOW``, ``fchmod`` on the
open descriptor); a link where a store file should be raises an ``OSError`` (``ELOOP``).

Every call blocks on disk: run them on the persistence worker thread, never on the trio loop.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import logging
import os
import socket
import stat
import tempfile
from pathlib import Path

from triolette.core.errors import StoreLockedError

logger = logging.getLogger("triolette.stores")

_PLAINER = {
    errno.ELOOP: "is a symbolic link, and no link in the state folder is followed",
    errno.EISDIR: "is a folder, not a file",
    errno.EINVAL: "is not a regular file",
}
_NO_LINKS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO must not hang


def temp_prefix(path: Path) -> str:
    """The name prefix of ``path``'s temp files, recognisable for :func:`sweep_temps`."""
    return f".{path.name}.tmp-"


def open_file(path: Path, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open the regular file ``path`` without following a link; return the descriptor.

    Raises ``OSError``: ``ELOOP`` for a symbolic link, ``EISDIR`` for a folder, ``EINVAL``
    for anything else that is not a regular file, and whatever ``open`` raises.
    """
    try:
        fd = os.open(path, flags | _NO_LINKS, mode)
    except OSError as exc:
        if exc.errno in _PLAINER:
            raise OSError(exc.errno, _PLAINER[exc.errno], str(path)) from None
        raise
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        number = errno.EISDIR if stat.S_ISDIR(kind) else errno.EINVAL
        raise OSError(number, _PLAINER[number], str(path))
    os.set_blocking(fd, True)
    return fd


def read_file(path: Path) -> bytes | None:
    """The bytes of the regular file ``path``, ``None`` if it is missing (see :func:`open_file`).

    A file others may read (copied in from elsewhere) is made owner-only on the way.
    """
    try:
        fd = open_file(path)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        own(fd)
        return file.read()


def own(fd: int) -> None:
    """Make the open file owner-only when others may read it (a copy from elsewhere)."""
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, 0o600)


def refuse_link(path: Path) -> None:
    """Raise ``OSError`` (``ELOOP``) if ``path`` is a symbolic link; a missing path is fine."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise OSError(errno.ELOOP, _PLAINER[errno.ELOOP], str(path))
    except FileNotFoundError:
        pass


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents owner-only (0700), each creation made durable."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            os.mkdir(created, 0o700)
        except FileExistsError:
            continue  # someone else made it meanwhile: theirs, keep its mode
        fsync_folder(created.parent)


def check_folder(folder: Path) -> None:
    """Raise ``OSError`` unless ``folder`` is a folder we may create files in (every write
    does); log one warning when its group or others may too."""
    status = os.stat(folder)
    if not stat.S_ISDIR(status.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "the folder is not writable", str(folder))
    mode = stat.S_IMODE(status.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        logger.warning(
            "the state folder %s is writable by %s (mode %04o): anyone who can write there can "
            "plant files the bridge will read; make it owner-only (chmod go-w)",
            folder,
            "others" if mode & stat.S_IWOTH else "its group",
            mode,
        )


def restrict(path: Path) -> None:
    """Make the regular file ``path`` owner-only (0600), never through a link."""
    fd = open_file(path)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


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
            os.link(path, link_name)  # link() does not follow a link: no chmod through one
            temps.append(link_name)
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
    """Move ``path`` aside to ``<name>.corrupt-<UTC timestamp>`` (owner-only) and return it.

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
    restrict(target)
    if not keep_in_place:
        os.unlink(path)
    fsync_folder(path.parent)
    return target


class FileLock:
    """An exclusive advisory lock on ``<path>.lock``, held until :meth:`release`.

    The lock file records its holder (process id, program, host, time), which a second process
    reads to say who is in the way. ``flock`` locks belong to an open file, so a second store
    object on the same path inside one process is refused too. The lock file is written in
    place, so a link there (symbolic or hard) is refused rather than followed.
    """

    def __init__(self, path: Path) -> None:
        self.store_path = path
        self.path = path.with_name(f"{path.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreLockedError` naming the current holder.

        Raises ``OSError`` when the lock file cannot be opened or is a link (see :func:`open_file`).
        """
        fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
        if os.fstat(fd).st_nlink != 1:
            os.close(fd)
            raise OSError(
                errno.EMLINK, "has other hard links; it is not the store's own", str(self.path)
            )
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
