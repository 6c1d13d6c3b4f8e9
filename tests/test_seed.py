"""Every example of the persistence guide (the seed), with only the package name changed."""

from __future__ import annotations

import time

import pytest

from triolette import (
    App,
    DeviceContext,
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    SaveOnChange,
    SaveOnPublish,
    SaveOnShutdown,
    SqliteStore,
)
from triolette.testing import AppHarness


async def test_sensor_persists_count():
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run()
    assert backend.load("sensor") == {"count": 1}


async def test_pre_seeded_store_is_what_the_handler_sees_first():
    backend = MemoryStore()
    backend.save("sensor", {"count": 99})
    harness = AppHarness.create(store=backend)
    seen = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(store: DeviceStore) -> dict[str, object]:
        seen.append(store["count"])
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run()
    assert seen == [99]
    assert backend.load("sensor") == {"count": 100}


async def test_dict_like_access_and_to_dict():
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    snapshots = []

    @harness.app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> dict[str, object]:
        # Dict-like access
        store["count"] = store.get("count", 0) + 1
        store.setdefault("offset", 0.0)

        # Check what's stored
        all_data = store.to_dict()
        snapshots.append(all_data)

        return {"count": store["count"]}

    await harness.run()
    assert snapshots == [{"count": 1, "offset": 0.0}]
    assert harness.state("sensor") == {"count": 1}
    assert backend.load("sensor") == {"count": 1, "offset": 0.0}


async def test_dirty_tracking():
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    flags = []

    @harness.app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> None:
        store["value"] = 42  # store.dirty → True
        flags.append(store.dirty)
        store.save()  # store.dirty → False
        flags.append(store.dirty)
        store.mark_dirty()  # Force dirty (e.g., after mutating a nested object)
        flags.append(store.dirty)

    await harness.run()
    assert flags == [True, False, True]
    assert backend.load("sensor") == {"value": 42}


@pytest.mark.parametrize(
    "persist",
    [SaveOnPublish(), SaveOnChange(), SaveOnShutdown(), SaveOnPublish() | SaveOnChange()],
    ids=repr,
)
async def test_policy_examples(persist, autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)

    @harness.app.telemetry("sensor", interval=60, persist=persist)
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(cycles=3)
    assert backend.load("sensor") == {"count": 3}
    assert harness.states("sensor") == [{"count": 1}, {"count": 2}, {"count": 3}]
    # One write per cycle during the run, or only the shutdown's (the final one of the others
    # is equal to the last in-loop write, so it costs nothing).
    batches = harness.app.statistics().persistence.batches  # type: ignore[union-attr]
    assert batches == (1 if isinstance(persist, SaveOnShutdown) else 3)


def test_composition_examples():
    # Save on publish OR when dirty (maximum safety)
    persist = SaveOnPublish() | SaveOnChange()
    assert repr(persist) == "AnySavePolicy(SaveOnPublish(), SaveOnChange())"
    # Save only when BOTH conditions are true
    both = SaveOnPublish() & SaveOnChange()
    assert repr(both) == "AllSavePolicy(SaveOnPublish(), SaveOnChange())"


def test_backend_constructors(tmp_path):
    (tmp_path / "data").mkdir()
    store = JsonFileStore(tmp_path / "data" / "state.json")
    store.save("sensor", {"a": 1})
    assert store.load("sensor") == {"a": 1}
    db = SqliteStore(tmp_path / "data" / "state.db")
    db.save("counter", {"b": 2})
    assert db.load("counter") == {"b": 2}
    db.close()
    store.close()


async def test_device_handler_with_manual_save(autojump_clock):
    """The seed's example verbatim, but for ``asyncio=True``: asyncio code in a trio app."""
    import asyncio

    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    app = harness.app

    @app.device("controller", asyncio=True)
    async def controller(ctx: DeviceContext, store: DeviceStore) -> None:
        while True:
            # ... do work ...
            store["last_run"] = time.time()
            store.save()  # Manual save
            await asyncio.sleep(60)

    await harness.run(duration=150)
    assert harness.app.statistics().restarts == {"controller": 0}
    assert "last_run" in (backend.load("controller") or {})


async def test_device_handler_with_manual_save_on_trio(autojump_clock):
    """The same example with ``ctx.sleep`` instead of ``asyncio.sleep`` runs today."""
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    app = harness.app
    runs = []

    @app.device("controller")
    async def controller(ctx: DeviceContext, store: DeviceStore) -> None:
        while True:
            # ... do work ...
            store["last_run"] = time.time()
            runs.append(store["last_run"])
            store.save()  # Manual save
            await ctx.sleep(60)

    await harness.run(duration=150)
    assert len(runs) == 3
    assert backend.load("controller") == {"last_run": runs[-1]}


def test_app_without_store_rejects_persist():
    app = App("bridge")
    with pytest.raises(ValueError, match="sensor: persist= needs a store"):
        app.telemetry("sensor", interval=60, persist=SaveOnChange())
