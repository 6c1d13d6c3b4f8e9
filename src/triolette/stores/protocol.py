"""The ``Store`` protocol every backend satisfies, and the optional batch and encoded methods.

All three protocols are runtime-checkable: ``isinstance(backend, Store)`` tells whether an object
has the methods (not whether they behave).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class Store(Protocol):
    """A key-value backend for device state: synchronous on purpose, so backends stay simple.

    The runtime calls a store from one worker thread at a time, never from the trio loop.
    ``load`` returns a fresh dict the caller may mutate, or ``None`` for an unknown key.
    """

    def load(self, key: str) -> dict[str, object] | None: ...

    def save(self, key: str, data: dict[str, object]) -> None: ...


@runtime_checkable
class BatchStore(Store, Protocol):
    """A store that also offers the batch methods the persistence actor prefers when present.

    ``save_many`` writes every entry or none of them, in one durable step (one file replace,
    one transaction). ``load_all`` returns every stored key at once. ``close`` releases files,
    connections and locks; the built-in stores reopen on the next call.
    """

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None: ...

    def load_all(self) -> dict[str, dict[str, object]]: ...

    def close(self) -> None: ...


@runtime_checkable
class EncodedBatchStore(BatchStore, Protocol):
    """A batch store that also takes and hands over states as canonical JSON texts.

    A device store encodes each snapshot once (``encode_state``: compact, key order kept);
    a backend that keeps those texts saves and loads them without decoding and encoding
    again. The built-in stores do. ``save_encoded(texts)`` must have the effect of
    ``save_many`` of the decoded states; ``load_all_encoded()`` returns what ``load_all``
    returns, as texts.

    The persistence actor uses these methods only while they cannot bypass a method a
    subclass overrides: a class that overrides ``save_many`` (or ``save``) below the class
    that defines ``save_encoded`` gets its batches through that override, and likewise
    ``load_all`` (or ``load``) for loading.
    """

    def save_encoded(self, texts: Mapping[str, str]) -> None: ...

    def load_all_encoded(self) -> dict[str, str]: ...
