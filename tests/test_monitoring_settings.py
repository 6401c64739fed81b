"""The monitoring and incident-routing settings at their edges: every pattern with the longest valid and the shortest
too-long value and one character from each range of each class, every bound on both sides, every default, and each
cross-key rule with the exact message a stack file's author reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings.monitoring import (
    AlertingSettings,
    AlertTimingSettings,
    ContactSettings,
    DingtalkSettings,
    Email,
    EscalationSettings,
    HostPort,
    HttpsUrl,
    HttpUrl,
    LabelKey,
    LabelValue,
    MonitoringInstallSettings,
    MonitoringSettings,
    Phone,
    SmtpSettings,
    WecomId,
    WecomSettings,
)
from tests.test_values import accepts, errors, message

SMTP = {"smarthost": "smtp.example.com:587", "sender": "alerts@example.com"}
WECOM = {"corp_id": "corp", "agent_id": "1000002"}


@pytest.mark.parametrize("value,ok", [
    ("a" * 64 + "@example.com", True), ("a" * 65 + "@example.com", False),
    ("x@" + "b" * 63 + ".com", True), ("x@" + "b" * 64 + ".com", False),
    ("x@example." + "c" * 63, True), ("x@example." + "c" * 64, False),
    ("A@A.A", True), ("z@z.z", True), ("9@9.9", True), ("first.last+tag%_-@mail-1.example.com", True),
    ("x@example", False), ("@example.com", False), ("x@.com", False), ("x@example.", False), ("x y@example.com", False),
])
def test_email_addresses(value, ok):
    assert accepts(Email, value) is ok


@pytest.mark.parametrize("value,ok", [
    # net/mail's dot-atom: a '.' only between characters; a domain of DNS labels.
    (".a@example.com", False), ("a.@example.com", False), ("a..b@example.com", False), ("a.b.c@example.com", True),
    ("x@-a.com", False), ("x@a-.com", False), ("x@a-b.com", True), ("x@a..com", False),
    ("x@example.c" + "c" * 61 + "c", True), ("x@9a.com", True), ("x@aza.com", True), ("x@a9.com", True),
    ("_@a.com", True), ("%@a.com", True), ("+@a.com", True), ("-@a.com", True), ("z@a.com", True), ("9@a.com", True),
    ("Z@a.com", True), ("x@Z.com", True), ("x@a.Z", True), ("x@a.9", True), ("x@a.zZz", True), ("x@zZz.com", True),
    ("x@a9z.b9z", True),
])
def test_email_addresses_as_go_parses_them(value, ok):
    assert accepts(Email, value) is ok


@pytest.mark.parametrize("value,ok", [
    ("alerts@example.com", True), ("Platform Alerts <alerts@example.com>", True), ("运维告警 <alerts@example.com>", False),
    ("हिन्दी अलर्ट <alerts@example.com>", False), ("Zz Az 09 <a@example.com>", True), ("O'Neil & Co. <a@example.com>", True), ("a/b+c_d-e <a@example.com>", True),
    ("N" * 64 + " <a@example.com>", True), ("N" * 65 + " <a@example.com>", False), ("9 <a@example.com>", True),
    # what would split the list, quote, comment, or run as Alertmanager's template; spaces at the ends; a bad address
    ("Ops, Team <a@example.com>", False), ('"Ops" <a@example.com>', False), ("Ops (prod) <a@example.com>", False),
    ("{{ .Status }} <a@example.com>", False), (" Ops <a@example.com>", False), ("Ops  <a@example.com>", False),
    ("Ops <a..b@example.com>", False), ("Ops<a@example.com>", False), ("Ops <a@example.com> ", False),
    ("\u0301Ops <a@example.com>", False), ("Ops <>", False), (" <a@example.com>", False), ("<a@example.com>", False),
    ("Ops\n <a@example.com>", False), ("Ops <a@example.com, b@example.com>", False),
])
def test_senders_with_a_display_name(value, ok):
    from settings.monitoring import Sender

    assert accepts(Sender, value) is ok


def test_sender_message():
    from settings.monitoring import Sender

    assert message(Sender, "Ops, Team <a@example.com>") == (
        "Value error, 'Ops, Team <a@example.com>' is not a sender like 'alerts@example.com' or "
        "'Platform Alerts <alerts@example.com>' (a display name in ASCII letters, digits, single spaces and . ' & + / _ -)")


@pytest.mark.parametrize("value,ok", [
    ("a:1", True), ("9a:1", True), ("a9a:1", True), ("aza:1", True), ("a-a:1", True), ("a9:1", True), ("az:1", True),
    ("a.9a:1", True), ("a.z:1", True), ("a.a9a:1", True), ("a.aza:1", True), ("a.a9:1", True), ("a.az:1", True),
    ("a" * 63 + ":1", True), ("a" * 64 + ":1", False), ("a." + "b" * 63 + ":1", True), ("a." + "b" * 64 + ":1", False),
    ("a:12345", True), ("a:123456", False), ("a:", False), ("a", False), ("-a:1", False), ("a-:1", False),
    ("A:1", False), ("a..b:1", False), ("a:1x", False),
    # A port a dialer can use; a host that is a name or an address as written (Go refuses leading zeros).
    ("a:65535", True), ("a:65536", False), ("a:0", False), ("a:00025", True), ("10.0.0.1:25", True),
    ("010.0.0.1:25", False), ("9:1", False), ("a.9:1", False), ("mail.1:25", False),
])
def test_host_and_port(value, ok):
    assert accepts(HostPort, value) is ok


@pytest.mark.parametrize("value,ok", [
    ("+1" + "0" * 6, True), ("+1" + "0" * 5, False), ("+1" + "0" * 14, True), ("+1" + "0" * 15, False),
    ("+9" + "9" * 6, True), ("+0" + "1" * 6, False), ("1" * 8, False), ("+1" + "0" * 5 + "x", False),
])
def test_phone_numbers_in_e164(value, ok):
    assert accepts(Phone, value) is ok


@pytest.mark.parametrize("value,ok", [
    ("A", True), ("z", True), ("9", True), ("_.@-", True), ("a" * 64, True), ("a" * 65, False), ("", False),
    ("a b", False), ("a/b", False),
])
def test_wecom_ids(value, ok):
    assert accepts(WecomId, value) is ok


@pytest.mark.parametrize("kind", [HttpsUrl, HttpUrl])
@pytest.mark.parametrize("value,ok", [
    ("https://A", True), ("https://z", True), ("https://9a", True), ("https://a.b-c", True),
    ("https://a:12345", True), ("https://a:123456", False), ("https://a:", False),
    ("https://a:65535", True), ("https://a:65536/x", False), ("https://a:0", False), ("https://9", False),
    ("https://10.0.0.1:8443/x", True), ("https://010.0.0.1/x", False), ("https://a.1/x", False),
    ("https://a/A", True), ("https://a/z", True), ("https://a/9", True), ("https://a/x._~%/-y", True),
    ("https://", False), ("https:///path", False), ("https://a?q=1", False), ("https://a#f", False),
    ("https://a/b c", False), ("ftp://a", False),
])
def test_urls(kind, value, ok):
    assert accepts(kind, value) is ok


def test_only_http_url_takes_plain_http():
    assert accepts(HttpUrl, "http://bridge:8060/dingtalk") and not accepts(HttpsUrl, "http://bridge:8060/dingtalk")
    assert message(HttpsUrl, "http://a") == "Value error, 'http://a' is not an https URL without query or fragment"


@pytest.mark.parametrize("value,ok", [
    ("A", True), ("z", True), ("9", True), ("aAa", True), ("aza", True), ("a9a", True), ("a-_.a", True),
    ("aA", True), ("az", True), ("a9", True), ("a" * 63, True), ("a" * 64, False), ("-a", False), ("a-", False),
    ("9/k", True), ("z/k", True), ("a9a/k", True), ("aza/k", True), ("a.-a/k", True), ("a9/k", True), ("az/k", True),
    ("a" * 253 + "/k", True), ("a" * 254 + "/k", False), ("A/k", False), ("a-/k", False), ("/k", False), ("a/", False),
])
def test_label_keys(value, ok):
    assert accepts(LabelKey, value) is ok


@pytest.mark.parametrize("value,ok", [
    ("", True), ("A", True), ("z", True), ("9", True), ("aAa", True), ("aza", True), ("a9a", True), ("a-_.a", True),
    ("aA", True), ("az", True), ("a9", True), ("a" * 63, True), ("a" * 64, False), ("-a", False), ("a.", False),
    ("a/b", False),
])
def test_label_values(value, ok):
    assert accepts(LabelValue, value) is ok


def test_smtp_and_wecom_values():
    smtp = SmtpSettings(**SMTP)
    assert (smtp.username, smtp.require_tls) == (None, True)
    assert WecomSettings(**WECOM).api_url == "https://qyapi.weixin.qq.com/cgi-bin/"
    assert WecomSettings(**{**WECOM, "agent_id": "1" * 12}).agent_id == "1" * 12
    # YAML's `agentId: 1000002` is a number: the same id.
    assert WecomSettings(**{**WECOM, "agent_id": 1000002}).agent_id == "1000002"
    assert "'-3' is not a WeCom agent id (digits)" in errors(WecomSettings, **{**WECOM, "agent_id": -3})[0]
    assert "'' is not a WeCom agent id (digits)" in errors(WecomSettings, **{**WECOM, "agent_id": ""})[0]
    for not_an_id in (True, 1.5):
        assert errors(WecomSettings, **{**WECOM, "agent_id": not_an_id}) == ["Input should be a valid string"]
    assert "'1111111111111' is not a WeCom agent id (digits)" in errors(WecomSettings, **{**WECOM, "agent_id": "1" * 13})[0]
    assert errors(WecomSettings, **WECOM, api_url="https://wecom.example.com/cgi-bin") == [
        "Value error, apiUrl must end with '/' (Alertmanager appends 'gettoken' to it)"]
    assert WecomSettings(**WECOM, api_url="https://wecom.example.com/cgi-bin/").api_url.endswith("/")


def test_dingtalk_runs_one_bridge_with_a_target_per_level():
    deployed = DingtalkSettings(deploy=True)
    assert (deployed.image, deployed.bridge_url, deployed.targets) == (
        "docker.io/timonwong/prometheus-webhook-dingtalk:v2.1.0", None,
        {"onCall": "oncall", "techLead": "techlead", "management": "management"})
    assert DingtalkSettings(bridge_url="http://bridge:8060").deploy is False
    one_bridge = "Value error, set either deploy: true (the program runs the bridge) or bridgeUrl (a bridge you run)"
    assert errors(DingtalkSettings) == [one_bridge]
    assert errors(DingtalkSettings, deploy=True, bridge_url="http://bridge:8060") == [one_bridge]
    every_level = "Value error, targets must name one target for each of onCall, techLead, management"
    assert errors(DingtalkSettings, deploy=True, targets={"onCall": "a", "techLead": "b"}) == [every_level]
    assert errors(DingtalkSettings, deploy=True, targets={"onCall": "a", "techLead": "b", "management": "c", "ceo": "d"}) == [every_level]


def test_contacts_count_their_channels_up_to_fifty_each():
    assert ContactSettings().model_dump() == {"emails": [], "sms": [], "wecom_users": [], "dingtalk": False}
    assert ContactSettings().channels() == 0
    contact = ContactSettings(emails=["a@example.com", "b@example.com"], sms=["+8613800000000"], wecom_users=["u"], dingtalk=True)
    assert contact.channels() == 5
    assert ContactSettings(dingtalk=True).channels() == 1
    for field, value in (("emails", "a@example.com"), ("sms", "+8613800000000"), ("wecom_users", "u")):
        assert len(getattr(ContactSettings(**{field: [value] * 50}), field)) == 50
        with pytest.raises(ValidationError):
            ContactSettings(**{field: [value] * 51})


def test_escalation_defaults_and_order():
    assert EscalationSettings().model_dump() == {
        "p0_level2_minutes": 15, "p0_level3_minutes": 45, "p1_level2_minutes": 60, "p1_level3_minutes": 240}
    for severity in ("p0", "p1"):
        assert errors(EscalationSettings, **{f"{severity}_level2_minutes": 30, f"{severity}_level3_minutes": 30}) == [
            f"Value error, {severity}Level3Minutes (30) must be more than {severity}Level2Minutes (30)"]
        assert getattr(EscalationSettings(**{f"{severity}_level2_minutes": 30, f"{severity}_level3_minutes": 31}),
                       f"{severity}_level3_minutes") == 31


@pytest.mark.parametrize("severity", ["p0", "p1"])
def test_escalation_bounds_on_both_sides(severity):
    two, three = f"{severity}_level2_minutes", f"{severity}_level3_minutes"
    assert getattr(EscalationSettings(**{two: 1, three: 2}), three) == 2
    assert getattr(EscalationSettings(**{two: 1440, three: 2880}), two) == 1440
    assert errors(EscalationSettings, **{two: 0, three: 2})[0] == "Input should be greater than or equal to 1"
    assert errors(EscalationSettings, **{two: 1, three: 1})[0] == "Input should be greater than or equal to 2"
    assert errors(EscalationSettings, **{two: 1441, three: 2880})[0] == "Input should be less than or equal to 1440"
    assert errors(EscalationSettings, **{two: 1, three: 2881})[0] == "Input should be less than or equal to 2880"


@pytest.mark.parametrize("field,low_ok,low_bad,high_ok,high_bad", [
    ("group_wait_seconds", 0, -1, 600, 601),
    ("group_interval_seconds", 10, 9, 3600, 3601),
    ("repeat_interval_minutes", 5, 4, 10080, 10081),
])
def test_alert_timing_bounds_on_both_sides(field, low_ok, low_bad, high_ok, high_bad):
    for value in (low_ok, high_ok):
        assert getattr(AlertTimingSettings(**{field: value}), field) == value
    for value in (low_bad, high_bad):
        with pytest.raises(ValidationError):
            AlertTimingSettings(**{field: value})


def test_alerting_defaults():
    assert AlertTimingSettings().model_dump() == {
        "group_wait_seconds": 30, "group_interval_seconds": 300, "repeat_interval_minutes": 240}
    quiet = AlertingSettings(notify=False)
    assert (quiet.smtp, quiet.wecom, quiet.dingtalk, quiet.sms_gateway) == (None, None, None, False)
    assert quiet.escalation == EscalationSettings() and quiet.timing == AlertTimingSettings()
    assert quiet.on_call == quiet.tech_lead == quiet.management == ContactSettings()
    # Notifying is the default: a stack that says nothing about it must name who is told.
    assert errors(AlertingSettings)[0].startswith("Value error, onCall has no channel")


def test_each_level_reads_its_own_contacts():
    alerting = AlertingSettings(notify=False, on_call={"sms": ["+8613800000001"]}, tech_lead={"sms": ["+8613800000002"]},
                                management={"sms": ["+8613800000003"]}, sms_gateway=True)
    assert [alerting.level(name).sms for name in ("onCall", "techLead", "management")] == [
        ["+8613800000001"], ["+8613800000002"], ["+8613800000003"]]


def test_every_channel_needs_its_transport_and_every_level_a_channel():
    assert errors(AlertingSettings, on_call={"emails": ["a@example.com"]}, tech_lead={"wecom_users": ["u"]},
                  management={"dingtalk": True}) == [
        "Value error, onCall.emails needs smtp; techLead.wecomUsers needs wecom; "
        "management.dingtalk needs dingtalk (deploy: true or bridgeUrl)"]
    assert errors(AlertingSettings, on_call={"sms": ["+8613800000000"]}, tech_lead={"sms": ["+8613800000000"]},
                  management={"sms": ["+8613800000000"]}) == [
        "Value error, onCall.sms needs smsGateway: true; techLead.sms needs smsGateway: true; management.sms needs smsGateway: true"]
    assert errors(AlertingSettings, smtp=SMTP, on_call={"emails": ["a@example.com"]}) == [
        "Value error, techLead has no channel: give it emails, sms, wecomUsers or dingtalk (or set notify: false); "
        "management has no channel: give it emails, sms, wecomUsers or dingtalk (or set notify: false)"]
    complete = AlertingSettings(smtp=SMTP, wecom=WECOM, dingtalk={"deploy": True}, sms_gateway=True,
                                on_call={"emails": ["a@example.com"]}, tech_lead={"wecom_users": ["u"]},
                                management={"dingtalk": True, "sms": ["+8613800000000"]})
    assert complete.notify is True
    # Not notifying: transports are still checked, empty levels are allowed.
    assert errors(AlertingSettings, notify=False, on_call={"emails": ["a@example.com"]}) == ["Value error, onCall.emails needs smtp"]


def test_monitoring_defaults():
    monitoring = MonitoringSettings()
    assert (monitoring.enabled, monitoring.selector_labels, monitoring.namespace, monitoring.runbook_base_url) == (
        True, {}, "monitoring", None)
    assert monitoring.alerting == AlertingSettings(notify=False)
    assert MonitoringInstallSettings().model_dump() == {"enabled": False, "chart_version": "88.3.0", "retention": "30d"}
    assert monitoring.install == MonitoringInstallSettings()


@pytest.mark.parametrize("value,ok", [
    ("1h", True), ("9999d", True), ("99999d", False), ("2w", True), ("0d", False), ("7", False), ("7m", False),
])
def test_retention(value, ok):
    assert (MonitoringInstallSettings(retention=value).retention == value) if ok else bool(
        errors(MonitoringInstallSettings, retention=value))


def test_selector_labels_up_to_eight():
    eight = {f"k{i}": "v" for i in range(8)}
    assert MonitoringSettings(selector_labels=eight).selector_labels == eight
    with pytest.raises(ValidationError):
        MonitoringSettings(selector_labels={**eight, "k8": "v"})


def test_the_dingtalk_bridge_runs_only_when_everything_asks_for_it():
    notifying = {"notify": True, "dingtalk": {"deploy": True}, "on_call": {"dingtalk": True},
                 "tech_lead": {"dingtalk": True}, "management": {"dingtalk": True}}
    assert MonitoringSettings(alerting=notifying).deploys_dingtalk_bridge is True
    assert MonitoringSettings(enabled=False, alerting=notifying).deploys_dingtalk_bridge is False
    assert MonitoringSettings(alerting={**notifying, "notify": False}).deploys_dingtalk_bridge is False
    assert MonitoringSettings(alerting={**notifying, "dingtalk": {"bridge_url": "http://bridge:8060"}}).deploys_dingtalk_bridge is False
    assert MonitoringSettings(alerting={"notify": False}).deploys_dingtalk_bridge is False


def test_installing_monitoring_needs_its_objects():
    assert MonitoringSettings(install={"enabled": True}).install.enabled is True
    assert errors(MonitoringSettings, enabled=False, install={"enabled": True}) == [
        "Value error, install.enabled installs a monitoring stack for this stack's objects: it needs enabled: true"]
    assert MonitoringSettings(enabled=False).enabled is False
    # With the chart installed, its own Services are asked: either URL named is one too many.
    unset = "Value error, prometheusUrl and alertmanagerUrl are the installed chart's with install.enabled: leave them unset"
    for url in ({"prometheus_url": "http://p.monitoring.svc:9090"}, {"alertmanager_url": "http://a.monitoring.svc:9093"}):
        assert errors(MonitoringSettings, install={"enabled": True}, **url) == [unset]
        assert MonitoringSettings(**url).install.enabled is False


def test_probe_defaults_and_bounds():
    from settings.monitoring import ProbeSettings

    assert ProbeSettings().model_dump() == {"enabled": False, "image": "quay.io/prometheus/blackbox-exporter:v0.28.0", "cidrs": [],
                                            "interval_seconds": 30, "url": None}
    assert ProbeSettings(interval_seconds=10).interval_seconds == 10 and ProbeSettings(interval_seconds=300).interval_seconds == 300
    assert errors(ProbeSettings, interval_seconds=9) == ["Input should be greater than or equal to 10"]
    assert errors(ProbeSettings, interval_seconds=301) == ["Input should be less than or equal to 300"]
    assert ProbeSettings(url="https://api.example.com:8443/base").url == "https://api.example.com:8443/base"
    assert errors(ProbeSettings, url="https://api.example.com/?key=1\n") == [
        "Value error, 'https://api.example.com/?key=1\\n' is not an http(s) URL without query or fragment"]


def test_an_installed_prometheus_keeps_the_slo_window():
    from settings.slo import SloSettings

    assert MonitoringSettings(install={"enabled": True, "retention": "30d"}).install.retention_days() == 30
    assert MonitoringSettings(install={"enabled": True, "retention": "5w"}).install.retention_days() == 35
    assert errors(MonitoringSettings, install={"enabled": True, "retention": "719h"}) == [
        "Value error, install.retention 719h is shorter than slos.windowDays (30 days): the error budget would be computed "
        "over less than its window; keep 30d or more"]
    # A shorter window, or no objective at all, needs no more.
    assert MonitoringSettings(install={"enabled": True, "retention": "7d"}, slos=SloSettings(window_days=7)).slos.window_days == 7
    none = SloSettings(availability=None, latency=None, recommendation_success=None, valuation_accuracy=None)
    assert MonitoringSettings(install={"enabled": True, "retention": "1d"}, slos=none).install.retention == "1d"


@pytest.mark.parametrize("value,ok", [
    ("http://prometheus.monitoring.svc:9090", True), ("https://a.b.svc.cluster.local:65535", True),
    ("http://prometheus.monitoring.svc:12345", True), ("http://prometheus.monitoring.svc:123456", False),
    ("http://prometheus.monitoring.svc", False), ("http://prometheus.svc:9090", False), ("http://Prom.monitoring.svc:9090", False),
    ("http://prometheus.monitoring.svc:65536", False), ("http://prometheus.monitoring.svc:0", False),
])
def test_service_urls(value, ok):
    from settings.monitoring import ServiceUrl

    assert accepts(ServiceUrl, value) is ok


def test_severities_levels_and_the_channels_each_severity_wakes():
    from settings.monitoring import LEVELS, SEVERITIES, SEVERITY_CHANNELS

    assert SEVERITIES == ("P0", "P1", "P2", "P3")
    assert LEVELS == ("onCall", "techLead", "management")
    assert SEVERITY_CHANNELS == {
        "P0": ("sms", "wecom", "dingtalk", "email"),
        "P1": ("wecom", "dingtalk", "email"),
        "P2": ("dingtalk", "email"),
        "P3": ("email",),
    }


@pytest.mark.parametrize("day", ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
def test_every_weekday_is_a_business_day_one_may_name(day):
    from settings.monitoring import WEEKDAYS, BusinessHoursSettings

    assert BusinessHoursSettings(weekdays=[day]).weekdays == [day]
    assert WEEKDAYS.index(day) == ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"].index(day)
    assert errors(BusinessHoursSettings, weekdays=[day.capitalize()])[0].startswith("Input should be 'monday'")


@pytest.mark.parametrize("value,ok", [
    ("00:00", True), ("09:30", True), ("19:59", True), ("23:59", True), ("24:00", True), ("24:01", False), ("25:00", False),
    ("9:00", False), ("09:60", False), ("09:5", False), ("12:00 ", False), ("noon", False),
])
def test_business_hours_times_of_day(value, ok):
    from settings.monitoring import ClockTime

    assert accepts(ClockTime, value) is ok


def test_business_hours_defaults_and_order():
    from settings.monitoring import BusinessHoursSettings

    default = BusinessHoursSettings()
    assert (default.weekdays, default.start, default.end, default.utc_offset_hours) == (
        ["monday", "tuesday", "wednesday", "thursday", "friday"], "09:00", "18:00", 8)
    assert errors(BusinessHoursSettings, start="18:00", end="09:00") == ["Value error, start (18:00) must be before end (09:00)"]
    assert errors(BusinessHoursSettings, start="09:00", end="09:00") == ["Value error, start (09:00) must be before end (09:00)"]
    assert BusinessHoursSettings(start="00:00", end="24:00").end == "24:00"
    assert errors(BusinessHoursSettings, weekdays=["monday", "monday"]) == ["Value error, weekdays names a day twice"]


@pytest.mark.parametrize("character,ok", [("a", True), ("Z", True), ("0", True), ("9", True), ("'", True), ("&", True),
                                          ("é", False), ("\u0301", False), ("٣", False), ("!", False), ("€", False)])
def test_a_display_name_is_ascii_as_the_from_header_alertmanager_writes_needs(character, ok):
    from settings.monitoring import Sender

    assert accepts(Sender, f"Ops{character}Team <a@example.com>") is ok
