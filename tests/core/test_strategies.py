"""Publish strategies: Every, OnChange, their composites, and one device's gate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

from triolette import AllStrategy, AnyStrategy, Every, OnChange, PublishStrategy
from triolette.core.strategies import PublishGate


def ask(strategy: PublishStrategy, current: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    return strategy.should_publish(current, previous, 0.0)


class Recording:
    """A user strategy that records what it was asked and answers as told."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked = 0
        self.published: list[float] = []

    def should_publish(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> bool:
        self.asked += 1
        return self.answer

    def on_published(self, now: float) -> None:
        self.published.append(now)


# -- Every ------------------------------------------------------------------------------------


def test_every_n_publishes_every_nth_reading_and_restarts_counting_after_a_publish() -> None:
    every = Every(n=3)
    answers = []
    for _ in range(6):
        answer = ask(every, {}, {})
        answers.append(answer)
        if answer:
            every.on_published(0.0)
    assert answers == [False, False, True, False, False, True]


def test_every_seconds_measures_from_the_last_publish() -> None:
    every = Every(seconds=10)
    assert every.should_publish({}, {}, 0.0)  # never published: due
    every.on_published(5.0)
    assert not every.should_publish({}, {}, 14.8)
    assert every.should_publish({}, {}, 15.0)


def test_every_seconds_takes_a_cycle_a_little_early_as_due() -> None:
    every = Every(seconds=300)
    every.on_published(60.004)  # a timer woke 4 ms late
    assert every.should_publish({}, {}, 360.001), "not held back a whole cycle by 3 ms"
    assert not every.should_publish({}, {}, 356.0)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, ValueError),
        ({"seconds": 1, "n": 2}, ValueError),
        ({"seconds": 0}, ValueError),
        ({"seconds": -1}, ValueError),
        ({"seconds": math.inf}, ValueError),
        ({"seconds": True}, TypeError),
        ({"n": 0}, ValueError),
        ({"n": 1.5}, ValueError),
        ({"n": True}, ValueError),
    ],
)
def test_every_refuses_bad_options(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="Every"):
        Every(**options)


# -- OnChange -----------------------------------------------------------------------------------


def test_on_change_without_threshold_publishes_any_difference() -> None:
    on_change = OnChange()
    assert not ask(on_change, {"t": 20.0, "s": "ok"}, {"t": 20.0, "s": "ok"})
    assert ask(on_change, {"t": 20.01, "s": "ok"}, {"t": 20.0, "s": "ok"})
    assert ask(on_change, {"t": 20.0, "s": "low"}, {"t": 20.0, "s": "ok"})


def test_a_numeric_threshold_needs_a_move_of_more_than_it_on_every_leaf() -> None:
    on_change = OnChange(threshold=0.5)
    assert not ask(on_change, {"t": 20.5}, {"t": 20.0})  # exactly the band: not more
    assert ask(on_change, {"t": 20.51}, {"t": 20.0})
    assert ask(on_change, {"t": 19.4}, {"t": 20.0})
    assert not ask(on_change, {"a": {"b": 1.2}}, {"a": {"b": 1.0}})  # nested leaves too
    assert ask(on_change, {"a": {"b": 1.6}}, {"a": {"b": 1.0}})
    assert ask(on_change, {"mode": "eco"}, {"mode": "auto"})  # not a number: any difference


def test_bool_is_not_a_number_for_the_threshold() -> None:
    assert ask(OnChange(threshold=5), {"on": True}, {"on": False})


def test_added_or_removed_keys_always_publish() -> None:
    on_change = OnChange(threshold=100)
    assert ask(on_change, {"t": 1, "h": 2}, {"t": 1})
    assert ask(on_change, {"t": 1}, {"t": 1, "h": 2})
    assert ask(on_change, {"a": {"x": 1, "y": 2}}, {"a": {"x": 1}})


def test_nan_to_a_number_counts_nan_to_nan_does_not() -> None:
    for on_change in (OnChange(), OnChange(threshold=1)):
        assert ask(on_change, {"t": math.nan}, {"t": 1.0})
        assert ask(on_change, {"t": 1.0}, {"t": math.nan})
        assert not ask(on_change, {"t": math.nan}, {"t": math.nan})


def test_per_leaf_thresholds_by_dotted_path_and_exact_equality_elsewhere() -> None:
    on_change = OnChange(threshold={"temperature": 0.05, "power.watts": 1})
    previous = {"temperature": 20.0, "humidity": 40, "power": {"watts": 100, "volts": 230}}
    assert not ask(on_change, {**previous, "temperature": 20.04}, previous)
    assert ask(on_change, {**previous, "temperature": 20.06}, previous)
    assert not ask(on_change, {**previous, "power": {"watts": 100.9, "volts": 230}}, previous)
    assert ask(on_change, {**previous, "power": {"watts": 101.5, "volts": 230}}, previous)
    assert ask(on_change, {**previous, "humidity": 40.01}, previous)  # unlisted: exact


@pytest.mark.parametrize(
    ("threshold", "error"),
    [
        (-0.1, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ("1", TypeError),
        ({"t": -1}, ValueError),
        ({"t": False}, TypeError),
        ({1: 0.5}, TypeError),
    ],
)
def test_on_change_refuses_bad_thresholds(threshold: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="OnChange"):
        OnChange(threshold=threshold)


# -- composites ---------------------------------------------------------------------------------


def test_or_and_and_build_flattened_composites() -> None:
    a, b, c = OnChange(), Every(n=2), Every(seconds=5)
    assert (a | b | c).children == (a, b, c)
    assert isinstance(a | b, AnyStrategy)
    assert (a & b & c).children == (a, b, c)
    assert isinstance(a & b, AllStrategy)
    mixed = (a | b) & c
    assert isinstance(mixed, AllStrategy)
    assert mixed.children == (AnyStrategy(a, b), c)


def test_every_child_is_asked_every_time_and_every_child_hears_the_publish() -> None:
    first, second = Recording(True), Recording(False)
    any_of = AnyStrategy(first, second)  # a user strategy composes too
    assert ask(any_of, {}, {})
    assert second.asked == 1, "no short circuit: the second child's counters advance"
    all_of = AllStrategy(Recording(False), second)
    assert not ask(all_of, {}, {})
    assert second.asked == 2
    any_of.on_published(7.0)
    assert first.published == [7.0]
    assert second.published == [7.0]


def test_a_user_strategy_composes_from_either_side() -> None:
    user = Recording(True)
    assert (user | OnChange()).children == (user, OnChange())
    assert (OnChange() & user).children == (OnChange(), user)


def test_an_empty_composite_or_a_non_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="AnyStrategy needs at least one"):
        AnyStrategy()
    with pytest.raises(ValueError, match="AllStrategy needs at least one"):
        AllStrategy()
    with pytest.raises(TypeError, match="not a publish strategy"):
        AnyStrategy(OnChange(), "often")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a publish strategy"):
        AllStrategy(OnChange, Every(n=2))  # type: ignore[arg-type]


# -- one device's gate ---------------------------------------------------------------------------


def test_the_gate_publishes_the_first_state_and_compares_with_the_last_published() -> None:
    gate = PublishGate(OnChange(threshold=0.5))
    readings = [20.0, 20.3, 20.6, 20.9, 21.2]
    published = []
    for value in readings:
        state = {"t": value}
        if gate.wants(state, 0.0):
            gate.published(state, 0.0)
            published.append(value)
    # 20.6 is 0.6 from the last *published* 20.0, though only 0.3 from the reading before.
    assert published == [20.0, 20.6, 21.2]


def test_the_gate_keeps_a_copy_of_the_baseline_and_its_own_copy_of_the_strategy() -> None:
    shared = Every(n=2)
    gate, other = PublishGate(shared), PublishGate(shared)
    state: dict[str, Any] = {"a": {"b": 1}}
    assert gate.wants(state, 0.0)
    gate.published(state, 0.0)
    state["a"]["b"] = 2  # the handler mutates the dict it returned
    assert gate.wants({"a": {"b": 1}}, 0.0) is False  # first of two readings since
    assert gate.wants({"a": {"b": 1}}, 0.0) is True
    other.published({}, 0.0)
    assert other.wants({}, 0.0) is False, "the other device's copy has its own counter"
    gate2 = PublishGate(OnChange())
    gate2.published(state, 0.0)
    state["a"]["b"] = 3
    assert gate2.wants({"a": {"b": 2}}, 0.0) is False, "the baseline did not move with the dict"
