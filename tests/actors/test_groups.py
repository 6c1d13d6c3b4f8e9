"""GroupTurns: one member at a time, in registration order, and cancellation passes the turn."""

from __future__ import annotations

import trio
import trio.testing

from triolette.actors.groups import GroupTurns


async def test_members_woken_together_take_turns_in_registration_order(autojump_clock):
    turns = GroupTurns({"a": 0, "b": 1, "c": 2})
    journal: list[str] = []

    async def member(name: str) -> None:
        async with turns.turn(name):
            journal.append(f"{name}+")
            await trio.sleep(1)
            journal.append(f"{name}-")

    async with trio.open_nursery() as nursery:
        for name in ("c", "a", "b"):  # started in the "wrong" order, in one batch
            nursery.start_soon(member, name)
    assert journal == ["a+", "a-", "b+", "b-", "c+", "c-"]


async def test_a_member_cancelled_while_waiting_or_holding_passes_the_turn_on(autojump_clock):
    turns = GroupTurns({"a": 0, "b": 1, "c": 2})
    journal: list[str] = []

    async def member(name: str, hold: float) -> None:
        async with turns.turn(name):
            journal.append(name)
            await trio.sleep(hold)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(member, "a", 10)
        await trio.testing.wait_all_tasks_blocked()  # "a" holds the turn
        cancelled = trio.CancelScope()

        async def b() -> None:
            with cancelled:
                await member("b", 100)

        nursery.start_soon(b)
        nursery.start_soon(member, "c", 1)
        await trio.testing.wait_all_tasks_blocked()  # "b" and "c" wait, "b" first in line
        cancelled.cancel()
    assert journal == ["a", "c"]


async def test_a_member_handed_the_turn_and_cancelled_before_it_looked_passes_it_on():
    turns = GroupTurns({"a": 0, "b": 1})
    journal: list[str] = []

    async def member(name: str) -> None:
        async with turns.turn(name):
            journal.append(name)

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def a() -> None:
            with scope:
                await member("a")

        nursery.start_soon(a)
        nursery.start_soon(member, "b")
        scope.cancel()  # "a" is cancelled in its first checkpoint
    assert journal == ["b"]
