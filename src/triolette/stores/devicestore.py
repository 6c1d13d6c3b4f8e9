"""DeviceStore: one device's state as a dict, with dirty tracking, over a Store backend."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Protocol

from triolette.core.errors import StoreNotLoadedError
from triolette.core.jsonstate import check_key, decode_state, encode_state
from triolette.stores.protocol import Store

_EMPTY = "{}"


class StateSink(Protocol):
    """Where a :class:`DeviceStore` sends its encoded state: a backend, or the persistence actor.

    ``load_text`` and ``submit`` are synchronous and never block; ``flush`` returns once every
    submitted text of ``key`` is durable.
    """

    def load_text(self, key: str) -> str | None: ...

    def submit(self, key: str, text: str) -> None: ...

    async def flush(self, key: str) -> None: ...


class _DirectSink:
    """A backend called in place: ``submit`` writes at once; ``flush`` has nothing to wait for."""

    def __init__(self, backend: Store) -> None:
        self.backend = backend

    def load_text(self, key: str) -> str | None:
        data = self.backend.load(key)
        return None if data is None else encode_state(key, data)

    def submit(self, key: str, text: str) -> None:
        self.backend.save(key, decode_state(text))

    async def flush(self, key: str) -> None:
        return


class DeviceStore(MutableMapping[str, Any]):
    """A device's persisted state: a ``MutableMapping`` keyed by ``str``, scoped to one key.

    It must be :meth:`load`-ed before use (the runtime does this before the first handler
    call); any access before raises :class:`~triolette.StoreNotLoadedError`. Every mapping
    method works (``get``, ``setdefault``, ``pop``, ``popitem``, ``update``, ``clear``, views).

    Built over a backend (``DeviceStore(backend, key)``), :meth:`save` writes in place. Inside
    an app the runtime builds it over the persistence actor: :meth:`save` then hands the
    snapshot over and returns at once, and ``await store.flush()`` waits until it is durable.

    :attr:`dirty` is true after an assignment or deletion, after :meth:`mark_dirty`, and also
    when a nested value was changed in place (``store["calib"]["a"] = 1``): the current state
    is compared with what was last loaded or saved.
    """

    def __init__(
        self, backend: Store, key: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._setup(_DirectSink(backend), key, clock)

    def _setup(self, sink: StateSink, key: str, clock: Callable[[], float]) -> None:
        self._sink = sink
        self._key = check_key(key)
        self._clock = clock
        self._data: dict[str, Any] | None = None
        self._persisted = _EMPTY
        self._changed = False
        self._saved_at: float | None = None
        self._on_change: Callable[[], None] | None = None

    @classmethod
    def over(
        cls,
        sink: StateSink,
        key: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
    ) -> DeviceStore:
        """A store whose saves go to ``sink`` (the runtime uses this with its persistence actor).

        ``on_change`` is called after every assignment, deletion and :meth:`mark_dirty`.
        """
        store = cls.__new__(cls)
        store._setup(sink, key, clock)
        store._on_change = on_change
        return store

    @property
    def key(self) -> str:
        """The device key this store is scoped to."""
        return self._key

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run."""
        return self._data is not None

    def load(self) -> None:
        """Read this device's newest saved state; unsaved changes are discarded."""
        text = self._sink.load_text(self._key)
        self._data = {} if text is None else decode_state(text)
        self._persisted = _EMPTY if text is None else text
        self._changed = False

    def save(self) -> None:
        """Save the current state and clear :attr:`dirty`.

        The state is checked first: a value that is not strict JSON raises
        :class:`~triolette.StateNotJSONError` naming this device and the path inside the state,
        and nothing is saved. Saving content identical to what was last saved does no I/O.
        Over a backend, the write happens here and a backend error propagates (the store stays
        dirty). Inside an app, the snapshot goes to the persistence actor and this returns at
        once; the actor retries backend errors. Never blocks the trio loop in an app.
        """
        text = encode_state(self._key, self._require())
        if text != self._persisted:
            self._sink.submit(self._key, text)
            self._persisted = text
            self._saved_at = self._clock()
        self._changed = False

    async def flush(self) -> None:
        """Wait until everything saved so far is durable (at once over a plain backend).

        Does not save by itself: call :meth:`save` first. Cancellation stops the wait, not the
        write; the snapshot is written all the same.
        """
        await self._sink.flush(self._key)

    @property
    def dirty(self) -> bool:
        """Whether the state differs from what was last loaded or saved (or was marked so)."""
        if self._changed:
            return True
        if self._data is None:
            return False
        try:
            return encode_state(self._key, self._data) != self._persisted
        except TypeError:
            return True

    def mark_dirty(self) -> None:
        """Force :attr:`dirty` to true until the next save."""
        self._require()
        self._touch()

    def seconds_since_save(self) -> float | None:
        """Seconds since this store last wrote to the backend, or ``None`` if it never did."""
        return None if self._saved_at is None else self._clock() - self._saved_at

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the state."""
        return copy.deepcopy(self._require())

    def _require(self) -> dict[str, Any]:
        if self._data is None:
            raise StoreNotLoadedError(self._key)
        return self._data

    def __getitem__(self, name: str) -> Any:
        return self._require()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._require().get(name, default)  # one call, not Mapping's try/except

    def __setitem__(self, name: str, value: Any) -> None:
        self._require()[name] = value
        self._changed = True
        if self._on_change is not None:
            self._on_change()

    def __delitem__(self, name: str) -> None:
        del self._require()[name]
        self._touch()

    def _touch(self) -> None:
        self._changed = True
        if self._on_change is not None:
            self._on_change()

    def __contains__(self, name: object) -> bool:
        return name in self._require()

    def __iter__(self) -> Iterator[str]:
        return iter(self._require())

    def __len__(self) -> int:
        return len(self._require())

    def __repr__(self) -> str:
        """Key, loaded or not, and dirtiness; never the values (they may hold secrets)."""
        loaded = "not loaded" if self._data is None else "loaded"
        return f"DeviceStore({self._key!r}, {loaded}, dirty={self.dirty})"
