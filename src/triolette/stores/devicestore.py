"""DeviceStore: one device's state as a dict, with dirty tracking, over a Store backend."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from triolette.core.errors import StoreNotLoadedError
from triolette.core.jsonstate import check_key, decode_state, encode_state
from triolette.stores.protocol import Store

_EMPTY = "{}"


class DeviceStore(MutableMapping[str, Any]):
    """A device's persisted state: a ``MutableMapping`` keyed by ``str``, scoped to one key.

    It must be :meth:`load`-ed before use (the runtime does this before the first handler
    call); any access before raises :class:`~triolette.StoreNotLoadedError`. Every mapping
    method works (``get``, ``setdefault``, ``pop``, ``popitem``, ``update``, ``clear``, views).

    :attr:`dirty` is true after an assignment or deletion, after :meth:`mark_dirty`, and also
    when a nested value was changed in place (``store["calib"]["a"] = 1``): the current state
    is compared with what was last loaded or saved.
    """

    def __init__(
        self, backend: Store, key: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._backend = backend
        self._key = check_key(key)
        self._clock = clock
        self._data: dict[str, Any] | None = None
        self._persisted = _EMPTY
        self._changed = False
        self._saved_at: float | None = None

    @property
    def key(self) -> str:
        """The device key this store is scoped to."""
        return self._key

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run."""
        return self._data is not None

    def load(self) -> None:
        """Read this device's state from the backend; unsaved changes are discarded."""
        data = self._backend.load(self._key)
        self._data = {} if data is None else dict(data)
        self._persisted = encode_state(self._key, self._data)
        self._changed = False

    def save(self) -> None:
        """Write the current state to the backend and clear :attr:`dirty`.

        The state is checked first: a value that is not strict JSON raises
        :class:`~triolette.StateNotJSONError` naming this device and the path inside the state,
        and nothing is written. Saving content identical to what is persisted does no I/O.
        A backend error propagates and the store stays dirty.
        """
        text = encode_state(self._key, self._require())
        if text != self._persisted:
            self._backend.save(self._key, decode_state(text))
            self._persisted = text
            self._saved_at = self._clock()
        self._changed = False

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
        self._changed = True

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

    def __setitem__(self, name: str, value: Any) -> None:
        self._require()[name] = value
        self._changed = True

    def __delitem__(self, name: str) -> None:
        del self._require()[name]
        self._changed = True

    def __contains__(self, name: object) -> bool:
        return name in self._require()

    def __iter__(self) -> Iterator[str]:
        return iter(self._require())

    def __len__(self) -> int:
        return len(self._require())

    def __repr__(self) -> str:
        shown = "<not loaded>" if self._data is None else repr(self._data)
        return f"DeviceStore({self._key!r}, {shown}, dirty={self.dirty})"
