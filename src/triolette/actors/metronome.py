"""Shared drift-free ticks: one timer per interval, however many devices follow it.

A thousand devices each sleeping on their own deadline cost a thousand timers, cancel scopes
and timeouts per period; here one task sleeps and wakes the waiting devices through parking
lots. A device follows the metronome through a :class:`Lane`; tick N of a lane is due at
``start + (N + slot / slots) * interval``, so every tick of every lane stays on one grid
that never drifts. A device whose cycle overran a tick waits for the next one instead of
running the missed ticks in a burst.

The lanes are spread over the interval in ``slots`` evenly spaced phases (lane k takes the
slot whose number is k with its bits reversed: 0, 1/2, 1/4, 3/4, ... of the interval), so a
thousand devices of one interval do not all wake at once: each slot's devices run and the loop
is free again before the next slot is due. A slot holds about :data:`RELEASE_GROUP` devices
or more (fewer devices all tick together, as one group) and is at least :data:`MIN_SLOT`
long, so the timer wakes at most about a thousand times a second.

A slot releases its devices in groups of :data:`RELEASE_GROUP`, with a checkpoint between
groups: trio runs every ready task once per scheduling batch, so releasing many devices at
once would hold every other task (a command, a sensor read with a deadline) for all their
cycles. In groups, other tasks get a turn every few dozen device cycles.
"""

from __future__ import annotations

import trio

RELEASE_GROUP = 25
"""The most devices a slot releases in one scheduling batch."""
ON_TIME = 0.01
"""A cycle that overruns the next tick by less than this share of the interval is on time."""
MIN_SLOT = 0.001
"""The shortest time in seconds between two slots of one interval."""


class Metronome:
    """Ticks every ``interval`` seconds from its start, in phases; devices follow a :meth:`lane`.

    Run it with ``await nursery.start(metronome.run)`` before the devices that follow it.
    ``followers`` is how many devices will follow it: it sets the number of slots (a power
    of two, at most ``followers / RELEASE_GROUP`` and at most ``interval / MIN_SLOT``; with
    one slot, up to twice a group of followers, every lane ticks on the tick itself).
    """

    def __init__(self, interval: float, *, followers: int = 1) -> None:
        self.interval = interval
        self.slots = _slot_count(interval, followers)
        self.start = 0.0
        self._grace = interval * ON_TIME
        self._lots = [trio.lowlevel.ParkingLot() for _ in range(self.slots)]
        self._fired = [0] * self.slots  # per slot, the last tick released (0: the start)
        self._occupied = [False] * self.slots
        self._occupied[0] = True  # the timer ticks at least once an interval
        self._lanes = 0

    def lane(self) -> Lane:
        """A new follower's lane: the next slot in bit-reversed order."""
        slot = _bit_reversed(self._lanes % self.slots, self.slots)
        self._lanes += 1
        self._occupied[slot] = True
        return Lane(self, slot)

    def due(self, tick: int, slot: int = 0) -> float:
        """When tick number ``tick`` of ``slot`` is (or was) due."""
        return self.start + (tick + slot / self.slots) * self.interval

    @property
    def fired(self) -> int:
        """The last tick released on slot 0 (0: the start)."""
        return self._fired[0]

    @property
    def waiting(self) -> int:
        """How many devices wait for their next tick."""
        return sum(len(lot) for lot in self._lots)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until cancelled."""
        self.start = trio.current_time()
        task_status.started()
        slots, step_length = self.slots, self.interval / self.slots
        step = slots - 1  # steps count slots from the start; the first interval is tick 0
        while True:
            step = self._next_occupied(step)
            await trio.sleep_until(self.start + step * step_length)
            behind = int((trio.current_time() - self.start) // step_length) - step
            if behind >= slots:  # the loop itself fell a whole interval behind: skip, no burst
                step += behind // slots * slots
            await self._release(step // slots, step % slots)

    def _next_occupied(self, step: int) -> int:
        step += 1
        while not self._occupied[step % self.slots]:
            step += 1
        return step

    async def _release(self, tick: int, slot: int) -> None:
        self._fired[slot] = tick
        # Devices that finish this cycle park for the next tick, not in the lot released now.
        releasing, self._lots[slot] = self._lots[slot], trio.lowlevel.ParkingLot()
        while releasing.unpark(count=RELEASE_GROUP) and releasing:
            await trio.lowlevel.checkpoint()


class Lane:
    """One follower's place on a :class:`Metronome`: its slot and its ticks."""

    def __init__(self, metronome: Metronome, slot: int) -> None:
        self.metronome = metronome
        self.slot = slot

    @property
    def fired(self) -> int:
        """The last tick released on this lane's slot (0: the start)."""
        return self.metronome._fired[self.slot]

    def due(self, tick: int) -> float:
        """When this lane's tick number ``tick`` is (or was) due."""
        return self.metronome.due(tick, self.slot)

    async def next_tick(self, after: int) -> int:
        """Return the first tick after tick ``after``, waiting for it if it has not fired.

        A tick that fired less than :data:`ON_TIME` of an interval ago counts as not missed:
        the timer and a cycle ending at the same moment wake in one scheduling round, in
        either order. Cancellable.
        """
        metronome, slot = self.metronome, self.slot
        fired = metronome._fired[slot]
        if fired > after and trio.current_time() - self.due(fired) <= metronome._grace:
            await trio.lowlevel.checkpoint()
            return fired
        await metronome._lots[slot].park()
        return metronome._fired[slot]


def _slot_count(interval: float, followers: int) -> int:
    """The largest power of two at most ``followers / RELEASE_GROUP`` and
    ``interval / MIN_SLOT`` (at least 1): spreading pays only beyond one group per tick."""
    limit = min(followers // RELEASE_GROUP, int(interval / MIN_SLOT + 1e-9))
    slots = 1
    while slots * 2 <= limit:
        slots *= 2
    return slots


def _bit_reversed(index: int, slots: int) -> int:
    """``index`` with its ``log2(slots)`` bits in reverse order: consecutive lanes spread out."""
    bits = slots.bit_length() - 1
    return int(f"{index:0{bits}b}"[::-1], 2) if bits else 0
