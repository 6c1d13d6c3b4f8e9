"""Which backend methods the persistence actor calls, chosen once per backend class.

A backend may offer up to three ways to write a batch (``save_encoded``, ``save_many``,
``save``) and three to read one (``load_all_encoded``, ``load_all``, ``load``). The faster
ones are preferred, but never one that would bypass an override: the method defined in the
most derived class wins, and only methods defined in one same class are taken to agree (the
faster of those is used). So a subclass of a built-in store that overrides ``save_many`` to
audit, encrypt or mirror gets every batch through it; one that overrides only ``save`` gets
each key through it, one ``save`` per key. A single key is read with ``load``, unless the
class overrides an inherited ``load_all`` that ``load`` would bypass.

The choice is made on the trio thread when the actor is built; ``read``, ``write`` and
``close`` run on the actor's worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from triolette.core.errors import StoreOpenError
from triolette.core.jsonstate import decode_state, encode_state
from triolette.stores.protocol import BatchStore, EncodedBatchStore, Store

_WRITES = ("save_encoded", "save_many", "save")
_READS = ("load_all_encoded", "load_all", "load")


class PartlyWritten(Exception):
    """Some keys of a batch were saved one by one before others failed."""

    def __init__(self, written: list[str], cause: Exception) -> None:
        super().__init__(str(cause))
        self.written = written
        self.cause = cause


def most_specific(backend: object, names: tuple[str, ...]) -> str:
    """The one of ``names`` that ``backend`` defines most specifically.

    Looked up in the instance, then along its class's MRO; ties (several defined in one
    place) go to the earliest in ``names``. Methods only ``__getattr__`` provides count as
    defined nowhere in particular: the earliest present is taken. Raises ``TypeError``
    naming the class when it has none of them.
    """
    places = [getattr(backend, "__dict__", {}), *(vars(klass) for klass in type(backend).__mro__)]
    for place in places:
        for name in names:
            if name in place:
                return name
    for name in names:
        if hasattr(backend, name):
            return name
    raise TypeError(f"{type(backend).__qualname__} has none of {', '.join(names)}: not a Store")


def _overrides(cls: type, name: str) -> bool:
    """Whether ``cls``'s ``name`` replaces one that a base class defines."""
    definers = [klass for klass in cls.__mro__ if name in vars(klass)]
    return len(definers) > 1


class BackendCalls:
    """The backend's read, write and close, each through the method chosen for its class."""

    def __init__(self, backend: Store) -> None:
        self.backend = backend
        self.write_with = most_specific(backend, _WRITES)
        self.read_all_with = most_specific(backend, _READS)
        # One key is read with load, the cheapest, unless an overridden load_all that load
        # would bypass sits below it (a built-in's load reads its cache, not load_all).
        self.read_one_with = (
            "load_all"
            if self.read_all_with == "load_all" and _overrides(type(backend), "load_all")
            else "load"
        )

    def read(self, keys: list[str]) -> Mapping[str, str | None]:
        """The canonical texts of ``keys`` (``None`` for a key never saved)."""
        method = self.read_all_with if len(keys) > 1 else self.read_one_with
        if method == "load_all_encoded":
            return cast(EncodedBatchStore, self.backend).load_all_encoded()
        if method == "load_all":
            states = cast(BatchStore, self.backend).load_all()
            return {key: _encoded(key, states.get(key)) for key in keys}
        return {key: _encoded(key, self.backend.load(key)) for key in keys}

    def write(self, texts: dict[str, str]) -> None:
        """Make ``texts`` durable; raises :class:`PartlyWritten` when ``save`` took only some."""
        if self.write_with == "save_encoded":
            cast(EncodedBatchStore, self.backend).save_encoded(texts)
            return
        states = {key: decode_state(text) for key, text in texts.items()}
        if self.write_with == "save_many":
            cast(BatchStore, self.backend).save_many(states)
            return
        # Key by key, a backend may refuse one key for good: the others still go in.
        failures: dict[str, Exception] = {}
        for key, data in states.items():
            try:
                self.backend.save(key, data)
            except Exception as error:
                failures[key] = error
        if failures:
            written = [key for key in states if key not in failures]
            raise PartlyWritten(written, next(iter(failures.values())))

    def declare_versions(self, versions: Mapping[str, int]) -> None:
        """Tell the backend which state version each later write of these keys records.

        Raises :class:`~triolette.StoreOpenError` when a version is not 0 and the backend
        cannot record versions (it has no ``declare_versions``/``load_versions``): it would
        hand back every state as version 0, and the migrations would run again each start.
        """
        declare: Any = getattr(self.backend, "declare_versions", None)
        if declare is not None and hasattr(self.backend, "load_versions"):
            declare(versions)
            return
        versioned = sorted(key for key, version in versions.items() if version)
        if versioned:
            raise StoreOpenError(
                repr(self.backend),
                f"it cannot record state versions (no declare_versions and load_versions), "
                f"and {versioned[0]!r} declares state_version={versions[versioned[0]]}",
            )

    def read_versioned(
        self, keys: list[str], versioned: list[str]
    ) -> tuple[Mapping[str, str | None], dict[str, int]]:
        """:meth:`read` of ``keys``, and the stored version of each of ``versioned``."""
        texts = self.read(keys)
        load: Any = getattr(self.backend, "load_versions", None)
        if not versioned or load is None:
            return texts, {}
        return texts, dict(load(versioned))

    def close(self) -> None:
        close: Any = getattr(self.backend, "close", None)
        if close is not None:
            close()


def _encoded(key: str, data: dict[str, object] | None) -> str | None:
    return None if data is None else encode_state(key, data)
