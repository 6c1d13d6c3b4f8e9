"""The persistence actor: the one owner of the Store backend.

Device stores hand it encoded snapshots (``submit``, synchronous, never blocking). It keeps the
newest snapshot per key in a pending table, so a burst of saves of one device costs one write
and memory stays bounded by the number of devices however slow the disk is. Each time it wakes
it writes *every* pending key in one backend call on a worker thread (group commit), then wakes
whoever waits in ``flush``. Loads are answered from the newest snapshot it knows: pending, being
written, or durable (read-your-writes).

The actor runs shielded: cancelling the app does not stop it, so a write that has started is
never torn and the final drain always runs. It ends when every handle on its mailbox is closed
(end-of-channel), after writing what is pending. Only :meth:`PersistenceActor.abandon`, the last
resort once the shutdown deadline has passed, stops it early; the keys not yet durable are then
reported by name.

A little over 400 lines on purpose: the mailbox, the batch and the shutdown share the actor's
state. What stands alone has its own module: the backend calls, the worker thread, durability,
the outage log and the statistics.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import attrs
import trio

from triolette.actors.backend_calls import BackendCalls, PartlyWritten
from triolette.actors.durability import Durability
from triolette.actors.migrations import StateContract, migrate_all
from triolette.actors.outage_log import OutageLog
from triolette.actors.persistence_statistics import Counters
from triolette.actors.persistence_statistics import (  # the runtime imports it from here
    PersistenceStatistics as PersistenceStatistics,
)
from triolette.actors.worker_thread import WorkerThread
from triolette.core.errors import FlushIncompleteError, KeyInUseError
from triolette.stores.devicestore import DeviceStore
from triolette.stores.protocol import Store

logger = logging.getLogger("triolette.persistence")

_WAKE = "wake"
_UNKNOWN = ""  # equals no canonical state text; only ever stored while the key is pending


@attrs.define
class _Load:
    keys: tuple[str, ...]
    done: trio.Event = attrs.Factory(trio.Event)
    error: BaseException | None = None


class PersistenceActor:
    """Owns ``backend``; every load and save of a running app goes through it.

    Start it with ``await nursery.start(actor.run, keys)``: it loads ``keys`` in one batch
    before it reports started. Producers get a :class:`PersistenceClient` each from
    :meth:`client` and close it when they are done; the actor drains, commits and closes the
    backend once every client and the runtime's own handle (:meth:`close`) are closed.
    """

    def __init__(
        self,
        backend: Store,
        *,
        mailbox_size: int = 256,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
        on_error: Callable[[list[str], BaseException], None] | None = None,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self._calls = BackendCalls(backend)
        self._send, self._receive = trio.open_memory_channel[object](mailbox_size)
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._on_error = on_error
        self._on_recovered = on_recovered
        self._known: dict[str, str | None] = {}  # durable text per key; None: known absent
        self._pending: dict[str, tuple[str, int]] = {}  # newest unwritten (text, seq) per key
        self._writing: dict[str, tuple[str, int]] = {}
        self._durability = Durability()
        self._owners: set[str] = set()
        self._retry_delay = 0.0
        self._retry_at = -math.inf
        self._counters = Counters()
        self._outage = OutageLog(logger)
        self._scope = trio.CancelScope(shield=True)
        self.stopped = trio.Event()
        self._worker = WorkerThread()
        self._contracts: dict[str, StateContract] = {}

    def declare(self, contracts: Mapping[str, StateContract]) -> None:
        """Give the stored-state contract of each device key; call before :meth:`run`.

        At load, each of these keys' stored state is brought to its contract's version (see
        :mod:`.migrations`) before any device store sees it; the migrated state stays in
        memory until the device's next save, which records the new version. A key without a
        contract is loaded as it is stored.
        """
        self._contracts.update(contracts)

    @property
    def backend_idle(self) -> threading.Event:
        """Set while no backend call runs in a worker thread; safe to wait on from any thread."""
        return self._worker.idle

    # -- the producers' side (trio thread, synchronous) ------------------------------------

    def client(self, key: str) -> PersistenceClient:
        """A handle for the one device store of ``key``; raises :class:`KeyInUseError` if taken."""
        if key in self._owners:
            raise KeyInUseError(key)
        self._owners.add(key)
        return PersistenceClient(self, key, self._send.clone())

    def close(self) -> None:
        """Close the runtime's own handle; the actor finishes once every client is closed too."""
        self._send.close()

    def _submit(self, key: str, text: str, sender: trio.MemorySendChannel[object]) -> None:
        seq = self._durability.submitted(key)
        self._counters.saves += 1
        # A wake-up is needed only when the table goes from empty to not empty: the actor
        # writes the whole table on every pass and comes back at once while it is not empty.
        # A full mailbox means the actor has work queued already, so dropping is safe too.
        if not self._pending:
            with contextlib.suppress(trio.WouldBlock):
                sender.send_nowait(_WAKE)
        elif key in self._pending:
            self._counters.coalesced += 1
        self._pending[key] = (text, seq)

    def view(self, key: str) -> str | None:
        """The newest text of ``key``: pending, being written, or durable (read-your-writes)."""
        for table in (self._pending, self._writing):
            if key in table:
                return table[key][0]
        return self._known.get(key)

    def is_loaded(self, key: str) -> bool:
        return key in self._known or key in self._pending or key in self._writing

    async def flush(self, key: str | None = None) -> None:
        """Wait until every snapshot submitted so far (of ``key``, or of all keys) is durable.

        Cancelling the wait does not cancel the write.
        Raises :class:`~triolette.FlushIncompleteError` if the actor was abandoned first.
        """
        await self._durability.wait(key)

    async def load(self, keys: Iterable[str], sender: trio.MemorySendChannel[object]) -> None:
        """Make sure ``keys`` are in the actor's view, reading the backend for unknown ones."""
        missing = tuple(key for key in keys if not self.is_loaded(key))
        if missing:
            request = _Load(missing)
            await sender.send(request)
            await request.done.wait()
            if request.error is not None:
                raise request.error

    # -- the actor -------------------------------------------------------------------------

    async def run(
        self,
        keys: Iterable[str] = (),
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load ``keys`` in one batch, report started, then serve until every handle is closed.

        At the end the pending table is written (retrying errors) and the backend closed.
        Cancellation from outside is shielded; only :meth:`abandon` stops it early.
        A backend error while loading ``keys`` propagates before ``started``, as does a
        stored state that cannot be brought to its declared version
        (:class:`~triolette.StateVersionError`; nothing is written then).
        """
        started = False
        try:
            with self._scope:
                try:
                    await self._load_first(tuple(keys))
                except Exception:  # the app does not start: release the store's files
                    with contextlib.suppress(Exception):
                        await self._worker.run(self._calls.close)
                    raise
                task_status.started()
                started = True
                async with self._receive:
                    await self._serve()
                while self._pending:
                    if not await self._commit():
                        await trio.sleep(self._retry_delay)
                try:
                    await self._worker.run(self._calls.close)
                except Exception as error:  # everything is durable; closing is tidying up
                    logger.error("could not close the store cleanly: %s", error)
            if not started:  # abandoned while loading: the caller must not wait for ever
                task_status.started()
        finally:
            self.stopped.set()
            self._durability.close()

    async def _load_first(self, keys: tuple[str, ...]) -> None:
        if self._contracts:
            versions = {key: c.version for key, c in self._contracts.items()}
            await self._worker.run(self._calls.declare_versions, versions)
        await self._read(keys)

    async def wait_stopped(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the actor to end; return whether it ended on its own.

        A backend call in progress keeps virtual time still (see :mod:`.worker_thread`) for
        at most ``seconds`` of wall-clock time, so under trio's autojump clock a hung backend
        makes this return after that long too. Shielded: it can run in a ``finally``.
        """
        self._worker.hold_until = time.monotonic() + seconds
        with trio.move_on_after(seconds, shield=True):
            await self.stopped.wait()
        return self.stopped.is_set()

    async def wait_durable(self, seconds: float) -> None:
        """Wait up to ``seconds`` until all submitted so far is durable (holding as above)."""
        self._worker.hold_until = time.monotonic() + seconds
        with trio.move_on_after(seconds, shield=True), contextlib.suppress(FlushIncompleteError):
            await self._durability.wait()

    def abandon(self) -> list[str]:
        """Stop now, even inside a backend call; return the keys not known to be durable.

        The last resort of a shutdown deadline. A write already in the worker thread goes on
        there, but nobody waits for it.
        """
        self._scope.cancel()
        return self.not_durable()

    def not_durable(self) -> list[str]:
        """The keys with a submitted snapshot that is not known to be durable."""
        return self._durability.not_durable()

    def statistics(self) -> PersistenceStatistics:
        channel = self._send.statistics()
        counters = self._counters
        return PersistenceStatistics(
            mailbox_depth=channel.current_buffer_used,
            mailbox_peak=channel.peak_buffer_used,
            mailbox_senders=channel.open_send_channels,
            pending_keys=len(self._pending),
            pending_peak=max(counters.pending_peak, len(self._pending)),
            saves=counters.saves,
            coalesced=counters.coalesced,
            skipped_identical=counters.skipped_identical,
            batches=counters.batches,
            keys_written=counters.keys_written,
            max_keys_per_batch=counters.max_keys_per_batch,
            bytes_written=counters.bytes_written,
            failures=counters.failures,
            last_error=counters.last_error,
            flush_waiters=self._durability.waiting,
            outage_since=self._outage.since,
        )

    async def _serve(self) -> None:
        ended = False
        while not ended:
            loads: list[_Load] = []
            ready = self._pending and trio.current_time() >= self._retry_at
            if not ready:  # sleep until a request comes or the retry is due
                deadline = self._retry_at if self._pending else math.inf
                with trio.move_on_at(deadline):
                    try:
                        self._take(await self._receive.receive(), loads)
                    except trio.EndOfChannel:
                        ended = True
            while not ended:
                try:
                    self._take(self._receive.receive_nowait(), loads)
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    ended = True
            if loads:
                await self._answer(loads)
            if self._pending and trio.current_time() >= self._retry_at:
                await self._commit()

    @staticmethod
    def _take(request: object, loads: list[_Load]) -> None:
        if isinstance(request, _Load):
            loads.append(request)

    async def _answer(self, loads: list[_Load]) -> None:
        try:
            await self._read(tuple(key for load in loads for key in load.keys))
        except Exception as error:
            logger.error("could not load %s: %s", [load.keys for load in loads], error)
            for load in loads:
                load.error = error
        for load in loads:
            load.done.set()

    async def _read(self, keys: tuple[str, ...]) -> None:
        missing = [key for key in dict.fromkeys(keys) if not self.is_loaded(key)]
        if not missing:
            return
        versioned = [key for key in missing if key in self._contracts]
        texts, versions = await self._worker.run(self._calls.read_versioned, missing, versioned)
        # Raises StateVersionError before any key is taken.
        migrated = migrate_all(self._contracts, texts, versions, versioned)
        for key in missing:
            if not self.is_loaded(key):
                # A migrated text stands for the stored one: skipping a save equal to it
                # leaves the old text at the old version, which migrates to it again.
                self._known[key] = migrated.get(key, texts.get(key))

    async def _commit(self) -> bool:
        """Write the whole pending table once; return whether it is now durable."""
        # The table only grows between two commits, so its peak is seen here.
        self._counters.pending_peak = max(self._counters.pending_peak, len(self._pending))
        batch = self._take_batch()
        if not batch:
            return True
        self._writing = batch
        texts = {key: text for key, (text, _) in batch.items()}
        try:
            await self._worker.run(self._calls.write, texts)
        except Exception as error:
            self._writing = {}
            if isinstance(error, PartlyWritten):
                self._written({key: batch[key] for key in error.written}, texts)
                batch = {key: batch[key] for key in batch if key not in error.written}
                error = error.cause
            self._failed(batch, error)
            return False
        self._writing = {}
        self._written(batch, texts)
        self._counters.batches += 1
        self._outage.recovered(trio.current_time())
        if self._retry_delay and self._on_recovered is not None:  # the backend works again
            self._on_recovered()
        self._retry_delay = 0.0
        self._retry_at = -math.inf
        return True

    def _written(self, batch: dict[str, tuple[str, int]], texts: dict[str, str]) -> None:
        known = self._known
        for key, (text, _) in batch.items():  # runs per key on the trio thread: kept lean
            known[key] = text
        counters = self._counters
        counters.keys_written += len(batch)
        counters.max_keys_per_batch = max(counters.max_keys_per_batch, len(batch))
        counters.bytes_written += sum(len(texts[key].encode()) for key in batch)
        self._durability.mark_durable({key: seq for key, (_, seq) in batch.items()})

    def _take_batch(self) -> dict[str, tuple[str, int]]:
        """Empty the pending table into the batch to write.

        A snapshot equal to the durable text is not written: it counts as skipped, is marked
        durable at once, and its flush waiters are woken.
        """
        batch, skipped = {}, {}
        for key, (text, seq) in self._pending.items():
            if self._known.get(key) != text:
                batch[key] = (text, seq)
            else:
                skipped[key] = seq
        self._pending.clear()
        if skipped:
            self._counters.skipped_identical += len(skipped)
            self._durability.mark_durable(skipped)
        return batch

    def _failed(self, batch: dict[str, tuple[str, int]], error: Exception) -> None:
        for key, snapshot in batch.items():
            self._pending.setdefault(key, snapshot)  # a newer snapshot, if any, wins
            # A write that raised may still have landed (a rename done, a folder fsync not):
            # what the backend holds is unknown, so no later snapshot may be skipped as equal.
            self._known[key] = _UNKNOWN
        counters = self._counters
        counters.failures += 1
        counters.last_error = f"{type(error).__name__}: {error}"
        self._retry_delay = min(self._retry_max, max(self._retry_initial, self._retry_delay * 2))
        self._retry_at = trio.current_time() + self._retry_delay
        keys = sorted(batch)
        self._outage.failed(keys, counters.last_error, self._retry_delay, trio.current_time())
        if self._on_error is not None:
            self._on_error(keys, error)


class PersistenceClient:
    """One device's handle on the persistence actor: the :class:`StateSink` of its store.

    Owns a clone of the actor's mailbox; :meth:`close` (or leaving ``with``) releases it and the
    device key, so a restarted device can take the key again.
    """

    def __init__(
        self, actor: PersistenceActor, key: str, sender: trio.MemorySendChannel[object]
    ) -> None:
        self._actor = actor
        self.key = key
        self._sender = sender
        self._closed = False

    async def open_store(
        self, *, clock: Callable[[], float], on_change: Callable[[], None] | None = None
    ) -> DeviceStore:
        """Load the key through the actor and return its loaded :class:`DeviceStore`."""
        await self._actor.load([self.key], self._sender)
        store = DeviceStore.over(self, self.key, clock=clock, on_change=on_change)
        store.load()
        return store

    def load_text(self, key: str) -> str | None:
        return self._actor.view(key)

    def submit(self, key: str, text: str) -> None:
        if self._closed:
            raise trio.ClosedResourceError(f"{key}: this device store's device has stopped")
        self._actor._submit(key, text, self._sender)

    async def flush(self, key: str) -> None:
        await self._actor.flush(key)

    @property
    def durability(self) -> Durability:
        """Which snapshots of each key were submitted and which are durable (read it only)."""
        return self._actor._durability

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sender.close()
            self._actor._owners.discard(self.key)

    def __enter__(self) -> PersistenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
