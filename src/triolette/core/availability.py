"""Each device's availability: ``online`` while its actor runs and nothing holds it offline.

A device is offline while its actor is not running, and while any *hold* is set on it: an
unhealthy adapter it uses (``health:GasMeter``), a stale stream (``freshness``), a stream it
is fed by that is offline (``stream:<name>``). Holds are independent: releasing one leaves the
others. Only edges are published. No trio here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from triolette.core.topics import OFFLINE, ONLINE


class Availability:
    """Availability of every device, published through ``publish(device, value)`` on edges."""

    def __init__(self, publish: Callable[[str, str], None]) -> None:
        self._publish = publish
        self._up: set[str] = set()
        self._holds: dict[str, set[str]] = {}
        self._shown: dict[str, str] = {}
        self._feeds: dict[str, tuple[str, ...]] = {}

    def feeds(self, source: str, targets: Iterable[str]) -> None:
        """While ``source`` is offline, hold each of ``targets`` offline (``stream:<source>``)."""
        self._feeds[source] = tuple(targets)

    def actor(self, device: str, up: bool) -> None:
        """The device's actor started (``up``) or stopped."""
        if up:
            self._up.add(device)
        else:
            self._up.discard(device)
        self._update(device)

    def hold(self, device: str, source: str) -> None:
        """Keep ``device`` offline for ``source`` until :meth:`release`; idempotent."""
        self._holds.setdefault(device, set()).add(source)
        self._update(device)

    def release(self, device: str, source: str) -> None:
        holds = self._holds.get(device)
        if holds is not None and source in holds:
            holds.discard(source)
            self._update(device)

    def holds(self, device: str) -> frozenset[str]:
        """Why ``device`` is held offline (empty when nothing holds it)."""
        return frozenset(self._holds.get(device, ()))

    def value(self, device: str) -> str | None:
        """The availability last published for ``device`` (``None``: none yet)."""
        return self._shown.get(device)

    def _update(self, device: str) -> None:
        value = ONLINE if device in self._up and not self._holds.get(device) else OFFLINE
        if self._shown.get(device) == value:
            return
        if device not in self._shown and value == OFFLINE and device not in self._up:
            return  # never announced: a hold before the start is published at the start
        self._shown[device] = value
        self._publish(device, value)
        for target in self._feeds.get(device, ()):
            if value == OFFLINE:
                self.hold(target, f"stream:{device}")
            else:
                self.release(target, f"stream:{device}")
