"""Run trio code from an asyncio test: trio in guest mode on the running asyncio loop.

:class:`GuestRun` starts one trio run (:func:`trio.lowlevel.start_guest_run`) on the asyncio
loop of the caller, so an asyncio test (pytest-asyncio, ``asyncio.run``) can serve a triolette
app in the same thread, and then call into that run (:meth:`GuestRun.call`, :meth:`call_soon`)
from asyncio code while it lasts. Everything the guest run starts lives in its own nursery:
when the main function returns, calls still under way are cancelled. :class:`AsyncioSide` is
the harness's use of it: one run at a time, and calls that wait for a run just created.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
import sniffio
import trio

from .clock import FakeClock

T = TypeVar("T")


def in_trio() -> bool:
    """Whether the caller runs as trio code (not asyncio code beside a guest run, nor asyncio
    code on a trio-asyncio loop, which runs inside a trio task but is asyncio code)."""
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


class GuestRun:
    """One trio run in guest mode on the current asyncio loop; see :meth:`run`."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self.started = asyncio.Event()
        """Set once the trio run is up and takes calls."""

    @property
    def token(self) -> trio.lowlevel.TrioToken | None:
        """The run's token while it takes calls, else ``None``."""
        return self._token if self._nursery is not None else None

    async def run(
        self, main: Callable[[], Awaitable[T]], *, clock: trio.abc.Clock | None = None
    ) -> T:
        """Run ``main()`` in a new guest trio run; return what it returns, raise what it raises.

        Cancelling the asyncio task cancels the trio run and waits for it to end (its cleanup
        is not cut short), then re-raises the cancellation.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[T]] = loop.create_future()

        def finished(result: outcome.Outcome[T]) -> None:
            if not done.done():
                done.set_result(result)

        trio.lowlevel.start_guest_run(
            self._main,
            main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=finished,
            clock=clock,
        )
        try:
            result = await asyncio.shield(done)
        except asyncio.CancelledError:
            token = self._token
            if token is not None:
                token.run_sync_soon(self._cancel)
            await asyncio.wait([done])  # the run's cleanup finishes before the cancel goes on
            raise
        finally:
            self.started.set()  # waiters for a run that ended (or never began) see it is over
        return result.unwrap()

    async def _main(self, main: Callable[[], Awaitable[T]]) -> T:
        async with trio.open_nursery() as nursery:
            self._token, self._nursery = trio.lowlevel.current_trio_token(), nursery
            self.started.set()
            result: outcome.Outcome[T] | None = None
            try:
                result = outcome.Value(await main())
            except Exception as error:  # raised below, outside the nursery: not grouped
                result = outcome.Error(error)
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()
        if result is None:
            raise RuntimeError("the app's trio run was cancelled")
        return result.unwrap()

    def _cancel(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def call_soon(self, function: Callable[[], object]) -> None:
        """Call the synchronous ``function`` inside the trio run soon (``RuntimeError`` if the
        run is not under way)."""
        token = self.token
        if token is None:
            raise RuntimeError("the trio run of the app is not running")
        token.run_sync_soon(function)

    async def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await ``function(*args)`` inside the trio run, from asyncio; return or raise its result.

        Cancelling the asyncio caller cancels the trio call (and waits for it to end). If the
        run ends first, the call is cancelled and this raises ``RuntimeError``.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[T]] = loop.create_future()
        scope = trio.CancelScope()

        def finish(result: outcome.Outcome[T]) -> None:
            if not done.done():
                done.set_result(result)

        async def in_trio_run() -> None:
            with scope:
                try:
                    value = await function(*args)
                except Exception as error:
                    finish(outcome.Error(error))
                else:
                    finish(outcome.Value(value))
                return
            finish(outcome.Error(RuntimeError("the app's trio run ended during the call")))

        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the trio run of the app is not running")
        self.call_soon(functools.partial(nursery.start_soon, in_trio_run))
        try:
            result = await asyncio.shield(done)
        except asyncio.CancelledError:
            self.call_soon(scope.cancel)
            await asyncio.wait([done])
            raise
        return result.unwrap()


class AsyncioSide:
    """What a harness does from asyncio code: one guest run at a time, and calls into it."""

    def __init__(self) -> None:
        self._guest: GuestRun | None = None

    @property
    def running(self) -> bool:
        return self._guest is not None and self._guest.token is not None

    async def run(
        self,
        main: Callable[[], Awaitable[None]],
        clock: FakeClock,
        stop_event: asyncio.Event | None,
        stop: Callable[[], None],
    ) -> None:
        """Run ``main`` in a guest run on ``clock``; call ``stop`` in it when ``stop_event`` is
        set. ``RuntimeError`` if a run is under way already."""
        if self.running:
            raise RuntimeError("the harness is already running the app")
        if type(asyncio.get_running_loop()).__module__.startswith("trio_asyncio"):
            raise RuntimeError(
                "this asyncio loop is trio-asyncio's (once trio_asyncio is imported, new asyncio "
                "loops are, unless a policy is set), and a trio guest run cannot start on it: "
                "set asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy()) first "
                "(pytest-asyncio: its event_loop_policy fixture)"
            )
        guest = self._guest = GuestRun()

        async def on_the_clock() -> None:
            clock._wake = trio.lowlevel.current_trio_token()  # advance() from asyncio wakes it
            try:
                await main()
            finally:
                clock._wake = None

        watcher = None
        if stop_event is not None:
            watcher = asyncio.ensure_future(_forward(stop_event, guest, stop))
        try:
            await guest.run(on_the_clock, clock=clock)
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    def call_soon(self, function: Callable[[], object]) -> None:
        if self._guest is None:
            raise RuntimeError("the trio run of the app is not running")
        self._guest.call_soon(function)

    async def call(self, function: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Await ``function`` inside the guest run, from asyncio code.

        Waits a few loop turns for a run just created (``asyncio.create_task(harness.run())``)
        to begin; ``RuntimeError`` when no run is under way.
        """
        for _ in range(100):
            if self._guest is not None:
                break
            await asyncio.sleep(0)
        if self._guest is None:
            raise RuntimeError(
                "the app is not running: start it first, asyncio.create_task(harness.run())"
            )
        await self._guest.started.wait()
        return await self._guest.call(functools.partial(function, *args, **kw))


async def _forward(event: asyncio.Event, guest: GuestRun, stop: Callable[[], None]) -> None:
    """Call ``stop`` in the guest run once the asyncio ``event`` is set."""
    await guest.started.wait()
    await event.wait()
    with contextlib.suppress(RuntimeError):  # the run ended meanwhile
        guest.call_soon(stop)
