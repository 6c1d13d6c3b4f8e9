"""``harness.call_command``: a command handler called directly, without serving the app."""

from __future__ import annotations

import asyncio
import json

import attrs
import pytest

from triolette import App, DeviceStore, MemoryStore
from triolette.testing import AppHarness


@attrs.frozen
class Limits:
    most: int = 5


def bridge(*, store: MemoryStore | None = None) -> App:
    app = App("myapp", store=store)

    def never() -> None:
        raise AssertionError("call_command runs no init")

    @app.command("valve", init=never)
    async def valve(payload: str, topic: str, limits: Limits) -> dict[str, object] | None:
        if payload == "quiet":
            return None
        if payload == "broken":
            raise OSError("valve jammed")
        opening = json.loads(payload)["open"]
        return {"open": min(opening, limits.most), "topic": topic}

    @app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        return {"t": 1}

    return app


async def test_call_command_calls_the_handler_and_records_its_state():
    harness = AppHarness(bridge(), settings=Limits())
    state = await harness.call_command("valve", {"open": 9})
    assert state == {"open": 5, "topic": "myapp/valve/set"}
    assert harness.mqtt.get_messages_for("myapp/valve/state") == [
        ('{"open":5,"topic":"myapp/valve/set"}', True, 1)
    ]
    assert harness.app.running is None  # nothing was served


async def test_call_command_takes_another_topic_and_publishes_nothing_for_none():
    harness = AppHarness(bridge(), settings=Limits())
    state = await harness.call_command("valve", '{"open": 2}', topic="myapp/valve/x/set")
    assert state == {"open": 2, "topic": "myapp/valve/x/set"}
    assert await harness.call_command("valve", "quiet") is None
    assert len(harness.mqtt.get_messages_for("myapp/valve/state")) == 1


async def test_call_command_raises_what_the_handler_raises_and_records_nothing():
    harness = AppHarness(bridge(), settings=Limits())
    with pytest.raises(OSError, match="jammed"):
        await harness.call_command("valve", "broken")
    assert harness.mqtt.published == []


async def test_call_command_refuses_what_it_cannot_call():
    harness = AppHarness(bridge(), settings=Limits())
    for name in ("sensor", "pump"):
        with pytest.raises(LookupError, match=name):
            await harness.call_command(name, "1")
    app = App("stored", store=MemoryStore())

    @app.command("counter")
    async def counter(store: DeviceStore) -> None:
        store["n"] = 1

    with pytest.raises(RuntimeError, match="counter: call_command opens no store"):
        await AppHarness(app).call_command("counter", "1")


def test_call_command_from_asyncio_needs_no_run():
    harness = AppHarness(bridge(), settings=Limits())
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        state = runner.run(harness.call_command("valve", {"open": 1}))
    assert state == {"open": 1, "topic": "myapp/valve/set"}
    assert len(harness.mqtt.get_messages_for("myapp/valve/state")) == 1
