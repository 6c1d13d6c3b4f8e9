"""Health-checked adapters: probed at start and periodically; their devices offline while unhealthy.

An adapter with ``async def health_check(self) -> bool`` is :class:`HealthCheckable`. It is
probed once before any device starts, then every ``interval`` seconds. A probe that returns
false, raises, or takes longer than half the interval counts as unhealthy. While an adapter is
unhealthy, every device whose handler takes its port is held offline (``health:<port>``);
the first healthy probe brings them back. Each episode is one WARNING and one INFO line.
Adapters are not restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from triolette.actors.spec import DeviceSpec
from triolette.actors.stream import port_name
from triolette.core.availability import Availability
from triolette.core.scope import Scope
from triolette.runtime.adapters import Adapters

logger = logging.getLogger("triolette.health")

HEALTHY = "ok"
UNHEALTHY = "unhealthy"


@runtime_checkable
class HealthCheckable(Protocol):
    """An adapter that can tell whether it works: ``async def health_check() -> bool``."""

    async def health_check(self) -> bool: ...


@attrs.define
class _Probe:
    adapter: Any
    dependents: tuple[str, ...]
    asyncio: bool = False


class HealthChecks:
    """Probes the health-checkable adapters of one serve; ``states`` by port name.

    With ``interval`` ``None`` nothing is probed.
    """

    def __init__(self, availability: Availability, interval: float | None) -> None:
        self._availability = availability
        self.interval = interval
        self._probes: dict[str, _Probe] = {}
        self.states: dict[str, str] = {}

    def add(
        self, port: str, adapter: Any, dependents: Iterable[str], *, asyncio: bool = False
    ) -> None:
        """Probe ``adapter`` (known as ``port``); ``dependents`` go offline while unhealthy."""
        self._probes[port] = _Probe(adapter, tuple(dependents), asyncio)

    def add_adapters(self, adapters: Adapters, specs: Iterable[DeviceSpec], scope: Scope) -> None:
        """Probe each health-checkable adapter in ``scope``; a device depends on the ports its
        handler takes (a stream also on its port)."""
        if self.interval is None:
            return
        asked = {
            spec.name: [need.annotation for need in spec.needs]
            + ([spec.stream.port] if spec.stream else [])
            for spec in specs
        }
        dependents = dependents_by_port(asked)
        for port in adapters.ports:
            instance = scope.find(port)
            if isinstance(instance, HealthCheckable):
                asyncio = adapters.is_asyncio(port)
                self.add(port_name(port), instance, dependents.get(port, []), asyncio=asyncio)

    def __bool__(self) -> bool:
        return bool(self._probes)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe every adapter now, report started, then probe every ``interval`` seconds.

        Runs until cancelled; probes run concurrently, each bounded.
        """
        interval = self.interval
        assert interval is not None
        await self.probe_all(interval / 2)
        task_status.started()
        while True:
            await trio.sleep(interval)
            await self.probe_all(interval / 2)

    async def probe_all(self, bound: float) -> None:
        """Probe every adapter at once, each for at most ``bound`` seconds."""
        async with trio.open_nursery() as probes:
            for port, probe in self._probes.items():
                probes.start_soon(self._probe, port, probe, bound)

    async def _probe(self, port: str, probe: _Probe, bound: float) -> None:
        healthy, why = False, f"no answer within {bound:g} s"
        with trio.move_on_after(bound):
            try:
                healthy = bool(await self._ask(probe))
                why = "health_check() returned false"
            except Exception as error:
                why = f"health_check() raised {type(error).__name__}: {error}"
        self._set(port, probe, healthy, why)

    @staticmethod
    async def _ask(probe: _Probe) -> Any:
        if probe.asyncio:
            import trio_asyncio

            return await trio_asyncio.aio_as_trio(probe.adapter.health_check)()
        return await probe.adapter.health_check()

    def _set(self, port: str, probe: _Probe, healthy: bool, why: str) -> None:
        before = self.states.get(port)
        self.states[port] = HEALTHY if healthy else UNHEALTHY
        hold = f"health:{port}"
        if healthy:
            for device in probe.dependents:
                self._availability.release(device, hold)
            if before == UNHEALTHY:
                logger.info("adapter %s is healthy again: %s online", port, _names(probe))
            return
        for device in probe.dependents:
            self._availability.hold(device, hold)
        if before != UNHEALTHY:
            logger.warning("adapter %s is unhealthy (%s): %s offline", port, why, _names(probe))


def dependents_by_port(needs: Mapping[str, Iterable[Any]]) -> dict[Any, list[str]]:
    """Ports by what each device asks for: ``needs`` maps a device to its annotations."""
    found: dict[Any, list[str]] = {}
    for device, asked in needs.items():
        for annotation in asked:
            try:
                found.setdefault(annotation, []).append(device)
            except TypeError:  # an unhashable annotation
                continue
    return found


def _names(probe: _Probe) -> str:
    return ", ".join(probe.dependents) or "no device"
