"""Streams: a port pushes items, the handler reads them; buffers, overflows, freshness."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from triolette import (
    DeviceContext,
    DeviceStore,
    MemoryStore,
    RegistrationError,
    Stream,
    StreamablePort,
    StreamFullError,
)
from triolette.testing import AppHarness


@attrs.frozen
class Reading:
    value: int


class Radio:
    """A port double: records its lifecycle; ``push`` calls the registered callback."""

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.callback: Callable[[Reading], None] | None = None
        self.fail_on = fail_on

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_on:
            raise OSError(f"radio {name} failed")

    async def open(self) -> None:
        self._step("open")

    def close(self) -> None:  # plain methods work too
        self._step("close")

    async def start_scan(self) -> None:
        self._step("start_scan")

    async def stop_scan(self) -> None:
        self._step("stop_scan")

    def register_callback(self, callback: Callable[[Reading], None]) -> None:
        self._step("register_callback")
        self.callback = callback

    def push(self, *values: int) -> None:
        assert self.callback is not None, "the stream has not registered its callback"
        for value in values:
            self.callback(Reading(value))


def radio_harness(radio: Radio, **options: Any) -> AppHarness:
    harness = AppHarness.create(**options)
    harness.app.adapter(StreamablePort[Reading], lambda: radio)
    return harness


# -- the buffer on its own ---------------------------------------------------------------------


async def test_drop_newest_keeps_the_first_items_and_tells_each_episode_once():
    told: list[tuple[str, int]] = []
    stream: Stream[int] = Stream(
        2,
        "drop_newest",
        on_overflow=lambda s, error: told.append(("full", s.dropped)),
        on_drained=lambda s, dropped: told.append(("drained", dropped)),
    )
    for item in range(5):
        stream.put(item)
    assert (stream.dropped, stream.overflows, stream.overflowing) == (3, 1, True)
    assert [await stream.get(), await stream.get()] == [0, 1]
    assert told == [("full", 1), ("drained", 3)]
    for item in range(5, 8):
        stream.put(item)
    assert (stream.dropped, stream.overflows) == (4, 2)


async def test_drop_oldest_keeps_the_latest_items():
    stream: Stream[int] = Stream(2, "drop_oldest")
    for item in range(5):
        stream.put(item)
    assert [await stream.get(), await stream.get()] == [3, 4]
    assert stream.dropped == 3


async def test_raise_refuses_the_item_and_counts_it():
    stream: Stream[int] = Stream(1, "raise", name="radio")
    stream.put(1)
    with pytest.raises(StreamFullError, match="radio: the stream's buffer is full"):
        stream.put(2)
    assert (await stream.get(), stream.dropped) == (1, 1)


async def test_an_unbounded_stream_never_drops_and_close_ends_the_iteration_after_the_items():
    stream: Stream[int] = Stream()
    for item in range(1000):
        stream.put(item)
    stream.close()
    stream.put(1000)  # ignored once closed
    assert [item async for item in stream] == list(range(1000))
    assert stream.dropped == 0


async def test_a_feeder_takes_items_from_another_thread_and_fails_the_consumer_when_full():
    stream: Stream[int] = Stream(1, "raise")
    feed = stream.feeder()
    await trio.to_thread.run_sync(feed, 1)
    assert await stream.get() == 1
    await trio.to_thread.run_sync(lambda: [feed(2), feed(3)])
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(StreamFullError):
        await stream.get()  # the error comes first: the consumer learns of the loss at once
    assert await stream.get() == 2


@pytest.mark.parametrize(
    ("maxsize", "backpressure", "match"),
    [(-1, "raise", "maxsize"), (1.5, "raise", "maxsize"), (1, "block", "backpressure")],
)
def test_bad_buffer_options_are_refused(maxsize: Any, backpressure: Any, match: str):
    with pytest.raises(RegistrationError, match=match):
        Stream(maxsize, backpressure)


# -- in an app ----------------------------------------------------------------------------------


async def test_the_port_lifecycle_and_each_yielded_state(autojump_clock):
    radio = Radio()
    harness = radio_harness(radio)

    @harness.app.stream("radio")
    async def readings(stream: Stream[Reading]) -> AsyncIterator[dict[str, int]]:
        async for reading in stream:
            yield {"value": reading.value}

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        assert radio.calls == ["open", "register_callback", "start_scan"]
        for value in (1, 2, 3):
            radio.push(value)
            await harness.settle()
    assert harness.states("radio") == [{"value": 1}, {"value": 2}, {"value": 3}]
    assert radio.calls[-2:] == ["stop_scan", "close"]
    assert harness.broker.payloads("testapp/radio/availability") == ["online", "offline"]


async def test_a_coroutine_handler_and_a_stream_named_after_it_with_its_store(autojump_clock):
    radio = Radio()
    harness = radio_harness(radio, store=MemoryStore())

    @harness.app.stream()
    async def counter(stream: Stream[Reading], store: DeviceStore) -> None:
        async for reading in stream:
            store["total"] = store.get("total", 0) + reading.value

    assert harness.app.device_names == ["counter"]
    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        radio.push(1, 2, 3)
        await trio.testing.wait_all_tasks_blocked()
    assert isinstance(harness.app.store, MemoryStore)
    assert harness.app.store.load("counter") == {"total": 6}


@pytest.mark.parametrize("backpressure", ["drop_newest", "drop_oldest"])
async def test_an_overflow_is_reported_once_per_episode_and_counted(
    autojump_clock, caplog, backpressure
):
    caplog.set_level(logging.INFO, logger="triolette.stream")
    radio = Radio()
    harness = radio_harness(radio)
    seen: list[int] = []
    go = trio.Event()

    @harness.app.stream("radio", maxsize=2, backpressure=backpressure)
    async def readings(stream: Stream[Reading]) -> None:
        await go.wait()
        async for reading in stream:
            seen.append(reading.value)

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        radio.push(1, 2, 3, 4, 5)
        await trio.testing.wait_all_tasks_blocked()
        assert harness.app.statistics().streams == {"radio": "overflowing"}
        go.set()
        await trio.testing.wait_all_tasks_blocked()
        radio.push(6)
        await trio.testing.wait_all_tasks_blocked()
        stats = harness.app.statistics()
    assert seen == ([1, 2, 6] if backpressure == "drop_newest" else [4, 5, 6])
    assert (stats.streams, stats.streams_dropped) == ({"radio": "ok"}, {"radio": 3})
    [report] = harness.errors("radio")
    assert (report["type"], report["error_type"]) == ("StreamFullError", "stream_overflow")
    lines = [r.getMessage() for r in caplog.records if r.name == "triolette.stream"]
    assert sum("buffer is full" in line for line in lines) == 1
    assert any("overflow is over: 3 item(s) dropped" in line for line in lines)


async def test_backpressure_raise_crashes_the_stream_which_restarts_with_a_fresh_port(
    autojump_clock,
):
    radio = Radio()
    harness = radio_harness(radio)
    go = trio.Event()

    @harness.app.stream("radio", maxsize=1, backpressure="raise")
    async def readings(stream: Stream[Reading]) -> None:
        await go.wait()
        async for _ in stream:
            pass

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        radio.push(1, 2)
        go.set()
        await trio.sleep(5)  # the restart's backoff
        stats = harness.app.statistics()
    assert stats.crashes == {"radio": 1}
    assert radio.calls[:6] == [
        "open", "register_callback", "start_scan", "stop_scan", "close", "open"
    ]  # fmt: skip
    assert [e["type"] for e in harness.errors("radio")] == ["StreamFullError"]


async def test_a_port_that_fails_to_stop_is_logged_and_still_closed(autojump_clock, caplog):
    radio = Radio(fail_on="stop_scan")
    harness = radio_harness(radio)

    @harness.app.stream("radio")
    async def readings(stream: Stream[Reading]) -> None:
        async for _ in stream:
            pass

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
    assert radio.calls[-2:] == ["stop_scan", "close"]
    assert any(
        r.getMessage() == "radio: the port's stop_scan() failed" and r.exc_info
        for r in caplog.records
    )


async def test_a_stale_stream_takes_itself_and_the_device_it_feeds_offline_and_back(
    autojump_clock,
):
    radio = Radio()
    harness = radio_harness(radio)
    p = harness.app.topics.prefix

    @harness.app.device("boiler")
    async def boiler(ctx: DeviceContext) -> None:
        await trio.sleep_forever()

    @harness.app.stream("radio", stale_after=10, feeds=["boiler"])
    async def readings(stream: Stream[Reading]) -> None:
        async for _ in stream:
            pass

    def availability(device: str) -> list[str]:
        return harness.broker.payloads(f"{p}/{device}/availability")

    async with harness.serving():
        await trio.sleep(5)
        radio.push(1)
        await trio.sleep(9)  # fresh: 9 s since the last item
        assert (availability("radio"), availability("boiler")) == (["online"], ["online"])
        await trio.sleep(2)
        assert (availability("radio"), availability("boiler")) == (
            ["online", "offline"],
            ["online", "offline"],
        )
        assert harness.app.running is not None
        assert harness.app.running.device_health()["radio"] == {"status": "stale"}
        assert harness.app.running.device_health()["boiler"] == {"status": "unavailable"}
        radio.push(2)
        await trio.testing.wait_all_tasks_blocked()
        assert (availability("radio"), availability("boiler")) == (
            ["online", "offline", "online"],
            ["online", "offline", "online"],
        )
        assert harness.app.statistics().streams == {"radio": "ok"}


# -- registration -------------------------------------------------------------------------------


async def _no_stream(ctx: DeviceContext) -> None:
    pass


async def _two_streams(a: Stream[Reading], b: Stream[Reading]) -> None:
    pass


async def _bare_stream(stream: Stream) -> None:  # type: ignore[type-arg]
    pass


async def _item_not_a_class(stream: Stream[list[int]]) -> None:
    pass


@pytest.mark.parametrize(
    ("handler", "match"),
    [
        (_no_stream, "exactly one parameter annotated Stream.T., found 0"),
        (_two_streams, "exactly one parameter annotated Stream.T., found 2"),
        (_bare_stream, "with a class T"),
        (_item_not_a_class, "with a class T"),
    ],
)
def test_a_handler_without_exactly_one_typed_stream_is_refused(handler: Any, match: str):
    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=f"radio: handler .*{match}"):
        harness.app.stream("radio")(handler)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"maxsize": -1}, "radio: maxsize must be an int >= 0"),
        ({"backpressure": "block"}, "radio: backpressure='block' is not one of"),
        ({"stale_after": 0}, "radio: stale_after must be a positive number"),
        ({"feeds": "boiler"}, "radio: feeds must be a list of device names"),
        ({"feeds": [3]}, "radio: feeds holds 3"),
    ],
)
def test_bad_stream_options_are_refused_naming_the_stream(options: dict[str, Any], match: str):
    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=match):
        harness.app.stream("radio", **options)(_two_streams)


async def test_a_stream_without_its_port_or_feeding_nothing_is_refused_before_devices_start(
    autojump_clock,
):
    harness = AppHarness.create()

    @harness.app.stream("radio")
    async def readings(stream: Stream[Reading]) -> None:
        pass

    with pytest.raises(RegistrationError, match=r"radio: the stream reads from StreamablePort"):
        await harness.run()

    fed = radio_harness(Radio())

    @fed.app.stream("radio", feeds=["nothing"])
    async def feeding(stream: Stream[Reading]) -> None:
        pass

    with pytest.raises(RegistrationError, match="radio: feeds='nothing' names no device"):
        await fed.run()


async def test_a_failing_open_is_a_crash_reported_and_retried(autojump_clock, caplog):
    caplog.set_level(logging.WARNING)
    radio = Radio(fail_on="open")
    harness = radio_harness(radio)

    @harness.app.stream("radio")
    async def readings(stream: Stream[Reading]) -> None:
        pass

    async with harness.serving():
        await trio.sleep(3)
    assert radio.calls.count("open") >= 2
    assert "close" in radio.calls  # cleaned up after each failed start
    assert harness.errors("radio")[0]["message"] == "radio open failed"


async def test_a_port_pushing_from_its_own_thread(autojump_clock):
    radio = Radio()
    harness = radio_harness(radio)
    seen: list[int] = []
    three = trio.Event()

    @harness.app.stream("radio")
    async def readings(stream: Stream[Reading]) -> None:
        async for reading in stream:
            seen.append(reading.value)
            if len(seen) == 3:
                three.set()

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        await trio.to_thread.run_sync(radio.push, 1, 2, 3)  # as a BLE library's thread would
        await three.wait()
    assert seen == [1, 2, 3]


class Heard:
    """Shared state a stream fills with domain events."""

    def __init__(self) -> None:
        self.events: list[int] = []

    def drain_events(self) -> list[int]:
        events, self.events = self.events, []
        return events


async def test_each_yield_of_a_stream_runs_the_reactors(autojump_clock):
    radio = Radio()
    harness = radio_harness(radio)
    reacted: list[list[int]] = []

    @harness.app.state
    def heard() -> Heard:
        return Heard()

    @harness.app.react(Heard)
    async def react(events: list[int]) -> None:
        reacted.append(events)

    @harness.app.stream("radio")
    async def readings(stream: Stream[Reading], shared: Heard) -> AsyncIterator[None]:
        async for reading in stream:
            shared.events.append(reading.value)
            yield None

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        for value in (4, 5):
            radio.push(value)
            await harness.settle()
    assert reacted == [[4], [5]]
