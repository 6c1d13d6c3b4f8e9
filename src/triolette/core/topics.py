"""The MQTT topic layout of a bridge, and the JSON bodies of its error reports.

| topic                        | payload                         | retained |
|------------------------------|---------------------------------|----------|
| ``{p}/{device}/state``       | JSON object                     | yes      |
| ``{p}/{device}/availability``| ``online`` / ``offline``        | yes      |
| ``{p}/status``               | ``online``, heartbeat, ``offline`` (also the will) | yes |
| ``{p}/{device}/error``, ``{p}/error`` | JSON error             | no       |
| ``{p}/{device}/set``         | command payload (inbound)       | -        |
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs

from triolette.core.errors import RegistrationError

ONLINE = "online"
OFFLINE = "offline"

_FORBIDDEN = {"+": "an MQTT wildcard", "#": "an MQTT wildcard", "\0": "a NUL character"}


def check_name(name: object, what: str = "device name") -> str:
    """Return ``name`` if it can be one MQTT topic level, else raise ``RegistrationError``.

    The error (also a ``ValueError``) names the offender; a non-``str`` is a ``TypeError``.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {name!r}")
    if not name or name != name.strip():
        raise RegistrationError(f"{what} {name!r} is empty or has surrounding spaces")
    for char, reason in _FORBIDDEN.items():
        if char in name:
            raise RegistrationError(f"{what} {name!r} contains {char!r}, {reason}")
    if "/" in name:
        raise RegistrationError(f"{what} {name!r} contains '/', which would add a topic level")
    return name


@attrs.frozen
class Topics:
    """Topic names under one prefix (the app name unless configured)."""

    prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def app_error(self) -> str:
        return f"{self.prefix}/error"

    def state(self, device: str) -> str:
        return f"{self.prefix}/{device}/state"

    def availability(self, device: str) -> str:
        return f"{self.prefix}/{device}/availability"

    def error(self, device: str) -> str:
        return f"{self.prefix}/{device}/error"

    def command(self, device: str) -> str:
        return f"{self.prefix}/{device}/set"

    def device_of_command(self, topic: str) -> str | None:
        """The device a ``{p}/{device}/set`` topic addresses, or ``None``."""
        head, _, rest = topic.partition("/")
        device, _, tail = rest.partition("/")
        if head != self.prefix or tail != "set" or not device:
            return None
        return device


def error_body(error: BaseException, device: str | None, when: datetime | None = None) -> bytes:
    """The JSON body of an error report: type, message, device and an ISO-8601 UTC timestamp."""
    when = when or datetime.now(UTC)
    return json.dumps(
        {
            "type": type(error).__name__,
            "message": str(error),
            "device": device,
            "timestamp": when.isoformat(timespec="milliseconds"),
        },
        separators=(",", ":"),
    ).encode()
