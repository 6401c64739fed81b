"""Incident routing of every stack, by Alertmanager's and Prometheus' own tools: `amtool check-config` on the
generated configuration, `amtool config routes test` for each severity and escalation level, and `promtool test
rules` for the escalation rules (a P0 reaches level 2 and 3 after the configured minutes; a P2 never does)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from components.alerting import alertmanager_config, escalation_rules, render
from components.dingtalk_bridge import bridge_url
from settings.monitoring import AlertingSettings
from tests.harness import STACKS, decoded_config
from tests.monitoring.rules import RULE_FILES

STAND_INS = {"alertSmtpPassword": "smtp-stand-in", "alertWecomApiSecret": "wecom-stand-in",
             "alertSmsWebhookUrl": "https://sms.example.com/hook"}


def _alerting(stack: str) -> AlertingSettings:
    return AlertingSettings.model_validate(decoded_config(stack).get("real-estate-ai:monitoring", {}).get("alerting", {"notify": False}))


def _config(stack: str) -> dict:
    settings = _alerting(stack)
    deployed = settings.dingtalk is not None and settings.dingtalk.deploy
    namespace = decoded_config(stack)["real-estate-ai:namespace"]["name"]
    return alertmanager_config(settings, STAND_INS, bridge_url(namespace) if deployed else None)


def _write(stack: str, tmp_path: Path) -> Path:
    path = tmp_path / f"alertmanager-{stack}.yaml"
    path.write_text(render(_config(stack)))
    return path


def _route(path: Path, *labels: str) -> str:
    done = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={path}", *labels],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("stack", STACKS)
def test_amtool_accepts_every_stacks_configuration(stack, tmp_path):
    done = subprocess.run(["amtool", "check-config", str(_write(stack, tmp_path))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_amtool_rejects_a_broken_configuration(tmp_path):
    config = _config("prod")
    config["route"]["routes"][0]["receiver"] = "nobody"
    path = tmp_path / "broken.yaml"
    path.write_text(render(config))
    done = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "nobody" in done.stdout + done.stderr


@pytest.mark.parametrize("labels, receiver", [
    (["severity=P0", "service=api"], "level1-p0"),
    (["severity=P1", "service=api"], "level1-p1"),
    (["severity=P2", "service=platform"], "level1-p2"),
    (["severity=P3", "service=platform"], "level1-p3"),
    (["severity=P0", "service=api", "escalation=2"], "level2"),
    (["severity=P1", "service=postgres", "escalation=2"], "level2"),
    (["severity=P0", "service=api", "escalation=3"], "level3"),
    (["service=api"], "log-only"),  # no severity: nobody is woken for an unlabelled rule
    # kube-prometheus-stack's own alerts.
    (["severity=critical", "alertname=KubeNodeNotReady"], "level1-p1"),
    (["severity=warning", "alertname=KubePodNotReady"], "level1-p2"),
    (["severity=none", "alertname=Watchdog"], "log-only"),
])
def test_each_severity_and_level_reaches_exactly_its_receiver_in_prod(labels, receiver, tmp_path):
    assert _route(_write("prod", tmp_path), *labels) == receiver


@pytest.mark.parametrize("labels", [["severity=P0", "service=api"], ["severity=P0", "escalation=3"], ["severity=P3"]])
def test_dev_tells_nobody(labels, tmp_path):
    assert _route(_write("dev", tmp_path), *labels) == "log-only"


def test_prod_receivers_use_the_channels_of_their_severity():
    config = _config("prod")
    receivers = {r["name"]: r for r in config["receivers"]}

    def channels(name: str) -> set[str]:
        r = receivers[name]
        found = {k for k in ("email_configs", "wechat_configs") if k in r}
        for hook in r.get("webhook_configs", []):
            found.add("dingtalk" if "/dingtalk/" in hook["url"] else "sms")
        return found

    assert channels("level1-p0") == {"email_configs", "wechat_configs", "dingtalk", "sms"}
    assert channels("level1-p1") == {"email_configs", "wechat_configs", "dingtalk"}
    assert channels("level1-p2") == {"email_configs", "dingtalk"}
    assert channels("level1-p3") == {"email_configs"}
    assert channels("level2") == {"email_configs", "wechat_configs", "dingtalk", "sms"}
    # Management has no phone or DingTalk configured in prod: e-mail and WeCom only.
    assert channels("level3") == {"email_configs", "wechat_configs"}
    sms = next(h for h in receivers["level1-p0"]["webhook_configs"] if "sms" in h["url"])
    # Encoded: a bare '+' in a query reads as a space.
    assert sms["url"] == "https://sms.example.com/hook?to=%2B8613800000001"
    assert receivers["level2"]["email_configs"][0]["to"] == "techlead@example.com"
    assert receivers["level1-p0"]["wechat_configs"][0]["api_secret"] == "wecom-stand-in"
    dingtalk = next(h for h in receivers["level1-p0"]["webhook_configs"] if "/dingtalk/" in h["url"])
    # prod runs its own bridge beside the platform.
    assert dingtalk["url"] == "http://dingtalk-bridge.real-estate.svc.cluster.local:8060/dingtalk/oncall/send"


def test_a_p0_of_a_service_silences_its_lesser_alerts():
    (p0, _) = _config("prod")["inhibit_rules"]
    assert p0["source_matchers"] == ['severity="P0"'] and p0["equal"] == ["namespace", "service"]


def _escalation_test(tmp_path: Path, alert_series: dict, eval_time: str, alertname: str) -> subprocess.CompletedProcess:
    rules = tmp_path / "escalation.rules.yml"
    rules.write_text(yaml.safe_dump(escalation_rules(_alerting("prod"))))
    test = {
        "rule_files": [str(p) for p in RULE_FILES] + [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in alert_series.items()],
                   "alert_rule_test": [{"eval_time": eval_time, "alertname": alertname, "exp_alerts": []}]}],
    }
    path = tmp_path / "escalation.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120)


API_DOWN = {'up{job="api", namespace="real-estate", pod="api-0"}': "0x80"}
NODE_CPU = {'node_cpu_seconds_total{instance="n1", cpu="0", mode="idle"}': "0+1x80"}


@pytest.mark.parametrize("alertname, minute, fires", [
    # ApiDown (P0, for: 1m) fires at 1 min; level 2 15 min later, level 3 45 min later.
    ("EscalationP0Level2", "15m", False), ("EscalationP0Level2", "17m", True),
    ("EscalationP0Level3", "45m", False), ("EscalationP0Level3", "47m", True),
])
def test_a_p0_escalates_after_the_configured_minutes(alertname, minute, fires, tmp_path):
    done = _escalation_test(tmp_path, API_DOWN, minute, alertname)
    if fires:
        output = done.stdout + done.stderr
        assert done.returncode == 1 and 'escalated="ApiDown"' in output and 'escalation="' in output, output
        assert 'severity="P0"' in output and "alertstate" not in output.split("got:")[1]
    else:
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_p2_never_escalates(tmp_path):
    # NodeCpuHigh (P2) fires from 16 min on; an hour later nothing has escalated.
    for alertname in ("EscalationP0Level2", "EscalationP1Level2", "EscalationP1Level3"):
        done = _escalation_test(tmp_path, NODE_CPU, "79m", alertname)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_malformed_sms_gateway_url_is_refused_without_showing_it():
    with pytest.raises(ValueError) as error:
        alertmanager_config(_alerting("prod"), {**STAND_INS, "alertSmsWebhookUrl": "http://gw.example.com/?token=s3cr3t"}, "http://bridge:8060")
    assert "alertSmsWebhookUrl must be an https URL" in str(error.value) and "s3cr3t" not in str(error.value)
