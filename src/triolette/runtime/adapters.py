"""Adapters: the hardware clients an app builds at start, shares with handlers, and closes.

An adapter is registered for a *port* (the type handlers ask for) with an implementation: a
class, a factory callable, or a lazy ``"module:Class"`` string imported when the app starts
(so a dry run never imports the real driver). A second implementation, the *dry-run twin*,
is used instead when the app runs with ``--dry-run`` (or ``App(dry_run=True)``).
Constructors and factories may take the settings (and adapters registered before them) by
annotation.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

import attrs

from triolette.core.errors import RegistrationError
from triolette.core.scope import Scope
from triolette.runtime.factories import call_with, parameters

logger = logging.getLogger("triolette.app")

Implementation = type | Callable[..., Any] | str
"""A class, a factory, or ``"module:Class"`` (imported when the app starts)."""


@attrs.define
class _Adapter:
    real: Implementation
    dry_run: Implementation | None
    asyncio: bool


class Adapters:
    """An app's adapters by port type: registered, then built and entered by :meth:`enter`."""

    def __init__(self) -> None:
        self._by_port: dict[Any, _Adapter] = {}

    def register(
        self,
        port: Any,
        implementation: Implementation,
        dry_run: Implementation | None = None,
        *,
        asyncio: bool,
    ) -> None:
        """Add one; a second one for ``port``, or an implementation that is neither callable
        nor a ``"module:attribute"`` string, is refused naming the port. The signature of a
        callable is checked now: each parameter needs an annotation or a default."""
        what = f"adapter {_shown(port)}"
        if port in self._by_port:
            raise RegistrationError(f"{what}: already registered")
        for label, impl in (("", implementation), ("dry-run ", dry_run)):
            if impl is None and label:
                continue
            if isinstance(impl, str):
                _split(impl, what)
            elif not callable(impl):
                raise RegistrationError(
                    f"{what}: the {label}implementation must be a class, a factory or a "
                    f"'module:Class' string, got {impl!r}"
                )
            else:
                parameters(impl, f"{what}: {label}implementation {_name(impl)}")
        self._by_port[port] = _Adapter(implementation, dry_run, asyncio)

    def copy(self) -> Adapters:
        """The same registrations, in an object of their own."""
        copied = Adapters()
        copied._by_port = dict(self._by_port)
        return copied

    @property
    def need_asyncio(self) -> bool:
        return any(adapter.asyncio for adapter in self._by_port.values())

    def implementation_of(self, port: Any) -> Implementation | None:
        """The implementation registered for ``port`` (not its dry-run twin), or ``None``."""
        adapter = self._by_port.get(port)
        return adapter.real if adapter is not None else None

    def is_asyncio(self, port: Any) -> bool:
        return self._by_port[port].asyncio

    @property
    def ports(self) -> list[Any]:
        return list(self._by_port)

    def has_twin(self, port: Any) -> bool:
        return self._by_port[port].dry_run is not None

    async def enter(
        self,
        stack: contextlib.AsyncExitStack[Any],
        scope: Scope,
        *,
        dry_run: bool = False,
        skip: frozenset[Any] = frozenset(),
    ) -> list[Any]:
        """Build every adapter (its dry-run twin when ``dry_run`` and it has one), enter those
        that are async context managers into ``stack``, and provide each instance in
        ``scope`` as its port; return the ports built. Ports in ``skip`` are left alone.

        A lazy string is imported here: one that does not import is a RegistrationError
        naming it. An asyncio adapter is entered through the current trio-asyncio loop. An
        error building or entering one propagates; those entered before it are exited when
        ``stack`` closes.
        """
        built = []
        entered = _entered.setdefault(scope, {})
        for port, adapter in self._by_port.items():
            if port in skip:
                continue
            what = f"adapter {_shown(port)}"
            twin = dry_run and adapter.dry_run is not None
            impl = adapter.dry_run if twin else adapter.real
            assert impl is not None
            factory = _load(impl, what) if isinstance(impl, str) else impl
            live = LiveAdapter(port, what, _builder(factory, scope, what), adapter.asyncio)
            instance = await live.enter()
            stack.push_async_exit(live.exit_logged)
            entered[port] = live
            scope.provide(port, instance, what=what)
            built.append(port)
            logger.debug("%s ready%s", what, " (dry-run twin)" if twin else "")
        return built


_entered: weakref.WeakKeyDictionary[Scope, dict[Any, LiveAdapter]] = weakref.WeakKeyDictionary()
"""The adapters each serve entered, by the scope they are provided in."""


def live_adapter(scope: Scope, port: Any) -> LiveAdapter | None:
    """The adapter :meth:`Adapters.enter` built for ``port`` in ``scope``, if it did."""
    return _entered.get(scope, {}).get(port)


@attrs.define(eq=False)
class LiveAdapter:
    """One adapter of a serve: built and entered, and exited and built again by a restart.

    ``instance`` is what handlers get (what an async context manager's ``__aenter__``
    returned). The serve's stack exits whichever instance is entered when it closes.
    """

    port: Any
    what: str
    build: Callable[[], Any]
    asyncio: bool
    instance: Any = None
    _manager: contextlib.AbstractAsyncContextManager[Any] | None = None
    context_manager: bool = False
    """Whether the last instance built was an async context manager (restarted by exit and
    enter, rather than ``reset()``)."""

    async def enter(self) -> Any:
        """Build a new instance, enter it if it is an async context manager, return it.

        An error building or entering propagates (nothing is left entered then).
        """
        built = self.build()
        self.context_manager = hasattr(built, "__aenter__") and hasattr(built, "__aexit__")
        if self.context_manager:
            manager = built
            if self.asyncio:
                from triolette.runtime.aio import entered_in_loop

                manager = entered_in_loop(built)
            self.instance = await manager.__aenter__()
            self._manager = manager
        else:
            self.instance = built
        return self.instance

    async def exit(self) -> None:
        """Exit the entered instance (once; nothing when none is entered). Errors propagate."""
        manager, self._manager = self._manager, None
        if manager is not None:
            await manager.__aexit__(None, None, None)

    async def exit_logged(self, *info: Any) -> bool:
        """The serve's stack exit: an error is logged naming the adapter, never raised."""
        manager, self._manager = self._manager, None
        if manager is not None:
            try:
                await manager.__aexit__(*info)
            except Exception:
                logger.exception("%s: error while closing", self.what)
        return False


def _builder(factory: Callable[..., Any], scope: Scope, what: str) -> Callable[[], Any]:
    return lambda: call_with(factory, scope, f"{what}: {_name(factory)}")


def _split(reference: str, what: str) -> tuple[str, str]:
    module, colon, attribute = reference.partition(":")
    if not (colon and module.strip() and attribute.strip()):
        raise RegistrationError(
            f"{what}: {reference!r} is not a 'module:Class' reference (e.g. 'mybridge.hw:Meter')"
        )
    return module.strip(), attribute.strip()


def _load(reference: str, what: str) -> Callable[..., Any]:
    """Import ``"module:attribute"``; a RegistrationError naming it when that fails."""
    module_name, attribute = _split(reference, what)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise RegistrationError(f"{what}: cannot import {reference!r} ({error})") from error
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise RegistrationError(
                f"{what}: cannot import {reference!r} (module {module_name!r} has no {part!r})"
            ) from None
    if not callable(target):
        raise RegistrationError(f"{what}: {reference!r} is not a class or a factory")
    return target


def _name(implementation: Any) -> str:
    return getattr(implementation, "__qualname__", None) or repr(implementation)


def _shown(port: Any) -> str:
    return getattr(port, "__qualname__", None) or repr(port)
