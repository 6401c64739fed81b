"""The SLO settings at their edges: windows, bounds, the workbook's burn rates, and each rule with the message a stack
file's author reads (through the loader, one line naming the key)."""

from __future__ import annotations

import pytest

from app.real_estate_api.metrics import LATENCY_BUCKETS
from settings.slo import BurnRateAlert, LatencyObjective, Objective, SloSettings, Window, window_minutes
from tests.test_loading import problems
from tests.test_platform_settings import MINIMAL
from tests.test_values import accepts, errors

PAGE = {"budget_percent": 2, "long_window": "1h", "short_window": "5m", "severity": "P1"}


@pytest.mark.parametrize("value,ok", [
    ("5m", True), ("1h", True), ("3d", True), ("9999d", True), ("10000d", False), ("0m", False), ("05m", False),
    ("5s", False), ("5", False), ("m", False), ("5m\n", False), ("1w", False), ("-5m", False),
])
def test_windows(value, ok):
    assert accepts(Window, value) is ok


def test_window_lengths():
    assert [window_minutes(w) for w in ("5m", "30m", "1h", "6h", "3d")] == [5, 30, 60, 360, 4320]
    # Alert rules' `for:` in seconds too (components/alert_rules.py reads them with it).
    assert window_minutes("90s") == 1.5 and window_minutes("0m") == 0


def test_the_workbook_pairs_are_the_default():
    slos = SloSettings()
    assert [(a.budget_percent, a.long_window, a.short_window, a.severity) for a in slos.alerts] == [
        (2, "1h", "5m", "P1"), (5, "6h", "30m", "P1"), (10, "3d", "6h", "P3")]
    assert [slos.burn_rate(a) for a in slos.alerts] == pytest.approx([14.4, 6, 1])
    assert {name: o.objective for name, o in slos.objectives().items()} == {
        "availability": 0.999, "latency": 0.99, "recommendation_success": 0.95, "valuation_accuracy": 0.95}
    assert slos.latency.threshold_seconds == 1.0 and slos.window_days == 30
    assert [o.min_events for o in slos.objectives().values()] == [100, 100, 50, 20]
    assert Objective(objective=0.9).min_events == 100


def test_the_latency_bounds_are_the_apis_buckets():
    assert LatencyObjective.model_fields  # the objective's threshold must be one of them
    from settings.slo import LATENCY_BOUNDS
    assert LATENCY_BOUNDS == LATENCY_BUCKETS


@pytest.mark.parametrize("threshold,ok", [(0.005, True), (10.0, True), (10, True), (0.3, False), (20.0, False), (0, False)])
def test_a_latency_threshold_is_a_bucket_bound(threshold, ok):
    if ok:
        assert LatencyObjective(objective=0.99, threshold_seconds=threshold).threshold_seconds == threshold
    else:
        assert errors(LatencyObjective, objective=0.99, threshold_seconds=threshold) == [
            f"Value error, thresholdSeconds {float(threshold)!r} is not a bound of the API's latency histogram "
            "(one of 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)"]


@pytest.mark.parametrize("objective,ok", [(0.5, True), (0.99999, True), (0, False), (1, False), (1.5, False),
                                          (float("nan"), False), (-0.1, False)])
def test_an_objective_is_a_share_strictly_between_0_and_1(objective, ok):
    assert accepts(Objective, {"objective": objective}) is ok


@pytest.mark.parametrize("field,low_ok,low_bad,high_ok,high_bad", [
    ("window_days", 1, 0, 90, 91),
])
def test_bounds(field, low_ok, low_bad, high_ok, high_bad):
    short = [BurnRateAlert(budget_percent=0.01, long_window="1h", short_window="5m", severity="P1")]
    assert getattr(SloSettings(alerts=short, **{field: low_ok}), field) == low_ok
    assert getattr(SloSettings(alerts=short, **{field: high_ok}), field) == high_ok
    assert errors(SloSettings, alerts=short, **{field: low_bad}) == ["Input should be greater than or equal to 1"]
    assert errors(SloSettings, alerts=short, **{field: high_bad}) == ["Input should be less than or equal to 90"]


@pytest.mark.parametrize("percent,ok", [(0.001, True), (100, True), (0, False), (100.5, False)])
def test_a_budget_share_is_a_percentage(percent, ok):
    assert accepts(BurnRateAlert, {**PAGE, "budget_percent": percent}) is ok


def test_min_events_bounds():
    assert accepts(Objective, {"objective": 0.9, "min_events": 1}) and accepts(Objective, {"objective": 0.9, "min_events": 10_000_000})
    assert not accepts(Objective, {"objective": 0.9, "min_events": 0})
    assert not accepts(Objective, {"objective": 0.9, "min_events": 10_000_001})


def _alert(**changes) -> BurnRateAlert:
    return BurnRateAlert(**{**PAGE, **changes})


@pytest.mark.parametrize("alert,message", [
    (_alert(short_window="1h"), "alerts[0].shortWindow 1h must be shorter than its longWindow 1h"),
    (_alert(short_window="2h"), "alerts[0].shortWindow 2h must be shorter than its longWindow 1h"),
    (_alert(short_window="4m"), "alerts[0].shortWindow 4m is shorter than 5m, the rates every window is built from"),
    (_alert(long_window="31d", short_window="1d", budget_percent=50),
     "alerts[0].longWindow 31d is longer than the SLO window of 30 days"),
])
def test_windows_must_nest(alert, message):
    assert errors(SloSettings, alerts=[alert]) == [f"Value error, {message}"]


def test_the_shortest_nesting_windows_are_accepted():
    slos = SloSettings(window_days=1, alerts=[_alert(long_window="1d", short_window="5m", budget_percent=100)])
    assert slos.burn_rate(slos.alerts[0]) == 1
    assert SloSettings(alerts=[_alert(long_window="6m", short_window="5m", budget_percent=0.1)]).alerts[0].long_window == "6m"


def test_one_to_six_alerts():
    assert errors(SloSettings, alerts=[]) == ["List should have at least 1 item after validation, not 0"]
    six = [_alert(long_window=f"{h}h", budget_percent=0.1) for h in range(1, 7)]
    assert len(SloSettings(alerts=six).alerts) == 6
    assert errors(SloSettings, alerts=[*six, _alert(long_window="7h", budget_percent=0.1)]) == [
        "List should have at most 6 items after validation, not 7"]


def test_the_long_window_fits_the_slo_window_to_the_minute():
    assert SloSettings(window_days=1, alerts=[_alert(long_window="1440m", budget_percent=10)]).alerts[0].long_window == "1440m"
    assert errors(SloSettings, window_days=1, alerts=[_alert(long_window="1441m", budget_percent=10)]) == [
        "Value error, alerts[0].longWindow 1441m is longer than the SLO window of 1 days"]


def test_a_burn_that_needs_exactly_every_event_to_fail_is_refused():
    # A burn rate of 2 against an objective of 0.5: only 100 % failing reaches it, and the alert needs more.
    alert = _alert(long_window="1d", short_window="1h", budget_percent=100)
    assert errors(SloSettings, window_days=2, alerts=[alert], availability=Objective(objective=0.5), latency=None,
                  recommendation_success=None, valuation_accuracy=None)[0].startswith(
        "Value error, availability: objective 0.5 leaves 0.5 of events to fail, so alerts[0]")
    assert SloSettings(window_days=2, alerts=[alert], availability=Objective(objective=0.5001), latency=None,
                       recommendation_success=None, valuation_accuracy=None).availability.objective == 0.5001


def test_a_pair_of_windows_is_not_repeated():
    assert errors(SloSettings, alerts=[_alert(), _alert(budget_percent=1)]) == ["Value error, alerts[1] repeats the windows 1h/5m"]


def test_an_alert_that_could_never_fire_is_refused():
    # 90 % leaves 10 % to fail; 14.4× of it is 144 %.
    assert errors(SloSettings, valuation_accuracy=Objective(objective=0.9)) == [
        "Value error, valuationAccuracy: objective 0.9 leaves 0.1 of events to fail, so alerts[0] (2 % of the budget in "
        "1h (short window 5m), a burn rate of 14.4) could never fire; raise the objective or lower the alert's budgetPercent"]
    # Just above 1 - 1/14.4 every pair can fire; without the fast pair 90 % is fine.
    assert SloSettings(valuation_accuracy=Objective(objective=0.931)).valuation_accuracy.objective == 0.931
    assert SloSettings(valuation_accuracy=Objective(objective=0.9), alerts=[_alert(budget_percent=0.5)]).alerts[0].budget_percent == 0.5


def test_objectives_switch_off_one_by_one():
    slos = SloSettings(latency=None, valuation_accuracy=None)
    assert list(slos.objectives()) == ["availability", "recommendation_success"]


def test_a_stack_files_slo_problems_each_name_their_key():
    config = {**MINIMAL, "monitoring": {"slos": {
        "windowDays": 120, "availability": {"objective": 1.5}, "latency": {"objective": 0.99, "thresholdSeconds": 0.3},
        "alerts": [{"budgetPercent": 2, "longWindow": "1h\nobjects written: 12", "shortWindow": "5m", "severity": "P9"}]}}}
    found = problems(config)
    assert "real-estate-ai:monitoring.slos.windowDays: Input should be less than or equal to 90" in found
    assert "real-estate-ai:monitoring.slos.availability.objective: Input should be less than 1" in found
    assert any(p.startswith("real-estate-ai:monitoring.slos.latency: thresholdSeconds 0.3 is not a bound") for p in found)
    assert "real-estate-ai:monitoring.slos.alerts[0].longWindow: '1h\\nobjects written: 12' is not a window like '5m', '6h' or '3d'" in found
    assert any(p.startswith("real-estate-ai:monitoring.slos.alerts[0].severity: ") for p in found)
    assert not any("objects written" in p and "\\n" not in p for p in found)


@pytest.mark.parametrize("severity", ["P0", "P1", "P2", "P3"])
def test_a_burn_rate_alert_takes_each_severity_of_the_spec(severity):
    alert = {"budget_percent": 2, "long_window": "1h", "short_window": "5m"}
    assert BurnRateAlert(**alert, severity=severity).severity == severity
    for near_miss in (severity.lower(), severity + "x", "P4"):
        assert errors(BurnRateAlert, **alert, severity=near_miss)[0].startswith("Input should be "), near_miss
