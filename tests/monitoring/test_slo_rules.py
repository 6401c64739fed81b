"""The SLO rules (components/slo_rules.py) in Prometheus' own rule engine (`promtool test rules`, the chart's version):
each burn-rate alert of each SLO fires with a steady burn just past its factor and stays silent just short of it, pages
when a step change has burned its share of the budget and not before, ignores a short spike and a quiet hour, stops
once the burn stops, never fires on another namespace's series, and the budget left is what the objective says."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

import pytest
import yaml

from components.slo_rules import ALERT
from settings.slo import LatencyObjective, Objective, SloSettings, window_minutes
from tests.gotools import binary
from tests.monitoring.rules import NAMESPACE, OTHER_NAMESPACE, rendered

SLOS = SloSettings()
# Events per minute: enough for every alert's minimum in its long window.
EVENTS = 10.0


def _counters(slo: str, phases: list[tuple[int, float]], events: float = EVENTS, namespace: str = NAMESPACE) -> dict[str, str]:
    """The API's counters for `slo` through phases of (minutes, share of bad events), one sample a minute."""
    good, bad = [], []
    g = b = 0.0
    for minutes, share in phases:
        for _ in range(minutes):
            good.append(g)
            bad.append(b)
            g += events * (1 - share)
            b += events * share
    good_values, bad_values = " ".join(f"{v:.6f}" for v in good), " ".join(f"{v:.6f}" for v in bad)
    total_values = " ".join(f"{x + y:.6f}" for x, y in zip(good, bad))
    ns = f'job="api", namespace="{namespace}"'
    route = f'{ns}, route="/v1/recommendations", method="POST"'
    if slo == "availability":
        return {f'http_requests_total{{{route}, status="200"}}': good_values, f'http_requests_total{{{route}, status="503"}}': bad_values}
    if slo == "latency":
        # The Python client writes the bound as '1.0'; Prometheus 3 may store it as '1': the rule reads both.
        return {f'http_request_duration_seconds_bucket{{{route}, le="1.0"}}': good_values,
                f'http_request_duration_seconds_bucket{{{route}, le="+Inf"}}': total_values,
                f'http_request_duration_seconds_count{{{route}}}': total_values}
    if slo == "recommendation_success":
        return {f'recommendation_requests_total{{{ns}, model="hybrid", variant="a"}}': total_values,
                f'recommendation_success_total{{{ns}, model="hybrid", variant="a"}}': good_values}
    assert slo == "valuation_accuracy"
    return {f'valuation_feedback_total{{{ns}, outcome="accurate"}}': good_values,
            f'valuation_feedback_total{{{ns}, outcome="inaccurate"}}': bad_values}


def _run(tmp_path: Path, series: dict[str, str], at_minutes: int, slos: SloSettings = SLOS,
         expr_tests: Optional[list] = None) -> subprocess.CompletedProcess:
    rules = tmp_path / "slo.rules.yml"
    rules.write_text(yaml.safe_dump(rendered(slos=slos)["slo"], sort_keys=False))
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": f"{at_minutes}m", "alertname": ALERT, "exp_alerts": []}],
            "promql_expr_test": expr_tests or [],
        }],
    }
    path = tmp_path / "slo.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run([binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=300)


def _fired(done: subprocess.CompletedProcess) -> list[dict[str, str]]:
    """The alerts promtool saw firing (asked to expect none, it prints them), each as its labels."""
    out = done.stdout + done.stderr
    if done.returncode == 0:
        return []
    assert "got:" in out, out
    fired = []
    for line in out.split("got:")[1].splitlines():
        if "Labels:{" in line:
            labels = line.split("Labels:{", 1)[1].split("}", 1)[0]
            fired.append(dict(part.split("=", 1) for part in labels.split(", ")))
    assert fired, out
    return [{k: v.strip('"') for k, v in f.items()} for f in fired]


def _threshold(slo: str, alert_index: int, slos: SloSettings = SLOS) -> float:
    """The share of bad events at which the alert's burn rate is reached."""
    return slos.burn_rate(slos.alerts[alert_index]) * (1 - slos.objectives()[slo].objective)


CASES = [(slo, i) for slo in SLOS.objectives() for i in range(len(SLOS.alerts))]
IDS = [f"{slo}-{SLOS.alerts[i].long_window}" for slo, i in CASES]


def _steady(tmp_path: Path, slo: str, i: int, factor: float) -> list[dict[str, str]]:
    # A burn steady from the start gives every window the same ratio once the short one is full: a 3-day history
    # would cost promtool minutes and prove no more (the step-change test below times a window filling up).
    alert = SLOS.alerts[i]
    minutes = window_minutes(alert.short_window) + 15
    return _fired(_run(tmp_path, _counters(slo, [(minutes + 1, _threshold(slo, i) * factor)]), minutes))


@pytest.mark.parametrize("slo,i", CASES, ids=IDS)
def test_a_steady_burn_just_past_the_factor_fires(slo, i, tmp_path):
    alert = SLOS.alerts[i]
    fired = [f for f in _steady(tmp_path, slo, i, 1.05) if f["long_window"] == alert.long_window]
    assert len(fired) == 1, fired
    assert fired[0] | {"alertname": ALERT} == {
        "alertname": ALERT, "namespace": NAMESPACE, "slo": slo, "severity": alert.severity, "service": "api",
        "long_window": alert.long_window, "short_window": alert.short_window, "incident": f"{ALERT}-{slo}"}


@pytest.mark.parametrize("slo,i", CASES, ids=IDS)
def test_a_steady_burn_just_short_of_it_stays_silent(slo, i, tmp_path):
    alert = SLOS.alerts[i]
    assert [f for f in _steady(tmp_path, slo, i, 0.95) if f["long_window"] == alert.long_window] == []


def test_a_step_change_pages_once_its_share_of_the_budget_is_burned(tmp_path):
    # From a clean hour to twice the fast burn: the 1 h window reaches 14.4× half an hour in (plus the 5-minute rate
    # and the 2 minutes' `for`), not before.
    phases = [(120, 0.0), (60, 2 * _threshold("availability", 0))]
    def fast(at: int) -> list[dict[str, str]]:
        # The slower alerts, judging two hours of history, see their own burn: only the fast one is timed here.
        return [f for f in _fired(_run(tmp_path, _counters("availability", phases), at)) if f["long_window"] == "1h"]

    assert fast(120 + 27) == []
    assert len(fast(120 + 38)) == 1


def test_a_short_spike_is_no_page(tmp_path):
    # Three minutes at 10 % errors: 100× in the 5-minute window, 5× over the hour.
    phases = [(120, 0.0), (3, 0.1), (20, 0.0)]
    assert _fired(_run(tmp_path, _counters("availability", phases), 120 + 5)) == []


def test_the_page_stops_minutes_after_the_burn_does(tmp_path):
    phases = [(120, 2 * _threshold("availability", 0)), (30, 0.0)]

    def fast(at: int) -> list[dict[str, str]]:
        return [f for f in _fired(_run(tmp_path, _counters("availability", phases), at)) if f["long_window"] == "1h"]

    assert len(fast(119)) == 1
    # The hour still holds the burn; the 5-minute window no longer does.
    assert fast(120 + 10) == []


def test_a_quiet_hour_is_not_judged(tmp_path):
    # Every request failing, but 99 in the hour against a minimum of 100; then 100.8.
    minutes = 75
    quiet = _counters("availability", [(minutes + 1, 1.0)], events=1.65)
    assert [f for f in _fired(_run(tmp_path, quiet, minutes)) if f["long_window"] == "1h"] == []
    busy = _counters("availability", [(minutes + 1, 1.0)], events=1.68)
    assert [f["long_window"] for f in _fired(_run(tmp_path, busy, minutes)) if f["long_window"] == "1h"] == ["1h"]


@pytest.mark.parametrize("slo", list(SLOS.objectives()))
def test_another_namespaces_burn_never_raises_it(slo, tmp_path):
    series = _counters(slo, [(76, 1.0)], namespace=OTHER_NAMESPACE)
    assert _fired(_run(tmp_path, series, 75)) == []


def test_the_objective_and_window_set_the_thresholds(tmp_path):
    slos = SloSettings(window_days=28, availability=Objective(objective=0.99), latency=None, recommendation_success=None,
                       valuation_accuracy=None)
    assert [round(slos.burn_rate(a), 4) for a in slos.alerts] == [13.44, 5.6, 0.9333]
    share = 13.44 * 0.01
    for factor, expected in ((1.05, ["1h"]), (0.95, [])):
        series = _counters("availability", [(76, share * factor)])
        assert [f["long_window"] for f in _fired(_run(tmp_path, series, 75, slos)) if f["long_window"] == "1h"] == expected


@pytest.mark.parametrize("le", ["1.0", "1"])
def test_the_latency_objective_reads_its_bucket_however_prometheus_writes_it(le, tmp_path):
    # The Python client writes '1.0'; Prometheus 3 normalises bucket bounds on ingestion.
    for share, fires in ((0.0, False), (1.0, True)):
        series = {s.replace('le="1.0"', f'le="{le}"'): v for s, v in _counters("latency", [(21, share)]).items()}
        assert bool(_fired(_run(tmp_path, series, 20))) is fires


def test_the_latency_threshold_picks_its_bucket(tmp_path):
    slos = SloSettings(availability=None, latency=LatencyObjective(objective=0.99, threshold_seconds=0.5),
                       recommendation_success=None, valuation_accuracy=None)
    bucket = f'http_request_duration_seconds_bucket{{job="api", namespace="{NAMESPACE}", route="/v1/recommendations", method="POST", le="0.5"}}'
    series = _counters("latency", [(21, 0.0)])
    # Every request under 1 s, and under 0.5 s too: good.
    series[bucket] = series['http_request_duration_seconds_bucket{job="api", namespace="real-estate", route="/v1/recommendations", method="POST", le="1.0"}']
    assert _fired(_run(tmp_path, series, 20, slos)) == []
    # Every request between 0.5 s and 1 s: good for the 1 s objective, all slow for this one.
    series[bucket] = "0x21"
    assert _fired(_run(tmp_path, series, 20, slos)) != []
    assert _fired(_run(tmp_path, series, 20)) == []


def test_the_budget_left_is_what_the_objective_says(tmp_path):
    # Two hours at half the availability budget's share, a tenth of the recommendations' budget.
    series = {**_counters("availability", [(121, 0.0005)]), **_counters("recommendation_success", [(121, 0.005)])}
    within = "(slo:error_budget:remaining_ratio{{slo=\"{slo}\"}} > {low} < {high}) * 0 + 1"
    expected = [{"eval_time": "120m", "expr": within.format(slo=slo, low=low, high=high),
                 "exp_samples": [{"labels": f'{{namespace="{NAMESPACE}", slo="{slo}"}}', "value": 1}]}
                for slo, low, high in (("availability", 0.49, 0.51), ("recommendation_success", 0.89, 0.91))]
    expected.append({"eval_time": "120m", "expr": 'slo:objective:ratio{slo="availability"}',
                     "exp_samples": [{"labels": f'slo:objective:ratio{{namespace="{NAMESPACE}", slo="availability"}}', "value": 0.999}]})
    done = _run(tmp_path, series, 120, expr_tests=expected)
    assert done.returncode == 0, done.stdout + done.stderr
