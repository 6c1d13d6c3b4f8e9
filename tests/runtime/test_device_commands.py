"""What an ``@app.device`` handler reads from ``ctx.commands()``: Command objects, timeouts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from triolette import Command, DeviceContext, Message
from triolette.testing import AppHarness


async def test_commands_are_command_objects_with_a_text_payload(autojump_clock):
    harness = AppHarness.create()
    received: list[tuple[Command, float]] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        async for command in ctx.commands():
            received.append((command, trio.current_time()))
            if command.payload == "off":  # a str: cosalette handlers compare it so
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.command("lamp", b"on \xe2\x9c\x93")
        await harness.command("lamp", "off")
    (first, first_read), (second, _) = received
    assert first.topic == "testapp/lamp/set"
    assert first.payload == first.text == "on \u2713"
    assert first.raw == b"on \xe2\x9c\x93"
    assert first.sub_topic is None
    assert first.timestamp == first_read
    assert (first.qos, first.retain) == (1, False)
    assert second.payload == "off"


def test_a_command_knows_its_sub_topic():
    def read(topic: str) -> Command:
        message = Message(topic, b"{}")
        return Command.from_message(message, command_topic="p/lamp/set", timestamp=1.5)

    assert read("p/lamp/set").sub_topic is None
    assert read("p/lamp/colour/set").sub_topic == "colour"
    assert read("p/lamp/colour/set").timestamp == 1.5
    assert read("p/lamp/a/b/set").sub_topic == "a/b"
    assert read("p/lampshade/set").sub_topic is None


async def test_commands_with_a_timeout_yield_none_while_quiet(autojump_clock):
    harness = AppHarness.create()
    seen: list[tuple[float, str | None]] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        start = trio.current_time()
        async for command in ctx.commands(timeout=5):
            seen.append((trio.current_time() - start, None if command is None else command.text))
            if command is not None and command.text == "bye":
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.app.wait_until_serving()
        await trio.sleep(12)
        await harness.command("lamp", "bye")
    assert [text for _, text in seen] == [None, None, "bye"]
    assert [round(at) for at, _ in seen] == [5, 10, 12]


async def test_a_command_resets_the_quiet_timeout(autojump_clock):
    harness = AppHarness.create()
    seen: list[tuple[float, str | None]] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        start = trio.current_time()
        async for command in ctx.commands(timeout=5):
            seen.append((trio.current_time() - start, None if command is None else command.text))
            if len(seen) == 3:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.app.wait_until_serving()
        await trio.sleep(3)
        await harness.command("lamp", "on")
    assert [text for _, text in seen] == ["on", None, None]
    assert [round(at) for at, _ in seen] == [3, 8, 13]


async def test_a_timeout_that_is_not_positive_is_refused(autojump_clock):
    harness = AppHarness.create()
    errors: list[BaseException] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        with pytest.raises(ValueError, match="lamp") as caught:
            ctx.commands(timeout=0)
        errors.append(caught.value)

    await harness.run()
    assert "timeout" in str(errors[0])


async def test_an_asyncio_device_reads_commands_with_a_timeout(autojump_clock):
    harness = AppHarness.create()
    seen: list[str | None] = []

    @harness.app.device("lamp", asyncio=True)
    async def lamp(ctx: DeviceContext) -> None:
        async for command in ctx.commands(timeout=5):
            seen.append(None if command is None else command.payload)
            if command is not None:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.app.wait_until_serving()
        await trio.sleep(7)
        await harness.command("lamp", "on")
    assert seen == [None, "on"]


async def test_on_command_handlers_take_sub_topic_and_payload(autojump_clock):
    harness = AppHarness.create()
    received: list[tuple[str | None, str]] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        @ctx.on_command
        async def switch(sub_topic: str | None, payload: str) -> None:
            received.append((sub_topic, payload))
            await ctx.publish_state({"on": payload == "on"})

        await trio.sleep_forever()

    async with harness.serving():
        await harness.command("lamp", "on")
        await harness.command("lamp", "off")
    assert received == [(None, "on"), (None, "off")]
    assert harness.states("lamp") == [{"on": True}, {"on": False}]


async def test_an_on_command_handler_may_take_the_command(autojump_clock):
    harness = AppHarness.create()
    received: list[Command] = []

    def remember(command: Command) -> None:  # a plain function is called as it is
        received.append(command)

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        assert ctx.on_command(remember) is remember
        await trio.sleep_forever()

    async with harness.serving():
        await harness.command("lamp", b"dim 3")
    assert [(c.topic, c.payload, c.raw) for c in received] == [
        ("testapp/lamp/set", "dim 3", b"dim 3")
    ]


async def test_an_on_command_error_is_reported_and_the_next_command_handled(autojump_clock):
    harness = AppHarness.create()
    received: list[str] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        @ctx.on_command()
        async def switch(command: Command) -> None:
            if command.payload == "explode":
                raise OSError("relay stuck")
            received.append(command.payload)

        await trio.sleep_forever()

    async with harness.serving():
        await harness.command("lamp", "explode")
        await harness.command("lamp", "on")
    assert received == ["on"]
    assert [error["error_type"] for error in harness.errors("lamp")] == ["error"]
    assert harness.app.statistics().restarts == {"lamp": 0}


async def test_on_command_refuses_a_second_reader_and_bad_handlers(autojump_clock):
    harness = AppHarness.create()
    raised: dict[str, list[BaseException]] = {"lamp": [], "valve": [], "sensor": []}

    async def switch(sub_topic: str | None, payload: str) -> None:
        pass

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        bad: list[Callable[[], object]] = [
            lambda: ctx.on_command("colour"),
            lambda: ctx.on_command(lambda a, b, c: None),
        ]
        for attempt in bad:
            with pytest.raises((ValueError, TypeError)) as caught:
                attempt()
            raised["lamp"].append(caught.value)
        ctx.on_command(switch)
        again: list[Callable[[], object]] = [lambda: ctx.on_command(switch), ctx.commands]
        for attempt in again:
            with pytest.raises(RuntimeError, match="lamp: an on_command handler") as caught:
                attempt()
            raised["lamp"].append(caught.value)

    @harness.app.device("valve")
    async def valve(ctx: DeviceContext) -> None:
        ctx.commands()
        with pytest.raises(RuntimeError, match=r"valve: ctx\.commands") as caught:
            ctx.on_command(switch)
        raised["valve"].append(caught.value)

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(ctx: DeviceContext) -> None:
        with pytest.raises(RuntimeError, match="sensor") as caught:
            ctx.on_command(switch)
        raised["sensor"].append(caught.value)

    await harness.run()
    assert [len(errors) for errors in raised.values()] == [4, 1, 1]
    assert "sub-topic" in str(raised["lamp"][0])
    assert "(sub_topic, payload)" in str(raised["lamp"][1])


async def test_receive_takes_one_command_at_a_time(autojump_clock):
    harness = AppHarness.create()
    seen: list[str | None] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        commands = ctx.commands(timeout=5)
        first = await commands.receive()
        seen.append(None if first is None else first.payload)
        second = await commands.receive()
        seen.append(None if second is None else second.payload)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.command("lamp", "on")
    assert seen == ["on", None]
