"""The closed vocabularies of a registration: device kinds, restart types, escalations.

Users pass restart types and escalations as plain strings (``restart="permanent"``); the
``Literal`` types let a type checker catch a typo, and registration refuses one at run time.
"""

from __future__ import annotations

import enum
from typing import Literal, get_args


class DeviceKind(enum.Enum):
    """How a device's handler is driven: one actor loop per kind."""

    TELEMETRY = "telemetry"
    """Polled: the framework calls the handler every ``interval`` seconds."""
    DEVICE = "device"
    """Runs its own loop; restarted when it crashes."""
    COMMAND = "command"
    """Called once per inbound message on its command topic."""
    STREAM = "stream"
    """Reads the items an adapter pushes (a ``Stream[T]``)."""

    @property
    def takes_commands(self) -> bool:
        return self in (DeviceKind.DEVICE, DeviceKind.COMMAND)


Restart = Literal["permanent", "transient", "temporary"]
"""``transient``: restarted after a crash; ``permanent``: after any end; ``temporary``: never."""
RESTART_TYPES: tuple[Restart, ...] = get_args(Restart)

Escalate = Literal["app", "device"]
"""What a restart past the limit stops: the whole app, or only the device."""
ESCALATIONS: tuple[Escalate, ...] = get_args(Escalate)
