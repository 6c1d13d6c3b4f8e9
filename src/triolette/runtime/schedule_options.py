"""The scheduling options of a registration, checked: each error names the device.

``interval`` or ``schedule``, publish strategies, retries, the circuit breaker, triggers and
groups become plain :class:`~triolette.actors.spec.DeviceSpec` fields here. Only options that
differ from the default are returned, so other registrations build the spec they always did.
"""

from __future__ import annotations

import math
from typing import Any

from triolette.actors.spec import PUBLISH_CHOICES
from triolette.core.breaker import CircuitBreaker
from triolette.core.cron import CronSchedule
from triolette.core.errors import RegistrationError
from triolette.core.kinds import DeviceKind
from triolette.core.retry import RetryPolicy
from triolette.core.strategies import PublishStrategy

TRIGGERABLE: dict[object, frozenset[str]] = {
    False: frozenset(),
    True: frozenset({"mqtt"}),
    "mqtt": frozenset({"mqtt"}),
    "local": frozenset({"local"}),
    "both": frozenset({"mqtt", "local"}),
}


def schedule_options(device: str, kind: DeviceKind, **given: Any) -> dict[str, Any]:
    """The spec fields for ``given`` (the keyword options of the decorator).

    Raises :class:`~triolette.RegistrationError` naming ``device`` for any bad option.
    """
    try:
        return _options(device, kind, **given)
    except RegistrationError:
        raise
    except (TypeError, ValueError) as error:
        raise RegistrationError(f"{device}: {error}") from None


def _options(
    device: str,
    kind: DeviceKind,
    *,
    interval: float | None = None,
    publish: object = "now",
    schedule: CronSchedule | str | None = None,
    group: str | None = None,
    retry: int = 0,
    retry_on: Any = None,
    backoff: Any = None,
    circuit_breaker: CircuitBreaker | None = None,
    triggerable: bool | str = False,
    min_interval: float | None = None,
) -> dict[str, Any]:
    telemetry = kind is DeviceKind.TELEMETRY
    options: dict[str, Any] = {}
    policy = RetryPolicy.from_options(retry, retry_on, backoff)
    if policy is not None:
        options["retry"] = policy
    if not telemetry:
        return options
    if interval is None and schedule is None:
        raise ValueError(
            "interval must be a positive number of seconds (or give schedule= instead), got None"
        )
    if interval is not None and schedule is not None:
        raise ValueError("give interval= (seconds) or schedule= (cron), not both")
    if schedule is not None:
        options["schedule"] = (
            schedule if isinstance(schedule, CronSchedule) else CronSchedule(schedule)
        )
    if isinstance(publish, PublishStrategy) and not isinstance(publish, type):
        options["strategy"] = publish
    elif publish not in PUBLISH_CHOICES:
        raise ValueError(
            f"publish={publish!r} is not one of {', '.join(map(repr, PUBLISH_CHOICES))} "
            "nor a publish strategy (Every, OnChange...)"
        )
    if circuit_breaker is not None:
        if not isinstance(circuit_breaker, CircuitBreaker):
            raise TypeError(f"circuit_breaker={circuit_breaker!r} is not a CircuitBreaker(...)")
        options["circuit_breaker"] = circuit_breaker
    options.update(_trigger_options(triggerable, min_interval))
    if group is not None:
        if not isinstance(group, str) or not group:
            raise ValueError(f"group= must be a non-empty string, got {group!r}")
        options["group"] = group
    return options


def _trigger_options(triggerable: object, min_interval: float | None) -> dict[str, Any]:
    if not (isinstance(triggerable, bool) or triggerable in ("mqtt", "local", "both")):
        raise ValueError(
            f"triggerable={triggerable!r} is not one of False, True, 'mqtt', 'local', 'both'"
        )
    sources = TRIGGERABLE[triggerable]
    options: dict[str, Any] = {"triggers": sources} if sources else {}
    if min_interval is not None:
        if not sources:
            raise ValueError("min_interval= throttles triggered cycles: it needs triggerable=")
        options["min_interval"] = _seconds("min_interval", min_interval)
    return options


def _seconds(option: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise ValueError(f"{option} must be a positive number of seconds, got {value!r}")
