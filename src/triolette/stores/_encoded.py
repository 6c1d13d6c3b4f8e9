"""The common engine of the built-in backends: each key's state kept as canonical JSON text.

Holding the encoded text gives deep-copy isolation both ways, strict JSON checks before anything
is written, and cheap change detection: a save whose text equals the stored one costs no I/O.
Subclasses only say how to open (return the stored texts) and how to make a batch durable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from triolette.core.jsonstate import check_key, decode_state, encode_state
from triolette.stores._remote import StoredRecord

logger = logging.getLogger("triolette.stores")


@attrs.frozen
class QuarantineReport:
    """A damaged file or record that a store moved aside instead of overwriting.

    ``moved_to`` is where the bytes now are; ``restored_from`` names the last good copy the
    store fell back on, or is ``None`` when it started without that data.
    """

    path: Path
    reason: str
    moved_to: Path | str
    restored_from: Path | None = None


class EncodedStore:
    """Base class: ``load``/``save``/``save_many``/``load_all``/``close`` over encoded texts.

    It also has ``save_encoded`` and ``load_all_encoded``, the
    :class:`~triolette.stores.EncodedBatchStore` methods the persistence actor prefers. A
    subclass may override ``save``, ``save_many``, ``load`` or ``load_all`` (to audit,
    encrypt, mirror): the actor then calls the override instead (``save_many`` for a batch,
    ``save`` key by key when only ``save`` is overridden).
    """

    def __init__(self) -> None:
        self._texts: dict[str, str] | None = None
        self._doubtful: set[str] = set()  # keys whose last write failed: stored text unknown
        self._revisions: dict[str, int] = {}  # per key, one more on each write; 0: none recorded
        self._versions: dict[str, int] = {}  # per key, the stored state's version; 0: none
        self._writer_versions: dict[str, int] = {}  # per key, the version later writes record
        self._version_due: set[str] = set()  # keys whose stored version is not the writer's
        self.quarantined: list[QuarantineReport] = []

    # -- for subclasses -------------------------------------------------------------------

    def _open(self) -> dict[str, str]:
        """Acquire resources and return the stored ``{key: canonical JSON text}``."""
        return {}

    def _write(self, changed: dict[str, str], current: dict[str, str]) -> None:
        """Make ``changed`` durable on top of ``current``; raise and change nothing on failure."""

    def _release(self) -> None:
        """Release what ``_open`` acquired."""

    def _report(self, report: QuarantineReport) -> None:
        self.quarantined.append(report)
        logger.error(
            "store file %s was damaged (%s): moved aside to %s; %s",
            report.path,
            report.reason,
            report.moved_to,
            f"restored the last good copy {report.restored_from}"
            if report.restored_from
            else "starting without that data",
        )

    # -- the Store protocol ---------------------------------------------------------------

    def _stored(self) -> dict[str, str]:
        if self._texts is None:
            self._texts = self._open()
        return self._texts

    def load(self, key: str) -> dict[str, object] | None:
        """Return a fresh copy of ``key``'s state, or ``None`` when it was never saved."""
        text = self._stored().get(key)
        return None if text is None else decode_state(text)

    def load_all(self) -> dict[str, dict[str, object]]:
        """Return a fresh copy of every stored state, keyed by device."""
        return {key: decode_state(text) for key, text in self._stored().items()}

    def load_all_encoded(self) -> dict[str, str]:
        """:meth:`load_all` as canonical texts (``encode_state`` output), without a decode."""
        return dict(self._stored())

    def save(self, key: str, data: dict[str, object]) -> None:
        """Store ``data`` under ``key``; see :meth:`save_many`."""
        self.save_many({key: data})

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        """Store every entry of ``states`` in one durable step, or none of them.

        Raises :class:`~triolette.StateNotJSONError` (naming key and path) before any I/O
        when a state is not strict JSON, and :class:`~triolette.StoreWriteError` when the
        backend fails; either way what was stored before is unchanged.
        """
        encoded = {}
        for key, data in states.items():
            encoded[check_key(key)] = encode_state(key, data)
        self.save_encoded(encoded)

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        """:meth:`save_many` for states already in canonical form (``encode_state`` output).

        The persistence actor uses it so a snapshot encoded once by its device store is not
        decoded and encoded again. Keys and texts are trusted to be valid.
        """
        current = self._stored()
        doubtful = self._doubtful
        changed = {
            key: text for key, text in texts.items() if current.get(key) != text or key in doubtful
        }
        if self._version_due:  # an equal text still goes out to record its new version
            changed.update({key: texts[key] for key in self._version_due.intersection(texts)})
        if changed:
            try:
                self._write(changed, current)
            except BaseException:
                # The write may have landed before it failed (a rename done, a folder fsync
                # not), so the next save of these keys is written whatever it holds: even
                # the old content, which would otherwise look unchanged.
                doubtful.update(changed)
                raise
            current.update(changed)
            doubtful.difference_update(changed)
            self._revisions.update(self._bumped(changed))
            if self._writer_versions:
                declared = self._writer_versions
                self._versions.update({key: declared[key] for key in changed if key in declared})
                self._version_due.difference_update(changed)

    def _bumped(self, changed: Mapping[str, str]) -> dict[str, int]:
        """The revisions of ``changed`` once written: one more each."""
        return {key: self._revisions.get(key, 0) + 1 for key in changed}

    def declare_versions(self, versions: Mapping[str, int]) -> None:
        """Record ``versions[key]`` beside each later write of ``key`` (its code's
        ``state_version``). A key never declared keeps the version it has."""
        stored = self._load_versions()
        self._writer_versions.update(versions)
        self._version_due.update(key for key, v in versions.items() if stored.get(key, 0) != v)

    def load_versions(self, keys: Iterable[str]) -> dict[str, int]:
        """The stored version of each of ``keys`` (0 for one recorded without, or absent)."""
        stored = self._load_versions()
        return {key: stored.get(key, 0) for key in keys}

    def _load_versions(self) -> dict[str, int]:
        self._stored()  # the versions are read with the texts
        return self._versions

    def _versions_after(self, changed: Mapping[str, str]) -> dict[str, int]:
        """Every key's version once ``changed`` is written: the declared ones for those."""
        declared = self._writer_versions
        return {**self._versions, **{key: declared[key] for key in changed if key in declared}}

    def load_records(self) -> dict[str, StoredRecord]:
        """Every stored state with its revision (0 for a record written without one) and its
        version (0 for one written without)."""
        texts = self._stored()
        revisions, versions = self._revisions, self._versions
        return {
            key: StoredRecord(text, revisions.get(key, 0), version=versions.get(key, 0))
            for key, text in texts.items()
        }

    def close(self) -> None:
        """Release files and locks; the next call opens the store again."""
        if self._texts is not None:
            self._texts = None
            self._release()
