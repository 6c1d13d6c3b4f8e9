"""Checking what one registration declares: each bad option a RegistrationError naming it.

:meth:`~triolette.runtime.registry.Registry.declare` calls these before it records anything,
so a mistake is reported where the device is declared, never when it first runs. No trio here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from triolette.actors.spec import PUBLISH_CHOICES
from triolette.core.deferred import is_deferred
from triolette.core.errors import RegistrationError
from triolette.core.kinds import RESTART_TYPES, DeviceKind
from triolette.core.policies import PersistPolicy, SaveOnChange
from triolette.core.stream import StreamOptions, check_feeds, check_options
from triolette.core.topics import check_entity_name


def check_name_spec(kind: DeviceKind, name: object, is_root: bool, label: str) -> bool:
    """Check ``name=`` (a name, ``None`` for a root entity, or a callable of the settings);
    return whether the registration is the root entity."""
    if name is None:
        return True
    if isinstance(name, str):
        check_entity_name(name)
    elif is_handler(name):
        raise TypeError(
            f"@app.{kind.value} needs parentheses: @app.{kind.value}() declares a root "
            f"entity, @app.{kind.value}('name') a named one"
        )
    elif not is_deferred(name):
        raise RegistrationError(f"name={name!r} is not a str, None or a callable")
    elif is_root:
        raise RegistrationError(f"{label}: a root entity needs a fixed name, not a callable")
    return is_root


def check_common(label: str, restart: object, **seconds: object) -> None:
    """The options every kind takes: ``restart`` and the optional watchdog ``seconds``
    (``timeout=``, ``heartbeat=``)."""
    for option, value in seconds.items():
        if value is not None:
            check_seconds(label, option, value)
    if restart not in RESTART_TYPES:
        raise RegistrationError(
            f"{label}: restart={restart!r} is not one of {', '.join(RESTART_TYPES)}"
        )


def metadata(label: str, common: Mapping[str, Any]) -> dict[str, Any]:
    """The text and flags kept with a registration for introspection, checked."""
    return {
        "summary": text(label, "summary", common.get("summary")),
        "behavior": texts(label, "behavior", common.get("behavior", ())),
        "effects": texts(label, "effects", common.get("effects", ())),
        "tags": texts(label, "tags", common.get("tags", ())),
        "discoverable": flag(label, "discoverable", common.get("discoverable", True)),
    }


def contract(label: str, common: Mapping[str, Any]) -> dict[str, Any]:
    """The typed-contract fields of a device's spec: models, state version, migrations."""
    return {
        "state_model": model_class(label, "state_model", common.get("state_model")),
        "payload_model": model_class(label, "payload_model", common.get("payload_model")),
        **versions(label, common.get("state_version", 0), common.get("migrate")),
    }


def label(name: object, is_root: bool) -> str:
    """How errors name a registration before its function is known."""
    if isinstance(name, str):
        return name
    return "a root entity" if name is None or is_root else f"name={name!r}"


def is_handler(value: object) -> bool:
    """A function given where a name belongs: ``@app.device`` used without parentheses."""
    return inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value)


def text(device: str, option: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RegistrationError(f"{device}: {option}={value!r} is not a str")


def texts(device: str, option: str, values: Iterable[str]) -> tuple[str, ...]:
    """A list of strings as a tuple; one bare string is refused (it would become letters)."""
    try:
        items: tuple[Any, ...] = () if isinstance(values, str) else tuple(values)
    except TypeError:  # not iterable
        items = (None,)
    if isinstance(values, str) or not all(isinstance(v, str) for v in items):
        raise RegistrationError(f"{device}: {option}={values!r} is not a list of str")
    return items


def check_seconds(device: str, option: str, value: object, source: str = "") -> float:
    """``value`` as a positive, finite number of seconds, or an error naming the device
    (and, with ``source``, where the value came from)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise RegistrationError(
        f"{device}: {option} must be a positive number of seconds, got {value!r}{source}"
    )


def model_class(device: str, option: str, model: object) -> type | None:
    """``model`` if it is a model class (a pydantic ``BaseModel``, checked by its API so that
    pydantic is not imported here), or ``None``."""
    if model is None:
        return None
    if isinstance(model, type) and callable(getattr(model, "model_validate", None)):
        return model
    raise RegistrationError(
        f"{device}: {option}={model!r} is not a model class (a pydantic BaseModel subclass)"
    )


def flag(device: str, option: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise RegistrationError(f"{device}: {option}={value!r} is not True or False")


def versions(
    device: str, version: object, migrate: Mapping[int, Callable[..., Any]] | None
) -> dict[str, Any]:
    """``state_version`` (a whole number from 0) and ``migrate`` (one migration from each
    older version to the next: ``{0: fn, 1: fn}`` for version 2)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RegistrationError(f"{device}: state_version={version!r} is not a whole number >= 0")
    steps = dict(migrate or {})
    wanted = set(range(version))
    if steps and set(steps) != wanted:
        raise RegistrationError(
            f"{device}: migrate= needs one migration from each version before {version} "
            f"(keys {sorted(wanted)}), got keys {sorted(steps, key=repr)}"
        )
    for step, function in steps.items():
        if not callable(function):
            raise RegistrationError(f"{device}: migrate[{step}]={function!r} is not callable")
    return {"state_version": version, "migrations": steps}


def check_stream(name: str, stream: StreamOptions) -> StreamOptions:
    check_options(name, stream.maxsize, stream.backpressure)
    stale_after = stream.stale_after
    if stale_after is not None:
        stale_after = check_seconds(name, "stale_after", stale_after)
    return attrs.evolve(stream, stale_after=stale_after, feeds=check_feeds(name, stream.feeds))


def check_policy(device: str, persist: PersistPolicy | None, has_store: bool) -> None:
    if persist is None:
        return
    if isinstance(persist, type) or not callable(getattr(persist, "should_save", None)):
        hint = f" (did you mean {persist.__name__}()?)" if isinstance(persist, type) else ""
        raise RegistrationError(f"{device}: persist={persist!r} is not a save policy{hint}")
    if not has_store:
        raise RegistrationError(f"{device}: persist= needs a store; pass App(store=...)")


def check_publish(
    device: str, publish: object, persist: PersistPolicy | None, has_store: bool
) -> None:
    """``publish="durable"`` saves every changed cycle itself: no other policy, a store."""
    if publish not in PUBLISH_CHOICES:
        raise RegistrationError(
            f"{device}: publish={publish!r} is not one of {', '.join(map(repr, PUBLISH_CHOICES))}"
        )
    if publish != "durable":
        return
    if not has_store:
        raise RegistrationError(f"{device}: publish='durable' needs a store; pass App(store=...)")
    if persist is not None and type(persist) is not SaveOnChange:
        raise RegistrationError(
            f"{device}: publish='durable' saves every cycle that changed the store; "
            f"persist={persist!r} would hold back or wait for the very publish: "
            "leave persist out or pass SaveOnChange()"
        )
