"""Health-checked adapters: probed at start and periodically; their devices offline while unhealthy.

An adapter with ``async def health_check(self) -> bool`` is :class:`HealthCheckable`. It is
probed once before any device starts, then every ``interval`` seconds. A probe that returns
false, raises, or takes longer than half the interval counts as unhealthy. While an adapter is
unhealthy, every device whose handler takes its port is held offline (``health:<port>``);
the first healthy probe brings them back. Each episode is one WARNING and one INFO line.

An adapter failing ``after_failures`` probes in a row is restarted, in a nursery the checker
owns, by :mod:`triolette.runtime.adapter_restarts`; it is not probed meanwhile and its
devices stay offline (state ``restarting``). The device actors keep running: their handlers
ask the scope for the adapter on each call, so the next call after the restart gets the new
instance (a call during the restart gets the old one, and its error is reported as usual).
A restart that fails is logged (ERROR) and counts all the same. Once ``max_restarts`` are
spent, one CRITICAL line: the adapter is no longer probed and its devices stay offline
(state ``failed``). An adapter that cannot be restarted gets one WARNING per episode.
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
from triolette.runtime.adapter_restarts import (
    RestartCount,
    RestartPolicy,
    restart,
    why_not_restartable,
)
from triolette.runtime.adapters import Adapters, LiveAdapter, live_adapter

logger = logging.getLogger("triolette.health")

HEALTHY = "ok"
UNHEALTHY = "unhealthy"


@runtime_checkable
class HealthCheckable(Protocol):
    """An adapter that can tell whether it works: ``async def health_check() -> bool``."""

    async def health_check(self) -> bool: ...


RESTARTING = "restarting"
FAILED = "failed"


@attrs.define
class _Probe:
    adapter: Any
    dependents: tuple[str, ...]
    asyncio: bool = False
    live: LiveAdapter | None = None
    streams: tuple[str, ...] = ()
    """The streams reading from it: they hold the instance, so it is not restarted."""
    count: RestartCount = attrs.Factory(RestartCount)


class HealthChecks:
    """Probes the health-checkable adapters of one serve; ``states`` by port name.

    With ``interval`` ``None`` nothing is probed.
    """

    def __init__(
        self,
        availability: Availability,
        interval: float | None,
        restarts: RestartPolicy | None = None,
    ) -> None:
        self._availability = availability
        self.interval = interval
        self.restarts = restarts or RestartPolicy(after_failures=0)
        self._probes: dict[str, _Probe] = {}
        self.states: dict[str, str] = {}
        self._scope = Scope()
        self._restarting: trio.Nursery | None = None

    def add(
        self,
        port: str,
        adapter: Any,
        dependents: Iterable[str],
        *,
        asyncio: bool = False,
        live: LiveAdapter | None = None,
        streams: Iterable[str] = (),
    ) -> None:
        """Probe ``adapter`` (known as ``port``); ``dependents`` go offline while unhealthy.
        ``live`` is how it was entered (restarted by exit and enter), if it was; the
        ``streams`` reading from it keep it from being restarted."""
        self._probes[port] = _Probe(adapter, tuple(dependents), asyncio, live, tuple(streams))

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
        streams = dependents_by_port({s.name: [s.stream.port] for s in specs if s.stream})
        self._scope = scope
        for port in adapters.ports:
            instance = scope.find(port)
            if isinstance(instance, HealthCheckable):
                self.add(
                    port_name(port),
                    instance,
                    dependents.get(port, []),
                    asyncio=adapters.is_asyncio(port),
                    live=live_adapter(scope, port),
                    streams=streams.get(port, []),
                )

    def __bool__(self) -> bool:
        return bool(self._probes)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe every adapter now, report started, then probe every ``interval`` seconds.

        Runs until cancelled; probes run concurrently, each bounded. Restarts run in a
        nursery of this task, so they end with it.
        """
        interval = self.interval
        assert interval is not None
        async with trio.open_nursery() as self._restarting:
            await self.probe_all(interval / 2)
            task_status.started()
            while True:
                await trio.sleep(interval)
                await self.probe_all(interval / 2)

    async def probe_all(self, bound: float) -> None:
        """Probe every adapter at once, each for at most ``bound`` seconds."""
        async with trio.open_nursery() as probes:
            for port, probe in self._probes.items():
                if self.states.get(port) not in (RESTARTING, FAILED):
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
        self._count(port, probe, healthy)

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

    def _count(self, port: str, probe: _Probe, healthy: bool) -> None:
        """Count the probe; restart the adapter when it failed enough in a row."""
        policy, count, now = self.restarts, probe.count, trio.current_time()
        if healthy:
            count.failures, count.warned = 0, False
            if count.healthy_since is None:
                count.healthy_since = now
            elif count.restarts and now - count.healthy_since >= policy.sustained_health_reset:
                count.restarts = 0
                logger.info("adapter %s has been healthy long enough: restarts count anew", port)
            return
        count.failures += 1
        count.healthy_since = None
        if not policy.enabled or count.failures < policy.after_failures:
            return
        why_not = (
            f"stream {', '.join(probe.streams)} reads from it"
            if probe.streams
            else why_not_restartable(probe.adapter, probe.live)
        )
        if why_not is not None:
            if not count.warned:
                count.warned = True
                logger.warning("adapter %s is not restarted: %s", port, why_not)
            return
        if count.restarts >= policy.max_restarts:
            self.states[port] = FAILED
            logger.critical(
                "adapter %s failed again after %d restarts: %s offline for good",
                port,
                count.restarts,
                _names(probe),
            )
            return
        count.restarts += 1
        count.failures = 0
        self.states[port] = RESTARTING
        assert self._restarting is not None
        self._restarting.start_soon(self._restart, port, probe)

    async def _restart(self, port: str, probe: _Probe) -> None:
        """Restart one adapter; an error is logged, and the next probe decides its health."""
        policy, count = self.restarts, probe.count
        logger.warning(
            "restarting adapter %s (%d of %d): %s offline meanwhile",
            port,
            count.restarts,
            policy.max_restarts,
            _names(probe),
        )
        assert self.interval is not None
        try:
            probe.adapter = await restart(
                probe.adapter,
                probe.live,
                self._scope,
                cooldown=policy.cooldown,
                bound=self.interval,
                asyncio=probe.asyncio,
            )
        except Exception:
            logger.exception("adapter %s: the restart failed", port)
        else:
            logger.info("adapter %s restarted", port)
        self.states[port] = UNHEALTHY


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
