"""A stream's buffer: items a callback pushes (BLE notifications, a serial radio), read with
``async for``.

When the buffer is full the backpressure policy decides: ``"drop_newest"`` drops the incoming
item, ``"drop_oldest"`` evicts the oldest one, ``"raise"`` raises
:class:`~triolette.StreamFullError` (at the consumer, when a port pushed the item). Every drop
is counted, and each *overflow episode* (from the first drop until the buffer is back to at
most half full) is told once at its start and once at its end.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

from triolette.core.errors import StreamFullError
from triolette.core.stream import Backpressure, check_options

T = TypeVar("T")


class Stream(Generic[T]):
    """A buffer of at most ``maxsize`` items (0: unbounded), read with ``async for``.

    :meth:`put` is synchronous and must be called in the trio thread; :meth:`feeder` gives
    a callback any thread may call. Iteration ends after :meth:`close` once the buffer is
    empty; a consumer is otherwise stopped by cancellation.
    """

    def __init__(
        self,
        maxsize: int = 0,
        backpressure: Backpressure = "raise",
        *,
        name: str = "stream",
        on_overflow: Callable[[Stream[T], BaseException], None] | None = None,
        on_drained: Callable[[Stream[T], int], None] | None = None,
    ) -> None:
        check_options(name, maxsize, backpressure)
        self.name = name
        self.maxsize = maxsize
        self.backpressure = backpressure
        self._items: deque[T] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._arrival = trio.Event()
        self._closed = False
        self._failure: BaseException | None = None
        self._on_overflow = on_overflow
        self._on_drained = on_drained
        self._episode_drops = 0
        self.received = 0
        """Items accepted into the buffer."""
        self.dropped = 0
        """Items dropped (or refused) because the buffer was full."""
        self.overflows = 0
        """Overflow episodes so far."""

    @property
    def overflowing(self) -> bool:
        return self._episode_drops > 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Add ``item``; a full buffer applies the backpressure policy. Never waits.

        Raises :class:`StreamFullError` with ``backpressure="raise"`` when full; an item put
        after :meth:`close` is ignored.
        """
        if self._closed:
            return
        if self.maxsize and len(self._items) >= self.maxsize:
            error = StreamFullError(self.name, self.maxsize)
            self._overflowed(error)
            if self.backpressure == "raise":
                raise error
            if self.backpressure == "drop_newest":
                return
            self._items.popleft()
        self._items.append(item)
        self.received += 1
        self._arrival.set()
        self._arrival = trio.Event()
        self._lot.unpark_all()

    def feeder(self) -> Callable[[T], None]:
        """A callback for a port: puts items from any thread (through the trio token).

        With ``backpressure="raise"`` a full buffer fails the stream: the consumer's next
        read raises :class:`StreamFullError`. Call this in the trio thread.
        """
        token = trio.lowlevel.current_trio_token()
        home = threading.get_ident()

        def from_port(item: T) -> None:
            try:
                self.put(item)
            except StreamFullError as error:
                self.fail(error)

        def callback(item: T) -> None:
            if threading.get_ident() == home:
                from_port(item)
                return
            with contextlib.suppress(trio.RunFinishedError):  # the app ended: nobody reads
                token.run_sync_soon(from_port, item)

        return callback

    def fail(self, error: BaseException) -> None:
        """Make the consumer's next read raise ``error``."""
        self._failure = error
        self._lot.unpark_all()

    def close(self) -> None:
        """End the iteration once the buffered items are read; later items are ignored."""
        self._closed = True
        self._lot.unpark_all()

    async def arrival(self) -> None:
        """Wait for the next item put (cancellable)."""
        await self._arrival.wait()

    async def get(self) -> T:
        """The oldest item, waiting for one; ``trio.EndOfChannel`` once closed and empty."""
        while True:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            if self._items:
                break
            if self._closed:
                raise trio.EndOfChannel
            await self._lot.park()
        item = self._items.popleft()
        if self._episode_drops and len(self._items) * 2 <= self.maxsize:
            dropped, self._episode_drops = self._episode_drops, 0
            if self._on_drained is not None:
                self._on_drained(self, dropped)
        return item

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def _overflowed(self, error: BaseException) -> None:
        self.dropped += 1
        self._episode_drops += 1
        if self._episode_drops == 1:
            self.overflows += 1
            if self._on_overflow is not None:
                self._on_overflow(self, error)
