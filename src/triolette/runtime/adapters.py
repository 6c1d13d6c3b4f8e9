"""Adapters: the hardware clients an app builds at start, shares with handlers, and closes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import attrs

from triolette.core.errors import RegistrationError
from triolette.core.scope import Scope

logger = logging.getLogger("triolette.app")


@attrs.define
class _Adapter:
    factory: Callable[[], Any]
    asyncio: bool


class Adapters:
    """An app's adapters by port type: registered, then built and entered by :meth:`enter`."""

    def __init__(self) -> None:
        self._by_port: dict[Any, _Adapter] = {}

    def register(self, port: Any, factory: Callable[[], Any], *, asyncio: bool) -> None:
        """Add one; a second one for ``port`` or a factory that cannot be called is refused."""
        if port in self._by_port:
            raise RegistrationError(f"adapter {port!r}: already registered")
        if not callable(factory):
            raise RegistrationError(f"adapter {port!r}: the factory must be callable")
        self._by_port[port] = _Adapter(factory, asyncio)

    @property
    def need_asyncio(self) -> bool:
        return any(adapter.asyncio for adapter in self._by_port.values())

    def factory_of(self, port: Any) -> Callable[[], Any] | None:
        """The factory registered for ``port``, or ``None``."""
        adapter = self._by_port.get(port)
        return adapter.factory if adapter is not None else None

    def is_asyncio(self, port: Any) -> bool:
        return self._by_port[port].asyncio

    @property
    def ports(self) -> list[Any]:
        return list(self._by_port)

    async def enter(self, stack: contextlib.AsyncExitStack, scope: Scope) -> None:
        """Build every adapter, enter those that are async context managers into ``stack``,
        and provide each instance in ``scope`` as its port.

        An asyncio one is entered through the current trio-asyncio loop. An error building
        or entering one propagates; those entered before it are exited by ``stack``.
        """
        for port, adapter in self._by_port.items():
            instance = adapter.factory()
            if hasattr(instance, "__aenter__") and hasattr(instance, "__aexit__"):
                if adapter.asyncio:
                    from triolette.runtime.aio import entered_in_loop

                    instance = await stack.enter_async_context(entered_in_loop(instance))
                else:
                    instance = await stack.enter_async_context(instance)
            scope.provide(port, instance, what=f"adapter {port!r}")
            logger.debug("adapter %r ready", port)
