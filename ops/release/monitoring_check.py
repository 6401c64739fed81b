"""After a deploy: did the cluster's monitoring take this stack's? Asked of the cluster's own Prometheus and
Alertmanager through the API server's Service proxy (`kubectl get --raw`), so nothing but kubectl is needed:

- Prometheus loaded every rule group of the stack from this namespace's PrometheusRules (prometheus-operator names
  the files <namespace>-<object>-<uid>.yaml) and evaluates them: this namespace's Watchdog fires;
- it scrapes the API: a target with job="api" and this namespace is up;
- Alertmanager's configuration holds this namespace's routing (the operator names receivers <namespace>/<object>/...).

A monitor or rule the cluster's Prometheus does not select (selector labels), an AlertmanagerConfig it ignores, a
NetworkPolicy that keeps the scrape out: each is silent until the day nobody is paged; here the release fails.

    python -m ops.release.monitoring_check STACK
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Callable, Optional
from urllib.parse import urlsplit

from components.alert_rules import HEARTBEAT_ALERT, platform_rules
from components.monitoring import ROUTING_NAME
from components.monitoring_install import alertmanager_url, prometheus_url
from components.platform import monitoring_sources
from components.probes import JOB as PROBE_JOB
from ops.release.shell import Failed, Steps, main, run
from ops.release.stack import POLL_SECONDS, Stack

# Time for the operator to reload Prometheus and Alertmanager, and for a first scrape of new pods.
DEFAULT_TIMEOUT_SECONDS = 300.0
# One question through the API server's proxy; a hung Service is a failed attempt, not a hung release.
REQUEST_TIMEOUT_SECONDS = 20
_SERVICE_HOST = re.compile(r"(?P<name>[^.]+)\.(?P<namespace>[^.]+)\.svc(\.cluster\.local)?")


def _proxy_path(url: str, path: str) -> str:
    """The API server's proxy path to `path` on the Service that `url` names (http://<svc>.<ns>.svc:<port>)."""
    parts = urlsplit(url)
    host = _SERVICE_HOST.fullmatch(parts.hostname or "")
    if host is None:
        raise Failed(f"{url} is not a cluster Service's URL (http://<service>.<namespace>.svc:<port>)")
    return f"/api/v1/namespaces/{host['namespace']}/services/{parts.scheme}:{host['name']}:{parts.port}/proxy{path}"


def _get(stack: Stack, url: str, path: str) -> dict:
    text = run(stack.kubectl("get", "--raw", _proxy_path(url, path), f"--request-timeout={REQUEST_TIMEOUT_SECONDS}s"),
               f"GET {path} of {url}", capture=True)
    try:
        return json.loads(text)
    except ValueError:
        raise Failed(f"{url}{path} answered something other than JSON") from None


def urls(stack: Stack) -> Optional[tuple[str, str]]:
    """The cluster's Prometheus and Alertmanager; None where a dev stack names none (test and prod must)."""
    m = stack.config.monitoring
    if m.install.enabled:
        return prometheus_url(m.namespace), alertmanager_url(m.namespace)
    if m.prometheus_url and m.alertmanager_url:
        return m.prometheus_url, m.alertmanager_url
    return None


def expected_groups(stack: Stack) -> dict[str, set[str]]:
    """The stack's PrometheusRule objects by name, each with its rule groups."""
    config = stack.config
    groups = platform_rules(stack.namespace, config.monitoring.alerting, ["api", *monitoring_sources(config)],
                            config.monitoring.slos, config.postgres)
    return {f"{name}-rules": {group["name"] for group in rules["groups"]} for name, rules in groups.items()}


def missing(stack: Stack) -> list[str]:
    """What the cluster's monitoring lacks of this stack's, one line each (empty: all there)."""
    prometheus, alertmanager = urls(stack)
    ns = stack.namespace
    problems = []
    # prometheus-operator writes each PrometheusRule to <namespace>-<name>-<uid>.yaml (pkg/operator/rules.go): the
    # object's own prefix, so another stack's namespace that merely starts with ours does not count.
    files = [(g["file"].rsplit("/", 1)[-1], g["name"]) for g in _get(stack, prometheus, "/api/v1/rules")["data"]["groups"]]
    lacking = sorted(group for obj, groups in expected_groups(stack).items() for group in groups
                     if not any(base.startswith(f"{ns}-{obj}-") and name == group for base, name in files))
    if lacking:
        problems.append(f"Prometheus has not loaded the rule groups {', '.join(lacking)} of namespace {ns} "
                        f"(its ruleSelector must match monitoring.selectorLabels)")
    alerts = _get(stack, prometheus, "/api/v1/alerts")["data"]["alerts"]
    if not any(a["labels"].get("alertname") == HEARTBEAT_ALERT and a["labels"].get("namespace") == ns and a["state"] == "firing"
               for a in alerts):
        problems.append(f"Prometheus does not evaluate the rules of namespace {ns} (its {HEARTBEAT_ALERT} is not firing)")
    targets = _get(stack, prometheus, "/api/v1/targets?state=active")["data"]["activeTargets"]
    api = [t for t in targets if t["labels"].get("job") == "api" and t["labels"].get("namespace") == ns]
    if not any(t["health"] == "up" for t in api):
        problems.append(f"Prometheus scrapes no API pod of namespace {ns} " + (
            f"({len(api)} target(s), none up: {api[0].get('lastError') or api[0]['health']})" if api
            else "(its podMonitorSelector must match monitoring.selectorLabels)"))
    if stack.config.monitoring.probes.enabled:
        # A Probe's targets carry its jobName and namespace; "up" means the blackbox exporter answered.
        probes = [t for t in targets if t["labels"].get("job") == PROBE_JOB and t["labels"].get("namespace") == ns]
        if not any(t["health"] == "up" for t in probes):
            problems.append(f"Prometheus runs no probe of namespace {ns}'s public URL " + (
                f"({len(probes)} target(s), none up: {probes[0].get('lastError') or probes[0]['health']})" if probes
                else "(its probeSelector must match monitoring.selectorLabels)"))
    config = _get(stack, alertmanager, "/api/v2/status")["config"]["original"]
    if f"{ns}/{ROUTING_NAME}/" not in config:
        problems.append(f"Alertmanager's configuration has no routing of namespace {ns} "
                        f"(its alertmanagerConfigSelector must select the AlertmanagerConfig {ROUTING_NAME})")
    return problems


def check_monitoring(stack: Stack, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                     clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    deadline = clock() + timeout
    while True:
        try:
            problems = missing(stack)
        except Failed as error:  # a Service restarting answers 503 for a while: asked again until the deadline
            problems = [str(error)]
        if not problems:
            return
        if clock() >= deadline:
            raise Failed(f"stack '{stack.name}': the cluster's monitoring did not take it within {timeout:.0f} s:\n  "
                         + "\n  ".join(problems))
        sleep(POLL_SECONDS)


def check(args: list[str]) -> None:
    steps = Steps("monitoring-check")
    if len(args) != 1:
        raise Failed("usage: python -m ops.release.monitoring_check STACK")
    stack = Stack.load(args[0])
    if not stack.config.monitoring.enabled:
        steps.note(f"stack '{stack.name}' runs no monitoring (monitoring.enabled: false): nothing to check")
        return
    if urls(stack) is None:
        steps.note(f"stack '{stack.name}' names no Prometheus and Alertmanager (monitoring.prometheusUrl, alertmanagerUrl): not checked")
        return
    steps.step(f"checking the cluster's monitoring took stack '{stack.name}'")
    check_monitoring(stack)


if __name__ == "__main__":
    sys.exit(main(check, sys.argv[1:]))
