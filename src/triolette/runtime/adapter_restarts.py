"""Restarting a health-checked adapter that keeps failing its probes.

After ``after_failures`` failed probes in a row, :class:`~.health_checks.HealthChecks` restarts
the adapter, if it is restartable:

- an async context manager is exited, ``cooldown`` seconds pass, then a new instance is built
  and entered, and provided under its port in place of the old one (handlers ask the scope
  on each call, so their next call gets the new instance);
- an adapter with a ``reset()`` method (sync or async) gets ``cooldown``, then ``reset()``;
- an adapter with ``restartable = False``, or neither of the above, is not restarted.

Each attempt counts against ``max_restarts``; the count goes back to zero after
``sustained_health_reset`` seconds of health. Exiting, entering and resetting are each bounded;
their errors are raised to the caller (which logs them).
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import attrs
import trio

from triolette.core.errors import RegistrationError
from triolette.core.scope import Scope
from triolette.runtime.adapters import LiveAdapter

logger = logging.getLogger("triolette.health")


@attrs.frozen
class RestartPolicy:
    """When an unhealthy adapter is restarted; ``after_failures`` 0 means never."""

    after_failures: int = 5
    max_restarts: int = 3
    cooldown: float = 5.0
    sustained_health_reset: float = 300.0

    @classmethod
    def checked(
        cls, after_failures: int, max_restarts: int, cooldown: float, sustained_health_reset: float
    ) -> RestartPolicy:
        """The policy of the ``App`` options; a RegistrationError naming a bad one."""
        return cls(
            _count("restart_after_failures", after_failures),
            _count("max_restarts", max_restarts),
            _seconds("restart_cooldown", cooldown),
            _seconds("sustained_health_reset", sustained_health_reset),
        )

    @property
    def enabled(self) -> bool:
        return self.after_failures > 0


@attrs.define
class RestartCount:
    """One adapter's failed probes in a row, restarts, and since when it is healthy."""

    failures: int = 0
    restarts: int = 0
    healthy_since: float | None = None
    warned: bool = False
    """Whether this unhealthy episode was told the adapter cannot be restarted."""


def why_not_restartable(adapter: Any, live: LiveAdapter | None) -> str | None:
    """Why ``adapter`` cannot be restarted, or ``None`` when it can."""
    if getattr(adapter, "restartable", True) is False:
        return "it sets restartable = False"
    if live is not None and live.context_manager:
        return None
    if callable(getattr(adapter, "reset", None)):
        return None
    return "it is neither an async context manager nor has a reset() method"


async def restart(
    adapter: Any,
    live: LiveAdapter | None,
    scope: Scope,
    *,
    cooldown: float,
    bound: float,
    asyncio: bool = False,
) -> Any:
    """Restart ``adapter`` (see the module); return the instance handlers get from now on.

    An error exiting the old instance (or more than ``bound`` seconds) is logged and the new
    one entered all the same; an error entering or resetting propagates, and so does
    ``trio.TooSlowError`` when that takes longer than ``bound``. Cancellation propagates.
    """
    if live is None or not live.context_manager:
        await trio.sleep(cooldown)
        with trio.fail_after(bound):
            await _reset(adapter, asyncio)
        return adapter
    try:
        with trio.fail_after(bound):
            await live.exit()
    except Exception:  # the old one is given up either way: the new one is entered
        logger.exception("%s: error while exiting it for a restart", live.what)
    await trio.sleep(cooldown)
    with trio.fail_after(bound):
        instance = await live.enter()
    scope.replace(live.port, instance)
    return instance


async def _reset(adapter: Any, asyncio: bool) -> None:
    reset = adapter.reset
    if asyncio and inspect.iscoroutinefunction(reset):
        import trio_asyncio

        await trio_asyncio.aio_as_trio(reset)()
        return
    result = reset()
    if inspect.isawaitable(result):
        await result


def _count(option: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise RegistrationError(f"{option} must be a whole number >= 0, got {value!r}")


def _seconds(option: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise RegistrationError(f"{option} must be a positive number of seconds, got {value!r}")
