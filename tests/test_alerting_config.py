"""The AlertmanagerConfig and the channel Secret as values: every receiver, route and flag of a stack that uses every
channel, spelled out. (tests/monitoring/test_alerting.py renders every stack's through prometheus-operator's own code
and runs amtool on the result; this pins what those tools accept but cannot judge: who gets which message, with which
resolve and batching flags, and which credential comes from where.)"""

from __future__ import annotations

import pytest

from components.alert_rules import escalation_rules
from components.alerting import SECRET_NAME, alertmanager_config_spec, channel_keys, channel_secret, receiver_name
from settings.monitoring import AlertingSettings, BusinessHoursSettings

SECRETS = {"alertSmtpPassword": "smtp-pw", "alertWecomApiSecret": "wecom-secret",
           "alertSmsWebhookUrl": "https://sms.example.com/hook", "alertHeartbeatUrl": "https://hc.example.com/ping/abc"}
EVERY_CHANNEL = AlertingSettings(
    smtp={"smarthost": "smtp.example.com:587", "sender": "alerts@example.com", "username": "alerts"},
    wecom={"corp_id": "corp", "agent_id": "7"},
    dingtalk={"bridge_url": "https://bridge.example.com/"},
    sms_gateway=True,
    heartbeat=True,
    on_call={"emails": ["a@example.com", "b@example.com"], "sms": ["+8613800000001"], "wecom_users": ["u1", "u2"],
             "dingtalk": True},
    tech_lead={"wecom_users": ["lead"]},
    management={"emails": ["boss@example.com"], "sms": ["+8613800000003"]},
)
SMTP = {"from": "alerts@example.com", "smarthost": "smtp.example.com:587", "requireTLS": True, "sendResolved": True,
        "authUsername": "alerts", "authPassword": {"name": SECRET_NAME, "key": "smtp-password"}}
ON_CALL_EMAIL = {"emailConfigs": [{"to": "a@example.com, b@example.com", **SMTP}]}
ON_CALL_WECOM = {"wechatConfigs": [{
    "sendResolved": True, "apiURL": "https://qyapi.weixin.qq.com/cgi-bin/", "corpID": "corp", "agentID": "7",
    "apiSecret": {"name": SECRET_NAME, "key": "wecom-api-secret"}, "toUser": "u1|u2",
    "message": '{{ template "wechat.default.message" . }}'}]}
DINGTALK = {"url": "https://bridge.example.com/dingtalk/oncall/send", "sendResolved": True}
# SMS is not sent again on resolution, and one text carries at most ten alerts; whom to text is in the secret URL.
SMS_ON_CALL = {"urlSecret": {"name": SECRET_NAME, "key": "sms-url-oncall"}, "sendResolved": False, "maxAlerts": 10}


def _eq(name: str, value: str) -> dict:
    return {"name": name, "value": value, "matchType": "="}


def test_each_receiver_gets_exactly_the_channels_of_its_severity_and_level():
    receivers = {r["name"]: r for r in alertmanager_config_spec(EVERY_CHANNEL)["receivers"]}
    assert list(receivers) == ["log-only", "heartbeat", "level3", "level2", "level1-p0", "level1-p1", "level1-p2", "level1-p3"]
    assert receivers["log-only"] == {"name": "log-only"}
    assert receivers["heartbeat"] == {"name": "heartbeat", "webhookConfigs": [
        {"urlSecret": {"name": SECRET_NAME, "key": "heartbeat-url"}, "sendResolved": False}]}
    assert receivers["level3"] == {
        "name": "level3",
        "emailConfigs": [{"to": "boss@example.com", **SMTP}],
        "webhookConfigs": [{"urlSecret": {"name": SECRET_NAME, "key": "sms-url-management"}, "sendResolved": False, "maxAlerts": 10}],
    }
    assert receivers["level2"] == {"name": "level2", "wechatConfigs": [{**ON_CALL_WECOM["wechatConfigs"][0], "toUser": "lead"}]}
    assert receivers["level1-p0"] == {"name": "level1-p0", **ON_CALL_EMAIL, **ON_CALL_WECOM, "webhookConfigs": [DINGTALK, SMS_ON_CALL]}
    assert receivers["level1-p1"] == {"name": "level1-p1", **ON_CALL_EMAIL, **ON_CALL_WECOM, "webhookConfigs": [DINGTALK]}
    assert receivers["level1-p2"] == {"name": "level1-p2", **ON_CALL_EMAIL, "webhookConfigs": [DINGTALK]}
    assert receivers["level1-p3"] == {"name": "level1-p3", **ON_CALL_EMAIL}


def test_the_secret_holds_each_credential_the_receivers_name_and_nothing_else():
    assert channel_secret(EVERY_CHANNEL, SECRETS) == {
        "smtp-password": "smtp-pw", "wecom-api-secret": "wecom-secret",
        # Encoded: a bare '+' in a query reads as a space.
        "sms-url-oncall": "https://sms.example.com/hook?to=%2B8613800000001",
        "sms-url-management": "https://sms.example.com/hook?to=%2B8613800000003",
        "heartbeat-url": "https://hc.example.com/ping/abc",
    }
    assert channel_keys(EVERY_CHANNEL) == list(channel_secret(EVERY_CHANNEL, SECRETS))
    assert channel_secret(EVERY_CHANNEL.model_copy(update={"notify": False}), SECRETS) == {}
    assert channel_keys(EVERY_CHANNEL.model_copy(update={"notify": False})) == []
    # Nothing to hold (e-mail without login, DingTalk): no Secret at all.
    plain = EVERY_CHANNEL.model_copy(update={"wecom": None, "sms_gateway": False, "heartbeat": False,
                                             "smtp": EVERY_CHANNEL.smtp.model_copy(update={"username": None})})
    assert channel_keys(plain) == [] and channel_secret(plain, SECRETS) == {}


def test_routes_put_the_heartbeat_and_escalations_first_and_p2_p3_in_business_hours():
    spec = alertmanager_config_spec(EVERY_CHANNEL)
    route = spec["route"]
    assert {k: v for k, v in route.items() if k != "routes"} == {
        "receiver": "log-only", "groupBy": ["alertname", "namespace", "service", "escalation"],
        "groupWait": "30s", "groupInterval": "300s", "repeatInterval": "240m"}
    office = ["business-hours"]
    assert route["routes"] == [
        {"receiver": "heartbeat", "matchers": [_eq("alertname", "Watchdog")], "groupWait": "0s", "groupInterval": "30s", "repeatInterval": "1m"},
        {"receiver": "level3", "matchers": [_eq("escalation", "3")], "groupWait": "0s", "groupInterval": "30s"},
        {"receiver": "level2", "matchers": [_eq("escalation", "2")], "groupWait": "0s", "groupInterval": "30s"},
        {"receiver": "level1-p0", "matchers": [_eq("severity", "P0")], "groupWait": "0s", "groupInterval": "30s", "repeatInterval": "30m"},
        {"receiver": "level1-p1", "matchers": [_eq("severity", "P1")]},
        {"receiver": "level1-p2", "matchers": [_eq("severity", "P2")], "activeTimeIntervals": office},
        {"receiver": "level1-p3", "matchers": [_eq("severity", "P3")], "activeTimeIntervals": office, "repeatInterval": "24h"},
    ]
    # China's 09:00-18:00, Monday to Friday, in UTC.
    assert spec["muteTimeIntervals"] == [{"name": "business-hours", "timeIntervals": [
        {"weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"], "times": [{"startTime": "01:00", "endTime": "10:00"}]}]}]
    assert spec["inhibitRules"] == [{"sourceMatch": [_eq("severity", "P0")],
                                     "targetMatch": [{"name": "severity", "value": "P1|P2|P3", "matchType": "=~"}],
                                     "equal": ["namespace", "service"]}]


@pytest.mark.parametrize("hours, intervals", [
    # A local day that crosses UTC midnight: two intervals, the later one on the next weekday.
    ({"start": "06:00", "end": "20:00", "weekdays": ["friday"], "utcOffsetHours": 8},
     [{"weekdays": ["thursday"], "times": [{"startTime": "22:00", "endTime": "24:00"}]},
      {"weekdays": ["friday"], "times": [{"startTime": "00:00", "endTime": "12:00"}]}]),
    ({"start": "09:00", "end": "17:30", "weekdays": ["sunday"], "utcOffsetHours": -5},
     [{"weekdays": ["sunday"], "times": [{"startTime": "14:00", "endTime": "22:30"}]}]),
    ({"start": "20:00", "end": "23:00", "weekdays": ["sunday"], "utcOffsetHours": -5},
     [{"weekdays": ["monday"], "times": [{"startTime": "01:00", "endTime": "04:00"}]}]),
    # The last minute of a UTC day is still that day.
    ({"start": "15:59", "end": "17:00", "weekdays": ["monday"], "utcOffsetHours": -8},
     [{"weekdays": ["monday"], "times": [{"startTime": "23:59", "endTime": "24:00"}]},
      {"weekdays": ["tuesday"], "times": [{"startTime": "00:00", "endTime": "01:00"}]}]),
    # Exactly midnight in UTC is the next day's start.
    ({"start": "19:00", "end": "23:00", "weekdays": ["sunday"], "utcOffsetHours": -5},
     [{"weekdays": ["monday"], "times": [{"startTime": "00:00", "endTime": "04:00"}]}]),
    # Ending exactly at UTC midnight is one interval to 24:00, not a second one of no length.
    ({"start": "09:00", "end": "24:00", "weekdays": ["monday"], "utcOffsetHours": 0},
     [{"weekdays": ["monday"], "times": [{"startTime": "09:00", "endTime": "24:00"}]}]),
])
def test_business_hours_in_utc(hours, intervals):
    settings = EVERY_CHANNEL.model_copy(update={"business_hours": BusinessHoursSettings.model_validate(hours)})
    assert alertmanager_config_spec(settings)["muteTimeIntervals"][0]["timeIntervals"] == intervals


def test_without_notify_nobody_is_told_and_without_a_heartbeat_the_watchdog_goes_nowhere():
    quiet = EVERY_CHANNEL.model_copy(update={"notify": False})
    spec = alertmanager_config_spec(quiet)
    assert spec["receivers"] == [{"name": "log-only"}]
    assert spec["route"]["routes"] == [{"receiver": "log-only", "matchers": [_eq("alertname", "Watchdog")]}]
    no_heartbeat = alertmanager_config_spec(EVERY_CHANNEL.model_copy(update={"heartbeat": False}))
    assert no_heartbeat["route"]["routes"][0] == {"receiver": "log-only", "matchers": [_eq("alertname", "Watchdog")]}


def test_the_deployed_bridge_wins_over_the_configured_one():
    receivers = alertmanager_config_spec(EVERY_CHANNEL, "http://dingtalk-bridge.ns.svc:8060")["receivers"]
    assert receivers[4]["webhookConfigs"][0]["url"] == "http://dingtalk-bridge.ns.svc:8060/dingtalk/oncall/send"


def test_receiver_names():
    assert [receiver_name("onCall", "P0"), receiver_name("techLead"), receiver_name("management")] == [
        "level1-p0", "level2", "level3"]


def test_escalation_rules_follow_the_configured_minutes_after_each_alerts_own_for():
    settings = EVERY_CHANNEL.model_copy(update={"escalation": EVERY_CHANNEL.escalation.model_copy(update={
        "p0_level2_minutes": 10, "p0_level3_minutes": 20, "p1_level2_minutes": 30, "p1_level3_minutes": 40})})
    groups = {"g": {"groups": [{"name": "g", "rules": [
        {"alert": "Down", "for": "1m", "labels": {"severity": "P0"}},
        {"alert": "AlsoDown", "for": "1m", "labels": {"severity": "P0"}},
        {"alert": "Slow", "for": "90s", "labels": {"severity": "P1"}},
        {"alert": "Gone", "labels": {"severity": "P1"}},
        {"alert": "RolledBack", "labels": {"severity": "P1", "kind": "event"}},
        {"alert": "Minor", "for": "5m", "labels": {"severity": "P2"}},
        {"record": "r", "expr": "x"},
    ]}]}}
    (group,) = escalation_rules(settings, groups)["groups"]
    assert group["name"] == "escalation"
    assert [(r["alert"], r["for"], r["labels"], r["expr"].split('alertname=~"')[1].split('"')[0]) for r in group["rules"]] == [
        ("EscalationP0Level2", "11m", {"escalation": "2"}, "AlsoDown|Down"),
        ("EscalationP0Level3", "21m", {"escalation": "3"}, "AlsoDown|Down"),
        ("EscalationP1Level2", "30m", {"escalation": "2"}, "Gone"),
        ("EscalationP1Level2", "1890s", {"escalation": "2"}, "Slow"),
        ("EscalationP1Level3", "40m", {"escalation": "3"}, "Gone"),
        ("EscalationP1Level3", "2490s", {"escalation": "3"}, "Slow")]
    first = group["rules"][0]
    assert first["expr"] == (
        'max without (alertstate) (label_replace(ALERTS{namespace="$namespace", alertname=~"AlsoDown|Down", '
        'alertstate=~"pending|firing", severity="P0", escalation=""}, "escalated", "$1", "alertname", "(.+)"))')
    assert first["annotations"] == {
        "summary": "{{ $labels.escalated }} (P0) has been firing for 10 minutes unacknowledged: escalated to level 2",
        "runbook_url": "docs/runbooks/escalation.md"}


def test_a_severity_whose_channels_on_call_lacks_goes_to_every_channel_it_has():
    sms_only = EVERY_CHANNEL.model_copy(update={"on_call": EVERY_CHANNEL.on_call.model_copy(update={
        "emails": [], "wecom_users": [], "dingtalk": False})})
    receivers = {r["name"]: r for r in alertmanager_config_spec(sms_only)["receivers"]}
    for severity in ("p0", "p1", "p2", "p3"):
        assert receivers[f"level1-{severity}"] == {"name": f"level1-{severity}", "webhookConfigs": [SMS_ON_CALL]}
