"""Calling a command handler directly, without serving the app (cosalette's ``call_command``).

No init, no adapters, no reactors, no store: the handler is called with its payload, what it
asks for by type (the settings, the clock, its ``name=`` configuration) and a context whose
publishes are not sent anywhere; a returned state is recorded on the test's MockMqttClient.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from triolette.actors.contracts import parse_payload, shaped_state
from triolette.actors.device import DeviceActor, DeviceContext
from triolette.actors.mqtt import MqttActor
from triolette.core.jsonstate import encode_state
from triolette.core.kinds import DeviceKind
from triolette.core.messages import Message
from triolette.core.scope import Scope
from triolette.runtime.device_scope import device_scope
from triolette.runtime.expansion import expand
from triolette.runtime.lifecycle import provide_basics
from triolette.stores.devicestore import DeviceStore

from .mock_mqtt import MockMqttClient

if TYPE_CHECKING:
    from triolette.runtime.app import App


async def call_command(
    app: App,
    mqtt: MockMqttClient,
    name: str,
    payload: str | bytes | Mapping[str, Any],
    *,
    topic: str | None = None,
) -> Any:
    """Call ``app``'s ``@app.command`` handler ``name`` once with ``payload``; return what
    it returned (shaped by its state model, if any), after recording it as the retained
    state on ``mqtt``.

    A dict ``payload`` is sent as JSON; ``topic`` replaces ``{prefix}/{name}/set``. Raises
    LookupError when ``name`` is no command, RuntimeError for a handler with a store, and
    what the handler (or its payload validation) raises; nothing is recorded then.
    """
    specs = expand(app.registry.registrations, app.settings)
    spec = next((s for s in specs if s.name == name), None)
    if spec is None or spec.kind is not DeviceKind.COMMAND:
        raise LookupError(f"{app.name!r} has no @app.command named {name!r}")
    if spec.uses_store:
        raise RuntimeError(f"{name}: call_command opens no store; serve and inject_command")
    topics = attrs.evolve(app.topics, root=next((s.name for s in specs if s.is_root), None))
    scope = Scope()
    provide_basics(app, scope)
    actor = DeviceActor(
        spec,
        persistence=None,
        mqtt=MqttActor(mqtt, topics),
        hooks=_Uncalled(app.settings),
        scope=device_scope(spec, scope),
    )
    text = json.dumps(payload) if isinstance(payload, Mapping) else payload
    message = Message(topic or topics.command(name), text)
    if spec.payload_model is not None:
        parse_payload(name, spec.payload_model, message.text)
    result = await spec.call(DeviceContext(actor), None, message)
    if result is None:
        return None
    if actor.state_model is not None or not isinstance(result, Mapping):
        result = shaped_state(name, actor.state_model, result)
    await mqtt.publish(topics.state(name), encode_state(name, result), retain=True, qos=1)
    return result


@attrs.frozen
class _Uncalled:
    """The hooks of a handler called outside a serve: only its settings are asked for."""

    settings: Any
    shutdown_requested: bool = False
    cycles_limited: bool = False

    def cycle_done(self, device: str) -> bool:
        return True

    def report(self, device: str, error: BaseException) -> None:
        raise error

    def rejected(self, device: str, error: BaseException) -> None:
        raise error

    def recovered(self, device: str) -> None:
        pass

    def ticks_skipped(self, device: str, count: int) -> None:
        pass

    def unsaved(self, device: str, error: BaseException) -> None:
        raise error

    async def boundary(self, ctx: DeviceContext, store: DeviceStore | None) -> None:
        pass
