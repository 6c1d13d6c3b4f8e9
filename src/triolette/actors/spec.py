"""What a registration declares about one device: plain data, read by the actors that run it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from triolette.core.breaker import CircuitBreaker
from triolette.core.cron import CronSchedule
from triolette.core.kinds import DeviceKind, Restart
from triolette.core.messages import Message
from triolette.core.policies import PersistPolicy
from triolette.core.retry import RetryPolicy
from triolette.core.strategies import PublishStrategy
from triolette.core.stream import StreamOptions
from triolette.stores.devicestore import DeviceStore

if TYPE_CHECKING:
    from .device import DeviceContext


Publish = Literal["now", "durable"]
"""When a telemetry state is published: as soon as the handler returned, or once durable."""
PUBLISH_CHOICES: tuple[Publish, ...] = ("now", "durable")


class Handler(Protocol):
    """A user handler with its arguments resolved: called with what the actor provides.

    For a generator device handler (``DeviceSpec.generator``) the call returns the async
    generator rather than an awaitable.
    """

    def __call__(
        self, ctx: DeviceContext, store: DeviceStore | None, message: Message | None
    ) -> Awaitable[Any]: ...


@attrs.frozen(kw_only=True)
class DeviceSpec:
    """One registered device: what the supervisor needs to start (and restart) its actor."""

    name: str
    kind: DeviceKind
    call: Handler
    interval: float | None = None
    """Seconds between two telemetry cycles (telemetry only)."""
    persist: PersistPolicy | None = None
    uses_store: bool = False
    restart: Restart = "transient"
    timeout: float | None = None
    """Seconds a telemetry cycle or a command may take before it is cancelled."""
    heartbeat: float | None = None
    """Seconds a device handler may go without ``ctx.heartbeat()`` before it is restarted."""
    asyncio: bool = False
    """The handler is asyncio code, run in the app's trio-asyncio loop."""
    publish: Publish = "now"
    """``"durable"``: a state is published once the batch holding its cycle's save committed."""
    needs: tuple[Any, ...] = ()
    """What the handler asks of the scope (:class:`~triolette.runtime.injection.Need`)."""
    state_model: type | None = None
    """The model (a pydantic ``BaseModel``) its published state follows, if declared."""
    payload_model: type | None = None
    """The model its commands' payloads follow, if declared."""
    returns_model: type | None = None
    """The model the handler's return annotation names: it shapes the state when no
    ``state_model`` is declared."""
    state_version: int = 0
    """The version of the stored state's layout this code writes."""
    migrations: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = attrs.field(factory=dict)
    """``{n: fn}``: ``fn`` turns a stored state of version ``n`` into one of version ``n+1``."""
    strategy: PublishStrategy | None = None
    """Which telemetry states are published (``None``: every one)."""
    schedule: CronSchedule | None = None
    """A cron schedule instead of ``interval`` (telemetry only)."""
    retry: RetryPolicy | None = None
    """Retries within one cycle or command."""
    circuit_breaker: CircuitBreaker | None = None
    triggers: frozenset[str] = frozenset()
    """Where on-demand cycles come from: ``"mqtt"`` (``{prefix}/{name}/set``), ``"local"``."""
    min_interval: float | None = None
    """Seconds between two triggered cycles, at least."""
    group: str | None = None
    """Telemetry of one group runs one after another, never at the same time."""
    is_root: bool = False
    """Registered without a name: its topics have no device level (``{prefix}/state``)."""
    init: Callable[[DeviceContext, DeviceStore | None, Message | None], Any] | None = None
    """Runs before each start of the handler; provides its result in the device's scope."""
    init_returns: Any = None
    """The class ``init`` is annotated to return (``None``: not annotated, or no init)."""
    config: Any = None
    """The device's own configuration, from a ``name=`` callable that returned a dict."""
    generator: bool = False
    """The handler is an async generator: each ``yield`` is a work boundary."""
    stream: StreamOptions | None = None
    """A stream's own options (stream only)."""

    @property
    def accepts_commands(self) -> bool:
        return self.kind.takes_commands
