"""A triggerable telemetry device against a real mosquitto: a message on its set topic runs a
cycle, a retained one does not."""

from __future__ import annotations

import uuid

import trio

from triolette import App, PahoTransport, TriggerPayload
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import publish_once
from triolette.testing.plugin import ObserverFactory


async def test_a_message_on_the_set_topic_runs_a_cycle_now(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    prefix = f"trig-{uuid.uuid4().hex[:8]}"
    transport = PahoTransport(mosquitto.host, mosquitto.port, client_id=f"{prefix}-bridge")
    app = App(prefix, transport=transport, heartbeat_every=None, log_statistics_every=None)

    @app.telemetry("meter", interval=3600, triggerable=True)
    async def meter(trigger: TriggerPayload) -> dict[str, object]:
        return {"source": trigger.source, "why": trigger.get("why")}

    state, command = f"{prefix}/meter/state", f"{prefix}/meter/set"
    # Kept by the broker from before the start: replayed on subscribing, and ignored.
    publish_once(mosquitto.host, mosquitto.port, command, '{"why": "stale"}', retain=True)
    observer = mqtt_observer_factory(mosquitto, [state])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app.serve)
        await app.wait_until_connected()
        await observer.until(lambda messages: len(messages) == 1)
        await trio.to_thread.run_sync(
            publish_once, mosquitto.host, mosquitto.port, command, '{"why": "dashboard"}'
        )
        await observer.until(lambda messages: len(messages) == 2)
        app.shutdown()
    assert observer.payloads(state) == [
        {"source": "scheduled", "why": None},
        {"source": "mqtt", "why": "dashboard"},
    ]
