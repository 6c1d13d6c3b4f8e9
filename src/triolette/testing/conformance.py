"""check_store: the contract every Store backend must honour, runnable on users' backends too."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from triolette.core.errors import StateNotJSONError
from triolette.core.jsonstate import decode_state, encode_state
from triolette.stores.protocol import EncodedBatchStore, Store

StoreFactory = Callable[[], Store]

# Values whose round trip catches the usual slips: bool vs int, int vs float, unicode, nesting.
_VARIETY: dict[str, Any] = {
    "none": None,
    "true": True,
    "zero": 0,
    "big": 2**70,
    "negative": -17,
    "float": 0.1,
    "whole float": 3.0,
    "tiny": 5e-324,
    "text": "Grüße, 温度 🌡",
    "escapes": 'quote " backslash \\ newline \n tab \t nul \x00',
    "empty list": [],
    "empty dict": {},
    "nested": {"a": [1, {"b": [True, None, "x"]}], "": "empty key"},
}


def check_store(
    open_store: StoreFactory,
    *,
    remembers: bool = True,
    survives_reopen: bool = True,
    strict_json: bool = False,
) -> list[str]:
    """Run every conformance check on the backend ``open_store`` returns; return their names.

    ``open_store()`` must give a store over the same data on every call, empty on the first
    (for a file backend: a new object on the same path). The kit closes a store (when it has
    ``close``) before opening the next. Say what the backend promises: ``remembers`` (a load
    returns what was saved; false only for a null store), ``survives_reopen`` (data outlives
    the object), ``strict_json`` (a save of a non-JSON value raises
    :class:`~triolette.StateNotJSONError`, as the built-in backends do). Batch methods
    (``save_many``, ``load_all``, ``close``) are checked when present, and so are the encoded
    ones (``save_encoded``, ``load_all_encoded``: they must agree with the others).

    Raises ``AssertionError`` naming the failed check. Blocking: call it from a test, not from
    inside a trio loop.
    """
    session = _Session(open_store)
    checks: list[Callable[[_Session], None]] = [_is_a_store, _unknown_key_is_none]
    if remembers:
        checks += [_round_trip, _copies_in_and_out, _overwrite_replaces, _keys_are_independent]
        if hasattr(session.store, "save_many"):
            checks += [_save_many_and_load_all]
        if isinstance(session.store, EncodedBatchStore):
            checks += [_encoded_methods_agree]
        if survives_reopen:
            checks += [_survives_reopen]
        if strict_json:
            checks += [_rejects_non_json]
    else:
        checks += [_forgets]
    passed = []
    try:
        for check in checks:
            name = check.__name__.lstrip("_").replace("_", " ")
            try:
                check(session)
            except AssertionError as exc:
                raise AssertionError(f"store check '{name}' failed: {exc}") from exc
            except Exception as exc:
                raise AssertionError(f"store check '{name}' failed: it raised {exc!r}") from exc
            passed.append(name)
    finally:
        session.close()
    return passed


def _expect(condition: bool, message: str) -> None:
    """An assertion that survives ``python -O``."""
    if not condition:
        raise AssertionError(message)


class _Session:
    """The store under test, reopened on demand; each check uses keys of its own."""

    def __init__(self, open_store: StoreFactory) -> None:
        self._open_store = open_store
        self.store: Any = None
        self.reopen()

    def reopen(self) -> Any:
        self.close()
        self.store = self._open_store()
        return self.store

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def _is_a_store(session: _Session) -> None:
    _expect(isinstance(session.store, Store), "it lacks load() or save()")


def _unknown_key_is_none(session: _Session) -> None:
    _expect(session.store.load("conformance never saved") is None, "an unknown key must load None")


def _round_trip(session: _Session) -> None:
    session.store.save("conformance variety", _VARIETY)
    loaded = session.store.load("conformance variety")
    _expect(loaded == _VARIETY, f"loaded {loaded!r}")
    for name, value in _VARIETY.items():
        _expect(type(loaded[name]) is type(value), f"{name}: {value!r} came back {loaded[name]!r}")


def _copies_in_and_out(session: _Session) -> None:
    state: dict[str, Any] = {"list": [1, 2], "inner": {"x": 1}}
    session.store.save("conformance copies", state)
    state["list"].append(3)
    state["inner"]["x"] = 2
    loaded = session.store.load("conformance copies")
    _expect(loaded == {"list": [1, 2], "inner": {"x": 1}}, "a save must copy its input")
    loaded["list"].append(99)
    again = session.store.load("conformance copies")
    _expect(again == {"list": [1, 2], "inner": {"x": 1}}, "a load must return a copy")


def _overwrite_replaces(session: _Session) -> None:
    session.store.save("conformance overwrite", {"a": 1, "b": 2})
    session.store.save("conformance overwrite", {"c": 3})
    loaded = session.store.load("conformance overwrite")
    _expect(loaded == {"c": 3}, f"a save replaces the whole state, got {loaded!r}")
    session.store.save("conformance overwrite", {})
    _expect(session.store.load("conformance overwrite") == {}, "an empty state is stored")


def _keys_are_independent(session: _Session) -> None:
    session.store.save("conformance one", {"n": 1})
    session.store.save("conformance two", {"n": 2})
    session.store.save("conformance one", {"n": 11})
    _expect(session.store.load("conformance two") == {"n": 2}, "saving one key changed another")
    _expect(session.store.load("conformance one") == {"n": 11}, "the latest save was lost")


def _save_many_and_load_all(session: _Session) -> None:
    batch = {f"conformance batch {i}": {"i": i} for i in range(50)}
    session.store.save_many(batch)
    everything = session.store.load_all()
    for key, state in batch.items():
        _expect(everything.get(key) == state, f"load_all lacks {key!r}")
        _expect(session.store.load(key) == state, f"load({key!r}) after save_many")
    everything[next(iter(batch))]["i"] = -1
    _expect(session.store.load(next(iter(batch))) == {"i": 0}, "load_all must return copies")


def _encoded_methods_agree(session: _Session) -> None:
    state = {"b": [1, {"c": None}], "a": "Grüße"}
    session.store.save_encoded({"conformance encoded": encode_state("conformance encoded", state)})
    _expect(session.store.load("conformance encoded") == state, "load after save_encoded")
    session.store.save("conformance plain", {"n": 1})
    texts = session.store.load_all_encoded()
    states = session.store.load_all()
    _expect(sorted(texts) == sorted(states), "load_all_encoded and load_all hold other keys")
    for key, text in texts.items():
        _expect(decode_state(text) == states[key], f"load_all_encoded differs for {key!r}")


def _survives_reopen(session: _Session) -> None:
    session.store.save("conformance durable", {"kept": [1, "two", 3.5]})
    session.store.save("conformance durable", {"kept": "latest"})
    store = session.reopen()
    _expect(store.load("conformance durable") == {"kept": "latest"}, "lost after reopening")
    _expect(store.load("conformance variety") == _VARIETY, "other keys lost after reopening")


def _rejects_non_json(session: _Session) -> None:
    session.store.save("conformance strict", {"ok": 1})
    bad: list[tuple[dict[str, Any], str]] = [
        ({"calib": {"when": datetime.datetime(2026, 1, 1)}}, '["calib"]["when"]'),
        ({"nan": float("nan")}, '["nan"]'),
        ({"pair": (1, 2)}, '["pair"]'),
        ({"ids": {1: "one"}}, '["ids"]'),
    ]
    for state, path in bad:
        try:
            session.store.save("conformance strict", state)
        except StateNotJSONError as exc:
            _expect(exc.device == "conformance strict", f"the error names {exc.device!r}")
            _expect(path in str(exc), f"the error {exc} does not name {path}")
        else:
            raise AssertionError(f"saving {state!r} must raise StateNotJSONError")
    if hasattr(session.store, "save_many"):
        try:
            session.store.save_many({"conformance strict": {"ok": 2}, "conformance bad": bad[0][0]})
        except StateNotJSONError:
            pass
        else:
            raise AssertionError("save_many with a non-JSON state must raise")
        _expect(session.store.load("conformance bad") is None, "a rejected batch was half written")
    _expect(
        session.store.load("conformance strict") == {"ok": 1}, "a rejected save changed the key"
    )


def _forgets(session: _Session) -> None:
    session.store.save("conformance null", {"a": 1})
    _expect(session.store.load("conformance null") is None, "this store promised to keep nothing")
