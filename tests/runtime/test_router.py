"""Routers: registrations recorded once, included in an App under prefixes."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

from triolette import (
    App,
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    RegistrationError,
    Router,
    SaveOnChange,
    SqliteStore,
    Store,
    Stream,
    StreamablePort,
)
from triolette.core.topics import Topics
from triolette.testing import AppHarness


def room_router(prefix: str | None = None) -> Router:
    router = Router(prefix, tags=["rooms"])

    @router.telemetry("meter", interval=60, persist=SaveOnChange())
    async def meter(store: DeviceStore) -> dict[str, int]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    @router.command("valve")
    async def valve(payload: str) -> dict[str, str]:
        return {"position": payload}

    return router


async def test_a_router_included_twice_under_two_prefixes(autojump_clock):
    harness = AppHarness.create(store=MemoryStore())
    router = room_router()
    harness.app.include_router(router, prefix="kitchen")
    harness.app.include_router(router, prefix="cellar")
    assert harness.app.device_names == [
        "kitchen/meter", "kitchen/valve", "cellar/meter", "cellar/valve"
    ]  # fmt: skip
    async with harness.serving():
        await harness.command("cellar/valve", "open")
    p = harness.app.topics.prefix
    assert harness.broker.payloads(f"{p}/kitchen/meter/state") == [{"count": 1}]
    assert harness.broker.payloads(f"{p}/cellar/valve/state") == [{"position": "open"}]
    assert harness.broker.payloads(f"{p}/kitchen/valve/state") == []
    assert harness.broker.payloads(f"{p}/cellar/meter/availability") == ["online", "offline"]
    assert router.tags == ("rooms",)


async def test_the_include_prefix_comes_before_the_routers_own():
    app = App("house", store=MemoryStore())
    app.include_router(room_router("ground"), prefix="east")
    app.include_router(room_router("ground"))
    assert app.device_names[:2] == ["east/ground/meter", "east/ground/valve"]
    assert app.device_names[2:] == ["ground/meter", "ground/valve"]


def test_registrations_are_copied_at_include_time():
    app = App("house", store=MemoryStore())
    router = room_router()
    app.include_router(router, prefix="kitchen")

    @router.telemetry("later", interval=5)
    async def later() -> None:
        pass

    assert "kitchen/later" not in app.device_names


@pytest.mark.parametrize("prefix", ["triolette", "a/b", "", "+", "$sys"])
def test_a_bad_or_reserved_prefix_is_refused(prefix: str):
    with pytest.raises(RegistrationError, match="prefix"):
        Router(prefix)
    with pytest.raises(RegistrationError, match="prefix"):
        App("house").include_router(room_router(), prefix=prefix)


def test_a_name_holding_a_slash_is_still_refused_outside_a_router():
    with pytest.raises(RegistrationError, match="which would add a topic level"):
        App("house").telemetry("kitchen/meter", interval=5)


def test_an_include_that_collides_changes_nothing():
    app = App("house", store=MemoryStore())
    router = room_router()
    app.include_router(router, prefix="kitchen")
    before = list(app.device_names)
    with pytest.raises(RegistrationError, match="kitchen/meter, kitchen/valve already registered"):
        app.include_router(router, prefix="kitchen")
    assert app.device_names == before


def test_every_keyword_is_passed_through_so_the_app_decides():
    router = Router()

    @router.telemetry("meter", interval=5, colour="blue")
    async def meter() -> None:
        pass

    with pytest.raises(TypeError, match="colour"):
        App("house").include_router(router, prefix="kitchen")
    bad = Router()
    bad.telemetry("meter", interval=-1)(meter)
    with pytest.raises(RegistrationError, match="kitchen/meter: interval must be a positive"):
        App("house").include_router(bad, prefix="kitchen")


@attrs.frozen
class Pulse:
    count: int


class PulseCounter:
    def open(self) -> None: ...
    def close(self) -> None: ...
    def start_scan(self) -> None: ...
    def stop_scan(self) -> None: ...
    def register_callback(self, callback: Any) -> None: ...


def test_stream_feeds_and_names_follow_the_prefix_and_an_adapter_is_added_once():
    router = Router("meters")
    router.adapter(StreamablePort[Pulse], PulseCounter)

    @router.device("boiler")
    async def boiler() -> None:
        pass

    @router.stream(feeds=["boiler", "outside"])
    async def pulses(stream: Stream[Pulse]) -> None:
        pass

    app = App("house")
    app.include_router(router, prefix="east")
    app.include_router(router, prefix="west")
    spec = app.registry.specs["west/meters/pulses"]
    assert spec.stream is not None
    assert spec.stream.feeds == ("west/meters/boiler", "outside")
    assert app.registry.adapters.ports == [StreamablePort[Pulse]]


def test_a_multi_level_device_is_found_from_its_command_topic():
    topics = Topics("house")
    assert topics.device_of_command("house/kitchen/valve/set") == "kitchen/valve"
    assert topics.device_of_command("house/valve/set") == "valve"
    assert topics.device_of_command("house/set") is None
    assert topics.device_of_command("garden/valve/set") is None
    assert topics.device_of_command("house/valve/state") is None


@pytest.mark.parametrize("kind", ["json", "sqlite"])
async def test_a_store_keeps_a_prefixed_device_across_restarts(autojump_clock, tmp_path, kind):
    def store() -> Store:
        if kind == "json":
            return JsonFileStore(tmp_path / "state.json")
        return SqliteStore(tmp_path / "state.db")

    for run in (1, 2):
        app = App("house", store=store())
        app.include_router(room_router(), prefix="kitchen")
        harness = AppHarness.create(app=app, store=store())
        await harness.run()
        assert harness.state("kitchen/meter") == {"count": run}
    saved = store()
    assert saved.load("kitchen/meter") == {"count": 2}


async def test_a_root_registration_keeps_its_name(autojump_clock):
    """A registration without a name is passed on without one (the App decides)."""
    router = Router("kitchen")
    recorded: list[tuple[Any, ...]] = []

    class Recorder(App):
        def device(self, *args: Any, **options: Any) -> Any:
            recorded.append(args)
            return super().device("stand-in", **options)

    @router.device()
    async def heater() -> None:
        await trio.lowlevel.checkpoint()

    Recorder("house").include_router(router)
    assert recorded == [()]
