"""Service level objectives of the public API and the burn-rate alerts they generate (components/slo_rules.py).

An objective says which share of one kind of event must be good over the SLO window (30 days by default); the rest is
the error budget. Each alert consumes a share of that budget in a long window: it fires while both its long window and
its short one burn the budget that fast or faster. The long window proves it is no blip; the short one that it is
still going on, so the alert stops minutes after the burn does (the SRE workbook's multiwindow, multi-burn-rate
alerts; its pairs are the defaults). The spec's raw thresholds (monitoring/rules) stay beside them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from settings.values import Settings, matching

Window = Annotated[str, matching(re.compile(r"[1-9][0-9]{0,3}[mhd]"), "a window like '5m', '6h' or '3d'")]
# The rates behind every window are 5-minute rates (components/slo_rules.py): nothing shorter can be told apart.
SHORTEST_WINDOW_MINUTES = 5
# The bucket bounds of the API's request latency histogram (app/real_estate_api/metrics.py; a test keeps them equal):
# a latency objective counts requests under one of them.
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def window_minutes(window: str) -> float:
    """A Prometheus duration of one unit ('90s', '5m', '6h', '3d') in minutes (whole for m, h and d)."""
    return int(window[:-1]) * {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}[window[-1]]


class BurnRateAlert(Settings):
    # The share of the SLO window's budget that, consumed within longWindow, raises the alert.
    budget_percent: Annotated[float, Field(gt=0, le=100)]
    long_window: Window
    short_window: Window
    severity: Literal["P0", "P1", "P2", "P3"]

    def describe(self) -> str:
        return f"{self.budget_percent:g} % of the budget in {self.long_window} (short window {self.short_window})"


class Objective(Settings):
    objective: Annotated[float, Field(gt=0, lt=1)]
    # An alert needs at least this many events in its long window: one failed request at night is no incident.
    min_events: Annotated[int, Field(ge=1, le=10_000_000)] = 100


class LatencyObjective(Objective):
    # A request is good when it is answered within this many seconds: one of LATENCY_BOUNDS.
    threshold_seconds: float = 1.0

    @model_validator(mode="after")
    def _threshold_is_a_bucket(self) -> "LatencyObjective":
        if self.threshold_seconds not in LATENCY_BOUNDS:
            bounds = ", ".join(f"{b:g}" for b in LATENCY_BOUNDS)
            raise ValueError(f"thresholdSeconds {self.threshold_seconds!r} is not a bound of the API's latency histogram "
                             f"(one of {bounds})")
        return self


# The SRE workbook's pairs for a 30-day window: 2 % of the budget in an hour and 5 % in six hours page (burn rates
# 14.4 and 6), 10 % in three days is a ticket (burn rate 1).
WORKBOOK_ALERTS = (
    BurnRateAlert(budget_percent=2, long_window="1h", short_window="5m", severity="P1"),
    BurnRateAlert(budget_percent=5, long_window="6h", short_window="30m", severity="P1"),
    BurnRateAlert(budget_percent=10, long_window="3d", short_window="6h", severity="P3"),
)
SLO_NAMES = ("availability", "latency", "recommendation_success", "valuation_accuracy")


class SloSettings(Settings):
    """Null for an objective turns it off. availability: /v1 requests answered without a server error; latency:
    /v1 requests answered within thresholdSeconds; recommendationSuccess: recommendations with at least one listing;
    valuationAccuracy: reported prices within 10 % of the valuation."""

    window_days: Annotated[int, Field(ge=1, le=90)] = 30
    alerts: Annotated[list[BurnRateAlert], Field(min_length=1, max_length=6)] = list(WORKBOOK_ALERTS)
    availability: Optional[Objective] = Objective(objective=0.999)
    latency: Optional[LatencyObjective] = LatencyObjective(objective=0.99)
    recommendation_success: Optional[Objective] = Objective(objective=0.95, min_events=50)
    # Reports are few: 20 in an hour is already a busy hour.
    valuation_accuracy: Optional[Objective] = Objective(objective=0.95, min_events=20)

    def objectives(self) -> dict[str, Objective]:
        return {name: getattr(self, name) for name in SLO_NAMES if getattr(self, name) is not None}

    def burn_rate(self, alert: BurnRateAlert) -> float:
        """How many times faster than the window allows the alert's budget share is consumed in its long window."""
        return alert.budget_percent / 100 * self.window_days * 1440 / window_minutes(alert.long_window)

    @model_validator(mode="after")
    def _alerts_can_fire(self) -> "SloSettings":
        problems = []
        seen = set()
        for i, alert in enumerate(self.alerts):
            short, long = window_minutes(alert.short_window), window_minutes(alert.long_window)
            if short < SHORTEST_WINDOW_MINUTES:
                problems.append(f"alerts[{i}].shortWindow {alert.short_window} is shorter than {SHORTEST_WINDOW_MINUTES}m, "
                                "the rates every window is built from")
            if short >= long:
                problems.append(f"alerts[{i}].shortWindow {alert.short_window} must be shorter than its longWindow "
                                f"{alert.long_window}")
            if long > self.window_days * 1440:
                problems.append(f"alerts[{i}].longWindow {alert.long_window} is longer than the SLO window of "
                                f"{self.window_days} days")
            if (long, short) in seen:
                problems.append(f"alerts[{i}] repeats the windows {alert.long_window}/{alert.short_window}")
            seen.add((long, short))
            for name, objective in self.objectives().items():
                # A burn rate so high that more than every event would have to fail: the alert could never fire.
                if self.burn_rate(alert) * (1 - objective.objective) >= 1:
                    problems.append(
                        f"{to_camel(name)}: objective {objective.objective:g} leaves {1 - objective.objective:.4g} of events to "
                        f"fail, so alerts[{i}] ({alert.describe()}, a burn rate of {self.burn_rate(alert):.3g}) "
                        f"could never fire; raise the objective or lower the alert's budgetPercent")
        if problems:
            raise ValueError("; ".join(problems))
        return self
