"""What the server-backed stores (PostgreSQL, Redis) share: safe URLs, records, checked texts.

Nothing here imports a database client, so :mod:`triolette` stays importable without them.
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Mapping

import attrs

from triolette.core.jsonstate import check_key, decode_state, encode_state


@attrs.frozen
class StoredRecord:
    """One device's stored state with what a shared backend keeps beside it.

    ``revision`` grows by one on every write of the key (the first write is 1);
    ``written_at`` is the server's time of that write. Backends without them give ``None``.
    """

    text: str
    revision: int | None = None
    written_at: datetime.datetime | None = None


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
