"""From registrations to the devices of one serve, decided by the settings at its start.

A registration with a ``name=`` callable becomes one device per name it returns (a list), or
one per key with that key's value as the device's configuration (a dict). A callable
``enabled=`` or ``interval=`` is called with the settings, or with the device's
configuration when it has one. Then the names are checked together: a clash names both
registrations; two root entities are refused; root and named entities mixed log one WARNING.
No trio here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence, Set
from typing import Any

import attrs

from triolette.actors.spec import DeviceSpec
from triolette.core.deferred import is_deferred, resolve
from triolette.core.errors import RegistrationError
from triolette.core.topics import check_name
from triolette.runtime.injection import FRAMEWORK_TYPES
from triolette.runtime.option_checks import check_seconds
from triolette.runtime.registration import Registration

logger = logging.getLogger("triolette.app")

_NO_CONFIG: Any = object()
"""The configuration of a device that has none of its own (not from a ``name=`` dict)."""


def expand(registrations: Sequence[Registration], settings: Any) -> list[DeviceSpec]:
    """The devices the ``registrations`` make with ``settings``, in registration order.

    Raises RegistrationError naming the registration for a bad name, a callable option that
    fails or returns a bad value, and a name taken twice (naming both registrations).
    """
    specs: list[DeviceSpec] = []
    owners: dict[str, Registration] = {}
    for registration in registrations:
        for name, config in _names(registration, settings):
            spec = _device(registration, name, config, settings)
            if spec is None:
                continue
            other = owners.get(name)
            if other is registration:
                raise RegistrationError(f"{registration}: name= gave {name!r} twice")
            if other is not None:
                raise RegistrationError(
                    f"{name}: two devices of that name: from {other} and from {registration}"
                )
            owners[name] = registration
            specs.append(spec)
    _check_roots(specs)
    return specs


def _names(registration: Registration, settings: Any) -> Iterator[tuple[str, Any]]:
    """Each device name of ``registration`` with its configuration (or ``_NO_CONFIG``)."""
    produce = registration.name_spec
    if produce is None:
        yield registration.name, _NO_CONFIG
        return
    produced = resolve(produce, settings, what=f"{registration}: name")
    if isinstance(produced, Mapping):
        pairs = list(produced.items())
    elif isinstance(produced, Sequence | Set) and not isinstance(produced, str | bytes):
        pairs = [(name, _NO_CONFIG) for name in produced]
    else:
        raise RegistrationError(
            f"{registration}: name= returned {produced!r}; return a list of names, or a dict "
            "of name to that device's configuration"
        )
    if not pairs:
        logger.warning("%s: name= returned no names, so it makes no device", registration)
    for name, config in pairs:
        if not isinstance(name, str):
            raise RegistrationError(f"{registration}: name= gave {name!r}, which is not a str")
        try:
            check_name(name)
        except RegistrationError as error:
            raise RegistrationError(f"{registration}: name= gave a bad name: {error}") from None
        yield name, config


def _device(registration: Registration, name: str, config: Any, settings: Any) -> DeviceSpec | None:
    """The device ``name`` of ``registration``, or ``None`` when it is not enabled."""
    source = settings if config is _NO_CONFIG else config
    enabled = resolve(registration.enabled, source, what=f"{name}: enabled")
    if not isinstance(enabled, bool):
        raise RegistrationError(f"{name}: enabled= returned {enabled!r}, not a bool")
    if not enabled:
        return None
    if registration.is_static:
        return registration.spec
    changes: dict[str, Any] = {"name": name}
    if is_deferred(registration.interval):
        interval = resolve(registration.interval, source, what=f"{name}: interval")
        changes["interval"] = check_seconds(name, "interval", interval, " from the settings")
    if config is not _NO_CONFIG:
        if type(config) in FRAMEWORK_TYPES:
            raise RegistrationError(
                f"{name}: its configuration is a {type(config).__qualname__}, which the "
                "framework provides to handlers"
            )
        changes["config"] = config
    return attrs.evolve(registration.spec, **changes)


def _check_roots(specs: Sequence[DeviceSpec]) -> None:
    roots = [spec.name for spec in specs if spec.is_root]
    if len(roots) > 1:
        raise RegistrationError(
            f"{roots[0]}, {roots[1]}: an app has at most one root entity (registered without "
            "a name)"
        )
    if roots and len(specs) > 1:
        logger.warning(
            "%s is a root entity (topics without a device level) among named devices: a "
            "subscription to <prefix>/+/state does not match the root's <prefix>/state",
            roots[0],
        )
