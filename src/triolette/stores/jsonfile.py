"""JsonFileStore: every device's state in one JSON file, replaced atomically and durably."""

from __future__ import annotations

import json
import math
import os
import time

from triolette.core.errors import StoreWriteError
from triolette.core.jsonstate import decode_document, encode_state
from triolette.stores._encoded import QuarantineReport
from triolette.stores._files import quarantine, read_file, replace_durably, sweep_temps
from triolette.stores._filestore import LockedFileStore, OnDamage

REVISIONS_KEY = "triolette/revisions"
"""The file's entry ``{device: revision}``. No device can be named so (a ``/`` is not allowed
in a device name); a cosalette reader takes it for a device nobody asks for, and ignores it."""
REWRITE_RATE = 10_000_000
"""Default bytes per second a JsonFileStore rewrites its file at most, on average."""
MAX_PAUSE = 2.0
"""The longest pause in seconds between two rewrites, however large the file."""

VERSIONS_KEY = "triolette/versions"
"""The file's entry ``{device: state version}``, for the devices whose version is not 0; like
:data:`REVISIONS_KEY`, a device name nobody asks for, to a cosalette reader."""
_RESERVED = (REVISIONS_KEY, VERSIONS_KEY)


class JsonFileStore(LockedFileStore):
    """One JSON object ``{device: state}`` in one file, cosalette's format.

    The file is opened on first use, which takes an exclusive lock (a second process gets
    :class:`~triolette.StoreLockedError`), removes temp files a killed writer left, and reads
    the document once; afterwards it lives in memory and is never re-read. Each batch is one
    durable replace (temp file, fsync, rename, folder fsync) of a file only the owner may
    read. The replaced generation stays as ``<name>.last-good``. No file is opened through a
    symbolic link: a link there is a :class:`~triolette.StoreOpenError`, as is any other
    failure to open.

    A damaged file (it does not parse, is not an object of objects, or repeats a key) is moved
    to ``<name>.corrupt-<UTC time>``, reported in :attr:`quarantined` and the log, and the last
    good copy is used when it parses. When none does, every device starts from empty (logged
    at CRITICAL), or with ``on_damage="refuse"`` opening raises :class:`StoreOpenError` and
    leaves the files as they are.

    Each device's revision (one more on each write, see :meth:`load_records`) is kept in the
    entry :data:`REVISIONS_KEY` at the end of the object; a file without it (cosalette's, or
    one written by an older triolette) loads with no revision recorded (0). Likewise each
    device's state version (see "State versions" in the persistence guide) is kept in the entry
    :data:`VERSIONS_KEY` after it, for the devices whose version is not 0: a file without it
    loads with every device at version 0.

    Every batch rewrites the whole file, however small the change, so batches are paced by
    its size: a rewrite of ``n`` bytes is followed by at least ``n / rewrite_rate`` seconds
    (at most :data:`MAX_PAUSE`) before the next one starts, and the saves of that pause go
    into the next batch together. ``rewrite_rate=None`` writes each batch at once. The pause
    runs on the persistence actor's worker thread and cannot be cancelled.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        on_damage: OnDamage = "start-empty",
        rewrite_rate: float | None = REWRITE_RATE,
    ) -> None:
        if rewrite_rate is not None and not rewrite_rate > 0:
            raise ValueError(
                f"rewrite_rate must be a positive number of bytes/s or None, not {rewrite_rate!r}"
            )
        super().__init__(path, on_damage=on_damage)
        self.last_good = self.path.with_name(f"{self.path.name}.last-good")
        self.rewrite_rate = rewrite_rate
        self.rewrites = 0
        """How many times the file was rewritten since this object was made."""
        self.bytes_rewritten = 0
        """The bytes those rewrites wrote."""
        self.rewrite_seconds = 0.0
        """The time those rewrites took (pauses not included)."""
        self._next_rewrite = -math.inf  # time.monotonic() before which no rewrite starts

    def _open_locked(self) -> dict[str, str]:
        sweep_temps(self.path)
        texts, self._revisions, self._versions = self._read()
        return texts

    def _read(self) -> _Parsed:
        raw = read_file(self.path)
        if raw is None:
            return {}, {}, {}
        try:
            return _parse(raw)
        except ValueError as exc:
            problem = str(exc)
        good, good_problem = self._read_last_good()
        if good is None:
            self._check_loss("the file", problem)  # before anything moves
            if good_problem is not None:
                moved = quarantine(self.last_good)
                self._report(QuarantineReport(self.last_good, good_problem, moved))
        moved_to = quarantine(self.path, keep_in_place=good is not None)
        if good is None:
            self._report(QuarantineReport(self.path, problem, moved_to), lost="EVERY DEVICE")
            return {}, {}, {}
        replace_durably(self.path, _render(*good))
        self._report(QuarantineReport(self.path, problem, moved_to, self.last_good))
        return good

    def _read_last_good(
        self,
    ) -> tuple[_Parsed | None, str | None]:
        """The last good copy's texts, or ``None`` and what is wrong with it (if it exists)."""
        raw = read_file(self.last_good)
        if raw is None:
            return None, None
        try:
            return _parse(raw), None
        except ValueError as exc:
            return None, str(exc)

    def _write(self, changed: dict[str, str], current: dict[str, str]) -> None:
        for entry in _RESERVED:
            if entry in changed:
                reserved = ValueError(f"{entry!r} is the file's record of revisions and versions")
                raise StoreWriteError(self.path, [entry], reserved)
        pause = self._next_rewrite - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        started = time.monotonic()
        revisions = {**self._revisions, **self._bumped(changed)}
        data = _render({**current, **changed}, revisions, self._versions_after(changed))
        try:
            replace_durably(self.path, data, keep_previous=self.last_good)
        except OSError as exc:
            raise StoreWriteError(self.path, list(changed), exc) from exc
        finally:
            self._pace(len(data))
            self.rewrite_seconds += time.monotonic() - started
        self.rewrites += 1
        self.bytes_rewritten += len(data)

    def _pace(self, size: int) -> None:
        """Set when the next rewrite may start, after one of ``size`` bytes ended now."""
        if self.rewrite_rate is not None:
            self._next_rewrite = time.monotonic() + min(MAX_PAUSE, size / self.rewrite_rate)


_Parsed = tuple[dict[str, str], dict[str, int], dict[str, int]]
"""A store file's canonical texts, revisions and versions."""


def _parse(raw: bytes) -> _Parsed:
    """Decode a store file into canonical texts, revisions and versions; ``ValueError`` says
    what is wrong with it. A file without those entries (cosalette's) has none recorded."""
    if not raw.strip():
        raise ValueError("the file is empty" if not raw else "the file holds only blanks")
    if b"\0" in raw:
        raise ValueError(f"the file holds NUL bytes (first at offset {raw.index(0)})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the file is not UTF-8 ({exc.reason} at offset {exc.start})") from None
    try:
        document = decode_document(text)
        revisions = _revisions_of(document.pop(REVISIONS_KEY, {}))
        versions = _revisions_of(document.pop(VERSIONS_KEY, {}))
        texts = {key: encode_state(key, state) for key, state in document.items()}
        return texts, revisions, versions
    except json.JSONDecodeError as exc:
        raise ValueError(f"the file is not valid JSON ({exc})") from None
    except TypeError as exc:  # decoded, but JSON would not give it back (a lone surrogate)
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("the file nests too deeply to decode") from None


def _revisions_of(entry: dict[str, object]) -> dict[str, int]:
    """The revisions (or versions) entry's whole non-negative numbers; anything else counts
    as none."""
    return {
        key: value
        for key, value in entry.items()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0
    }


def _render(texts: dict[str, str], revisions: dict[str, int], versions: dict[str, int]) -> bytes:
    """One device per line: cheap to build from the cached texts, easy to read and diff.

    The revisions come last, under :data:`REVISIONS_KEY`, then the versions other than 0,
    under :data:`VERSIONS_KEY`, each for the devices present.
    """
    entries = [*texts.items()]
    for entry, numbers in ((REVISIONS_KEY, revisions), (VERSIONS_KEY, versions)):
        kept = {key: numbers[key] for key in texts if numbers.get(key)}
        if kept:
            entries.append((entry, json.dumps(kept, ensure_ascii=False, separators=(",", ":"))))
    lines = ",\n".join(f"{json.dumps(key, ensure_ascii=False)}: {text}" for key, text in entries)
    return f"{{\n{lines}\n}}\n".encode() if texts else b"{}\n"
