"""The strict JSON codec for device state.

State is a ``dict`` whose values are ``None``, ``bool``, ``int``, finite ``float``, ``str``,
``list`` or ``dict`` with ``str`` keys, nested freely. Anything else (a tuple, a datetime, NaN, a
non-string key, a lone surrogate) would come back different after a restart, so it is refused
up front with an error that names the device and the path inside its state.
"""

from __future__ import annotations

import json
import math
from typing import Any

from triolette.core.errors import StateNotJSONError

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _refuse(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# JSONEncoder.encode builds a new C encoder on every call; one built once halves the cost of a
# small state's encode. Same output: no indent, "," and ":" separators, NaN refused.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (
    _c_make_encoder(
        None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _c_make_encoder is not None
    else None
)


def _encode(state: object) -> str:
    if _c_encode is None:
        return _encoder.encode(state)
    return "".join(_c_encode(state, 0))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return value


# Checks texts this module just encoded from a dict, which cannot repeat a key.
_decoder = json.JSONDecoder(parse_constant=_reject_constant)
# Reads stored texts: a repeated key means an edit or damage that already dropped one value
# (json keeps the last), at any depth; it is refused like any other damage.
_strict_decoder = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_object_without_repeats
)


def encode_state(device: str, state: object) -> str:
    """Return the compact JSON text of ``state``, or raise :class:`StateNotJSONError`.

    The fast path is the C encoder plus one decode to compare; the precise walk that names the
    offending path only runs when that check fails.
    """
    try:
        text = _encode(state)
        text.encode("utf-8")
        ok = isinstance(state, dict) and (_flat(state) or _decoder.decode(text) == state)
    except (TypeError, ValueError, RecursionError):
        ok = False
    if not ok:
        path, problem = _find_problem(state)
        raise StateNotJSONError(device, path, problem)
    return text


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flat(state: dict[Any, Any]) -> bool:
    """Whether every key is a ``str`` and every value an exact scalar type.

    Such a state needs no decode to compare: the encoder already refused NaN and infinities,
    and the UTF-8 check lone surrogates, so its text decodes to an equal dict.
    """
    return all(type(key) is str and type(value) in _SCALARS for key, value in state.items())


def check_key(key: object) -> str:
    """Return ``key`` if it can name a device in every backend; raise ``TypeError`` if not.

    A key is a non-empty string that encodes as UTF-8 (no lone surrogates).
    """
    if isinstance(key, str) and key:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return key
    raise TypeError(f"store keys are non-empty Unicode strings, got {key!r}")


def decode_state(text: str) -> dict[str, Any]:
    """Parse one device's state; raise ``ValueError`` unless it is a strict JSON object
    with no key repeated in any of its objects."""
    value = _strict_decoder.decode(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {_kind(value)}")
    return value


def decode_document(text: str) -> dict[str, dict[str, Any]]:
    """Parse a whole store document ``{device: state}``; raise ``ValueError`` on any defect,
    a device or a key inside a state written twice included."""
    value = _strict_decoder.decode(text)
    if not isinstance(value, dict):
        raise ValueError(f"the top level is {_kind(value)}, not an object of devices")
    for key, state in value.items():
        if not isinstance(state, dict):
            raise ValueError(f"the entry {key!r} is {_kind(state)}, not an object")
    return value


def _kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _a(kind: type) -> str:
    name = kind.__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _find_problem(root: object) -> tuple[str, str]:
    """Walk ``root`` and describe the first value that JSON would not give back unchanged."""
    if not isinstance(root, dict):
        return "", f"state is {_a(type(root))}, not a dict"
    on_path: set[int] = set()

    def walk(value: object, path: str) -> tuple[str, str] | None:
        kind = type(value)
        if value is None or kind is bool or kind is int:
            return None
        if isinstance(value, str) and kind is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path, "is a string holding a lone surrogate"
            return None
        if isinstance(value, float) and kind is float:
            return None if math.isfinite(value) else (path, f"is {value!r}, which JSON cannot hold")
        if (isinstance(value, list) and kind is list) or (isinstance(value, dict) and kind is dict):
            if id(value) in on_path:
                return path, "contains itself"
            on_path.add(id(value))
            found = walk_items(value, path)
            on_path.discard(id(value))
            return found
        return path, f"is {_a(kind)}"

    def walk_items(
        container: list[object] | dict[object, object], path: str
    ) -> tuple[str, str] | None:
        if isinstance(container, list):
            items = [(f"{path}[{index}]", item) for index, item in enumerate(container)]
        else:
            items = []
            for key, item in container.items():
                if type(key) is not str:
                    return path, f"has the key {key!r}, {_a(type(key))}, not a str"
                items.append((f"{path}[{json.dumps(key, ensure_ascii=False)}]", item))
        for item_path, item in items:
            found = walk(item, item_path)
            if found:
                return found
        return None

    return walk(root, "") or ("", "is not valid JSON state")
