"""JsonFileStore: every device's state in one JSON file, replaced atomically and durably."""

from __future__ import annotations

import json
import os

from triolette.core.errors import StoreWriteError
from triolette.core.jsonstate import decode_document, encode_state
from triolette.stores._encoded import QuarantineReport
from triolette.stores._files import quarantine, replace_durably, sweep_temps
from triolette.stores._filestore import LockedFileStore


class JsonFileStore(LockedFileStore):
    """One JSON object ``{device: state}`` in one file, cosalette's format.

    The file is opened on first use, which takes an exclusive lock (a second process gets
    :class:`~triolette.StoreLockedError`), removes temp files a killed writer left, and reads
    the document once; afterwards it lives in memory and is never re-read. Each batch is one
    durable replace (temp file, fsync, rename, folder fsync) of a file only the owner may
    read. The replaced generation stays as ``<name>.last-good``. A file that does not parse
    (or is not an object of objects) is moved to ``<name>.corrupt-<UTC time>``, reported in
    :attr:`quarantined` and the log, and the last good copy is used when it parses.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.last_good = self.path.with_name(f"{self.path.name}.last-good")

    def _open_locked(self) -> dict[str, str]:
        sweep_temps(self.path)
        return self._read()

    def _read(self) -> dict[str, str]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            return _parse(raw)
        except ValueError as exc:
            problem = str(exc)
        good = self._read_last_good()
        moved_to = quarantine(self.path, keep_in_place=good is not None)
        if good is not None:
            replace_durably(self.path, _render(good))
        self._report(
            QuarantineReport(self.path, problem, moved_to, None if good is None else self.last_good)
        )
        return good or {}

    def _read_last_good(self) -> dict[str, str] | None:
        try:
            return _parse(self.last_good.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            self._report(QuarantineReport(self.last_good, str(exc), quarantine(self.last_good)))
            return None

    def _write(self, changed: dict[str, str], current: dict[str, str]) -> None:
        try:
            replace_durably(
                self.path, _render({**current, **changed}), keep_previous=self.last_good
            )
        except OSError as exc:
            raise StoreWriteError(self.path, list(changed), exc) from exc


def _parse(raw: bytes) -> dict[str, str]:
    """Decode a store file into canonical texts; ``ValueError`` says what is wrong with it."""
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
        return {key: encode_state(key, state) for key, state in document.items()}
    except json.JSONDecodeError as exc:
        raise ValueError(f"the file is not valid JSON ({exc})") from None
    except TypeError as exc:  # decoded, but JSON would not give it back (a lone surrogate)
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("the file nests too deeply to decode") from None


def _render(texts: dict[str, str]) -> bytes:
    """One device per line: cheap to build from the cached texts, easy to read and diff."""
    lines = ",\n".join(
        f"{json.dumps(key, ensure_ascii=False)}: {text}" for key, text in texts.items()
    )
    return f"{{\n{lines}\n}}\n".encode() if texts else b"{}\n"
