"""Store backends for testing the persistence actor: they record, gate, fail, slow down or hang.

Every backend records each call (method, keys, the states written, the calling thread) and
delegates to a :class:`~triolette.MemoryStore`, so a test can check both *how* the actor used
the backend and *what* ended up stored. Writes also append ``write-entered`` / ``write-returned``
(or ``write-failed``) to :attr:`RecordingStore.events`, a list a test may share with its own
tasks to assert the order of events across the worker thread and trio.

A gate is a ``threading.Condition`` waited on *inside the worker thread*, so the actor really
is in the middle of a backend call while a test looks at it. :func:`release_all` opens every
gate ever made, so no worker thread outlives its test (call it from an autouse fixture).
"""

from __future__ import annotations

import copy
import errno
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from triolette import MemoryStore

WAIT_TIMEOUT = 10.0
"""Real seconds a test waits for a worker thread before it fails (instead of hanging)."""

_GATES: weakref.WeakSet[GatedStore] = weakref.WeakSet()


@attrs.frozen
class Call:
    """One backend call as the backend saw it."""

    method: str
    keys: tuple[str, ...]
    thread: int
    states: dict[str, Any] = attrs.field(factory=dict)
    """For writes: a copy of the states handed over, by key."""


class PlainRecordingStore:
    """Only the seed's ``load``/``save``: no batch methods, so the actor must use these."""

    def __init__(
        self,
        initial: Mapping[str, dict[str, Any]] | None = None,
        *,
        events: list[str] | None = None,
    ) -> None:
        self.memory = MemoryStore(initial)
        self.calls: list[Call] = []
        self.events: list[str] = [] if events is None else events
        self.returned = 0
        self._condition = threading.Condition()

    def load(self, key: str) -> dict[str, object] | None:
        self._record("load", (key,))
        return self.memory.load(key)

    def save(self, key: str, data: dict[str, object]) -> None:
        self._write("save", {key: data})

    # -- for tests ------------------------------------------------------------------------

    @property
    def writes(self) -> list[Call]:
        """Every write attempt (``save`` or ``save_many``), failed ones included, in order."""
        return [call for call in self.calls if call.method in ("save", "save_many")]

    @property
    def reads(self) -> list[Call]:
        return [call for call in self.calls if call.method in ("load", "load_all")]

    def stored(self, key: str) -> dict[str, object] | None:
        """What is durable for ``key`` (read without going through the recording)."""
        return self.memory.load(key)

    async def wait_returned(self, writes: int) -> None:
        """Wait (real time, without blocking trio) until ``writes`` writes have returned."""
        await self._wait_until(lambda: self.returned >= writes, f"{writes} writes returned")

    async def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition`` (checked under the lock); give up after ``WAIT_TIMEOUT``."""

        def wait() -> bool:
            with self._condition:
                return self._condition.wait_for(condition, WAIT_TIMEOUT)

        assert await trio.to_thread.run_sync(wait, abandon_on_cancel=True), (
            f"not {what} within {WAIT_TIMEOUT} s"
        )

    def _record(
        self, method: str, keys: tuple[str, ...], states: dict[str, Any] | None = None
    ) -> None:
        self.calls.append(Call(method, keys, threading.get_ident(), copy.deepcopy(states or {})))

    def _write(self, method: str, states: dict[str, Any]) -> None:
        self._record(method, tuple(states), states)
        self.events.append("write-entered")
        try:
            self._before_write(states)
        except BaseException:
            self.events.append("write-failed")
            raise
        self.memory.save_many(states)
        self.events.append("write-returned")
        with self._condition:
            self.returned += 1
            self._condition.notify_all()

    def _before_write(self, states: dict[str, Any]) -> None:
        """Runs in the worker thread before each write is stored; subclasses block or raise."""


class RecordingStore(PlainRecordingStore):
    """Also offers ``save_many``, ``load_all`` and ``close``, which the actor prefers."""

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        self._write("save_many", dict(states))

    def load_all(self) -> dict[str, dict[str, object]]:
        self._record("load_all", ())
        return self.memory.load_all()

    def close(self) -> None:
        self._record("close", ())
        self.events.append("backend-closed")


class FailingStore(RecordingStore):
    """Each write raises ``OSError(EIO)`` while :attr:`failures_left` is positive."""

    def __init__(self, *args: Any, failures: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures_left = failures

    def _before_write(self, states: dict[str, Any]) -> None:
        super()._before_write(states)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise OSError(errno.EIO, "injected I/O error")


class GatedStore(FailingStore):
    """Each write enters, then waits at a gate inside the worker thread until let through.

    The gate starts open (``closed=False``). :meth:`close_gate` holds every following write,
    :meth:`admit` lets exactly that many of the held writes through, :meth:`open_gate` lets
    everything through. :meth:`wait_entered` waits until the backend has been *entered* that
    many times in all (so a test knows a write is in progress). ``delay`` makes every write
    also take that many real seconds (a slow disk); ``failures`` makes the first writes fail
    after passing the gate.
    """

    def __init__(self, *args: Any, closed: bool = False, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.entries = 0
        self._open = not closed
        self._permits = 0
        _GATES.add(self)

    def close_gate(self) -> None:
        with self._condition:
            self._open = False

    def open_gate(self) -> None:
        with self._condition:
            self._open = True
            self._condition.notify_all()

    def admit(self, writes: int = 1) -> None:
        with self._condition:
            self._permits += writes
            self._condition.notify_all()

    async def wait_entered(self, entries: int) -> None:
        """Wait (real time, without blocking trio) until ``entries`` writes have entered."""
        await self._wait_until(lambda: self.entries >= entries, f"{entries} writes entered")

    def _before_write(self, states: dict[str, Any]) -> None:
        with self._condition:
            self.entries += 1
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._open or self._permits > 0)
            if not self._open:
                self._permits -= 1
        if self.delay:
            time.sleep(self.delay)
        super()._before_write(states)


class HungStore(GatedStore):
    """Every write hangs (a dead NFS mount, a wedged SD card) until :meth:`release`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, closed=True, **kwargs)

    def release(self) -> None:
        self.open_gate()


def release_all() -> None:
    """Open every gate, so that no worker thread stays blocked after its test."""
    for backend in list(_GATES):
        backend.open_gate()
