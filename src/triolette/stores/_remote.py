"""What the server-backed stores (PostgreSQL, Redis) share: safe URLs, records, checked texts.

Nothing here imports a database client, so :mod:`triolette` stays importable without them.
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Iterable, Mapping

import attrs

from triolette.core.jsonstate import check_key, decode_state, encode_state


@attrs.frozen
class StoredRecord:
    """One device's stored state with what a shared backend keeps beside it.

    ``revision`` grows by one on every write of the key (the first write is 1);
    ``written_at`` is the server's time of that write. Backends without them give ``None``.
    ``version`` is the state's layout version (the writer's ``state_version``; 0 when none
    was recorded).
    """

    text: str
    revision: int | None = None
    written_at: datetime.datetime | None = None
    version: int = 0


def safe_url(url: str) -> str:
    """``url`` without its password (and without a query string, which may hold secrets).

    ``postgresql://bridge:secret@db.example/state`` reads ``postgresql://bridge@db.example/state``.
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def take_query(url: str, name: str) -> tuple[str, str | None]:
    """``url`` without the query parameter ``name``, and that parameter's value (or ``None``).

    The stores take their own options (``table``, ``prefix``) from the URL this way, before
    the client library, which refuses names it does not know, sees it.
    """
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    values = [value for key, value in pairs if key == name]
    rest = urllib.parse.urlencode([(key, value) for key, value in pairs if key != name])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), (values[-1] if values else None)


def encode_batch(states: Mapping[str, dict[str, object]]) -> dict[str, str]:
    """Every state as canonical text; raises :class:`~triolette.StateNotJSONError` first."""
    return {check_key(key): encode_state(key, data) for key, data in states.items()}


def checked_text(key: str, text: str) -> str:
    """A stored text in canonical form; ``ValueError`` naming ``key`` when it is not a state."""
    try:
        return encode_state(key, decode_state(text))
    except (TypeError, ValueError) as error:
        raise ValueError(f"the stored state of {key!r} is damaged: {error}") from None


class Revisions:
    """The revision of each record a server store read or wrote: the base of its next save.

    A save of ``key`` is based on the revision last seen (0: known absent); the server refuses
    it when the record's revision is another (:class:`~triolette.StoreConflictError`). After
    :meth:`saw` with ``complete=True`` (a read of every record) a key not seen is known absent.
    A key never seen is :meth:`unknown`: the store reads it before its first save. A write
    whose outcome is unknown (the connection was lost) leaves its keys unknown too, with the
    attempted text, so that :meth:`resolve` recognises the write if it landed after all.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._complete = False
        self._attempts: dict[str, tuple[int, str]] = {}

    def saw(self, revisions: Mapping[str, int], *, complete: bool = False) -> None:
        """Note the revisions read (every record's, with ``complete``)."""
        if complete:
            self._seen = dict(revisions)
            self._complete = True
        else:
            self._seen.update(revisions)
        for key in revisions:
            self._attempts.pop(key, None)

    def unknown(self, keys: Iterable[str]) -> list[str]:
        """The keys whose base revision must be read before they are saved."""
        return [
            key
            for key in keys
            if key in self._attempts or (key not in self._seen and not self._complete)
        ]

    def base(self, key: str) -> int:
        return self._seen.get(key, 0)

    def attempted(self, texts: Mapping[str, str]) -> None:
        """Note a write of ``texts`` whose outcome is unknown."""
        for key, text in texts.items():
            self._attempts[key] = (self.base(key), text)

    def resolve(self, stored: Mapping[str, tuple[int, str]], keys: Iterable[str]) -> None:
        """Settle the base of ``keys`` from what the server holds now (``(revision, text)``)."""
        for key in keys:
            revision, text = stored.get(key, (0, ""))
            attempt = self._attempts.pop(key, None)
            if attempt is None:
                self._seen[key] = revision  # first sight of a key never read
            elif revision == attempt[0] + 1 and text == attempt[1]:
                self._seen[key] = revision  # our lost write landed
            # else: our write did not land (same revision) or another writer's did: keep the base

    def wrote(self, revisions: Mapping[str, int]) -> None:
        """Note the revisions a successful write produced."""
        self._seen.update(revisions)
        for key in revisions:
            self._attempts.pop(key, None)
