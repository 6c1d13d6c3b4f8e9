"""asyncio handlers (``asyncio=True``) run unchanged in the App's one trio-asyncio loop."""

from __future__ import annotations

import asyncio
import sys

import pytest
import sniffio
import trio

from triolette import (
    DeviceContext,
    DeviceStore,
    HandlerTimeoutError,
    MemoryStore,
    SaveOnChange,
)
from triolette.testing import AppHarness


def _in_asyncio() -> bool:
    return sniffio.current_async_library() == "asyncio" and asyncio.current_task() is not None


async def test_an_asyncio_telemetry_handler_publishes_and_persists(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    seen: list[bool] = []

    @harness.app.telemetry("meter", interval=10, persist=SaveOnChange(), asyncio=True)
    async def meter(store: DeviceStore) -> dict[str, object]:
        seen.append(_in_asyncio())
        await asyncio.sleep(1)  # an asyncio-only await, on the app's (virtual) clock
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(cycles=3)
    assert seen == [True, True, True]
    assert harness.states("meter") == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert backend.load("meter") == {"count": 3}


async def test_an_asyncio_device_handler_uses_its_context_and_store(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    confirmations: list[bool] = []

    @harness.app.device("valve", asyncio=True)
    async def valve(ctx: DeviceContext, store: DeviceStore) -> None:
        assert _in_asyncio()
        event = asyncio.Event()  # asyncio primitives work as in any asyncio program
        asyncio.get_running_loop().call_later(5, event.set)
        await event.wait()
        store["opened"] = store.get("opened", 0) + 1
        store.save()
        confirmations.append(await ctx.publish_state({"open": True}))
        confirmations.append(await ctx.publish("note", "done", retain=False))
        await ctx.sleep(3600)

    await harness.run(duration=60)
    assert confirmations == [True, True]
    assert harness.states("valve") == [{"open": True}]
    assert [m.text for m in harness.broker.on("testapp/valve/note")] == ["done"]
    assert backend.load("valve") == {"opened": 1}


async def test_an_asyncio_device_handler_reads_its_commands(autojump_clock):
    harness = AppHarness.create()
    received: list[str] = []

    @harness.app.device("lamp", asyncio=True)
    async def lamp(ctx: DeviceContext) -> None:
        async for message in ctx.commands():
            assert _in_asyncio()
            received.append(message.text)
            await ctx.publish_state({"on": message.text == "on"})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.command("lamp", "on")
        await harness.command("lamp", "off")
        harness.trigger_shutdown()
    assert received == ["on", "off"]
    assert harness.states("lamp") == [{"on": True}, {"on": False}]


async def test_an_asyncio_command_handler_gets_its_payload_and_its_dict_is_published(
    autojump_clock,
):
    harness = AppHarness.create()

    @harness.app.command("heater", asyncio=True)
    async def heater(payload: str) -> dict[str, object]:
        await asyncio.sleep(0)  # (harness.command waits until the app is idle, not timers)
        return {"target": float(payload)}

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.command("heater", "21.5")
        harness.trigger_shutdown()
    assert harness.states("heater") == [{"target": 21.5}]


async def test_an_asyncio_exception_reaches_the_app_with_its_type(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("probe", interval=10, asyncio=True)
    async def probe() -> None:
        await asyncio.sleep(0)
        raise ValueError("probe unplugged")

    await harness.run(cycles=2)
    errors = harness.errors("probe")
    assert [(e["type"], e["message"]) for e in errors] == [("ValueError", "probe unplugged")]


async def test_a_shutdown_cancels_an_asyncio_handler_mid_await_and_closes_the_loop(
    autojump_clock,
):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    loops: list[asyncio.AbstractEventLoop] = []
    cancelled: list[str] = []

    @harness.app.device("poller", asyncio=True)
    async def poller(store: DeviceStore) -> None:
        loops.append(asyncio.get_running_loop())
        store["polls"] = 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(type(asyncio.current_task()).__name__)
            store["stopped_cleanly"] = True  # still recorded: the final flush follows
            raise

    await harness.run(duration=10)
    assert cancelled == ["Task"], "the asyncio side saw the trio cancellation"
    assert backend.load("poller") == {"polls": 1, "stopped_cleanly": True}
    assert loops[0].is_closed()
    assert harness.app.statistics().crashes == {"poller": 0}


async def test_a_crashed_asyncio_device_is_restarted_in_the_loop(autojump_clock):
    harness = AppHarness.create(store=MemoryStore())
    runs: list[int] = []

    @harness.app.device("flaky", asyncio=True)
    async def flaky(store: DeviceStore) -> None:
        store["runs"] = store.get("runs", 0) + 1
        runs.append(store["runs"])
        await asyncio.sleep(1)
        if store["runs"] == 1:
            raise ConnectionError("bus reset")
        await asyncio.sleep(3600)

    await harness.run(duration=30)
    assert runs == [1, 2]  # the restart loaded the crashed run's state
    assert harness.app.statistics().restarts == {"flaky": 1}


async def test_a_second_app_opens_a_new_loop_cleanly(autojump_clock):
    loops: list[asyncio.AbstractEventLoop] = []
    for _ in range(2):
        harness = AppHarness.create()

        @harness.app.telemetry("tick", interval=1, asyncio=True)
        async def tick() -> None:
            loops.append(asyncio.get_running_loop())
            await asyncio.sleep(0)

        await harness.run(cycles=1)
    assert len(loops) == 2
    assert loops[0] is not loops[1]
    assert all(loop.is_closed() for loop in loops)


async def test_the_watchdog_cancels_a_hung_asyncio_cycle_and_the_next_one_runs(autojump_clock):
    harness = AppHarness.create()
    started: list[float] = []

    @harness.app.telemetry("sensor", interval=10, timeout=2, asyncio=True)
    async def sensor() -> dict[str, object]:
        started.append(asyncio.get_running_loop().time())
        if len(started) == 1:
            await asyncio.Event().wait()  # never set: a hung read
        return {"ok": True}

    await harness.run(cycles=2)
    assert [e["type"] for e in harness.errors("sensor")] == [HandlerTimeoutError.__name__]
    assert harness.states("sensor") == [{"ok": True}]


async def test_an_app_without_asyncio_handlers_never_imports_trio_asyncio():
    code = (
        "import sys, trio\n"
        "from triolette.testing import AppHarness\n"
        "h = AppHarness.create()\n"
        "@h.app.telemetry('t', interval=1)\n"
        "async def t(): return None\n"
        "trio.run(h.run)\n"
        "print('trio_asyncio' in sys.modules)\n"
    )
    result = await trio.run_process([sys.executable, "-c", code], capture_stdout=True)
    assert result.stdout.decode().strip() == "False"


@pytest.mark.parametrize("kind", ["telemetry", "device", "command"])
def test_asyncio_true_still_requires_an_async_def(kind: str):
    from triolette import RegistrationError

    harness = AppHarness.create()

    def not_async() -> None: ...

    decorators = {
        "telemetry": harness.app.telemetry("x", interval=1, asyncio=True),
        "device": harness.app.device("x", asyncio=True),
        "command": harness.app.command("x", asyncio=True),
    }
    with pytest.raises(RegistrationError, match="async def"):
        decorators[kind](not_async)
