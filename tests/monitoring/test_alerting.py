"""Incident routing of every stack as the cluster runs it: the AlertmanagerConfig merged into kube-prometheus-stack's
own routing by prometheus-operator's code, checked and routed by amtool of the chart's Alertmanager (0.33.1), and
the escalation rules by promtool (a P0 reaches level 2 and 3 after the configured minutes; a P2 never does; a flap
does not restart the count; an event never escalates)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from components.dingtalk_bridge import bridge_url
from settings.monitoring import AlertingSettings
from tests.gotools import binary
from tests.harness import STACKS, decoded_config
from tests.monitoring.routing import alertmanager_yaml, operator_render, receiver
from tests.monitoring.rules import rendered, source_series, write

STAND_INS = {"alertSmtpPassword": "smtp-stand-in", "alertWecomApiSecret": "wecom-stand-in",
             "alertSmsWebhookUrl": "https://sms.example.com/hook", "alertHeartbeatUrl": "https://hc.example.com/ping/x"}


def _alerting(stack: str) -> AlertingSettings:
    return AlertingSettings.model_validate(decoded_config(stack).get("real-estate-ai:monitoring", {}).get("alerting", {"notify": False}))


def _namespace(stack: str) -> str:
    return decoded_config(stack)["real-estate-ai:namespace"]["name"]


def _write(stack: str, tmp_path: Path) -> Path:
    settings = _alerting(stack)
    deployed = settings.dingtalk is not None and settings.dingtalk.deploy
    return alertmanager_yaml(settings, STAND_INS, _namespace(stack), tmp_path, bridge_url(_namespace(stack)) if deployed else None)


def _route(path: Path, *labels: str) -> str:
    done = subprocess.run([binary("amtool"), "config", "routes", "test", f"--config.file={path}", *labels],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("stack", STACKS)
def test_amtool_accepts_every_stacks_merged_configuration(stack, tmp_path):
    done = subprocess.run([binary("amtool"), "check-config", str(_write(stack, tmp_path))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_the_operator_rejects_a_route_to_no_receiver(tmp_path):
    from components.alerting import alertmanager_config_spec

    spec = alertmanager_config_spec(_alerting("prod"), bridge_url("real-estate"))
    spec["route"]["routes"][1]["receiver"] = "nobody"
    done = operator_render(spec, {}, "real-estate", tmp_path)
    assert done.returncode != 0 and "nobody" in done.stderr, done.stderr


def _with_smtp(sender: str, emails: list[str]) -> AlertingSettings:
    prod = decoded_config("prod")["real-estate-ai:monitoring"]["alerting"]
    return AlertingSettings.model_validate({**prod, "smtp": {**prod["smtp"], "sender": sender},
                                            "onCall": {**prod["onCall"], "emails": emails}})


# Values the settings take that a careless model of Alertmanager would not expect: display names in several scripts
# and with punctuation, and addresses at the edges of the dot-atom grammar. Alertmanager parses from and to only when
# it sends; amconfig does it at render (gotools/amconfig: its template, then Go's net/mail).
@pytest.mark.parametrize("sender,emails", [
    ("Platform Alerts <alerts@example.com>", ["oncall@example.com"]),
    ("O'Neil & Co. / Ops+SRE_team-1 <a.b.c@example.com>", ["first.last+tag%_-@mail-1.example.com", "x@a-b.example.com"]),
    ("Real Estate AI - P0 <alerts@example.com>", ["a@example.com", "b@example.com", "c@example.com"]),
    ("N" * 64 + " <" + "a" * 64 + "@example.com>", ["z@" + "b" * 63 + ".com"]),
])
def test_every_sender_and_address_the_settings_take_alertmanager_parses(sender, emails, tmp_path):
    path = alertmanager_yaml(_with_smtp(sender, emails), STAND_INS, "real-estate", tmp_path, bridge_url("real-estate"))
    config = yaml.safe_load(path.read_text())
    froms = {email["from"] for r in config["receivers"] for email in r.get("email_configs", [])}
    assert froms == {sender}


@pytest.mark.parametrize("sender,expected", [
    ("Ops, Team <alerts@example.com>", "from \"Ops, Team <alerts@example.com>\": mail: "),  # two entries, one without an address
    ("a..b@example.com", "from \"a..b@example.com\": mail: "),
    ("{{ .Nope }} <a@example.com>", "from: template: "),  # Alertmanager executes from as a template: it fails
    ("a@example.com, b@example.com", "holds 2 addresses, not one"),
    # Parsed fine, but the From header Alertmanager writes (Q-encoded whole) holds no address a reader finds.
    ("运维告警 <alerts@example.com>", "the From header \"=?utf-8?q?"),
])
def test_alertmanager_refuses_the_senders_the_settings_refuse(sender, expected, tmp_path):
    # model_construct: past the settings' own check, to show the consumer refusing what they refuse.
    from components.alerting import alertmanager_config_spec, channel_secret
    from settings.monitoring import SmtpSettings

    good = _with_smtp("alerts@example.com", ["oncall@example.com"])
    bad = good.model_copy(update={"smtp": SmtpSettings.model_construct(**{**good.smtp.__dict__, "sender": sender})})
    done = operator_render(alertmanager_config_spec(bad, bridge_url("real-estate")), channel_secret(bad, STAND_INS),
                           "real-estate", tmp_path)
    assert done.returncode != 0 and expected in done.stderr, done.stderr


HOSTILE_SECRETS = {
    "alertSmtpPassword": "p@ss: \"word\" #{{ .CommonLabels.x }} 'q' \\ 密码 - [a] {b}: &c *d !e %f |g >h",
    "alertWecomApiSecret": "{{ template \"x\" }} # : - ' \" ~ null yes no 0x1F 1e3",
    "alertSmsWebhookUrl": "https://sms.example.com/hook/a_b~c%20d",
    "alertHeartbeatUrl": "https://hc.example.com/ping/%7Bx%7D-_.~",
}


def test_hostile_secrets_reach_alertmanager_exactly(tmp_path):
    """The channel Secret's values as the operator inlines them and Alertmanager loads them: YAML syntax, template
    syntax, quotes and non-ASCII in a password arrive as written (Alertmanager templates no credential)."""
    settings = _alerting("prod").model_copy(update={"smtp": _alerting("prod").smtp.model_copy(update={"username": "alerts"})})
    path = alertmanager_yaml(settings, HOSTILE_SECRETS, "real-estate", tmp_path, bridge_url("real-estate"))
    done = subprocess.run([binary("amtool"), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    receivers = yaml.safe_load(path.read_text())["receivers"]
    passwords = {c["auth_password"] for r in receivers for c in r.get("email_configs", [])}
    secrets = {c["api_secret"] for r in receivers for c in r.get("wechat_configs", [])}
    hooks = {c["url"] for r in receivers for c in r.get("webhook_configs", [])}
    assert passwords == {HOSTILE_SECRETS["alertSmtpPassword"]}
    assert secrets == {HOSTILE_SECRETS["alertWecomApiSecret"]}
    assert f"{HOSTILE_SECRETS['alertSmsWebhookUrl']}?to=%2B8613800000001" in hooks
    assert HOSTILE_SECRETS["alertHeartbeatUrl"] in hooks


@pytest.mark.parametrize("labels, name", [
    (["severity=P0", "service=api"], "level1-p0"),
    (["severity=P1", "service=api"], "level1-p1"),
    (["severity=P2", "service=platform"], "level1-p2"),
    (["severity=P3", "service=platform"], "level1-p3"),
    (["severity=P0", "service=api", "escalation=2"], "level2"),
    (["severity=P1", "service=postgres", "escalation=2"], "level2"),
    (["severity=P0", "service=api", "escalation=3"], "level3"),
    (["service=api"], "log-only"),  # no severity: nobody is woken for an unlabelled rule
    (["alertname=Watchdog", "severity=heartbeat"], "heartbeat"),
])
def test_each_severity_and_level_of_prods_namespace_reaches_exactly_its_receiver(labels, name, tmp_path):
    routed = _route(_write("prod", tmp_path), "namespace=real-estate", *labels)
    if name == "heartbeat":
        # The chart's own Watchdog route (to its 'null') matches too, after ours (the operator puts ours first, continuing).
        assert routed == f"{receiver('real-estate', name)},null"
    else:
        assert routed == receiver("real-estate", name)


@pytest.mark.parametrize("labels", [
    # Another tenant's P0, the cluster's own alerts (critical, warning), an alert with no namespace: never ours.
    ["namespace=other-team", "severity=P0", "service=api"],
    ["namespace=monitoring", "severity=critical", "alertname=KubeNodeNotReady"],
    ["severity=warning", "alertname=NodeFilesystemAlmostOutOfSpace"],
])
def test_prods_routing_receives_nothing_but_its_namespaces_alerts(labels, tmp_path):
    assert _route(_write("prod", tmp_path), *labels) == "null"


@pytest.mark.parametrize("labels", [["severity=P0", "service=api"], ["severity=P0", "escalation=3"], ["severity=P3"]])
def test_dev_tells_nobody(labels, tmp_path):
    assert _route(_write("dev", tmp_path), f"namespace={_namespace('dev')}", *labels) == receiver(_namespace("dev"), "log-only")


def test_test_never_tells_prods_people(tmp_path):
    test_config = yaml.safe_load(_write("test", tmp_path / "test").read_text())
    prod = _alerting("prod")
    prod_people = {e for level in ("onCall", "techLead", "management") for e in prod.level(level).emails}
    test_people = {to.strip() for r in test_config["receivers"] for e in r.get("email_configs", []) for to in e["to"].split(",")}
    assert test_people and not test_people & prod_people
    assert all("/dingtalk/oncall/" not in w["url"] and "/dingtalk/techlead/" not in w["url"]
               for r in test_config["receivers"] for w in r.get("webhook_configs", []))


def test_prod_receivers_use_the_channels_of_their_severity_with_credentials_from_the_secret(tmp_path):
    config = yaml.safe_load(_write("prod", tmp_path).read_text())
    receivers = {r["name"].removeprefix("real-estate/incident-routing/"): r for r in config["receivers"]}

    def channels(name: str) -> set[str]:
        r = receivers[name]
        found = {k for k in ("email_configs", "wechat_configs") if k in r}
        for hook in r.get("webhook_configs", []):
            found.add("dingtalk" if "/dingtalk/" in hook.get("url", "") else "sms")
        return found

    assert channels("level1-p0") == {"email_configs", "wechat_configs", "dingtalk", "sms"}
    assert channels("level1-p1") == {"email_configs", "wechat_configs", "dingtalk"}
    assert channels("level1-p2") == {"email_configs", "dingtalk"}
    assert channels("level1-p3") == {"email_configs"}
    assert channels("level2") == {"email_configs", "wechat_configs", "dingtalk", "sms"}
    # Management has no phone or DingTalk configured in prod: e-mail and WeCom only.
    assert channels("level3") == {"email_configs", "wechat_configs"}
    sms = next(h for h in receivers["level1-p0"]["webhook_configs"] if "/dingtalk/" not in h.get("url", ""))
    # The operator reads the whole URL from the Secret; encoded: a bare '+' in a query reads as a space.
    assert sms["url"] == "https://sms.example.com/hook?to=%2B8613800000001"
    assert receivers["level2"]["email_configs"][0]["to"] == "techlead@example.com"
    assert receivers["level1-p0"]["wechat_configs"][0]["api_secret"] == "wecom-stand-in"
    assert receivers["heartbeat"]["webhook_configs"][0]["url"] == "https://hc.example.com/ping/x"
    dingtalk = next(h for h in receivers["level1-p0"]["webhook_configs"] if "/dingtalk/" in h.get("url", ""))
    # prod runs its own bridge beside the platform.
    assert dingtalk["url"] == "http://dingtalk-bridge.real-estate.svc.cluster.local:8060/dingtalk/oncall/send"
    # The operator scopes the inhibition to the namespace too.
    ours = [r for r in config["inhibit_rules"] if 'severity="P0"' in r.get("source_matchers", [])]
    assert ours and all('namespace="real-estate"' in r["source_matchers"] for r in ours)


def _escalation_test(tmp_path: Path, alert_series: dict, eval_time: str, alertname: str,
                     alerting: AlertingSettings | None = None) -> subprocess.CompletedProcess:
    files = write(rendered(alerting or _alerting("prod")), tmp_path / "rules")
    test = {
        "rule_files": [str(p) for p in files],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": s, "values": v}
                                                       for s, v in {**HEALTHY, **alert_series}.items()],
                   "alert_rule_test": [{"eval_time": eval_time, "alertname": alertname, "exp_alerts": []}]}],
    }
    path = tmp_path / "escalation.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run([binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)


# Every source answering, the API up: nothing fires but what a test adds (the same series overridden).
HEALTHY = {**source_series(but="api", values="1x80"), 'up{job="api", namespace="real-estate", pod="api-0"}': "1x80"}
API_DOWN = {'up{job="api", namespace="real-estate", pod="api-0"}': "0x80"}
# Down, then answering for 2 minutes at minute 8, then down again: a flap.
API_FLAPPING = {'up{job="api", namespace="real-estate", pod="api-0"}': "0x7 1x2 0x70"}
CPU_HIGH = {'container_cpu_usage_seconds_total{namespace="real-estate", pod="api-0", container="api", metrics_path="/metrics/cadvisor"}': "0+57x80",
            'kube_pod_container_resource_limits{namespace="real-estate", pod="api-0", container="api", resource="cpu"}': "1x80"}
# A rollback 2 minutes in; the status stays 2 for an hour.
ROLLED_BACK = {'flagger_canary_status{namespace="flagger-system", exported_namespace="real-estate", name="api"}': "0x2 2x80"}


@pytest.mark.parametrize("series, alertname, minute, fires", [
    # ApiDown (P0, for: 1m) fires at 1 min: level 2 15 min later, level 3 45 min later.
    (API_DOWN, "EscalationP0Level2", "15m", False), (API_DOWN, "EscalationP0Level2", "17m", True),
    (API_DOWN, "EscalationP0Level3", "45m", False), (API_DOWN, "EscalationP0Level3", "47m", True),
    # A three-minute flap keeps the alert firing (keep_firing_for): the escalation does not start over.
    (API_FLAPPING, "EscalationP0Level2", "17m", True),
])
def test_a_p0_escalates_after_the_configured_minutes(series, alertname, minute, fires, tmp_path):
    done = _escalation_test(tmp_path, series, minute, alertname)
    if fires:
        output = done.stdout + done.stderr
        assert done.returncode == 1 and 'escalated="ApiDown"' in output and 'incident="ApiDown"' in output, output
        assert 'severity="P0"' in output and "alertstate" not in output.split("got:")[1]
    else:
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_p2_never_escalates(tmp_path):
    for alertname in ("EscalationP0Level2", "EscalationP1Level2", "EscalationP1Level3"):
        done = _escalation_test(tmp_path, CPU_HIGH, "79m", alertname)
        assert done.returncode == 0, done.stdout + done.stderr


def test_an_event_never_escalates_even_when_escalation_is_quicker_than_the_event(tmp_path):
    quick = _alerting("prod").model_copy(update={"escalation": _alerting("prod").escalation.model_copy(update={
        "p1_level2_minutes": 5, "p1_level3_minutes": 10})})
    # CanaryFailed (P1) fires from minute 2 to 32.
    done = _escalation_test(tmp_path, ROLLED_BACK, "20m", "EscalationP1Level2", quick)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_escalation_survives_the_alerts_old_firing_row_beside_its_new_pending_one(tmp_path):
    # Just after a Prometheus restart: the firing row written before it (no stale marker at shutdown) and the pending
    # row of the re-evaluated alert, the same labels otherwise. Both must count as one alert, without a clash.
    before_restart = {'ALERTS{alertname="ApiDown", alertstate="firing", namespace="real-estate", service="api", severity="P0", '
                      'incident="ApiDown"}': "1x20"}
    done = _escalation_test(tmp_path, {**API_DOWN, **before_restart}, "10m", "EscalationP0Level2")
    assert done.returncode == 0, done.stdout + done.stderr
