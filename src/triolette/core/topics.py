"""The MQTT topic layout of a bridge, the rules for the names in it, and error report bodies.

| topic                        | payload                         | retained |
|------------------------------|---------------------------------|----------|
| ``{p}/{device}/state``       | JSON object                     | yes      |
| ``{p}/{device}/availability``| ``online`` / ``offline``        | yes      |
| ``{p}/status``               | ``online``, heartbeat, ``offline`` (also the will) | yes |
| ``{p}/{device}/error``, ``{p}/error`` | JSON error             | no       |
| ``{p}/{device}/set``         | command payload (inbound)       | -        |

A *root* entity (registered without a name) has no device level: ``{p}/state``,
``{p}/availability``, ``{p}/set``, and its errors go to ``{p}/error``. The status topic
``{p}/status`` stays the app's.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from triolette.core.errors import RegistrationError

ONLINE = "online"
OFFLINE = "offline"

MAX_TOPIC_BYTES = 65_535
"""MQTT's limit on a topic, in bytes of UTF-8."""
MAX_NAME_BYTES = (MAX_TOPIC_BYTES - len("//availability")) // 2
"""A name's limit: then any prefix and any device name fit, ``{p}/{device}/availability``
being the longest topic built from them."""

_FORBIDDEN = {
    "+": "an MQTT wildcard",
    "#": "an MQTT wildcard",
    "/": "which would add a topic level",
    "\0": "a NUL character",
}


def check_name(name: object, what: str = "device name") -> str:
    """Return ``name`` if it can be a prefix or device level of topics, else raise.

    The rules of :func:`check_level`, and no ``$`` in front: MQTT keeps topics starting with
    ``$`` for the broker, and a name can be the prefix (the app name is, unless another is
    given). Raises ``RegistrationError`` (also a ``ValueError``) naming the offender; a
    non-``str`` is a ``TypeError``.
    """
    level = check_level(name, what)
    if level.startswith("$"):
        raise RegistrationError(
            f"{what} {_shown(level)} starts with '$', which MQTT keeps for the broker's topics"
        )
    return level


RESERVED_FIRST_LEVEL = "triolette"
"""The first level of the store keys triolette keeps for itself (``triolette/undelivered``)."""


class RoutedName(str):
    """A device name a router's prefix made: ``prefix/name``, one topic level per part."""

    __slots__ = ()


def check_entity_name(name: object, what: str = "device name") -> str:
    """Return ``name`` if it can name a device, else raise ``RegistrationError``.

    One level (:func:`check_name`); a :class:`RoutedName` (made by ``App.include_router``)
    may hold several, each a valid name, its first one not ``triolette`` (reserved).
    """
    if not isinstance(name, RoutedName):
        return check_name(name, what)
    levels = name.split("/")
    for level in levels:
        check_name(level, f"level of {what} {_shown(str(name))}:")
    if levels[0] == RESERVED_FIRST_LEVEL:
        raise RegistrationError(
            f"{what} {_shown(str(name))} starts with {RESERVED_FIRST_LEVEL!r}, which triolette "
            "keeps for its own store keys; choose another router prefix"
        )
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise RegistrationError(f"{what} {_shown(str(name))} is too long ({size} bytes)")
    return name


def check_level(level: object, what: str = "topic level") -> str:
    """Return ``level`` if it can be one MQTT topic level that every broker accepts, else raise.

    One level (no ``/``) and no wildcard (``+``, ``#``); not empty, no surrounding spaces;
    text a broker takes rather than dropping the connection: encodable as UTF-8 (no lone
    surrogate), no control characters (C0 with NUL, DEL, C1) and no Unicode non-characters;
    at most :data:`MAX_NAME_BYTES` bytes of UTF-8. Raises ``RegistrationError`` (also a
    ``ValueError``) naming the offender with ``repr``, so invisible characters show; a
    non-``str`` is a ``TypeError``.
    """
    if not isinstance(level, str):
        raise TypeError(f"{what} must be a str, got {level!r}")
    for char in level:
        reason = _refusal(char)
        if reason is not None:
            raise RegistrationError(f"{what} {_shown(level)} contains {char!r}, {reason}")
    if not level or level != level.strip():
        raise RegistrationError(f"{what} {_shown(level)} is empty or has surrounding spaces")
    size = len(level.encode())
    if size > MAX_NAME_BYTES:
        raise RegistrationError(
            f"{what} {_shown(level)} is {size} bytes of UTF-8; at most {MAX_NAME_BYTES} fit "
            f"in an MQTT topic ({MAX_TOPIC_BYTES} bytes) with the prefix and a device name"
        )
    return level


def _refusal(char: str) -> str | None:
    """Why ``char`` cannot be in a topic (MQTT 3.1.1 section 1.5.3, as mosquitto checks it)."""
    code = ord(char)
    if char in _FORBIDDEN:
        return _FORBIDDEN[char]
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "a control character"
    if 0xD800 <= code <= 0xDFFF:
        return "a lone surrogate, which UTF-8 cannot encode"
    if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
        return "a Unicode non-character"
    return None


def _shown(name: str) -> str:
    """``repr(name)``, shortened when long: an error message stays one readable line."""
    if len(name) <= 60:
        return repr(name)
    return f"{name[:40]!r}... ({len(name)} characters)"


@attrs.frozen
class Topics:
    """Topic names under one prefix (the app name unless configured).

    ``root`` is the root entity's name, if the app has one: its topics have no device level.
    """

    prefix: str
    root: str | None = None

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def app_error(self) -> str:
        return f"{self.prefix}/error"

    def base(self, device: str) -> str:
        """The topics of ``device`` start with this: ``{p}/{device}``, or ``{p}`` for root."""
        return self.prefix if device == self.root else f"{self.prefix}/{device}"

    def state(self, device: str) -> str:
        return f"{self.base(device)}/state"

    def availability(self, device: str) -> str:
        return f"{self.base(device)}/availability"

    def error(self, device: str) -> str:
        return f"{self.base(device)}/error"

    def command(self, device: str) -> str:
        return f"{self.base(device)}/set"

    def under(self, device: str, suffix: str) -> str:
        """``{p}/{device}/{suffix}``; a root entity's ``status`` is refused (the app's)."""
        if device == self.root and suffix.split("/")[0] == "status":
            raise ValueError(
                f"{device}: a root entity cannot publish under {self.status}, the app's status"
            )
        return f"{self.base(device)}/{suffix}"

    def device_of_command(self, topic: str) -> str | None:
        """The device a ``{p}/{device}/set`` (or root ``{p}/set``) topic addresses, or ``None``.

        ``device`` may span levels (a router's prefix): routing decides if it exists.
        """
        head = f"{self.prefix}/"
        if topic == f"{head}set":
            return self.root
        if not topic.startswith(head) or not topic.endswith("/set"):
            return None
        device = topic[len(head) : -len("/set")]
        return device or None


def new_error_id() -> str:
    """A fresh correlation id for one error report: 12 hex digits, also in its log line."""
    return secrets.token_hex(6)


def error_body(
    error: BaseException,
    device: str | None,
    when: datetime | None = None,
    *,
    error_type: str = "error",
    error_id: str | None = None,
    message: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON body of an error report, as compact JSON.

    ``type`` (the exception's class name), ``error_type`` (a label, ``"error"`` unless the
    app maps the class to another), ``message`` (``str(error)`` unless given), ``device``
    (``null`` for the app), ``timestamp`` (ISO-8601 UTC), ``id`` (the correlation id of the
    log line) and ``details`` (``{}``, or ``{"count", "first_seen"}`` for a reminder).
    """
    when = when or datetime.now(UTC)
    return json.dumps(
        {
            "type": type(error).__name__,
            "error_type": error_type,
            "message": str(error) if message is None else message,
            "device": device,
            "timestamp": when.isoformat(timespec="milliseconds"),
            "id": error_id or new_error_id(),
            "details": dict(details or {}),
        },
        separators=(",", ":"),
    ).encode()
