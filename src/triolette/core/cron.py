"""Quartz cron expressions (seconds first), as ``@app.telemetry(schedule=...)`` takes them.

``CronSchedule("0 */5 * * * ?")`` fires at second 0 of every fifth minute. Six fields
(second, minute, hour, day of month, month, day of week) or seven (plus year, 1970-2099).
The matching is done by the ``cronsim`` library (the ``cron`` extra); this module translates
Quartz to it: ``?`` means "any", days of the week count 1-7 from Sunday (``SUN``-``SAT`` also
work), the year field is applied here. Supported: lists, ranges, steps (``*/5``, ``10/15``),
names, ``L`` and ``LW`` (last day, last weekday of the month), ``nL`` (last such weekday of
the month) and ``n#k`` (k-th such weekday). Not supported, refused with a ValueError:
``L-n`` and ``nW``. Quartz also refuses a day of month and a day of week both restricted;
so does this (one of them must be ``?`` or ``*``).

Fire times are in local time (naive datetimes).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import attrs

YEARS = range(1970, 2100)
_DAY_OF_MONTH, _DAY_OF_WEEK = 3, 5


def _cronsim() -> Any:
    try:
        from cronsim import CronSim, CronSimError
    except ImportError as error:  # pragma: no cover - the extra is part of the test setup
        raise ImportError(
            "cron schedules need the cronsim library: pip install 'triolette[cron]'"
        ) from error
    return CronSim, CronSimError


def _quartz_weekday(item: str, expr: str) -> str:
    """One day-of-week list item from Quartz numbering (1 = SUN) to cron's (0 = SUN)."""
    base, slash, step = item.partition("/")
    if base == "L":
        base = "SAT"  # Quartz: "L" alone in the day of week is its last day

    def shift(match: re.Match[str]) -> str:
        day = int(match.group())
        if not 1 <= day <= 7:
            raise ValueError(f"cron {expr!r}: day of week {day} is not 1-7 (1 = SUN)")
        return str(day - 1)

    # Only the weekday numbers move: not the k of n#k, not a step.
    head, hash_, k = base.partition("#")
    return re.sub(r"\d+", shift, head) + hash_ + k + slash + step


def _years(field: str, expr: str) -> frozenset[int]:
    years: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        low, high = (YEARS.start, YEARS.stop - 1) if base in ("*", "?") else (0, 0)
        if base not in ("*", "?"):
            first, _, last = base.partition("-")
            if not first.isdigit() or (last and not last.isdigit()):
                raise ValueError(f"cron {expr!r}: bad year field {field!r}")
            low = int(first)
            high = int(last) if last else (YEARS.stop - 1 if step_text else low)
        if (step_text and not step_text.isdigit()) or step_text == "0":
            raise ValueError(f"cron {expr!r}: bad year step in {field!r}")
        if low not in YEARS or high not in YEARS or high < low:
            raise ValueError(f"cron {expr!r}: years must be within 1970-2099, got {item!r}")
        years.update(range(low, high + 1, int(step_text or 1)))
    return frozenset(years)


def _translate(expr: str) -> tuple[str, frozenset[int] | None]:
    if not isinstance(expr, str):
        raise TypeError(f"a cron schedule must be a string, got {expr!r}")
    fields = expr.upper().split()
    if len(fields) not in (6, 7):
        raise ValueError(
            f"cron {expr!r}: needs 6 fields (second minute hour day-of-month month "
            f"day-of-week) or 7 (plus year), got {len(fields)}"
        )
    day, weekday = fields[_DAY_OF_MONTH], fields[_DAY_OF_WEEK]
    if day not in ("?", "*") and weekday not in ("?", "*"):
        raise ValueError(
            f"cron {expr!r}: give a day of month or a day of week, not both (put ? in the other)"
        )
    if re.search(r"L-|\dW", day):
        raise ValueError(f"cron {expr!r}: 'L-n' and 'nW' days of month are not supported")
    fields[_DAY_OF_MONTH] = "*" if day == "?" else day
    fields[_DAY_OF_WEEK] = (
        "*"
        if weekday in ("?", "*")
        else ",".join(_quartz_weekday(i, expr) for i in weekday.split(","))
    )
    years = _years(fields.pop(), expr) if len(fields) == 7 else None
    return " ".join(fields), years


@attrs.frozen
class CronSchedule:
    """A Quartz cron expression; raises ValueError at construction if it is malformed or can
    never fire (such as ``0 0 0 31 2 ?``)."""

    expression: str
    _unix: str = attrs.field(init=False, repr=False, eq=False)
    _years: frozenset[int] | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        unix, years = _translate(self.expression)
        object.__setattr__(self, "_unix", unix)
        object.__setattr__(self, "_years", years)
        cron_sim, cron_error = _cronsim()
        try:
            cron_sim(unix, datetime(2000, 1, 1))
        except cron_error as error:
            raise ValueError(f"cron {self.expression!r}: {error}") from None

    def next_fire_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``; ``None`` once its years are over."""
        cron_sim, _ = _cronsim()
        start = after
        while True:
            fire: datetime = next(cron_sim(self._unix, start))
            if self._years is None or fire.year in self._years:
                return fire
            later = [year for year in self._years if year > fire.year]
            if not later:
                return None
            start = datetime(min(later), 1, 1, tzinfo=after.tzinfo) - timedelta(seconds=1)
