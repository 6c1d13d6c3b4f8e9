"""The persistence actor on its own: coalescing, group commit, acks, read-your-writes, faults.

Each test starts the actor in a nursery, takes one client per device key, and ends it by
closing every client and the runtime's handle (``actor.close()``). Backends come from
:mod:`tests.actors.backends`: they record every call, and a gated one blocks *inside* the worker
thread, so a test can act while a write is really in progress.

Most tests run twice (the ``either_clock`` fixture): under trio's autojump clock and under the
real clock. The actor does not know which runs: while its worker thread works it waits in trio's
idle-wait, which keeps the autojump clock from leaping over real I/O, and it is woken by the
thread when the call returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.actors.backends import (
    FailingStore,
    GatedStore,
    PlainRecordingStore,
    RecordingStore,
    release_all,
)
from triolette import (
    DeviceStore,
    FlushIncompleteError,
    JsonFileStore,
    KeyInUseError,
    MemoryStore,
    SqliteStore,
)
from triolette.actors.outage_log import OutageLog
from triolette.actors.persistence import PersistenceActor, PersistenceClient

ACTOR_LOGGER = "triolette.persistence"
TIMEOUT = 10.0
"""Bounds each test's actor (virtual seconds under the autojump clock, real ones otherwise)."""


@pytest.fixture(autouse=True)
def _no_blocked_worker_threads() -> Iterable[None]:
    yield
    release_all()


@pytest.fixture(params=["autojump", "real"])
def either_clock(request: pytest.FixtureRequest) -> trio.testing.MockClock | None:
    """The autojump clock, or (``None``) trio's real clock; pytest-trio runs the test with it."""
    return trio.testing.MockClock(autojump_threshold=0) if request.param == "autojump" else None


@contextlib.asynccontextmanager
async def running(
    actor: PersistenceActor, keys: Iterable[str] = (), *, give_up_after: float = TIMEOUT
) -> AsyncIterator[trio.Nursery]:
    """Run ``actor`` (loading ``keys``) around the body, then close its handle and wait for it.

    The body must close every client it took: the actor only ends once all are closed. If it
    does not end within ``give_up_after`` seconds, or the body fails, the actor is abandoned, so a
    broken test fails instead of hanging on a shielded actor.
    """

    async def watchdog() -> None:
        await trio.sleep(give_up_after)
        actor.abandon()
        raise AssertionError(f"the actor did not end within {give_up_after} s (a handle open?)")

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run, list(keys))
        nursery.start_soon(watchdog)
        try:
            yield nursery
        except BaseException:
            actor.abandon()
            raise
        actor.close()
        await actor.stopped.wait()
        nursery.cancel_scope.cancel()


async def open_store(actor: PersistenceActor, key: str) -> tuple[PersistenceClient, DeviceStore]:
    client = actor.client(key)
    return client, await client.open_store(clock=trio.current_time)


async def settle() -> None:
    """Let every other task run until it blocks (the actor waiting for its thread is blocked)."""
    await trio.testing.wait_all_tasks_blocked()


def text(state: dict[str, object]) -> str:
    return json.dumps(state, ensure_ascii=False, separators=(",", ":"))


# -- coalescing and group commit -------------------------------------------------------------


async def test_saves_of_one_key_during_a_write_become_one_write_of_the_latest(either_clock):
    backend = GatedStore()
    actor = PersistenceActor(backend)
    async with running(actor, ["meter"]):
        client, store = await open_store(actor, "meter")
        backend.close_gate()
        store["n"] = 0
        store.save()
        await backend.wait_entered(1)  # n=0 is being written
        for n in range(1, 11):
            store["n"] = n
            store.save()
        backend.open_gate()
        await store.flush()
        client.close()

    assert [call.states for call in backend.writes] == [{"meter": {"n": 0}}, {"meter": {"n": 10}}]
    assert backend.stored("meter") == {"n": 10}
    stats = actor.statistics()
    assert (stats.saves, stats.coalesced, stats.batches) == (11, 9, 2)


async def test_saves_of_many_keys_during_a_write_land_in_one_backend_call(either_clock):
    keys = [f"dev{index:02d}" for index in range(50)]
    backend = GatedStore()
    actor = PersistenceActor(backend)
    async with running(actor, ["first", *keys]):
        first, first_store = await open_store(actor, "first")
        opened = [await open_store(actor, key) for key in keys]
        backend.close_gate()
        first_store["n"] = 1
        first_store.save()
        await backend.wait_entered(1)
        for index, (_, store) in enumerate(opened):
            store["n"] = index
            store.save()
        backend.open_gate()
        await actor.flush()
        for client, _ in [(first, first_store), *opened]:
            client.close()

    writes = backend.writes
    assert len(writes) == 2
    assert writes[0].states == {"first": {"n": 1}}
    assert sorted(writes[1].keys) == keys
    assert writes[1].states == {key: {"n": index} for index, key in enumerate(keys)}
    stats = actor.statistics()
    assert (stats.batches, stats.keys_written, stats.max_keys_per_batch) == (2, 51, 50)
    assert stats.keys_per_batch == pytest.approx(25.5)


async def test_flush_returns_only_after_the_write_holding_the_snapshot_returned(either_clock):
    events: list[str] = []
    backend = GatedStore(events=events)
    actor = PersistenceActor(backend)
    async with running(actor, ["meter"]) as nursery:
        client, store = await open_store(actor, "meter")
        backend.close_gate()
        store["n"] = 1
        store.save()
        await backend.wait_entered(1)
        store["n"] = 2
        store.save()  # pending behind the write in progress
        late_flushed, second_flushed = trio.Event(), trio.Event()

        async def flusher(done: trio.Event, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await store.flush()
            events.append("flushed")
            done.set()

        await nursery.start(flusher, second_flushed)  # waits for n=2, the newest save
        await settle()
        assert events == ["write-entered"]
        assert not second_flushed.is_set()

        backend.admit(1)  # n=1 lands; the write of n=2 enters and is held
        await backend.wait_entered(2)
        await settle()
        assert events == ["write-entered", "write-returned", "write-entered"]
        assert not second_flushed.is_set()
        assert backend.stored("meter") == {"n": 1}

        backend.open_gate()
        await second_flushed.wait()
        await nursery.start(flusher, late_flushed)  # nothing new saved: returns at once
        await late_flushed.wait()
        client.close()

    assert events == [
        "write-entered",
        "write-returned",
        "write-entered",
        "write-returned",
        "flushed",
        "flushed",
        "backend-closed",
    ]


async def test_a_reopened_store_loads_the_in_flight_then_the_pending_snapshot(either_clock):
    backend = GatedStore({"meter": {"n": 0}})
    actor = PersistenceActor(backend)
    async with running(actor, ["meter"]):
        client, store = await open_store(actor, "meter")
        assert store.to_dict() == {"n": 0}
        backend.close_gate()
        store["n"] = 1
        store.save()
        await backend.wait_entered(1)
        client.close()

        client, store = await open_store(actor, "meter")
        assert store.to_dict() == {"n": 1}  # being written, not the durable n=0
        store["n"] = 2
        store.save()
        client.close()

        client, store = await open_store(actor, "meter")
        assert store.to_dict() == {"n": 2}  # pending, not the n=1 being written
        assert backend.stored("meter") == {"n": 0}
        backend.open_gate()
        await store.flush()
        client.close()

        client, store = await open_store(actor, "meter")
        assert store.to_dict() == {"n": 2}
        assert not store.dirty
        client.close()

    assert backend.stored("meter") == {"n": 2}
    assert [call.method for call in backend.reads] == ["load"]  # only at start-up


@pytest.mark.parametrize("kind", [RecordingStore, PlainRecordingStore])
async def test_start_up_reads_every_key_in_one_batch_and_opening_reads_nothing(either_clock, kind):
    backend = kind({"a": {"n": 1}, "b": {"n": 2}, "late": {"n": 3}})
    actor = PersistenceActor(backend)
    keys = ["a", "b", "new"]
    async with running(actor, keys):
        reads = list(backend.reads)
        if kind is RecordingStore:
            assert [call.method for call in reads] == ["load_all"]
        else:  # no load_all: one load per key, back to back in one worker thread
            assert [(call.method, call.keys) for call in reads] == [
                ("load", ("a",)),
                ("load", ("b",)),
                ("load", ("new",)),
            ]
            assert backend.calls[: len(reads)] == reads
            assert len({call.thread for call in reads}) == 1

        opened = [await open_store(actor, key) for key in keys]
        assert [store.to_dict() for _, store in opened] == [{"n": 1}, {"n": 2}, {}]
        assert backend.reads == reads  # known absent ("new") is known too

        late_client, late = await open_store(actor, "late")  # not announced: read on demand
        assert late.to_dict() == {"n": 3}
        assert [(call.method, call.keys) for call in backend.reads[len(reads) :]] == [
            ("load", ("late",))
        ]
        for client, _ in [*opened, (late_client, late)]:
            client.close()


class _ActorSteps(trio.abc.Instrument):
    """Appends ``"actor step"`` to ``events`` each time the actor's task runs on the trio thread."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if getattr(task.coro, "cr_code", None) is PersistenceActor.run.__code__:
            self.events.append("actor step")


class _LoadLog(PlainRecordingStore):
    def load(self, key: str) -> dict[str, object] | None:
        self.events.append(f"load {key}")
        return super().load(key)


async def test_a_backend_without_load_all_is_read_key_by_key_in_one_worker_thread_call():
    # Real clock: the actor's task then sleeps for the whole backend call, so any step of it
    # between two loads means a second worker-thread round trip.
    events: list[str] = []
    backend = _LoadLog({"a": {"n": 1}}, events=events)
    actor = PersistenceActor(backend)
    instrument = _ActorSteps(events)
    trio.lowlevel.add_instrument(instrument)
    try:
        async with running(actor, ["a", "b", "c"]):
            trio.lowlevel.remove_instrument(instrument)
            loads = [index for index, event in enumerate(events) if event.startswith("load")]
            assert [events[index] for index in loads] == ["load a", "load b", "load c"]
            assert loads == list(range(loads[0], loads[0] + 3))  # no actor step in between
            assert "actor step" in events[: loads[0]]
            assert "actor step" in events[loads[-1] :]
    finally:
        with contextlib.suppress(KeyError):
            trio.lowlevel.remove_instrument(instrument)


async def test_every_backend_call_runs_on_a_worker_thread(either_clock):
    backend = RecordingStore({"a": {"n": 1}})
    actor = PersistenceActor(backend)
    async with running(actor, ["a", "b"]):
        opened = [await open_store(actor, key) for key in ("a", "b", "c")]
        for client, store in opened:
            store["n"] = 7
            store.save()
            await store.flush()
            client.close()

    assert {call.method for call in backend.calls} == {"load_all", "load", "save_many", "close"}
    trio_thread = threading.get_ident()
    assert [call for call in backend.calls if call.thread == trio_thread] == []


async def test_a_snapshot_equal_to_the_durable_state_is_not_written(either_clock):
    backend = RecordingStore({"a": {"n": 1}})
    actor = PersistenceActor(backend)
    async with running(actor, ["a"]):
        client, store = await open_store(actor, "a")
        store["n"] = 2
        store.save()
        store["n"] = 1  # back to what is durable before n=2 was written
        store.save()
        await store.flush()
        client.submit("a", text({"n": 1}))  # the durable text again, straight to the actor
        await store.flush()
        client.close()

    assert backend.writes == []
    stats = actor.statistics()
    assert (stats.saves, stats.coalesced, stats.skipped_identical) == (3, 1, 2)
    assert (stats.batches, stats.bytes_written) == (0, 0)


# -- backend errors --------------------------------------------------------------------------


async def test_a_failing_backend_keeps_the_snapshots_and_retries_with_backoff(autojump_clock):
    backend = FailingStore(failures=2)
    reported: list[tuple[list[str], BaseException, float, str | None]] = []

    def on_error(keys: list[str], error: BaseException) -> None:
        reported.append((keys, error, trio.current_time(), actor.view("a")))

    actor = PersistenceActor(backend, retry_initial=0.1, retry_max=5.0, on_error=on_error)
    async with running(actor, ["a", "b"]):
        opened = [await open_store(actor, key) for key in ("a", "b")]
        start = trio.current_time()
        for _, store in opened:
            store["n"] = 1
            store.save()
        await actor.flush()
        durable_after = trio.current_time() - start
        for client, _ in opened:
            client.close()

    assert [keys for keys, *_ in reported] == [["a", "b"], ["a", "b"]]
    assert all(isinstance(error, OSError) for _, error, *_ in reported)
    # Tried at once, again after 0.1 s, then after 0.2 s more: exponential backoff.
    assert [when - start for _, _, when, _ in reported] == pytest.approx([0.0, 0.1])
    assert durable_after == pytest.approx(0.3)
    # While failing, the snapshot is kept and still what a load sees.
    assert [seen for *_, seen in reported] == [text({"n": 1})] * 2
    stats = actor.statistics()
    assert (stats.failures, stats.batches, stats.keys_written) == (2, 1, 2)
    assert stats.last_error is not None
    assert "OSError" in stats.last_error
    assert "injected I/O error" in stats.last_error
    assert len(backend.writes) == 3
    assert backend.stored("a") == backend.stored("b") == {"n": 1}


async def test_a_disk_outage_is_logged_once_then_counted_then_its_end_told(autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="triolette.persistence")
    backend = FailingStore(failures=40)
    actor = PersistenceActor(backend, retry_initial=1.0, retry_max=5.0)
    async with running(actor, ["a"], give_up_after=1000):
        client, store = await open_store(actor, "a")
        store["n"] = 1
        store.save()  # fails at 0, 1, 3, 7, then every 5 s up to 187; written at 192
        await store.flush()
        client.close()

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == ACTOR_LOGGER]
    error = "OSError: [Errno 5] injected I/O error"
    assert lines == [
        ("ERROR", f"could not save a ({error}); kept in memory, retrying in 1.0 s"),
        (
            "ERROR",
            f"still could not save a ({error}): 14 more failure(s) in the last 62 s; "
            "kept in memory, retrying in 5.0 s",
        ),
        (
            "ERROR",
            f"still could not save a ({error}): 12 more failure(s) in the last 60 s; "
            "kept in memory, retrying in 5.0 s",
        ),
        (
            "ERROR",
            f"still could not save a ({error}): 12 more failure(s) in the last 60 s; "
            "kept in memory, retrying in 5.0 s",
        ),
        ("INFO", "the store works again: saved after 192.0 s and 40 failed attempt(s)"),
    ]
    assert actor.statistics().failures == 40


def test_another_error_during_an_outage_is_news_and_a_new_outage_starts_afresh(caplog):
    caplog.set_level(logging.INFO)
    log = OutageLog(logging.getLogger("outage test"), repeat_every=60)
    log.failed(["a"], "OSError: disk full", 1.0, now=0)
    log.failed(["a"], "OSError: disk full", 2.0, now=1)  # a repeat: counted only
    log.failed(["a", "b"], "OSError: read-only file system", 4.0, now=3)  # news
    log.recovered(now=7)
    log.recovered(now=8)  # nothing to tell: no outage
    log.failed(["b"], "OSError: read-only file system", 1.0, now=100)  # a new outage
    assert [record.getMessage() for record in caplog.records] == [
        "could not save a (OSError: disk full); kept in memory, retrying in 1.0 s",
        "could not save a, b (OSError: read-only file system); kept in memory, retrying in 4.0 s",
        "the store works again: saved after 7.0 s and 3 failed attempt(s)",
        "could not save b (OSError: read-only file system); kept in memory, retrying in 1.0 s",
    ]


async def test_a_snapshot_saved_during_a_failing_write_wins_over_the_failed_one(autojump_clock):
    backend = GatedStore(failures=1)
    actor = PersistenceActor(backend, retry_initial=0.1)
    async with running(actor, ["a"]):
        client, store = await open_store(actor, "a")
        backend.close_gate()
        store["n"] = 1
        store.save()
        await backend.wait_entered(1)  # this write of n=1 will fail
        store["n"] = 2
        store.save()
        backend.open_gate()
        await store.flush()
        client.close()

    assert [call.states for call in backend.writes] == [{"a": {"n": 1}}, {"a": {"n": 2}}]
    assert backend.stored("a") == {"n": 2}
    assert actor.statistics().failures == 1


# -- ownership and life cycle ----------------------------------------------------------------


async def test_a_key_has_one_owner_until_its_client_is_closed():
    actor = PersistenceActor(MemoryStore())
    async with running(actor, ["a", "b"]):
        first = actor.client("a")
        with pytest.raises(KeyInUseError, match=r"^a: another running device store"):
            actor.client("a")
        other = actor.client("b")  # other keys are not affected
        first.close()
        with actor.client("a"):
            first.close()  # closing again must not free the key its successor holds
            with pytest.raises(KeyInUseError):
                actor.client("a")
        actor.client("a").close()  # leaving ``with`` freed it
        other.close()


async def test_saving_through_a_closed_client_is_a_clear_error_and_changes_nothing():
    backend = RecordingStore({"a": {"n": 1}})
    actor = PersistenceActor(backend)
    async with running(actor, ["a"]):
        old_client, old = await open_store(actor, "a")
        old_client.close()
        new_client, new = await open_store(actor, "a")  # the device was restarted
        new["n"] = 2
        new.save()

        old["n"] = 99
        with pytest.raises(trio.ClosedResourceError, match=r"^a: .*stopped"):
            old.save()
        assert old.dirty  # not taken for saved
        await new.flush()
        new_client.close()

    assert backend.stored("a") == {"n": 2}
    assert actor.statistics().saves == 1


async def test_a_started_write_survives_cancellation_of_the_enclosing_scope(either_clock):
    events: list[str] = []
    backend = GatedStore(events=events)
    actor = PersistenceActor(backend)

    async def check_then_release(client: PersistenceClient) -> None:
        try:
            await settle()
            events.append("actor ended" if actor.stopped.is_set() else "actor still writing")
        finally:  # whatever happened, let the actor finish
            client.close()
            actor.close()
            backend.open_gate()

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as outer:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(actor.run, ["a"])
                    client, store = await open_store(actor, "a")
                    backend.close_gate()
                    store["n"] = 1
                    store.save()
                    await backend.wait_entered(1)
                    outer.start_soon(check_then_release, client)
                    scope.cancel()
                    await trio.sleep_forever()
            events.append("cancelled scope exited")

    assert scope.cancelled_caught
    assert events == [
        "write-entered",
        "actor still writing",
        "write-returned",
        "backend-closed",
        "cancelled scope exited",
    ]
    assert backend.stored("a") == {"n": 1}


async def test_abandon_ends_the_actor_at_once_and_names_the_keys_not_durable(either_clock):
    backend = GatedStore()
    actor = PersistenceActor(backend)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run, ["a", "b", "c"])
            try:
                stores = {key: (await open_store(actor, key))[1] for key in ("a", "b", "c")}
                stores["c"]["n"] = 1
                stores["c"].save()
                await stores["c"].flush()  # c is durable before the disk hangs

                backend.close_gate()
                stores["a"]["n"] = 1
                stores["a"].save()
                await backend.wait_entered(2)  # a's write hangs in the worker thread
                stores["b"]["n"] = 1
                stores["b"].save()  # b waits behind it
                waiter_failed = trio.Event()

                async def waiter() -> None:
                    with pytest.raises(FlushIncompleteError, match=r"^state of b was not saved"):
                        await actor.flush("b")
                    waiter_failed.set()

                nursery.start_soon(waiter)
                await settle()
                assert actor.abandon() == ["a", "b"]
                await actor.stopped.wait()  # though every client is still open
                await waiter_failed.wait()
                with pytest.raises(FlushIncompleteError) as info:
                    await actor.flush()
                assert info.value.keys == ["a", "b"]  # every key not durable, not just the first
                await actor.flush("c")  # durable before: nothing to report
                assert backend.stored("a") is None
            finally:
                actor.abandon()  # also when an assertion failed, so the test cannot hang
    # The abandoned write was not torn: it goes on in its thread, unobserved. (Waited for
    # outside ``fail_after``: the autojump clock would leap to its deadline meanwhile.)
    backend.open_gate()
    await backend.wait_returned(2)
    assert backend.stored("a") == {"n": 1}
    assert backend.stored("b") is None
    assert backend.stored("c") == {"n": 1}


# -- statistics ------------------------------------------------------------------------------


async def test_statistics_account_for_the_mailbox_pending_table_and_batches(either_clock):
    keys = [f"d{index:02d}" for index in range(20)]
    backend = GatedStore()
    actor = PersistenceActor(backend, mailbox_size=8)
    async with running(actor, ["first", *keys]) as nursery:
        assert actor.statistics().mailbox_senders == 1  # the runtime's own handle
        first, first_store = await open_store(actor, "first")
        opened = [await open_store(actor, key) for key in keys]
        assert actor.statistics().mailbox_senders == 22

        backend.close_gate()
        first_store["n"] = 0
        first_store.save()
        await backend.wait_entered(1)
        for index, (_, store) in enumerate(opened):
            store["n"] = index
            store.save()  # saves pile up in the pending table, not in the mailbox
        during = actor.statistics()
        assert (during.pending_keys, during.pending_peak) == (20, 20)
        assert during.mailbox_depth <= 8

        # Loads of keys it does not know queue in the mailbox up to its size; then they wait.
        late = [actor.client(f"late{index:02d}") for index in range(12)]
        loaded = 0

        async def load(client: PersistenceClient) -> None:
            nonlocal loaded
            await client.open_store(clock=trio.current_time)
            loaded += 1

        for client in late:
            nursery.start_soon(load, client)
        await settle()
        during = actor.statistics()
        assert (during.mailbox_depth, during.mailbox_peak, during.mailbox_senders) == (8, 8, 34)
        assert loaded == 0

        backend.open_gate()
        await actor.flush()
        await settle()
        assert loaded == 12
        after = actor.statistics()
        assert (after.mailbox_depth, after.mailbox_peak) == (0, 8)
        assert (after.pending_keys, after.pending_peak) == (0, 20)
        assert (after.saves, after.batches, after.keys_written) == (21, 2, 21)
        assert (after.max_keys_per_batch, after.keys_per_batch) == (20, 10.5)
        assert (after.failures, after.last_error) == (0, None)
        written = [text(state) for call in backend.writes for state in call.states.values()]
        assert after.bytes_written == sum(len(each.encode()) for each in written)
        for client, _ in [(first, first_store), *opened]:
            client.close()
        for client in late:
            client.close()
    assert actor.statistics().mailbox_senders == 0


async def test_bytes_written_counts_utf8_bytes_not_characters():
    backend = RecordingStore()
    actor = PersistenceActor(backend)
    async with running(actor, ["probe"]):
        client, store = await open_store(actor, "probe")
        store["unit"] = "°C"
        store["place"] = "Küche"
        store.save()
        await store.flush()
        client.close()
    encoded = text({"unit": "°C", "place": "Küche"}).encode("utf-8")
    assert actor.statistics().bytes_written == len(encoded)


# -- writes whose outcome is unknown -----------------------------------------------------------


class _LandsThenFails(PlainRecordingStore):
    """``save`` writes, then raises once: like a folder fsync failing after the rename."""

    def __init__(self, initial: dict[str, dict[str, object]]) -> None:
        super().__init__(initial)
        self.fail_after_landing = 1

    def save(self, key: str, data: dict[str, object]) -> None:
        self.memory.save(key, data)
        if self.fail_after_landing:
            self.fail_after_landing -= 1
            raise OSError(5, "fsync of the folder failed after the rename")


async def test_after_a_write_that_raised_the_old_content_is_not_taken_as_durable(autojump_clock):
    backend = _LandsThenFails({"a": {"v": 1}})
    actor = PersistenceActor(backend)
    async with running(actor, ["a"]):
        client, store = await open_store(actor, "a")
        store["v"] = 2
        store.save()  # lands on disk, then raises: the actor keeps it pending and retries
        await settle()
        store["v"] = 1  # back to what was durable before: must not be skipped as identical
        store.save()
        await store.flush()
        client.close()
    assert backend.stored("a") == {"v": 1}
    assert actor.statistics().skipped_identical == 0


class _RefusesOneKey(PlainRecordingStore):
    def save(self, key: str, data: dict[str, object]) -> None:
        if key == "bad":
            raise ValueError("this backend cannot store a key named bad")
        super().save(key, data)


async def test_a_key_a_save_only_backend_refuses_for_good_does_not_hold_up_the_others(
    autojump_clock,
):
    backend = _RefusesOneKey()
    actor = PersistenceActor(backend)
    async with running(actor, ["bad", "good"]):
        bad_client, bad = await open_store(actor, "bad")
        good_client, good = await open_store(actor, "good")
        bad["n"] = 1
        bad.save()
        good["n"] = 1
        good.save()
        await good.flush()  # durable although "bad" keeps failing in the same batches
        good["n"] = 2
        good.save()
        await good.flush()
        assert backend.stored("good") == {"n": 2}
        assert actor.not_durable() == ["bad"]
        assert actor.abandon() == ["bad"]
        bad_client.close()
        good_client.close()
    assert actor.statistics().failures >= 2


async def test_a_cancelled_flush_leaves_no_waiter_behind():
    # Real clock: under the autojump clock virtual time stands still while a write is held.
    backend = GatedStore()
    actor = PersistenceActor(backend)
    async with running(actor, ["a"]):
        client, store = await open_store(actor, "a")
        backend.close_gate()
        store["n"] = 1
        store.save()
        await backend.wait_entered(1)
        with trio.move_on_after(0.05):
            async with trio.open_nursery() as waiting:
                waiting.start_soon(store.flush)
                await settle()
                assert actor.statistics().flush_waiters == 1
        for _ in range(20):
            with trio.move_on_after(0.001):
                await store.flush()
        assert actor.statistics().flush_waiters == 0
        backend.open_gate()
        await store.flush()
        client.close()
    assert backend.stored("a") == {"n": 1}


class _CountingMemoryStore(MemoryStore):
    def __init__(self, initial: dict[str, dict[str, object]]) -> None:
        super().__init__(initial)
        self.calls: list[str] = []

    def load_all(self) -> dict[str, dict[str, object]]:
        self.calls.append("load_all")
        return super().load_all()

    def load_all_encoded(self) -> dict[str, str]:
        self.calls.append("load_all_encoded")
        return super().load_all_encoded()


async def test_a_built_in_store_hands_its_texts_over_at_start_up_without_a_decode():
    backend = _CountingMemoryStore({"a": {"n": 1}, "b": {"n": 2}})
    actor = PersistenceActor(backend)
    async with running(actor, ["a", "b", "c"]):
        client, store = await open_store(actor, "b")
        assert store.to_dict() == {"n": 2}
        client.close()
    assert backend.calls == ["load_all_encoded"]
    assert actor.view("a") == text({"n": 1})
    assert actor.view("c") is None


# -- the clock: virtual time stands still during I/O, and the actor does not spin ------------------


async def test_virtual_time_does_not_pass_while_a_backend_call_runs(autojump_clock):
    backend = GatedStore(delay=0.05)  # every write takes 50 real milliseconds
    actor = PersistenceActor(backend)
    async with running(actor, ["a"]) as nursery:
        nursery.start_soon(trio.sleep, 1)  # a deadline the clock could leap to
        client, store = await open_store(actor, "a")
        began = trio.current_time()
        store["n"] = 1
        store.save()
        await store.flush()
        assert trio.current_time() == began
        client.close()
    assert backend.stored("a") == {"n": 1}


async def test_the_actor_sleeps_while_its_backend_works_under_the_autojump_clock(autojump_clock):
    events: list[str] = []
    backend = GatedStore(delay=0.3)
    actor = PersistenceActor(backend)
    instrument = _ActorSteps(events)
    async with running(actor, ["a"]):
        client, store = await open_store(actor, "a")
        store["n"] = 1
        trio.lowlevel.add_instrument(instrument)
        try:
            store.save()
            await store.flush()
        finally:
            trio.lowlevel.remove_instrument(instrument)
        client.close()
    # Woken by a growing idle cushion (10 ms, 20 ms, ...) and by the thread: a handful of
    # steps in 300 ms (about ten), where polling the thread would take thousands.
    assert 1 <= events.count("actor step") <= 30


# -- a subclass of a built-in store is called through its overrides ----------------------------

BUILT_IN_STORES: dict[str, Callable[[Path], Any]] = {
    "MemoryStore": lambda folder: MemoryStore,
    "JsonFileStore": lambda folder: lambda: JsonFileStore(folder / "state.json"),
    "SqliteStore": lambda folder: lambda: SqliteStore(folder / "state.db"),
}


def audited(base: type, method: str, calls: list[tuple[str, tuple[str, ...]]]) -> type:
    """A subclass of ``base`` whose ``method`` records ``(method, keys)`` and delegates."""

    def override(self: Any, *args: Any) -> Any:
        first = args[0] if args else ()  # a key, or a mapping of states by key
        calls.append((method, (first,) if isinstance(first, str) else tuple(first)))
        return getattr(super(subclass, self), method)(*args)

    subclass = type(f"Audited{base.__name__}", (base,), {method: override})
    return subclass


@pytest.mark.parametrize("method", ["save", "save_many", "load", "load_all"])
@pytest.mark.parametrize("kind", sorted(BUILT_IN_STORES))
async def test_the_actor_calls_a_built_in_store_subclass_s_override(tmp_path, kind, method):
    open_plain = BUILT_IN_STORES[kind](tmp_path)
    seeded = open_plain() if kind != "MemoryStore" else None
    if seeded is not None:
        seeded.save_many({"a": {"n": 1}, "late": {"n": 3}})
        seeded.close()
    base = type(open_plain()) if seeded is not None else MemoryStore
    calls: list[tuple[str, tuple[str, ...]]] = []
    subclass = audited(base, method, calls)
    if kind == "MemoryStore":
        backend = subclass({"a": {"n": 1}, "late": {"n": 3}})
    else:
        backend = subclass(seeded.path)  # type: ignore[union-attr]
    calls.clear()  # seeding a MemoryStore goes through save_many too

    actor = PersistenceActor(backend)
    async with running(actor, ["a", "b"]):  # two keys: one batch read at start
        opened = [await open_store(actor, key) for key in ("a", "b", "late")]  # late: one key
        assert [store.to_dict() for _, store in opened] == [{"n": 1}, {}, {"n": 3}]
        for _, store in opened:
            store["n"] = 7
            store.save()
        await actor.flush()
        for client, _ in opened:
            client.close()

    made = [name for name, _ in calls]
    assert made, f"{kind}'s override of {method} was never called"
    if method == "load":
        assert ("load", ("a",)) in calls
        assert ("load", ("late",)) in calls
    if method == "load_all":
        assert made.count("load_all") == 2  # the start-up batch and the late key
    if method in ("save", "save_many"):
        written = {key for _, keys in calls for key in keys}
        assert written == {"a", "b", "late"}
    if kind == "MemoryStore":
        assert backend.load_all() == {key: {"n": 7} for key in ("a", "b", "late")}
    else:
        reopened = open_plain()
        assert reopened.load_all() == {key: {"n": 7} for key in ("a", "b", "late")}
        reopened.close()


@pytest.mark.parametrize("kind", sorted(BUILT_IN_STORES))
async def test_a_built_in_store_without_overrides_takes_the_encoded_path(tmp_path, kind):
    opened = BUILT_IN_STORES[kind](tmp_path)()
    calls: list[str] = []

    class Watched(type(opened)):  # type: ignore[misc]
        def save_encoded(self, texts: Any) -> None:
            calls.append("save_encoded")
            super().save_encoded(texts)

        def load_all_encoded(self) -> dict[str, str]:
            calls.append("load_all_encoded")
            return super().load_all_encoded()  # type: ignore[no-any-return]

    backend = Watched() if kind == "MemoryStore" else Watched(opened.path)
    actor = PersistenceActor(backend)
    async with running(actor, ["a", "b"]):
        client, store = await open_store(actor, "a")
        store["n"] = 1
        store.save()
        await store.flush()
        client.close()
    assert calls == ["load_all_encoded", "save_encoded"]


def test_an_object_that_is_no_store_is_refused_when_the_actor_is_built():
    with pytest.raises(TypeError, match=r"^object has none of save_encoded, save_many, save"):
        PersistenceActor(object())  # type: ignore[arg-type]


class _Proxy:
    """Forwards every attribute to another store, as wrappers built with ``__getattr__`` do."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_store_behind_a_getattr_proxy_is_used_through_its_fastest_methods():
    inner = _CountingMemoryStore({"a": {"n": 1}, "b": {"n": 2}})
    actor = PersistenceActor(_Proxy(inner))
    async with running(actor, ["a", "b"]):
        client, store = await open_store(actor, "a")
        store["n"] = 5
        store.save()
        await store.flush()
        client.close()
    assert inner.calls == ["load_all_encoded"]
    assert inner.load("a") == {"n": 5}
