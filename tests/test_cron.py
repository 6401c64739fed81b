"""Cron schedules read as Kubernetes reads them (robfig/cron v3's ParseStandard): each field at both ends of its
range, every kind of item, the exact messages, robfig's day rule, and the comparisons the backup rules rely on."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from settings.cron import CronError, collide, ever_runs, parse, starts_within

# 2028-02-29 is a Tuesday, 2044-02-29 a Monday; 2028-01-14 a Friday, 2028-03-13 a Monday, 2028-01-15 a Saturday,
# 2028-01-16 a Sunday.
FRIDAY_14TH, MONDAY_13TH, SATURDAY_15TH, SUNDAY = (datetime.date(2028, 1, 14), datetime.date(2028, 3, 13),
                                                     datetime.date(2028, 1, 15), datetime.date(2028, 1, 16))


def refused(expression) -> str:
    with pytest.raises(CronError) as error:
        parse(expression)
    return str(error.value)


def test_stars_cover_each_field_exactly_and_restrict_nothing():
    every = parse("* * * * *")
    assert (every.minutes, every.hours, every.days, every.months, every.weekdays) == (
        frozenset(range(60)), frozenset(range(24)), frozenset(range(1, 32)), frozenset(range(1, 13)), frozenset(range(7)))
    assert (every.days_restricted, every.weekdays_restricted) == (False, False)
    assert parse("? * ? * ?") == every


@pytest.mark.parametrize("expression,problem", [
    ("60 * * * *", "minute 60 is outside 0-59"),
    ("* 24 * * *", "hour 24 is outside 0-23"),
    ("* * 0 * *", "day of month 0 is outside 1-31"),
    ("* * 32 * *", "day of month 32 is outside 1-31"),
    ("* * * 0 *", "month 0 is outside 1-12"),
    ("* * * 13 *", "month 13 is outside 1-12"),
    # robfig/cron's day of week is 0-6: Kubernetes refuses 7 for Sunday, so this does too.
    ("* * * * 7", "day of week 7 is outside 0-6"),
    ("* * * * 1-7", "day of week 7 is outside 0-6"),
])
def test_each_field_refuses_one_past_its_range(expression, problem):
    assert refused(expression) == problem


def test_each_field_takes_both_ends_of_its_range():
    low, high = parse("0 0 1 1 0"), parse("59 23 31 12 6")
    assert (low.minutes, low.hours, low.days, low.months, low.weekdays) == tuple(frozenset({v}) for v in (0, 0, 1, 1, 0))
    assert (high.minutes, high.hours, high.days, high.months, high.weekdays) == tuple(
        frozenset({v}) for v in (59, 23, 31, 12, 6))


@pytest.mark.parametrize("index,name", list(enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)))
def test_month_names(index, name):
    assert parse(f"0 0 1 {name} *").months == {index}
    assert parse(f"0 0 1 {name.upper()} *").months == {index}


@pytest.mark.parametrize("index,name", list(enumerate("sun mon tue wed thu fri sat".split())))
def test_weekday_names(index, name):
    assert parse(f"0 0 * * {name}").weekdays == {index}
    assert parse(f"0 0 * * {name.capitalize()}").weekdays == {index}


def test_names_only_where_they_mean_something():
    assert parse("0 0 * * mon-fri").weekdays == {1, 2, 3, 4, 5}
    assert refused("0 0 * * jan") == "day of week 'jan' is not a number from 0 to 6"
    assert refused("mon 0 * * *") == "minute 'mon' is not a number from 0 to 59"


def test_numbers_take_at_most_two_digits():
    assert parse("05 10 * * *").minutes == {5} and parse("05 10 * * *").hours == {10}
    assert refused("005 * * * *") == "minute '005' is not a number from 0 to 59"


@pytest.mark.parametrize("field,values", [
    ("1,2,5-6", {1, 2, 5, 6}),
    ("5-10", {5, 6, 7, 8, 9, 10}),
    ("5-5", {5}),
    ("5-10/2", {5, 7, 9}),
    ("5/15", {5, 20, 35, 50}),  # a start with a step runs to the field's end
    ("*/15", {0, 15, 30, 45}),
    ("*/1", set(range(60))),
    ("*/59", {0, 59}),
    ("?/30", {0, 30}),
])
def test_lists_ranges_and_steps(field, values):
    assert parse(f"{field} * * * *").minutes == values


@pytest.mark.parametrize("expression,problem", [
    ("10-5 * * * *", "minute range 10-5 runs backwards"),
    ("*/0 * * * *", "minute step /0 must be from 1 to 59"),
    ("*/60 * * * *", "minute step /60 must be from 1 to 59"),
    ("0 */24 * * *", "hour step /24 must be from 1 to 23"),
    ("-5 * * * *", "minute '-5' is not a value, a range a-b, '*' or one of those with /step"),
    ("5- * * * *", "minute '5-' is not a value, a range a-b, '*' or one of those with /step"),
    ("*/ * * * *", "minute '*/' is not a value, a range a-b, '*' or one of those with /step"),
    ("1,,2 * * * *", "minute '' is not a value, a range a-b, '*' or one of those with /step"),
    ("1-2-3 * * * *", "minute '1-2-3' is not a value, a range a-b, '*' or one of those with /step"),
    ("x * * * *", "minute 'x' is not a number from 0 to 59"),
])
def test_malformed_items_are_named(expression, problem):
    assert refused(expression) == problem


@pytest.mark.parametrize("expression", [" 0 0 * * *", "0 0 * * * ", "0  0 * * *", "０ 0 * * *", 5])
def test_five_fields_separated_by_single_spaces(expression):
    assert refused(expression) == "use five fields separated by single spaces, like '0 2 * * *'"


def test_field_count_and_macros():
    assert refused("0 0 * *") == "has 4 fields; a schedule has five: minute hour day-of-month month day-of-week"
    assert refused("0 0 0 * * *") == "has 6 fields; a schedule has five: minute hour day-of-month month day-of-week"
    assert refused("@daily") == "macros like @daily are not accepted; write the five fields, like '0 0 * * *'"
    assert issubclass(CronError, ValueError)


@pytest.mark.parametrize("expression,friday_14th,monday_13th,saturday_15th", [
    # Both day fields restricted: either matches.
    ("0 0 13 * 5", True, True, False),
    ("0 0 */2 * 5", True, True, True),
    # One of them a star stepping by 1 (robfig's star bit): both must match.
    ("0 0 13 * *", False, True, False),
    ("0 0 * * 5", True, False, False),
    ("0 0 */1 * 5", True, False, False),
    ("0 0 *,13 * 5", True, False, False),
    ("0 0 13 * */1", False, True, False),
    ("0 0 ? * 5", True, False, False),
])
def test_robfigs_day_rule(expression, friday_14th, monday_13th, saturday_15th):
    schedule = parse(expression)
    assert [schedule.runs_on(day) for day in (FRIDAY_14TH, MONDAY_13TH, SATURDAY_15TH)] == [
        friday_14th, monday_13th, saturday_15th]


def test_months_and_sundays():
    assert parse("0 0 * 1 *").runs_on(FRIDAY_14TH) and not parse("0 0 * 2 *").runs_on(FRIDAY_14TH)
    assert parse("0 0 * * 0").runs_on(SUNDAY) and parse("0 0 * * sun").runs_on(SUNDAY)
    assert not parse("0 0 * * 6").runs_on(SUNDAY)


def test_days_that_never_come():
    assert not ever_runs("0 0 30 2 *") and not ever_runs("0 0 31 4 *")
    assert ever_runs("0 0 29 2 *") and ever_runs("0 0 31 4 mon")


@pytest.mark.parametrize("first,second,together", [
    ("0 1 * * *", "0 1 * * *", True),
    ("0 1 * * *", "0 2 * * *", False),
    ("0 1 * * *", "30 1 * * *", False),
    ("0 1 1 * *", "0 1 2 * *", False),
    ("0 1 * * mon", "0 1 * * tue", False),
    ("0 1 13 * *", "0 1 * * fri", True),
    # February 29th on each weekday lies inside the compared years (a Tuesday in 2028, a Monday only in 2044).
    ("0 1 29 2 *", "0 1 * * tue", True),
    ("0 1 29 2 *", "0 1 * * mon", True),
    ("0 1 29 2 *", "0 1 1 3 *", False),
])
def test_collide(first, second, together):
    assert collide(first, second) is together
    assert collide(second, first) is together


@pytest.mark.parametrize("first,second,within", [
    ("0 1 * * *", "0 1 * * *", True),  # the same minute
    ("0 1 * * *", "59 1 * * *", True),
    ("0 1 * * *", "0 2 * * *", False),  # exactly the window apart
    ("0 1 * * *", "59 0 * * *", False),  # before it: 23 h 59 min after
    ("30 23 * * *", "29 0 * * *", True),  # across midnight
    ("30 23 * * *", "30 0 * * *", False),
    ("30 23 * * sun", "15 0 * * mon", True),
    ("30 23 * * mon", "15 0 * * mon", False),
    ("0 1 * * mon", "10 1 * * tue", False),
])
def test_starts_within_an_hour(first, second, within):
    assert starts_within(first, second, 60) is within


def test_a_parsed_schedule_is_shared_and_cannot_be_changed():
    # parse is cached: every caller gets the same object, so none may alter it.
    assert parse("0 1 * * *") is parse("0 1 * * *")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse("0 1 * * *").minutes = frozenset({2})
