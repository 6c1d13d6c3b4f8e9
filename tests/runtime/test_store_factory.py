"""``App(store=factory)``: the store is built when a serve starts, from the settings."""

from __future__ import annotations

import attrs
import pytest

from triolette import App, DeviceStore, JsonFileStore, MemoryStore
from triolette.runtime.settings import RunSettings
from triolette.runtime.wiring import apply_settings
from triolette.testing import AppHarness


@attrs.frozen
class Paths:
    label: str = "kitchen"


def counting_app(store: object) -> App:
    app = App("myapp", store=store)  # type: ignore[arg-type]

    @app.telemetry("meter", interval=10)
    async def meter(store: DeviceStore) -> dict[str, object]:
        store["reads"] = store.get("reads", 0) + 1
        return {"reads": store["reads"]}

    return app


async def test_a_store_factory_is_called_at_each_serve_with_the_settings(autojump_clock):
    built: list[tuple[str, MemoryStore]] = []

    def make_store(paths: Paths) -> MemoryStore:
        store = MemoryStore()
        built.append((paths.label, store))
        return store

    app = counting_app(make_store)
    assert app.store is None
    assert app.store_factory is make_store
    harness = AppHarness(app, settings=Paths())
    assert built == []  # nothing before the serve
    await harness.run()
    await harness.run()
    assert [label for label, _ in built] == ["kitchen", "kitchen"]
    assert [store.load("meter") for _, store in built] == [{"reads": 1}, {"reads": 1}]
    assert harness.app.store is built[-1][1]


async def test_a_factory_without_parameters_needs_no_settings(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness(counting_app(lambda: backend))
    await harness.run(cycles=2)
    assert backend.load("meter") == {"reads": 2}


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: {"not": "a store"}, "which is not a Store"),
        (lambda path: MemoryStore(), "cannot inject parameter 'path'"),
    ],
)
async def test_a_bad_store_factory_is_a_type_error_naming_it(autojump_clock, factory, message):
    harness = AppHarness(counting_app(factory))
    with pytest.raises(TypeError, match=message) as caught:
        await harness.run()
    assert "store factory" in str(caught.value)


async def test_an_async_store_factory_is_refused(autojump_clock):
    async def make_store() -> MemoryStore:
        return MemoryStore()

    with pytest.raises(TypeError, match="must be synchronous"):
        await AppHarness(counting_app(make_store)).run()


async def test_the_harness_replaces_a_factory_with_a_memory_store(autojump_clock):
    def make_store() -> MemoryStore:
        raise AssertionError("the harness does not call the app's factory")

    app = counting_app(make_store)
    harness = AppHarness.create(app=app)
    await harness.run()
    assert isinstance(harness.app.store, MemoryStore)
    assert harness.app.store.load("meter") == {"reads": 1}
    assert app.store_factory is make_store


def test_a_store_location_given_at_start_wins_over_the_factory(tmp_path):
    def make_store() -> MemoryStore:
        raise AssertionError("the location given at start replaces the factory")

    app = App("bridge", store=make_store)
    settings = RunSettings.from_sources({"store_path": str(tmp_path / "state.json")}, {})
    apply_settings(settings, app)
    assert isinstance(app.store, JsonFileStore)
    assert app.store_factory is None
