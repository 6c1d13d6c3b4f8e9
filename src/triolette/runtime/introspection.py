"""What an app tells about its registrations before it runs: the introspection properties.

:class:`Introspection` reads a :class:`~triolette.runtime.registry.Registry` (``self.registry``)
and lists its registrations by kind, the names taken and the root entity, as a cosalette
bridge's own tests read them. No trio here.
"""

from __future__ import annotations

from triolette.core.kinds import DeviceKind
from triolette.runtime.registration import Registration
from triolette.runtime.registry import Registry


class Introspection:
    """Read-only views of ``self.registry``; each list is a snapshot (a tuple)."""

    registry: Registry

    @property
    def device_names(self) -> list[str]:
        """The devices every serve has, whatever the settings, in registration order."""
        return self.registry.fixed_names

    @property
    def has_telemetry(self) -> bool:
        return any(r.kind is DeviceKind.TELEMETRY for r in self.registry.registrations)

    @property
    def devices(self) -> tuple[Registration, ...]:
        """The ``@app.device`` registrations (``.name``, ``.func``, ``.init``...)."""
        return self._registrations(DeviceKind.DEVICE)

    @property
    def telemetry_registrations(self) -> tuple[Registration, ...]:
        """The ``@app.telemetry`` registrations (``.interval`` as given)."""
        return self._registrations(DeviceKind.TELEMETRY)

    @property
    def commands(self) -> tuple[Registration, ...]:
        """The ``@app.command`` registrations."""
        return self._registrations(DeviceKind.COMMAND)

    @property
    def registered_names(self) -> frozenset[str]:
        """Every name taken before a serve (names from a ``name=`` callable come later)."""
        return self.registry.names

    @property
    def root_names(self) -> frozenset[str]:
        """The root entity's name, if there is one (an app has at most one)."""
        return frozenset(r.name for r in self.registry.registrations if r.is_root)

    @property
    def has_dynamic_entities(self) -> bool:
        """Whether the settings decide some devices (a ``name=``/``enabled=`` callable)."""
        return self.registry.has_dynamic

    def _registrations(self, kind: DeviceKind) -> tuple[Registration, ...]:
        return tuple(r for r in self.registry.registrations if r.kind is kind)
