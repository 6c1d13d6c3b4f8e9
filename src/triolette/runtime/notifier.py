"""A handle that triggers one telemetry device's cycles, for code outside the handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from triolette.runtime.app import App


class EntityNotifier:
    """``EntityNotifier(app, "meter")()`` runs a cycle of ``meter`` now (see ``App.trigger``).

    Thread-safe: hand it to a callback of a hardware library's own thread (an interrupt, a
    file watcher). The name is checked on each call, so the handle may be made before the
    device is declared.
    """

    def __init__(self, app: App, name: str) -> None:
        self.app = app
        self.name = name

    def __call__(self, payload: str | bytes = "") -> None:
        """Request a cycle with ``payload``; raises what :meth:`App.trigger` raises."""
        self.app.trigger(self.name, payload)

    def __repr__(self) -> str:
        return f"EntityNotifier({self.app.name!r}, {self.name!r})"
