"""Signal filters: the maths, first readings, resets, bad input, and memory kept in a store."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triolette import DeviceStore, MemoryStore, SaveOnChange
from triolette.filters import MedianFilter, OneEuroFilter, Pt1Filter
from triolette.testing import AppHarness

readings = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40
)
positive = st.floats(min_value=0.01, max_value=1000)


@given(readings, positive, positive)
def test_pt1_is_the_exponential_average_with_alpha_from_tau_and_dt(xs, tau, dt):
    f = Pt1Filter(tau=tau, dt=dt)
    alpha = dt / (tau + dt)
    expected = xs[0]
    assert f.value is None
    assert f.update(xs[0]) == xs[0]
    for x in xs[1:]:
        expected = alpha * x + (1 - alpha) * expected
        assert f.update(x) == pytest.approx(expected, rel=1e-9, abs=1e-6)
        assert min(xs) - 1e-6 <= f.value <= max(xs) + 1e-6


@given(readings, st.integers(min_value=1, max_value=9))
def test_median_is_the_median_of_the_last_window_readings(xs, window):
    f = MedianFilter(window)
    assert f.update(xs[0]) == xs[0]
    for index in range(1, len(xs)):
        last = xs[max(0, index + 1 - window) : index + 1]
        assert f.update(xs[index]) == statistics.median(last)


def test_median_drops_a_short_spike():
    f = MedianFilter(3)
    assert [f.update(x) for x in [20.0, 20.5, 95.0, 21.0, 21.5]] == [20.0, 20.25, 20.5, 21.0, 21.5]


@given(readings, positive, st.floats(min_value=0.01, max_value=10))
def test_one_euro_without_beta_is_a_pt1_with_tau_from_its_cutoff(xs, cutoff, dt):
    euro = OneEuroFilter(min_cutoff=cutoff, beta=0.0, dt=dt)
    pt1 = Pt1Filter(tau=1 / (2 * math.pi * cutoff), dt=dt)
    for x in xs:
        assert euro.update(x) == pytest.approx(pt1.update(x), rel=1e-9, abs=1e-6)


def test_one_euro_follows_fast_moves_more_closely_with_beta():
    still, quick = OneEuroFilter(min_cutoff=0.1), OneEuroFilter(min_cutoff=0.1, beta=1.0)
    for x in [0.0, 0.0, 10.0, 10.0]:
        lagging, following = still.update(x), quick.update(x)
    assert 0 < lagging < following < 10
    # the paper's steps by hand: dx = 10, dy = a_d*10, cutoff = 0.1 + |dy|
    a_d = 1 / (1 + 1 / (2 * math.pi))
    a = 1 / (1 + 1 / (2 * math.pi * (0.1 + a_d * 10)))
    f = OneEuroFilter(min_cutoff=0.1, beta=1.0)
    f.update(0.0)
    assert f.update(10.0) == pytest.approx(a * 10)


@pytest.mark.parametrize(
    "make", [lambda: Pt1Filter(5, 1), lambda: MedianFilter(3), lambda: OneEuroFilter(beta=0.5)]
)
def test_reset_starts_over_with_the_next_raw_reading(make):
    f = make()
    for x in [1.0, 5.0, 9.0]:
        f.update(x)
    f.reset()
    assert f.value is None
    assert f.update(42.0) == 42.0


@given(readings, readings)
def test_restored_state_continues_exactly_and_is_json(before, after):
    for make in (lambda: Pt1Filter(3, 1), lambda: MedianFilter(4), lambda: OneEuroFilter(beta=1)):
        original = make()
        for x in before:
            original.update(x)
        restored = make().restore(json.loads(json.dumps(original.state(), allow_nan=False)))
        assert restored.value == original.value
        for x in after:
            assert restored.update(x) == original.update(x)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Pt1Filter(0, 1), ValueError, "tau must be positive, got 0"),
        (lambda: Pt1Filter(1, True), TypeError, "dt must be a number, got True"),
        (lambda: MedianFilter(0), ValueError, "window must be positive, got 0"),
        (
            lambda: MedianFilter(2.5),  # type: ignore[arg-type]
            TypeError,
            "window must be an int, got 2.5",
        ),
        (lambda: OneEuroFilter(beta=-1), ValueError, "beta must not be negative"),
        (lambda: OneEuroFilter(d_cutoff=math.inf), ValueError, "d_cutoff must be finite"),
        (lambda: Pt1Filter(1, 1).update(math.nan), ValueError, "reading must be finite, got nan"),
        (
            lambda: MedianFilter(3).update("7"),  # type: ignore[arg-type]
            TypeError,
            "reading must be a number, got '7'",
        ),
    ],
)
def test_bad_parameters_and_readings_are_refused_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_bound_filter_keeps_its_memory_in_the_mapping():
    store: dict[str, object] = {}
    f = Pt1Filter(tau=9, dt=1).bind(store, "smooth")
    f.update(10.0)
    f.update(20.0)
    assert store == {"smooth": {"value": 11.0}}

    again = Pt1Filter(tau=9, dt=1).bind(store, "smooth")  # after a restart
    assert again.value == 11.0
    assert again.update(21.0) == 12.0
    again.reset()
    assert store == {"smooth": {"value": None}}


def test_a_bound_filter_refuses_a_state_it_cannot_use_by_key():
    with pytest.raises(ValueError, match="stored filter state 'smooth' is not usable"):
        MedianFilter(3).bind({"smooth": {"value": 3}}, "smooth")
    with pytest.raises(ValueError, match="stored filter state 'smooth' is not usable"):
        Pt1Filter(1, 1).bind({"smooth": {"value": "warm"}}, "smooth")


async def test_the_smoothing_survives_a_restart_of_the_app(autojump_clock):
    backend = MemoryStore()
    outputs: list[float] = []
    raw = iter([10.0, 20.0, 20.0])

    def bridge() -> AppHarness:
        harness = AppHarness.create(store=backend)

        @harness.app.telemetry("room", interval=60, persist=SaveOnChange())
        async def room(store: DeviceStore) -> dict[str, object]:
            smooth = Pt1Filter(tau=60, dt=60).bind(store, "celsius_filter")
            outputs.append(smooth.update(next(raw)))
            return {"celsius": outputs[-1]}

        return harness

    await bridge().run(cycles=2)
    await bridge().run(cycles=1)  # a new process: the filter comes back from the store
    assert outputs == [10.0, 15.0, 17.5]
    assert backend.load("room") == {"celsius_filter": {"value": 17.5}}


def test_the_filters_guide_runs_as_written():
    page = (Path(__file__).parents[1] / "docs" / "filters.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "filters.md", "exec"), {})
