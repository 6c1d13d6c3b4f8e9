"""asyncio interop: handlers registered with ``asyncio=True`` run in the App's trio-asyncio loop.

The App opens one trio-asyncio loop around its devices when some registration needs it, and
closes it after they stopped. An asyncio handler runs there as an asyncio task, unchanged: it
can await ``asyncio.sleep`` and asyncio-only libraries. Cancellation crosses both ways: a trio
cancel (a shutdown, a watchdog) is a ``CancelledError`` inside the handler, and an exception
the handler raises reaches the device actor as it would from a trio handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio_asyncio

from triolette.actors.device import DeviceContext
from triolette.actors.spec import Handler
from triolette.core.commands import Command
from triolette.core.messages import Message
from triolette.stores.devicestore import DeviceStore


def open_loop() -> contextlib.AbstractAsyncContextManager[Any]:
    """A new trio-asyncio loop, for ``async with`` inside trio."""
    loop: contextlib.AbstractAsyncContextManager[Any] = trio_asyncio.open_loop()
    return loop


def through_asyncio(call: Handler) -> Handler:
    """``call`` run as an asyncio task in the current trio-asyncio loop.

    The handler's ``DeviceContext`` is an :class:`AsyncioDeviceContext`, whose awaitable
    methods are asyncio-flavoured.
    """

    def run(ctx: DeviceContext, store: DeviceStore | None, message: Message | None) -> Any:
        return trio_asyncio.aio_as_trio(call)(AsyncioDeviceContext(ctx), store, message)

    return run


class AsyncioDeviceContext(DeviceContext):
    """The :class:`~triolette.DeviceContext` an ``asyncio=True`` handler gets.

    Same methods; the ones to await are asyncio coroutines (they call the trio side through
    the loop), ``sleep`` is ``asyncio.sleep`` and ``commands()`` is iterated with
    ``async for`` from asyncio code.
    """

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx._actor)
        self._trio = ctx

    async def publish_state(self, state: Mapping[str, Any]) -> bool:
        published: bool = await trio_asyncio.trio_as_aio(self._trio.publish_state)(state)
        return published

    async def publish(
        self,
        suffix: str,
        payload: str | bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        block: bool = False,
    ) -> bool:
        publish = self._trio.publish
        published: bool = await trio_asyncio.trio_as_aio(
            lambda: publish(suffix, payload, retain=retain, qos=qos, block=block)
        )()
        return published

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def commands(self, timeout: float | None = None) -> Any:
        """This device's inbound commands, for ``async for`` in asyncio code (``None`` after
        each quiet ``timeout`` seconds, as in trio code)."""
        channel = self._trio.commands(timeout)
        iterator: AsyncIterator[Command | None] = trio_asyncio.trio_as_aio(channel)
        return iterator


def entered_in_loop(manager: Any) -> contextlib.AbstractAsyncContextManager[Any]:
    """An asyncio async context manager, entered and exited from trio through the loop."""
    wrapped: contextlib.AbstractAsyncContextManager[Any] = trio_asyncio.aio_as_trio(manager)
    return wrapped
