"""Monitoring and incident routing: who is told what, by which channel, and when an alert escalates.

Severities (docs/runbooks/README.md): P0 system down, act now; P1 core function down; P2 partial; P3 minor.
Escalation levels: 1 on-call, 2 tech lead, 3 management. P0 and P1 climb the levels while they keep firing;
P2 and P3 stay at level 1.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from settings.slo import SloSettings
from settings.values import (
    Cidr, DnsLabel, Image, SemVer, Settings, Text, check_url_authority, matching, numeric_host_problem, port_problem,
)

# Go's net/mail (Alertmanager parses every from and to with it when it sends): a dot-atom local part (no leading,
# trailing or doubled '.') and a domain of DNS labels.
_EMAIL_RE = re.compile(r"(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_SENDER_RE = re.compile(r"(.{1,64}) <([^<>]+)>")
# A display name: ASCII letters, digits, and atext net/mail reads as one phrase (no ',' that would split the list, no
# '"', '<', '>', '(' or '{' that Alertmanager's template would execute). ASCII only: Alertmanager writes the From
# header Q-encoded whole (notify/email), address included, which no mail reader parses once it holds anything else.
_DISPLAY_NAME_RE = re.compile(r"[A-Za-z0-9.'&+/_-]+( [A-Za-z0-9.'&+/_-]+)*")
_HOST_PORT_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*:[0-9]{1,5}")
_PHONE_RE = re.compile(r"\+[1-9][0-9]{6,14}")
_WECOM_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
HTTPS_URL_RE = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?")
_HTTP_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?")

Email = Annotated[str, matching(_EMAIL_RE, "an e-mail address like 'oncall@example.com'")]


def _check_sender(value: str) -> str:
    named = _SENDER_RE.fullmatch(value)
    if not (_EMAIL_RE.fullmatch(named[2]) and _DISPLAY_NAME_RE.fullmatch(named[1]) if named else _EMAIL_RE.fullmatch(value)):
        raise ValueError(f"{value!r} is not a sender like 'alerts@example.com' or 'Platform Alerts <alerts@example.com>' "
                         f"(a display name in ASCII letters, digits, single spaces and . ' & + / _ -)")
    return value


# The From of alert e-mails: an address, or an ASCII display name and the address in angle brackets.
Sender = Annotated[str, AfterValidator(_check_sender)]


def _check_host_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    problem = numeric_host_problem(host) or port_problem(port)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return value


HostPort = Annotated[str, matching(_HOST_PORT_RE, "a host and port like 'smtp.example.com:587'"), AfterValidator(_check_host_port)]
Phone = Annotated[str, matching(_PHONE_RE, "a phone number in E.164 form like '+8613800000000'")]
WecomId = Annotated[str, matching(_WECOM_ID_RE, "a WeCom id (letters, digits, '_', '.', '@', '-')")]
HttpsUrl = Annotated[str, matching(HTTPS_URL_RE, "an https URL without query or fragment"), AfterValidator(check_url_authority)]
HttpUrl = Annotated[str, matching(_HTTP_URL_RE, "an http(s) URL without query or fragment"), AfterValidator(check_url_authority)]

ServiceUrl = Annotated[str, matching(re.compile(
    r"https?://[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.svc(\.cluster\.local)?:[0-9]{1,5}"),
    "a cluster Service's URL like 'http://prometheus.monitoring.svc:9090'"), AfterValidator(check_url_authority)]
LabelKey = Annotated[str, matching(re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"), "a label key")]
LabelValue = Annotated[str, matching(re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"), "a label value")]

LEVELS = ("onCall", "techLead", "management")
SEVERITIES = ("P0", "P1", "P2", "P3")
# Channels of level 1 per severity; levels 2 and 3 use every channel their contacts have.
SEVERITY_CHANNELS = {
    "P0": ("sms", "wecom", "dingtalk", "email"),
    "P1": ("wecom", "dingtalk", "email"),
    "P2": ("dingtalk", "email"),
    "P3": ("email",),
}


class SmtpSettings(Settings):
    smarthost: HostPort
    sender: Sender
    # With a username, the password is the secret config key alertSmtpPassword.
    username: Optional[Text] = None
    require_tls: bool = True


def _whole_number_as_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class WecomSettings(Settings):
    """WeCom (企业微信) through Alertmanager's own WeChat receiver; the app secret is alertWecomApiSecret."""

    corp_id: WecomId
    # YAML reads `agentId: 1000002` as a number; the id is digits either way.
    agent_id: Annotated[str, BeforeValidator(_whole_number_as_text), matching(re.compile(r"[0-9]{1,12}"), "a WeCom agent id (digits)")]
    api_url: HttpsUrl = "https://qyapi.weixin.qq.com/cgi-bin/"

    @model_validator(mode="after")
    def _api_url_is_a_directory(self) -> "WecomSettings":
        # Alertmanager appends 'gettoken' and 'message/send' to it.
        if not self.api_url.endswith("/"):
            raise ValueError("apiUrl must end with '/' (Alertmanager appends 'gettoken' to it)")
        return self


class DingtalkSettings(Settings):
    """DingTalk (钉钉) through a prometheus-webhook-dingtalk bridge: Alertmanager posts to <bridge>/dingtalk/<target>/send.
    deploy: the program runs the bridge (the robot's webhook URL and signing secret are the secrets
    alertDingtalkRobotUrl and alertDingtalkRobotSecret); else bridgeUrl names one you run."""

    deploy: bool = False
    image: Image = "docker.io/timonwong/prometheus-webhook-dingtalk:v2.1.0"
    bridge_url: Optional[HttpUrl] = None
    # The bridge's target per level.
    targets: dict[str, WecomId] = {"onCall": "oncall", "techLead": "techlead", "management": "management"}

    @model_validator(mode="after")
    def _one_bridge(self) -> "DingtalkSettings":
        if self.deploy == (self.bridge_url is not None):
            raise ValueError("set either deploy: true (the program runs the bridge) or bridgeUrl (a bridge you run)")
        if set(self.targets) != set(LEVELS):
            raise ValueError(f"targets must name one target for each of {', '.join(LEVELS)}")
        return self


class ContactSettings(Settings):
    """Who is told at one escalation level, by which channels."""

    emails: Annotated[list[Email], Field(max_length=50)] = []
    sms: Annotated[list[Phone], Field(max_length=50)] = []
    wecom_users: Annotated[list[WecomId], Field(max_length=50)] = []
    dingtalk: bool = False

    def channels(self) -> int:
        return len(self.emails) + len(self.sms) + len(self.wecom_users) + int(self.dingtalk)


class EscalationSettings(Settings):
    """Minutes an alert keeps firing before the next level is told."""

    p0_level2_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    p0_level3_minutes: Annotated[int, Field(ge=2, le=2880)] = 45
    p1_level2_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    p1_level3_minutes: Annotated[int, Field(ge=2, le=2880)] = 240

    @model_validator(mode="after")
    def _levels_in_order(self) -> "EscalationSettings":
        for severity in ("p0", "p1"):
            two, three = getattr(self, f"{severity}_level2_minutes"), getattr(self, f"{severity}_level3_minutes")
            if three <= two:
                raise ValueError(f"{severity}Level3Minutes ({three}) must be more than {severity}Level2Minutes ({two})")
        return self


class AlertTimingSettings(Settings):
    group_wait_seconds: Annotated[int, Field(ge=0, le=600)] = 30
    group_interval_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    repeat_interval_minutes: Annotated[int, Field(ge=5, le=10080)] = 240


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
ClockTime = Annotated[str, matching(re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]|24:00"), "a time of day like '09:00' (24-hour)")]


class BusinessHoursSettings(Settings):
    """When P2 and P3 alerts notify (P0 and P1 always do): outside these hours they wait, firing, and are sent when
    the hours begin. Local time at `utcOffsetHours` (China: 8); Alertmanager's own intervals run in UTC."""

    weekdays: Annotated[list[Weekday], Field(min_length=1, max_length=7)] = ["monday", "tuesday", "wednesday", "thursday", "friday"]
    start: ClockTime = "09:00"
    end: ClockTime = "18:00"
    utc_offset_hours: Annotated[int, Field(ge=-12, le=14)] = 8

    @model_validator(mode="after")
    def _start_before_end(self) -> "BusinessHoursSettings":
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        if len(set(self.weekdays)) != len(self.weekdays):
            raise ValueError("weekdays names a day twice")
        return self


class AlertingSettings(Settings):
    # Off: every alert goes to a receiver that notifies nobody (dev); it still shows in Alertmanager.
    notify: bool = True
    # The always-firing Watchdog goes to an external heartbeat service (healthchecks.io, Dead Man's Snitch, an incident
    # tool's heartbeat) at the secret alertHeartbeatUrl about every 90 s; that service pages when it stops arriving.
    heartbeat: bool = False
    business_hours: BusinessHoursSettings = BusinessHoursSettings()
    smtp: Optional[SmtpSettings] = None
    wecom: Optional[WecomSettings] = None
    dingtalk: Optional[DingtalkSettings] = None
    # SMS through a gateway that takes Alertmanager's webhook; its URL (with any token) is alertSmsWebhookUrl.
    sms_gateway: bool = False
    on_call: ContactSettings = ContactSettings()
    tech_lead: ContactSettings = ContactSettings()
    management: ContactSettings = ContactSettings()
    escalation: EscalationSettings = EscalationSettings()
    timing: AlertTimingSettings = AlertTimingSettings()

    def level(self, name: str) -> ContactSettings:
        return {"onCall": self.on_call, "techLead": self.tech_lead, "management": self.management}[name]

    @model_validator(mode="after")
    def _channels_configured(self) -> "AlertingSettings":
        problems = []
        for name in LEVELS:
            contact = self.level(name)
            if contact.emails and self.smtp is None:
                problems.append(f"{name}.emails needs smtp")
            if contact.wecom_users and self.wecom is None:
                problems.append(f"{name}.wecomUsers needs wecom")
            if contact.dingtalk and self.dingtalk is None:
                problems.append(f"{name}.dingtalk needs dingtalk (deploy: true or bridgeUrl)")
            if contact.sms and not self.sms_gateway:
                problems.append(f"{name}.sms needs smsGateway: true")
            if self.notify and contact.channels() == 0:
                problems.append(f"{name} has no channel: give it emails, sms, wecomUsers or dingtalk (or set notify: false)")

        if problems:
            raise ValueError("; ".join(problems))
        return self


class MonitoringInstallSettings(Settings):
    """kube-prometheus-stack installed by this stack, for a cluster that runs no monitoring (dev on kind)."""

    enabled: bool = False
    # prometheus-community/helm-charts: 88.3.0 is the newest chart bundling prometheus-operator v0.93.0, the CRDs
    # the tests validate against.
    chart_version: SemVer = "88.3.0"
    # At least the SLO window: the error budget is computed over what Prometheus still holds.
    retention: Annotated[str, matching(re.compile(r"[1-9][0-9]{0,3}[hdw]"), "a retention like '7d' (hours, days or weeks)")] = "30d"

    def retention_days(self) -> float:
        return int(self.retention[:-1]) * {"h": 1 / 24, "d": 1, "w": 7}[self.retention[-1]]


class ProbeSettings(Settings):
    """Availability seen from outside the pods: a blackbox exporter this stack runs fetches the public URL every
    interval through the same DNS name, Gateway, certificate and route users take — /ready, /version and one
    authenticated recommendation — for the cluster's Prometheus (Probe objects; components/probes.py)."""

    enabled: bool = False
    image: Image = "quay.io/prometheus/blackbox-exporter:v0.28.0"
    interval_seconds: Annotated[int, Field(ge=10, le=300)] = 30
    # The public base URL; unset: https://<ingress.host> (http:// without ingress.tls).
    url: Optional[HttpUrl] = None
    # The public URL's addresses (its load balancer's), the only ones outside the cluster the probes may reach;
    # empty: any public address on the URL's port.
    cidrs: Annotated[list[Cidr], Field(max_length=16)] = []


class MonitoringSettings(Settings):
    # ServiceMonitors, PrometheusRules and the Alertmanager Secret; needs the prometheus-operator's CRDs in the cluster.
    enabled: bool = True
    # Labels the cluster's Prometheus selects its ServiceMonitors and rules by (kube-prometheus-stack: `release`).
    selector_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=8)] = {}
    # The namespace whose Prometheus scrapes the platform's metrics ports; its Alertmanager reads the routing Secret.
    namespace: DnsLabel = "monitoring"
    # Where docs/runbooks is published; alerts link <runbookBaseUrl>/<page>.md. Unset: the repository path.
    runbook_base_url: Optional[HttpsUrl] = None
    # The cluster's Prometheus and Alertmanager Services: after every deploy the release scripts ask them (through the
    # API server's Service proxy) whether they loaded this stack's rules, scrape its API and route its alerts.
    # With install.enabled, the chart's own.
    prometheus_url: Optional[ServiceUrl] = None
    alertmanager_url: Optional[ServiceUrl] = None
    alerting: AlertingSettings = AlertingSettings(notify=False)
    slos: SloSettings = SloSettings()
    probes: ProbeSettings = ProbeSettings()
    install: MonitoringInstallSettings = MonitoringInstallSettings()

    @property
    def deploys_dingtalk_bridge(self) -> bool:
        """The program runs the DingTalk bridge: monitoring on, people notified, dingtalk.deploy."""
        dingtalk = self.alerting.dingtalk
        return self.enabled and self.alerting.notify and dingtalk is not None and dingtalk.deploy

    @model_validator(mode="after")
    def _install_needs_the_objects(self) -> "MonitoringSettings":
        if self.install.enabled and not self.enabled:
            raise ValueError("install.enabled installs a monitoring stack for this stack's objects: it needs enabled: true")
        if self.install.enabled and (self.prometheus_url or self.alertmanager_url):
            raise ValueError("prometheusUrl and alertmanagerUrl are the installed chart's with install.enabled: leave them unset")
        if self.install.enabled and self.slos.objectives() and self.install.retention_days() < self.slos.window_days:
            raise ValueError(f"install.retention {self.install.retention} is shorter than slos.windowDays "
                             f"({self.slos.window_days} days): the error budget would be computed over less than its window; "
                             f"keep {self.slos.window_days}d or more")
        return self
