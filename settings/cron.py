"""Five-field cron schedules as Kubernetes CronJobs read them: parsed, range-checked, and compared.

Kubernetes parses a schedule with robfig/cron v3 (`cron.ParseStandard`, in the API server's validation and in the
CronJob controller). `parse` rejects what that parser rejects (out-of-range values, 7 for Sunday — its day of week
is 0-6 —, reversed ranges, zero steps) and reads what it accepts as it does (lists, ranges, steps, `?` for `*`,
month and weekday names in any case, its day rule below). Stricter on purpose: no macros (@daily, @every), and
a day that never comes (February 30th) is refused where Kubernetes would accept a job that never runs.
`collide` tells whether two schedules ever start in the same minute: backup jobs that take pgBackRest's stanza
lock must not.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from functools import lru_cache

_MONTHS = {name: i + 1 for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_WEEKDAYS = {name: i for i, name in enumerate("sun mon tue wed thu fri sat".split())}
# name, lowest, highest, names allowed in place of numbers
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _WEEKDAYS),
)
_ITEM_RE = re.compile(r"(?P<range>[*?]|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?")


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    # robfig/cron's rule (spec.go, dayMatches): when both day fields are restricted, a day matches either of them;
    # a field is unrestricted when one of its items is `*` (or `?`) stepping by 1 — `*/2` restricts it.
    days_restricted: bool
    weekdays_restricted: bool

    def runs_on(self, date: datetime.date) -> bool:
        if date.month not in self.months:
            return False
        by_day = date.day in self.days
        by_weekday = (date.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday


class CronError(ValueError):
    pass


def _value(token: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    if token in names:
        return names[token]
    if not token.isdigit() or len(token) > 2:
        raise CronError(f"{field} '{token}' is not a number from {low} to {high}")
    number = int(token)
    if not low <= number <= high:
        raise CronError(f"{field} {number} is outside {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    """The values one field names, and whether it restricts them (no item is a star stepping by 1)."""
    values: set[int] = set()
    restricted = True
    for item in text.split(","):
        match = _ITEM_RE.fullmatch(item)
        if match is None:
            raise CronError(f"{field} '{item}' is not a value, a range a-b, '*' or one of those with /step")
        star = match["range"] in ("*", "?")
        if star:
            first, last = low, high
        else:
            bounds = match["range"].split("-")
            first = _value(bounds[0], field, low, high, names)
            last = _value(bounds[-1], field, low, high, names) if len(bounds) == 2 else first
            if first > last:
                raise CronError(f"{field} range {match['range']} runs backwards")
        step = 1
        if match["step"] is not None:
            step = int(match["step"])
            if not 1 <= step <= high:
                raise CronError(f"{field} step /{match['step']} must be from 1 to {high}")
            if not star and len(match["range"].split("-")) == 1:
                last = high
        if star and step == 1:
            restricted = False
        values.update(range(first, last + 1, step))
    return frozenset(values), restricted


@lru_cache(maxsize=256)
def parse(expression: str) -> Schedule:
    """A Schedule, or CronError saying which field is wrong."""
    if not isinstance(expression, str) or not expression.isascii() or expression != expression.strip() or "  " in expression:
        raise CronError("use five fields separated by single spaces, like '0 2 * * *'")
    if expression.startswith("@"):
        raise CronError("macros like @daily are not accepted; write the five fields, like '0 0 * * *'")
    parts = expression.lower().split(" ")
    if len(parts) != 5:
        raise CronError(f"has {len(parts)} fields; a schedule has five: minute hour day-of-month month day-of-week")
    (minutes, _), (hours, _), (days, days_restricted), (months, _), (weekdays, weekdays_restricted) = (
        _field(part, *spec) for part, spec in zip(parts, _FIELDS))
    return Schedule(minutes, hours, days, months, weekdays, days_restricted, weekdays_restricted)


# Dates repeat their weekdays every 28 years between 1901 and 2099: these 28 years hold every combination of
# month, day of month and weekday that can occur (February 29th on each weekday), which two schedules may share.
_CALENDAR_START = datetime.date(2028, 1, 1)
_CALENDAR_END = datetime.date(2056, 1, 1)
_CALENDAR = [_CALENDAR_START + datetime.timedelta(days=n) for n in range((_CALENDAR_END - _CALENDAR_START).days)]


# The calendar checks below are pure functions of their schedules, asked again by every render of a stack: cached.
@lru_cache(maxsize=1024)
def ever_runs(expression: str) -> bool:
    """False for schedules that name a day that never comes (February 30th)."""
    return any(parse(expression).runs_on(day) for day in _CALENDAR)


@lru_cache(maxsize=1024)
def collide(first: str, second: str) -> bool:
    """True when both schedules start a run in the same minute on some day."""
    a, b = parse(first), parse(second)
    if not (a.minutes & b.minutes and a.hours & b.hours):
        return False
    return any(a.runs_on(day) and b.runs_on(day) for day in _CALENDAR)


@lru_cache(maxsize=1024)
def starts_within(first: str, second: str, minutes: int) -> bool:
    """True when `second` starts less than `minutes` after a start of `first` on some day (across midnight too)."""
    a, b = parse(first), parse(second)
    first_minutes = sorted(h * 60 + m for h in a.hours for m in a.minutes)
    second_minutes = sorted(h * 60 + m for h in b.hours for m in b.minutes)
    one_day = datetime.timedelta(days=1)
    # A day's answer depends only on whether `second` runs that day and the next: each such pair is checked once.
    pairs = {(b.runs_on(day), b.runs_on(day + one_day)) for day in _CALENDAR if a.runs_on(day)}
    for runs_today, runs_tomorrow in pairs:
        same_day = second_minutes if runs_today else []
        next_day = [m + 1440 for m in second_minutes] if runs_tomorrow else []
        for start in first_minutes:
            if any(0 <= later - start < minutes for later in (*same_day, *next_day)):
                return True
    return False
