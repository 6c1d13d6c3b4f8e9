"""What the telemetry scheduling options keep for one serve, across restarts of a device.

The trigger request slots (fed by ``{prefix}/{name}/set`` and :meth:`App.trigger`), the
circuit breaker states and the turns of each group belong to the serve, not to a device's
actor: a restarted device finds its pending trigger, its open circuit and its group as they
were. :meth:`Scheduling.parts_for` hands them to each new telemetry actor.
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio

from triolette.actors.cron_ticks import CronTicks
from triolette.actors.groups import GroupTurns
from triolette.actors.mqtt import MqttActor
from triolette.actors.spec import DeviceSpec
from triolette.actors.triggers import Trigger, TriggerPayload
from triolette.core.breaker import Circuit
from triolette.core.messages import Message


class Scheduling:
    """Trigger slots, circuits and group turns of the ``specs`` of one serve.

    Made inside the serve's trio run (it remembers the run, for :meth:`request`).
    """

    def __init__(self, specs: list[DeviceSpec], mqtt: MqttActor) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self.triggers = {s.name: self._open_trigger(s, mqtt) for s in specs if s.triggers}
        self.circuits = {s.name: Circuit(s.circuit_breaker) for s in specs if s.circuit_breaker}
        self.groups = {
            group: GroupTurns({s.name: i for i, s in enumerate(specs) if s.group == group})
            for group in {s.group for s in specs if s.group is not None}
        }

    def parts_for(self, spec: DeviceSpec) -> dict[str, Any]:
        """The keyword arguments of a new telemetry actor for ``spec`` (none for others)."""
        parts: dict[str, Any] = {}
        if spec.schedule is not None:
            parts["ticks"] = CronTicks(spec.schedule, spec.name)
        if spec.name in self.triggers:
            parts["trigger"] = self.triggers[spec.name]
        if spec.name in self.circuits:
            parts["circuit"] = self.circuits[spec.name]
        if spec.group is not None:
            parts["group"] = self.groups[spec.group]
        return parts

    def circuit_states(self) -> dict[str, str]:
        return {name: circuit.state.value for name, circuit in self.circuits.items()}

    def request(self, device: str, payload: str | bytes) -> None:
        """Request a local trigger of ``device``; from any thread, never blocking.

        From another thread it is handed to the serve's trio run, and dropped if that run
        has ended. A device without a local trigger slot ignores it.
        """
        try:
            here = trio.lowlevel.current_trio_token() is self._token
        except RuntimeError:  # not in a trio run: another thread
            here = False
        if here:
            self._fire_local(device, payload)
            return
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._fire_local, device, payload)

    def _fire_local(self, device: str, payload: str | bytes) -> None:
        trigger = self.triggers.get(device)
        if trigger is not None:  # never raises: it may run as a callback of the trio run
            trigger.fire(TriggerPayload.of("local", payload))

    @staticmethod
    def _open_trigger(spec: DeviceSpec, mqtt: MqttActor) -> Trigger:
        """The trigger slot of ``spec``, fed by ``{prefix}/{name}/set`` if it takes "mqtt"."""
        trigger = Trigger(spec.min_interval)
        if "mqtt" in spec.triggers:

            def deliver(message: Message) -> bool:
                trigger.fire(TriggerPayload.of("mqtt", message.payload))
                return True

            mqtt.route(spec.name, deliver)
        return trigger
