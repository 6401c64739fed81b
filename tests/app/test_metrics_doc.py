"""app/METRICS.md documents exactly the metrics the service exposes."""

import re

from prometheus_client.metrics import MetricWrapperBase

from real_estate_api.metrics import Metrics
from tests.app.conftest import APP_DIR

SUFFIX = {"counter": "_total", "info": "_info"}


def exposed_names() -> set[str]:
    names = set()
    for attribute in vars(Metrics()).values():
        if isinstance(attribute, MetricWrapperBase):
            names.add(attribute._name + SUFFIX.get(attribute._type, ""))
    return names


def documented_names() -> set[str]:
    table = (APP_DIR / "METRICS.md").read_text()
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))


def test_every_metric_is_documented_and_nothing_else():
    assert len(exposed_names()) == 21
    assert exposed_names() == documented_names()
