"""The stack's SLOs (settings/slo.py) as Prometheus rules: each SLI as 5-minute rates of its events and its bad events,
the error ratio over every window an alert reads, the burn-rate alerts, and the 30-day budget for the dashboard.

Every window is built from the recorded 5-minute rates (`avg_over_time` of them), not from raw counters: a 3-day
`rate()` over every pod's and route's series on each evaluation would cost Prometheus far more, and the 5-minute rates
lose nothing an alert of 5 minutes or more can see. The ratio is the bad events' average rate over the events'
average rate, so every event weighs the same whenever it happened.
"""

from __future__ import annotations

from settings.slo import LATENCY_BOUNDS, SloSettings, window_minutes

ALERT = "ErrorBudgetBurn"
# Requests answered without running their route (no key, a body too large or too slow, the client gone:
# app.REFUSED_BEFORE_RUNNING) are no user's experience of the service. 503s are: the service refused them.
REFUSED = '401|408|413|499'
USER_ROUTES = f'job="api", namespace="$namespace", route=~"/v1/.+", status!~"{REFUSED}"'
API = 'job="api", namespace="$namespace"'


def _bucket(bound: float) -> str:
    """The `le` matcher of a histogram bound: Prometheus 2 keeps the client's text ('1.0' from Python), Prometheus 3
    normalises it; whole numbers are written both ways."""
    assert bound in LATENCY_BOUNDS
    return f'le=~"{bound:g}|{bound:g}\\\\.0"' if bound == int(bound) else f'le="{bound:g}"'


def _sum(metric: str, selector: str) -> str:
    return f"sum by (namespace) (rate({metric}{{{selector}}}[5m]))"


def sli_rates(slos: SloSettings) -> dict[str, tuple[str, str]]:
    """Per SLO, (events per second, bad events per second) over 5 minutes; the bad rate exists, at 0, whenever events
    do (a counter never incremented has no series)."""
    rates = {}
    if slos.availability:
        events = _sum("http_requests_total", USER_ROUTES)
        errors = _sum("http_requests_total", USER_ROUTES + ', status=~"5.."')
        rates["availability"] = (events, f"{errors} or 0 * {events}")
    if slos.latency:
        events = _sum("http_request_duration_seconds_count", USER_ROUTES)
        good = _sum("http_request_duration_seconds_bucket", f"{USER_ROUTES}, {_bucket(slos.latency.threshold_seconds)}")
        rates["latency"] = (events, f"clamp_min({events} - ({good} or 0 * {events}), 0)")
    if slos.recommendation_success:
        events = _sum("recommendation_requests_total", API)
        good = _sum("recommendation_success_total", API)
        rates["recommendation_success"] = (events, f"clamp_min({events} - ({good} or 0 * {events}), 0)")
    if slos.valuation_accuracy:
        events = _sum("valuation_feedback_total", API)
        inaccurate = _sum("valuation_feedback_total", API + ', outcome!="accurate"')
        rates["valuation_accuracy"] = (events, f"{inaccurate} or 0 * {events}")
    return rates


def _number(value: float) -> str:
    return format(value, ".12g")


def _windows(slos: SloSettings) -> list[str]:
    windows = {w for alert in slos.alerts for w in (alert.long_window, alert.short_window)}
    return sorted(windows, key=window_minutes)


def _selector(slo: str) -> str:
    return f'{{namespace="$namespace", slo="{slo}"}}'


def slo_rules(slos: SloSettings) -> dict:
    """The rule groups, with `$namespace` for the stack's namespace (components/alert_rules.py renders it)."""
    objectives = slos.objectives()
    rates = sli_rates(slos)
    sli = []
    for slo, objective in objectives.items():
        events, bad = rates[slo]
        sli += [{"record": "slo:sli_events:rate5m", "expr": events, "labels": {"slo": slo}},
                {"record": "slo:sli_bad_events:rate5m", "expr": bad, "labels": {"slo": slo}},
                # For the dashboard: the objectives are stack settings, the panels read them here.
                {"record": "slo:objective:ratio", "expr": f"vector({_number(objective.objective)})",
                 "labels": {"namespace": "$namespace", "slo": slo}}]
    windows = []
    for window in _windows(slos):
        seconds = window_minutes(window) * 60
        windows += [
            {"record": f"slo:sli_error:ratio_rate{window}",
             "expr": (f'avg_over_time(slo:sli_bad_events:rate5m{{namespace="$namespace"}}[{window}])'
                      f' / avg_over_time(slo:sli_events:rate5m{{namespace="$namespace"}}[{window}])')},
            {"record": f"slo:sli_events:count{window}",
             "expr": f'avg_over_time(slo:sli_events:rate5m{{namespace="$namespace"}}[{window}]) * {seconds}'},
            # One name for every window, so the dashboard shows whichever windows the stack's alerts use.
            {"record": "slo:error_budget:burn_rate",
             "expr": (f'slo:sli_error:ratio_rate{window}{{namespace="$namespace"}}'
                      f' / on (namespace, slo) (1 - slo:objective:ratio{{namespace="$namespace"}})'),
             "labels": {"window": window}},
        ]
    alerts = []
    for slo, objective in objectives.items():
        budget = 1 - objective.objective
        for alert in slos.alerts:
            burn = _number(slos.burn_rate(alert))
            long, short = alert.long_window, alert.short_window
            alerts.append({
                "alert": ALERT,
                # The long window's burn rate is the value the summary shows.
                "expr": (f"slo:sli_error:ratio_rate{long}{_selector(slo)} / {_number(budget)} > {burn}\n"
                         f"  and on (namespace, slo) slo:sli_error:ratio_rate{short}{_selector(slo)} / {_number(budget)} > {burn}\n"
                         f"  and on (namespace, slo) slo:sli_events:count{long}{_selector(slo)} >= {objective.min_events}"),
                "for": "2m",
                # The fast and the slow burn of one SLO are one incident: one acknowledgement covers both.
                "labels": {"severity": alert.severity, "service": "api", "slo": slo, "long_window": long,
                           "short_window": short, "incident": f"{ALERT}-{slo}"},
                "annotations": {
                    "summary": (f"{slo}: the error budget burns {{{{ $value | humanize }}}}× as fast as {slos.window_days} days "
                                f"allow ({alert.budget_percent:g} % of it in {long}) in {{{{ $labels.namespace }}}}"),
                    "runbook_url": "docs/runbooks/error-budget-burn.md",
                },
            })
    span = f"{slos.window_days}d"
    budget_rules = []
    for slo, objective in objectives.items():
        budget_rules += [
            {"record": "slo:error_budget:remaining_ratio",
             "expr": (f"1 - (avg_over_time(slo:sli_bad_events:rate5m{_selector(slo)}[{span}])"
                      f" / avg_over_time(slo:sli_events:rate5m{_selector(slo)}[{span}])) / {_number(1 - objective.objective)}"),
             "labels": {"slo": slo}},
        ]
    return {"groups": [
        {"name": "slo.sli", "interval": "30s", "rules": sli},
        {"name": "slo.windows", "interval": "30s", "rules": windows},
        {"name": "slo.alerts", "interval": "30s", "rules": alerts},
        # The whole window's budget changes slowly and reads the most samples (within the 5-minute lookback, so
        # a panel never falls between two evaluations).
        {"name": "slo.budget", "interval": "1m", "rules": budget_rules},
    ]}
