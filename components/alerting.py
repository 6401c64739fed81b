"""Incident routing built from the stack's settings: Alertmanager's configuration and the escalation rules.

Routing: the severity picks the channels of level 1 (P0 every channel, P1 all but SMS, P2 DingTalk and e-mail,
P3 e-mail); an alert that keeps firing is re-announced by Prometheus with `escalation="2"` or `"3"` (rules
below, Prometheus' own `for:` over `ALERTS`), which routes to the tech lead's and management's channels. A P0 of a
service silences that service's lower alerts (inhibition). Without `notify`, everything goes to a receiver that
tells nobody: the alerts still show in Alertmanager. Secrets (SMTP password, WeCom secret, SMS gateway URL) are
placed into the text here, so the result is delivered as a Kubernetes Secret, never a ConfigMap.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

import yaml

from settings.monitoring import HTTPS_URL_RE, AlertingSettings

SILENT = "log-only"
# Channels of level 1 per severity; levels 2 and 3 use every channel their contacts have.
SEVERITY_CHANNELS = {
    "P0": ("sms", "wecom", "dingtalk", "email"),
    "P1": ("wecom", "dingtalk", "email"),
    "P2": ("dingtalk", "email"),
    "P3": ("email",),
}
LEVEL_NUMBER = {"onCall": "1", "techLead": "2", "management": "3"}


def receiver_name(level: str, severity: Optional[str] = None) -> str:
    return f"level{LEVEL_NUMBER[level]}-{severity.lower()}" if severity else f"level{LEVEL_NUMBER[level]}"


def _receiver(name: str, settings: AlertingSettings, level: str, channels: tuple[str, ...], secrets: dict[str, str],
              dingtalk_url: Optional[str]) -> dict:
    contact = settings.level(level)
    receiver: dict = {"name": name}
    if "email" in channels and contact.emails:
        receiver["email_configs"] = [{"to": ", ".join(contact.emails), "send_resolved": True}]
    if "wecom" in channels and contact.wecom_users and settings.wecom:
        receiver["wechat_configs"] = [{
            "send_resolved": True,
            "api_url": settings.wecom.api_url,
            "corp_id": settings.wecom.corp_id,
            "agent_id": settings.wecom.agent_id,
            "api_secret": secrets["alertWecomApiSecret"],
            "to_user": "|".join(contact.wecom_users),
            "message": '{{ template "wechat.default.message" . }}',
        }]
    webhooks = []
    if "dingtalk" in channels and contact.dingtalk and settings.dingtalk:
        base = dingtalk_url or settings.dingtalk.bridge_url
        webhooks.append({"url": f"{base.rstrip('/')}/dingtalk/{settings.dingtalk.targets[level]}/send", "send_resolved": True})
    if "sms" in channels and contact.sms and settings.sms_gateway:
        if not HTTPS_URL_RE.fullmatch(secrets["alertSmsWebhookUrl"]):
            # Never the value: it may carry the gateway's token.
            raise ValueError("the secret alertSmsWebhookUrl must be an https URL without query or fragment")
        # The gateway is told whom to text in the query; Alertmanager's payload carries the alerts.
        webhooks.append({"url": f"{secrets['alertSmsWebhookUrl']}?{urlencode({'to': ','.join(contact.sms)})}", "send_resolved": False,
                         "max_alerts": 10})
    if webhooks:
        receiver["webhook_configs"] = webhooks
    return receiver


def alertmanager_config(settings: AlertingSettings, secrets: dict[str, str], dingtalk_url: Optional[str] = None) -> dict:
    """alertmanager.yaml as a dict. `secrets` holds the alert channels' secret values by config key; `dingtalk_url`
    is the bridge the program deployed (else the configured bridgeUrl)."""
    timing = settings.timing
    route: dict = {
        "receiver": SILENT,
        "group_by": ["alertname", "namespace", "service", "escalation"],
        "group_wait": f"{timing.group_wait_seconds}s",
        "group_interval": f"{timing.group_interval_seconds}s",
        "repeat_interval": f"{timing.repeat_interval_minutes}m",
    }
    config: dict = {"route": route, "receivers": [{"name": SILENT}]}
    if settings.notify:
        if settings.smtp:
            config["global"] = {
                "smtp_smarthost": settings.smtp.smarthost,
                "smtp_from": settings.smtp.sender,
                "smtp_require_tls": settings.smtp.require_tls,
                **({"smtp_auth_username": settings.smtp.username, "smtp_auth_password": secrets["alertSmtpPassword"]}
                   if settings.smtp.username else {}),
            }
        routes = []
        # Escalations first: an escalated alert goes to its level, whatever its severity.
        for level in ("management", "techLead"):
            name = receiver_name(level)
            config["receivers"].append(_receiver(name, settings, level, SEVERITY_CHANNELS["P0"], secrets, dingtalk_url))
            routes.append({"receiver": name, "matchers": [f'escalation="{LEVEL_NUMBER[level]}"'], "group_wait": "0s"})
        for severity, channels in SEVERITY_CHANNELS.items():
            name = receiver_name("onCall", severity)
            config["receivers"].append(_receiver(name, settings, "onCall", channels, secrets, dingtalk_url))
            route_ = {"receiver": name, "matchers": [f'severity="{severity}"']}
            if severity == "P0":
                # Act now: no batching delay, reminders every 30 minutes.
                route_.update({"group_wait": "0s", "repeat_interval": "30m"})
            if severity == "P3":
                route_["repeat_interval"] = "24h"
            routes.append(route_)
        # kube-prometheus-stack's own alerts (nodes, Prometheus, kube-state-metrics, ...) use critical/warning/info;
        # this configuration replaces the chart's, so they are routed here: critical as P1, warning as P2. Watchdog
        # (always firing, for a dead man's switch) and the chart's InfoInhibitor tell nobody.
        routes[-4:-4] = [
            {"receiver": SILENT, "matchers": ['alertname=~"Watchdog|InfoInhibitor"']},
            {"receiver": receiver_name("onCall", "P1"), "matchers": ['severity="critical"']},
            {"receiver": receiver_name("onCall", "P2"), "matchers": ['severity="warning"']},
        ]
        route["routes"] = routes
    config["inhibit_rules"] = [
        # A service that is down (P0) silences its own lesser alerts, their escalations included: the P0 escalates itself.
        {"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P1|P2|P3"'], "equal": ["namespace", "service"]},
        # The chart's convention: a critical alert silences the warning of the same name.
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["namespace", "alertname"]},
    ]
    return config


def render(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, width=200)


def escalation_rules(settings: AlertingSettings) -> dict:
    """A Prometheus rule group that re-announces a P0 or P1 alert with escalation="2" and "3" while it fires."""
    e = settings.escalation
    steps = [("P0", "2", e.p0_level2_minutes), ("P0", "3", e.p0_level3_minutes),
             ("P1", "2", e.p1_level2_minutes), ("P1", "3", e.p1_level3_minutes)]
    rules = []
    for severity, level, minutes in steps:
        # ALERTS carries the original alert's labels; its name moves to `escalated`, its state label is dropped.
        source = f'ALERTS{{alertstate="firing", severity="{severity}", escalation=""}}'
        expr = f'label_replace(label_replace({source}, "escalated", "$1", "alertname", "(.+)"), "alertstate", "", "alertstate", ".*")'
        rules.append({
            "alert": f"Escalation{severity}Level{level}",
            "expr": expr,
            "for": f"{minutes}m",
            "labels": {"escalation": level},
            "annotations": {
                "summary": f"{{{{ $labels.escalated }}}} ({severity}) has been firing for {minutes} minutes: escalated to level {level}",
                "runbook_url": "docs/runbooks/escalation.md",
            },
        })
    return {"groups": [{"name": "escalation", "rules": rules}]}

