"""Incident routing built from the stack's settings: an AlertmanagerConfig (monitoring.coreos.com/v1alpha1) in the
stack's namespace, and the Secret of channel credentials it references.

The cluster's Alertmanager keeps its own configuration; prometheus-operator merges this object into it under a
route that matches only alerts of this namespace (its default matcher strategy, OnNamespace), so this stack is told
about its own alerts and nobody else's, and the cluster's routing stays its owner's.

Routing: the severity picks the channels of level 1 (P0 every channel, P1 all but SMS, P2 DingTalk and e-mail,
P3 e-mail); P2 and P3 notify in business hours only. An alert that keeps firing unacknowledged is re-announced by
Prometheus with `escalation="2"` or `"3"` (components/alert_rules.py), which routes to the tech lead's and
management's channels. A P0 of a service silences that service's lower alerts (inhibition). The Watchdog goes to
the heartbeat service, or to nobody. Without `notify`, everything goes to a receiver that tells nobody: the alerts
still show in Alertmanager.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

from settings.monitoring import LEVELS, SEVERITY_CHANNELS, WEEKDAYS, AlertingSettings, BusinessHoursSettings

from components.alert_rules import HEARTBEAT_ALERT

SILENT = "log-only"
HEARTBEAT = "heartbeat"
BUSINESS_HOURS = "business-hours"
# The Secret (in the stack's namespace, beside the AlertmanagerConfig) and its keys.
SECRET_NAME = "alert-channels"
SMTP_PASSWORD, WECOM_SECRET, HEARTBEAT_URL = "smtp-password", "wecom-api-secret", "heartbeat-url"
# Told only in business hours: partial and minor faults wait for the morning.
OFFICE_SEVERITIES = ("P2", "P3")
LEVEL_NUMBER = {"onCall": "1", "techLead": "2", "management": "3"}
# How soon Alertmanager sends a change to an existing group of P0s or escalations: a new alert in a group that is still
# open (a P0 firing again before its resolution went out) otherwise waits for the stack's whole group interval.
URGENT_GROUP_INTERVAL = "30s"


def receiver_name(level: str, severity: Optional[str] = None) -> str:
    return f"level{LEVEL_NUMBER[level]}-{severity.lower()}" if severity else f"level{LEVEL_NUMBER[level]}"


def sms_key(level: str) -> str:
    return f"sms-url-{level.lower()}"


def _ref(key: str) -> dict:
    return {"name": SECRET_NAME, "key": key}


def _eq(name: str, value: str) -> dict:
    return {"name": name, "value": value, "matchType": "="}


def channel_keys(settings: AlertingSettings) -> list[str]:
    """The keys the channel Secret holds, known from the settings alone (none: no Secret at all; an empty one reads
    back from the API server without its data, a change on every preview)."""
    if not settings.notify:
        return []
    keys = [SMTP_PASSWORD] if settings.smtp and settings.smtp.username else []
    keys += [WECOM_SECRET] if settings.wecom else []
    keys += [sms_key(level) for level in LEVELS if settings.sms_gateway and settings.level(level).sms]
    keys += [HEARTBEAT_URL] if settings.heartbeat else []
    return keys


def channel_secret(settings: AlertingSettings, secrets: dict[str, str]) -> dict[str, str]:
    """The Secret's data: the channel credentials the receivers reference, from the stack's secret config values."""
    data: dict[str, str] = {}
    if not settings.notify:
        return data
    if settings.smtp and settings.smtp.username:
        data[SMTP_PASSWORD] = secrets["alertSmtpPassword"]
    if settings.wecom:
        data[WECOM_SECRET] = secrets["alertWecomApiSecret"]
    if settings.sms_gateway:
        # The URL's shape is checked when the stack is loaded (settings.loading SECRET_SHAPES). The gateway is told whom to text in the query; Alertmanager's payload carries the alerts.
        for level in LEVELS:
            if settings.level(level).sms:
                data[sms_key(level)] = f"{secrets['alertSmsWebhookUrl']}?{urlencode({'to': ','.join(settings.level(level).sms)})}"
    if settings.heartbeat:
        data[HEARTBEAT_URL] = secrets["alertHeartbeatUrl"]
    return data


def _receiver(name: str, settings: AlertingSettings, level: str, channels: tuple[str, ...], dingtalk_url: Optional[str]) -> dict:
    contact = settings.level(level)
    receiver: dict = {"name": name}
    if "email" in channels and contact.emails and settings.smtp:
        smtp = settings.smtp
        receiver["emailConfigs"] = [{
            "to": ", ".join(contact.emails), "from": smtp.sender, "smarthost": smtp.smarthost, "requireTLS": smtp.require_tls,
            "sendResolved": True,
            **({"authUsername": smtp.username, "authPassword": _ref(SMTP_PASSWORD)} if smtp.username else {}),
        }]
    if "wecom" in channels and contact.wecom_users and settings.wecom:
        receiver["wechatConfigs"] = [{
            "sendResolved": True,
            "apiURL": settings.wecom.api_url,
            "corpID": settings.wecom.corp_id,
            "agentID": settings.wecom.agent_id,
            "apiSecret": _ref(WECOM_SECRET),
            "toUser": "|".join(contact.wecom_users),
            "message": '{{ template "wechat.default.message" . }}',
        }]
    webhooks = []
    if "dingtalk" in channels and contact.dingtalk and settings.dingtalk:
        base = dingtalk_url or settings.dingtalk.bridge_url
        webhooks.append({"url": f"{base.rstrip('/')}/dingtalk/{settings.dingtalk.targets[level]}/send", "sendResolved": True})
    if "sms" in channels and contact.sms and settings.sms_gateway:
        webhooks.append({"urlSecret": _ref(sms_key(level)), "sendResolved": False, "maxAlerts": 10})
    if webhooks:
        receiver["webhookConfigs"] = webhooks
    return receiver


def _utc_hours(hours: BusinessHoursSettings) -> list[dict]:
    """The business hours as Alertmanager time intervals in UTC (the operator's intervals carry no time zone): a
    local day that crosses midnight in UTC becomes two intervals, the later one on the next weekday."""
    def minutes(clock: str) -> int:
        h, m = clock.split(":")
        return int(h) * 60 + int(m)

    def clock(total: int) -> str:
        return f"{total // 60:02d}:{total % 60:02d}"

    start, end = minutes(hours.start) - hours.utc_offset_hours * 60, minutes(hours.end) - hours.utc_offset_hours * 60
    day_shift = start // 1440
    start, end = start - day_shift * 1440, end - day_shift * 1440

    def days(shift: int) -> list[str]:
        return [WEEKDAYS[(WEEKDAYS.index(d) + shift) % 7] for d in hours.weekdays]

    if end <= 1440:
        return [{"weekdays": days(day_shift), "times": [{"startTime": clock(start), "endTime": clock(end)}]}]
    return [{"weekdays": days(day_shift), "times": [{"startTime": clock(start), "endTime": "24:00"}]},
            {"weekdays": days(day_shift + 1), "times": [{"startTime": "00:00", "endTime": clock(end - 1440)}]}]


def alertmanager_config_spec(settings: AlertingSettings, dingtalk_url: Optional[str] = None) -> dict:
    """The AlertmanagerConfig's spec. `dingtalk_url` is the bridge the program deployed (else the configured bridgeUrl)."""
    timing = settings.timing
    route: dict = {
        "receiver": SILENT,
        "groupBy": ["alertname", "namespace", "service", "escalation"],
        "groupWait": f"{timing.group_wait_seconds}s",
        "groupInterval": f"{timing.group_interval_seconds}s",
        "repeatInterval": f"{timing.repeat_interval_minutes}m",
    }
    spec: dict = {"route": route, "receivers": [{"name": SILENT}]}
    routes: list[dict] = []
    if settings.notify and settings.heartbeat:
        spec["receivers"].append({"name": HEARTBEAT, "webhookConfigs": [{"urlSecret": _ref(HEARTBEAT_URL), "sendResolved": False}]})
        # About every 90 s: Alertmanager re-sends on the first group-interval tick a whole repeat interval after the
        # last send (logged after it), so 30 s ticks and a 1 m repeat give 90 s. The heartbeat service's period and
        # grace (5 minutes, say) decide how soon silence pages.
        routes.append({"receiver": HEARTBEAT, "matchers": [_eq("alertname", HEARTBEAT_ALERT)],
                       "groupWait": "0s", "groupInterval": "30s", "repeatInterval": "1m"})
    else:
        routes.append({"receiver": SILENT, "matchers": [_eq("alertname", HEARTBEAT_ALERT)]})
    if settings.notify:
        spec["muteTimeIntervals"] = [{"name": BUSINESS_HOURS, "timeIntervals": _utc_hours(settings.business_hours)}]
        # Escalations first: an escalated alert goes to its level, whatever its severity.
        for level in ("management", "techLead"):
            name = receiver_name(level)
            spec["receivers"].append(_receiver(name, settings, level, SEVERITY_CHANNELS["P0"], dingtalk_url))
            routes.append({"receiver": name, "matchers": [_eq("escalation", LEVEL_NUMBER[level])], "groupWait": "0s",
                           "groupInterval": URGENT_GROUP_INTERVAL})
        for severity, channels in SEVERITY_CHANNELS.items():
            name = receiver_name("onCall", severity)
            receiver = _receiver(name, settings, "onCall", channels, dingtalk_url)
            if len(receiver) == 1:
                # On-call has none of this severity's channels (SMS alone, say): every channel it has, rather than a
                # receiver that tells nobody.
                receiver = _receiver(name, settings, "onCall", SEVERITY_CHANNELS["P0"], dingtalk_url)
            spec["receivers"].append(receiver)
            route_ = {"receiver": name, "matchers": [_eq("severity", severity)]}
            if severity == "P0":
                # Act now: no batching delay, a change to the group (a P0 firing again before its resolution was
                # sent) within 30 s rather than the stack's group interval, reminders every 30 minutes.
                route_.update({"groupWait": "0s", "groupInterval": URGENT_GROUP_INTERVAL, "repeatInterval": "30m"})
            if severity in OFFICE_SEVERITIES:
                route_["activeTimeIntervals"] = [BUSINESS_HOURS]
            if severity == "P3":
                route_["repeatInterval"] = "24h"
            routes.append(route_)
    route["routes"] = routes
    spec["inhibitRules"] = [
        # A service that is down (P0) silences its own lesser alerts, their escalations included: the P0 escalates itself.
        {"sourceMatch": [_eq("severity", "P0")],
         "targetMatch": [{"name": "severity", "value": "P1|P2|P3", "matchType": "=~"}], "equal": ["namespace", "service"]},
    ]
    return spec
