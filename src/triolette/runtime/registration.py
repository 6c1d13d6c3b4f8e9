"""One registration as declared: plain data that introspection reads. No trio here.

A :class:`Registration` is what one decorator call (or ``add_*`` call) recorded: the handler,
its options as given (a ``name=``, ``enabled=`` or ``interval=`` callable stays a callable),
its metadata, and the :class:`~triolette.actors.spec.DeviceSpec` it becomes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import attrs

from triolette.actors.spec import DeviceSpec
from triolette.core.deferred import is_deferred
from triolette.core.kinds import DeviceKind, Restart
from triolette.core.policies import PersistPolicy

Enabled = bool | Callable[[Any], bool]
"""``enabled=``: a bool, or a callable given the settings (or the device's configuration)."""
NameSpec = str | Callable[[Any], Any] | None
"""``name=``: a name, ``None`` (a root entity), or a callable given the settings that returns
a list of names or a dict of name to that device's configuration."""


class Common(TypedDict, total=False):
    """The options every device decorator (and ``add_*`` method) takes, each optional.

    ``init``: a synchronous factory run before each start of the handler, injected like it;
    handlers take its result by its class. ``enabled``: ``False`` registers nothing; a
    callable decides when a serve starts, given the settings. ``summary``, ``behavior``,
    ``effects``, ``tags``: text kept for introspection and the registry. Typed contracts:
    ``state_model`` (the published state's model), ``payload_model`` (a command payload's),
    ``discoverable`` (announced to Home Assistant), ``state_version`` and ``migrate`` (the
    stored state's layout version, one migration from each older version to the next).
    """

    init: Callable[..., Any] | None
    enabled: Enabled
    summary: str | None
    behavior: Sequence[str]
    effects: Sequence[str]
    tags: Sequence[str]
    state_model: type | None
    payload_model: type | None
    discoverable: bool
    state_version: int
    migrate: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None


COMMON_OPTIONS = frozenset(Common.__annotations__)
"""The names of the options in :class:`Common`."""


@attrs.frozen(kw_only=True)
class Registration:
    """One declared handler, as registered: what ``app.devices`` and the like list.

    ``name`` is the device name, the function's name for a root entity, or the function's
    name when ``name_spec`` (the ``name=`` callable) gives the names at serve start.
    ``interval`` and ``enabled`` are as given (a number or a callable). ``spec`` is the
    device the registration becomes; the expansion copies it per name.
    """

    kind: DeviceKind
    name: str
    func: Callable[..., Any]
    spec: DeviceSpec
    name_spec: Callable[[Any], Any] | None = None
    is_root: bool = False
    enabled: Enabled = True
    init: Callable[..., Any] | None = None
    interval: float | Callable[[Any], float] | None = None
    summary: str | None = None
    behavior: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    discoverable: bool = True

    @property
    def state_model(self) -> type | None:
        """The model its published state follows (a pydantic ``BaseModel``), if declared."""
        return self.spec.state_model

    @property
    def payload_model(self) -> type | None:
        """The model its commands' payloads follow, if declared."""
        return self.spec.payload_model

    @property
    def state_version(self) -> int:
        return self.spec.state_version

    @property
    def is_static(self) -> bool:
        """Its one device is known now: a static name, enabled, no deferred option."""
        return self.name_spec is None and self.enabled is True and not is_deferred(self.interval)

    @property
    def persist(self) -> PersistPolicy | None:
        return self.spec.persist

    persist_policy = persist

    @property
    def restart(self) -> Restart:
        return self.spec.restart

    @property
    def timeout(self) -> float | None:
        return self.spec.timeout

    @property
    def has_init(self) -> bool:
        return self.init is not None

    def __str__(self) -> str:
        """How errors name it: kind and function (and the ``name=`` callable)."""
        function = getattr(self.func, "__qualname__", repr(self.func))
        names = f" with name={self.name_spec!r}" if self.name_spec is not None else ""
        return f"the {self.kind.value} {function!r}{names}"
