"""Typed contracts against a real mosquitto: a bad state and a bad payload reach ``P/N/error``
and the devices go on (the next good state is published, the next good command handled)."""

from __future__ import annotations

import uuid
from typing import Any

import pydantic
import trio

from triolette import App, PahoTransport
from triolette.core.messages import Message
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import publish_once
from triolette.testing.plugin import ObserverFactory


class Reading(pydantic.BaseModel):
    celsius: float


class Setpoint(pydantic.BaseModel):
    target: float = pydantic.Field(ge=5, le=30)


async def test_bad_states_and_payloads_are_reported_on_the_error_topics(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    prefix = f"bridge-{uuid.uuid4().hex[:8]}"
    transport = PahoTransport(mosquitto.host, mosquitto.port, client_id=prefix, keepalive=5)
    app = App(prefix, transport=transport, log_statistics_every=None)
    readings = iter([20, "unplugged", 21])
    targets: list[float] = []
    handled = trio.Event()

    @app.telemetry("probe", interval=0.05, state_model=Reading)
    async def probe() -> dict[str, Any]:
        return {"celsius": next(readings, 22)}

    @app.command("thermostat")
    async def thermostat(payload: Setpoint) -> None:
        targets.append(payload.target)
        handled.set()

    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"], start=False)
    await trio.to_thread.run_sync(observer.start)

    def on(topic: str, messages: list[Message]) -> list[Message]:
        return [m for m in messages if m.topic == f"{prefix}/{topic}"]

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await observer.until(lambda ms: len(on("probe/state", ms)) >= 3)
        command = f"{prefix}/thermostat/set"
        await trio.to_thread.run_sync(publish_once, mosquitto.host, mosquitto.port, command, "{}")
        await observer.until(lambda ms: len(on("thermostat/error", ms)) >= 1)
        await trio.to_thread.run_sync(
            publish_once, mosquitto.host, mosquitto.port, command, '{"target": 19.5}'
        )
        await handled.wait()
        app.shutdown()

    states = observer.payloads(f"{prefix}/probe/state")
    assert states[:3] == [{"celsius": 20.0}, {"celsius": 21.0}, {"celsius": 22.0}]
    [bad_state] = observer.payloads(f"{prefix}/probe/error")
    assert (bad_state["error_type"], bad_state["device"], bad_state["message"]) == (
        "invalid_state",
        "probe",
        "probe: the state does not match Reading: [celsius]: type=float_parsing",
    )
    [bad_payload] = observer.payloads(f"{prefix}/thermostat/error")
    assert (bad_payload["error_type"], bad_payload["device"], bad_payload["message"]) == (
        "invalid_payload",
        "thermostat",
        "thermostat: the payload does not match Setpoint: [target]: type=missing",
    )
    app_errors = [r["error_type"] for r in observer.payloads(f"{prefix}/error")]
    assert sorted(app_errors) == ["invalid_payload", "invalid_state"]  # the app topic too
    assert targets == [19.5]
