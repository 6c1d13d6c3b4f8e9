"""``publish="durable"``: a telemetry state is published only once its cycle's save is durable.

The backend is a :class:`GatedStore`: a write waits at a gate inside the worker thread, so a
test holds a batch in the middle of its commit and looks at what the broker got meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
import trio.testing

from tests.actors.backends import GatedStore, release_all
from triolette import (
    DeviceStore,
    RegistrationError,
    SaveAtMostEvery,
    SaveOnChange,
    SaveOnPublish,
    SaveOnShutdown,
)
from triolette.core.policies import PersistPolicy
from triolette.testing import AppHarness


@pytest.fixture(autouse=True)
def _open_gates() -> Iterator[None]:
    yield
    release_all()


def counting(harness: AppHarness, **options: object) -> list[int]:
    """Register ``meter``: each cycle adds one to its stored count and returns it."""
    cycles: list[int] = []

    @harness.app.telemetry("meter", interval=1, publish="durable", **options)  # type: ignore[arg-type]
    async def meter(store: DeviceStore) -> dict[str, int]:
        store["n"] = store.get("n", 0) + 1
        cycles.append(store["n"])
        return {"n": store["n"]}

    return cycles


async def test_the_state_is_published_only_after_the_batch_holding_it_committed(autojump_clock):
    backend = GatedStore(closed=True)
    harness = AppHarness.create(store=backend, heartbeat_every=None)
    cycles = counting(harness)
    async with harness.serving():
        await backend.wait_entered(1)  # cycle 1's save is being written, held at the gate
        await trio.testing.wait_all_tasks_blocked()
        assert cycles == [1]
        assert harness.states("meter") == []
        backend.admit(1)
        await backend.wait_returned(1)
        await backend.wait_entered(2)  # the next cycle ran; its save is held in turn
        await trio.testing.wait_all_tasks_blocked()
        assert cycles == [1, 2]
        assert harness.states("meter") == [{"n": 1}]
        assert backend.stored("meter") == {"n": 1}
        backend.open_gate()


async def test_every_durable_state_is_published_in_order_and_stored(autojump_clock):
    backend = GatedStore()
    harness = AppHarness.create(store=backend, heartbeat_every=None)
    counting(harness)
    await harness.run(cycles=3)
    assert harness.states("meter") == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert backend.stored("meter") == {"n": 3}


async def test_an_unchanged_store_does_not_hold_the_publish_back(autojump_clock):
    backend = GatedStore({"meter": {"n": 5}})
    harness = AppHarness.create(store=backend, heartbeat_every=None)

    @harness.app.telemetry("meter", interval=1, publish="durable")
    async def meter(store: DeviceStore) -> dict[str, int]:
        return {"n": store["n"]}  # reads only: nothing to write

    await harness.run(cycles=2)
    assert harness.states("meter") == [{"n": 5}, {"n": 5}]
    assert backend.writes == []


async def test_a_state_that_is_not_json_is_reported_and_the_store_still_saved(autojump_clock):
    backend = GatedStore()
    harness = AppHarness.create(store=backend, heartbeat_every=None)

    @harness.app.telemetry("meter", interval=1, publish="durable")
    async def meter(store: DeviceStore) -> dict[str, object]:
        store["n"] = store.get("n", 0) + 1
        return {"n": store["n"], "bad": {1, 2}}

    await harness.run(cycles=2)
    assert harness.states("meter") == []
    assert len(harness.errors("meter")) == 1
    assert backend.stored("meter") == {"n": 2}


@pytest.mark.parametrize(
    "policy", [SaveOnPublish(), SaveOnShutdown(), SaveOnChange() & SaveAtMostEvery(60)]
)
def test_durable_publishing_refuses_a_policy_that_would_hold_saves_back(
    policy: PersistPolicy,
) -> None:
    harness = AppHarness.create(store=GatedStore())
    with pytest.raises(RegistrationError, match="publish='durable' saves every cycle"):
        counting(harness, persist=policy)


def test_durable_publishing_takes_save_on_change_or_nothing() -> None:
    harness = AppHarness.create(store=GatedStore())
    counting(harness, persist=SaveOnChange())
    assert harness.app.registry.specs["meter"].publish == "durable"


def test_durable_publishing_needs_a_store_and_a_handler_that_takes_it() -> None:
    without_store = AppHarness.create()
    with pytest.raises(RegistrationError, match="needs a store"):
        without_store.app.telemetry("meter", interval=1, publish="durable")
    harness = AppHarness.create(store=GatedStore())
    with pytest.raises(RegistrationError, match="takes a DeviceStore"):

        @harness.app.telemetry("meter", interval=1, publish="durable")
        async def meter() -> dict[str, int]:
            return {"n": 1}


def test_publish_takes_only_now_or_durable() -> None:
    harness = AppHarness.create(store=GatedStore())
    with pytest.raises(RegistrationError, match="publish='soon' is not one of"):
        harness.app.telemetry("meter", interval=1, publish="soon")  # type: ignore[arg-type]
