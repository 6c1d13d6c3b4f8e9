"""Quartz cron expressions: translated to cronsim, fire times in local time."""

from __future__ import annotations

from datetime import datetime

import pytest

from triolette import CronSchedule

NOW = datetime(2026, 12, 5, 11, 0, 3, 500)  # a Saturday


@pytest.mark.parametrize(
    ("expression", "fires"),
    [
        ("0 */5 * * * ?", datetime(2026, 12, 5, 11, 5)),
        ("*/10 * * * * *", datetime(2026, 12, 5, 11, 0, 10)),
        ("10/15 * * * * ?", datetime(2026, 12, 5, 11, 0, 10)),
        ("0 0 12 ? * MON-FRI", datetime(2026, 12, 7, 12)),
        ("0 0 12 ? * mon-fri", datetime(2026, 12, 7, 12)),
        ("0 0 0 ? * 1", datetime(2026, 12, 6)),  # Quartz: 1 is Sunday
        ("0 0 0 ? * 2-6", datetime(2026, 12, 7)),  # Monday to Friday
        ("0 0 0 ? * 6#3", datetime(2026, 12, 18)),  # the third Friday
        ("0 0 0 ? * 5L", datetime(2026, 12, 31)),  # the last Thursday
        ("0 0 0 ? * L", datetime(2026, 12, 12)),  # "L" alone: Saturday
        ("0 0 0 L * ?", datetime(2026, 12, 31)),
        ("0 0 0 LW * ?", datetime(2026, 12, 31)),
        ("0 30 6 1 JAN ?", datetime(2027, 1, 1, 6, 30)),
        ("0 0 0 1 1 ? 2030", datetime(2030, 1, 1)),
        ("0 0 0 1 1 ? 2026-2035/4", datetime(2030, 1, 1)),
    ],
)
def test_next_fire_after(expression: str, fires: datetime) -> None:
    assert CronSchedule(expression).next_fire_after(NOW) == fires


def test_fire_times_are_strictly_after_and_follow_one_another() -> None:
    schedule = CronSchedule("0 */5 * * * ?")
    first = schedule.next_fire_after(datetime(2026, 12, 5, 11, 5))
    assert first == datetime(2026, 12, 5, 11, 10)
    assert schedule.next_fire_after(first) == datetime(2026, 12, 5, 11, 15)


def test_a_schedule_whose_years_are_over_fires_no_more() -> None:
    assert CronSchedule("0 0 0 1 1 ? 2020-2025").next_fire_after(NOW) is None


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("* * * * *", "needs 6 fields"),
        ("0 0 0 1 1 ? 2030 x", "needs 6 fields"),
        ("x * * * * ?", "Bad second"),
        ("0 0 0 31 2 ?", "day-of-month"),
        ("0 0 0 1 * 2", "not both"),
        ("0 0 0 ? * 0", "day of week 0 is not 1-7"),
        ("0 0 0 ? * 8", "day of week 8 is not 1-7"),
        ("0 0 0 15W * ?", "not supported"),
        ("0 0 0 L-2 * ?", "not supported"),
        ("0 0 0 1 1 ? 1900", "1970-2099"),
        ("0 0 0 1 1 ? 20x0", "bad year"),
    ],
)
def test_bad_expressions_are_refused_with_the_expression_named(expression: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        CronSchedule(expression)
    assert repr(expression) in str(caught.value)


def test_a_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        CronSchedule(5)  # type: ignore[arg-type]
