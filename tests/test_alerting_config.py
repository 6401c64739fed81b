"""Alertmanager's configuration and the escalation rules as values: every receiver, route and flag of a stack that
uses every channel, spelled out. (tests/monitoring/test_alerting.py runs amtool and promtool on every stack; this
pins what those tools accept but cannot judge: who gets which message, with which resolve and batching flags.)"""

from __future__ import annotations

import pytest
import yaml

from components.alerting import alertmanager_config, escalation_rules, receiver_name, render
from settings.monitoring import AlertingSettings

SECRETS = {"alertSmtpPassword": "smtp-pw", "alertWecomApiSecret": "wecom-secret",
           "alertSmsWebhookUrl": "https://sms.example.com/hook"}
EVERY_CHANNEL = AlertingSettings(
    smtp={"smarthost": "smtp.example.com:587", "sender": "alerts@example.com", "username": "alerts"},
    wecom={"corp_id": "corp", "agent_id": "7"},
    dingtalk={"bridge_url": "https://bridge.example.com/"},
    sms_gateway=True,
    on_call={"emails": ["a@example.com", "b@example.com"], "sms": ["+8613800000001"], "wecom_users": ["u1", "u2"],
             "dingtalk": True},
    tech_lead={"wecom_users": ["lead"]},
    management={"emails": ["boss@example.com"], "sms": ["+8613800000003"]},
)
ON_CALL_EMAIL = {"email_configs": [{"to": "a@example.com, b@example.com", "send_resolved": True}]}
ON_CALL_WECOM = {"wechat_configs": [{
    "send_resolved": True, "api_url": "https://qyapi.weixin.qq.com/cgi-bin/", "corp_id": "corp", "agent_id": "7",
    "api_secret": "wecom-secret", "to_user": "u1|u2", "message": '{{ template "wechat.default.message" . }}'}]}
DINGTALK = {"url": "https://bridge.example.com/dingtalk/oncall/send", "send_resolved": True}
# SMS is not sent again on resolution, and one text carries at most ten alerts.
SMS_ON_CALL = {"url": "https://sms.example.com/hook?to=%2B8613800000001", "send_resolved": False, "max_alerts": 10}


def test_each_receiver_gets_exactly_the_channels_of_its_severity_and_level():
    receivers = {r["name"]: r for r in alertmanager_config(EVERY_CHANNEL, SECRETS)["receivers"]}
    assert list(receivers) == ["log-only", "level3", "level2", "level1-p0", "level1-p1", "level1-p2", "level1-p3"]
    assert receivers["log-only"] == {"name": "log-only"}
    assert receivers["level3"] == {
        "name": "level3",
        "email_configs": [{"to": "boss@example.com", "send_resolved": True}],
        "webhook_configs": [{"url": "https://sms.example.com/hook?to=%2B8613800000003", "send_resolved": False, "max_alerts": 10}],
    }
    assert receivers["level2"] == {"name": "level2", "wechat_configs": [{
        **ON_CALL_WECOM["wechat_configs"][0], "to_user": "lead"}]}
    assert receivers["level1-p0"] == {"name": "level1-p0", **ON_CALL_EMAIL, **ON_CALL_WECOM,
                                      "webhook_configs": [DINGTALK, SMS_ON_CALL]}
    assert receivers["level1-p1"] == {"name": "level1-p1", **ON_CALL_EMAIL, **ON_CALL_WECOM, "webhook_configs": [DINGTALK]}
    assert receivers["level1-p2"] == {"name": "level1-p2", **ON_CALL_EMAIL, "webhook_configs": [DINGTALK]}
    assert receivers["level1-p3"] == {"name": "level1-p3", **ON_CALL_EMAIL}


def test_routes_put_escalations_first_and_the_charts_severities_before_ours():
    route = alertmanager_config(EVERY_CHANNEL, SECRETS)["route"]
    assert {k: v for k, v in route.items() if k != "routes"} == {
        "receiver": "log-only", "group_by": ["alertname", "namespace", "service", "escalation"],
        "group_wait": "30s", "group_interval": "300s", "repeat_interval": "240m"}
    assert route["routes"] == [
        {"receiver": "level3", "matchers": ['escalation="3"'], "group_wait": "0s"},
        {"receiver": "level2", "matchers": ['escalation="2"'], "group_wait": "0s"},
        {"receiver": "log-only", "matchers": ['alertname=~"Watchdog|InfoInhibitor"']},
        {"receiver": "level1-p1", "matchers": ['severity="critical"']},
        {"receiver": "level1-p2", "matchers": ['severity="warning"']},
        {"receiver": "level1-p0", "matchers": ['severity="P0"'], "group_wait": "0s", "repeat_interval": "30m"},
        {"receiver": "level1-p1", "matchers": ['severity="P1"']},
        {"receiver": "level1-p2", "matchers": ['severity="P2"']},
        {"receiver": "level1-p3", "matchers": ['severity="P3"'], "repeat_interval": "24h"},
    ]


def test_smtp_and_inhibition():
    config = alertmanager_config(EVERY_CHANNEL, SECRETS)
    assert config["global"] == {"smtp_smarthost": "smtp.example.com:587", "smtp_from": "alerts@example.com",
                                "smtp_require_tls": True, "smtp_auth_username": "alerts", "smtp_auth_password": "smtp-pw"}
    anonymous = EVERY_CHANNEL.model_copy(update={"smtp": EVERY_CHANNEL.smtp.model_copy(update={"username": None, "require_tls": False})})
    assert alertmanager_config(anonymous, SECRETS)["global"] == {
        "smtp_smarthost": "smtp.example.com:587", "smtp_from": "alerts@example.com", "smtp_require_tls": False}
    assert config["inhibit_rules"] == [
        {"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P1|P2|P3"'], "equal": ["namespace", "service"]},
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["namespace", "alertname"]},
    ]


def test_without_notify_nobody_is_told():
    quiet = EVERY_CHANNEL.model_copy(update={"notify": False})
    config = alertmanager_config(quiet, SECRETS)
    assert config["receivers"] == [{"name": "log-only"}]
    assert "routes" not in config["route"] and "global" not in config


def test_the_deployed_bridge_wins_over_the_configured_one():
    receivers = alertmanager_config(EVERY_CHANNEL, SECRETS, "http://dingtalk-bridge.ns.svc:8060")["receivers"]
    assert receivers[3]["webhook_configs"][0]["url"] == "http://dingtalk-bridge.ns.svc:8060/dingtalk/oncall/send"


@pytest.mark.parametrize("url", ["http://sms.example.com/hook", "https://sms.example.com/hook?token=abc"])
def test_a_bad_sms_gateway_url_is_refused_without_its_value(url):
    with pytest.raises(ValueError) as error:
        alertmanager_config(EVERY_CHANNEL, {**SECRETS, "alertSmsWebhookUrl": url})
    assert str(error.value) == "the secret alertSmsWebhookUrl must be an https URL without query or fragment"


def test_receiver_names():
    assert [receiver_name("onCall", "P0"), receiver_name("techLead"), receiver_name("management")] == [
        "level1-p0", "level2", "level3"]


def test_escalation_rules_follow_the_configured_minutes():
    settings = EVERY_CHANNEL.model_copy(update={"escalation": EVERY_CHANNEL.escalation.model_copy(update={
        "p0_level2_minutes": 10, "p0_level3_minutes": 20, "p1_level2_minutes": 30, "p1_level3_minutes": 40})})
    (group,) = escalation_rules(settings)["groups"]
    assert group["name"] == "escalation"
    assert [(r["alert"], r["for"], r["labels"]) for r in group["rules"]] == [
        ("EscalationP0Level2", "10m", {"escalation": "2"}), ("EscalationP0Level3", "20m", {"escalation": "3"}),
        ("EscalationP1Level2", "30m", {"escalation": "2"}), ("EscalationP1Level3", "40m", {"escalation": "3"})]
    first = group["rules"][0]
    assert first["expr"] == ('label_replace(label_replace(ALERTS{alertstate="firing", severity="P0", escalation=""}, '
                             '"escalated", "$1", "alertname", "(.+)"), "alertstate", "", "alertstate", ".*")')
    assert first["annotations"] == {
        "summary": "{{ $labels.escalated }} (P0) has been firing for 10 minutes: escalated to level 2",
        "runbook_url": "docs/runbooks/escalation.md"}


def test_render_keeps_the_order_a_reader_expects():
    text = render(alertmanager_config(EVERY_CHANNEL, SECRETS))
    assert [line for line in text.splitlines() if line[:1].isalpha()] == ["route:", "receivers:", "global:", "inhibit_rules:"]
    assert yaml.safe_load(text) == alertmanager_config(EVERY_CHANNEL, SECRETS)
