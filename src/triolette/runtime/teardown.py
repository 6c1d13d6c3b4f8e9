"""Entering context managers into the serve's one ``AsyncExitStack``, so that each exit's
error is logged with what it belongs to and never stops the exits after it.

The serve owns the stack (adapters, shared state, the lifespan, in that order) and closes it
with :func:`close`: after the devices stopped and the final flush, shielded from the shutdown's
cancellation, bounded by the shutdown deadline. Nothing here starts a task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import trio

logger = logging.getLogger("triolette.app")

ExitInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


async def enter_async(
    stack: contextlib.AsyncExitStack[Any],
    manager: contextlib.AbstractAsyncContextManager[Any],
    what: str,
) -> Any:
    """Enter ``manager`` now and exit it when ``stack`` closes; return what it yields.

    An error entering propagates. An error exiting is logged (naming ``what``) and swallowed,
    so the exits after it still run; an exit never suppresses the serve's own error.
    """
    value = await manager.__aenter__()

    async def exit_logged(*info: Any) -> bool:
        try:
            await manager.__aexit__(*info)
        except Exception:
            logger.exception("%s: error while closing", what)
        return False

    stack.push_async_exit(exit_logged)
    return value


def enter_sync(
    stack: contextlib.AsyncExitStack[Any],
    manager: contextlib.AbstractContextManager[Any],
    what: str,
) -> Any:
    """:func:`enter_async` for a synchronous context manager (a generator factory)."""
    value = manager.__enter__()

    def exit_logged(*info: Any) -> bool:
        try:
            manager.__exit__(*info)
        except Exception:
            logger.exception("%s: error while closing", what)
        return False

    stack.push(exit_logged)
    return value


async def close(stack: contextlib.AsyncExitStack[Any], deadline: Callable[[], float]) -> None:
    """Exit everything in ``stack`` (last entered first), shielded, until ``deadline()``.

    Exits still running at the deadline are cancelled; one ERROR line says so. Never raises
    an exit's error (each was logged).
    """
    with trio.move_on_at(deadline(), shield=True) as bounded:
        try:
            await stack.aclose()
        except Exception:  # raised by the stack machinery itself, not an exit (those log)
            logger.exception("error while closing the app's adapters and shared state")
    if bounded.cancelled_caught:
        logger.error(
            "the shutdown deadline passed while closing the app's adapters and shared state: "
            "the rest were not closed cleanly"
        )
