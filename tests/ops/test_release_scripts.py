"""`make up`, the promotion and the rollback (ops/release/) with pulumi, kubectl, kind and docker replaced by fakes
on PATH (tests/ops/fake_tools.py): their checks, the order of what they run, and their failure exits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ops.release import (
    monitoring_check,
    plan as plan_module,
    preflight,
    promote,
    release as release_module,
    rollback,
    shell,
    stack as stack_module,
    up,
    verify,
)
from ops.release.stages import configured_stages
from ops.release.shell import Failed, main

FAKE = Path(__file__).resolve().parent / "fake_tools.py"
ROOT = Path(__file__).resolve().parents[2]
DIGEST = "registry.example.com/real-estate-ai/real-estate-api@sha256:" + "1" * 64
OLD_DIGEST = "registry.example.com/real-estate-ai/real-estate-api@sha256:" + "0" * 64
ROUTE = {"/ready": [200, {"status": "ok"}], "/version": [200, {"name": "real-estate-ai", "version": "1.0.0"}]}
# The kubectl queries the scripts make of a Deployment: its pod template (has it changed?) and its API image.
TEMPLATE = "jsonpath={.spec.template}"
IMAGE = 'jsonpath={.spec.template.spec.containers[?(@.name=="api")].image}'
DEV_IMAGE = "real-estate-api:1.0.0-0123456789ab"


def _postgres(generation=2, observed=2, theirs_observed=3, updated=2, ready=2, state="ready") -> dict:
    """PostgreSQL's two objects as `kubectl get perconapgcluster/postgres postgrescluster.../postgres` lists them."""
    return {"kind": "List", "items": [
        {"kind": "PerconaPGCluster", "metadata": {"name": "postgres", "generation": generation},
         "status": {"observedGeneration": observed, "state": state}},
        {"kind": "PostgresCluster", "metadata": {"name": "postgres", "generation": 3},
         "status": {"observedGeneration": theirs_observed,
                    "instances": [{"name": "instance1", "replicas": 2, "updatedReplicas": updated, "readyReplicas": ready}]}}]}


# Every scenario's PostgreSQL has rolled out unless the scenario says otherwise (its rules come first).
POSTGRES_ROLLED_OUT = [{"args": ["get", "perconapgcluster/postgres"], "stdout": json.dumps(_postgres())}]
PROMETHEUS = "/api/v1/namespaces/monitoring/services/http:kube-prometheus-kube-prome-prometheus:9090/proxy"
ALERTMANAGER = "/api/v1/namespaces/monitoring/services/http:kube-prometheus-kube-prome-alertmanager:9093/proxy"


def _monitoring(without: str = "") -> list[dict]:
    """What the cluster's Prometheus and Alertmanager answer once they took every stack of the repository (`without`
    one of rules, watchdog, targets, probes, routing). Answered through the API server's Service proxy."""
    stacks = [stack_module.Stack.load(f.name[len("Pulumi."):-len(".yaml")]) for f in sorted(stack_module.STACK_DIR.glob("Pulumi.*.yaml"))]
    groups = [{"name": name, "file": f"/etc/prometheus/rules/prometheus-rulefiles-0/{s.namespace}-{obj}-0f1e2d.yaml"}
              for s in stacks for obj, names in monitoring_check.expected_groups(s).items() for name in sorted(names)
              if without != "rules"]
    alerts = [{"labels": {"alertname": "Watchdog", "namespace": s.namespace}, "state": "firing"} for s in stacks if without != "watchdog"]
    targets = [{"labels": {"job": job, "namespace": s.namespace}, "health": "up" if without != what else "down",
                "lastError": "context deadline exceeded"}
               for s in stacks for job, what in (("api", "targets"), ("blackbox", "probes"))]
    routing = "".join(f"- name: {s.namespace}/incident-routing/log-only\n" for s in stacks if without != "routing")
    return [{"args": ["get", "--raw", f"{PROMETHEUS}/api/v1/rules"], "stdout": json.dumps({"data": {"groups": groups}})},
            {"args": ["get", "--raw", f"{PROMETHEUS}/api/v1/alerts"], "stdout": json.dumps({"data": {"alerts": alerts}})},
            {"args": ["get", "--raw", f"{PROMETHEUS}/api/v1/targets?state=active"],
             "stdout": json.dumps({"data": {"activeTargets": targets}})},
            {"args": ["get", "--raw", f"{ALERTMANAGER}/api/v2/status"],
             "stdout": json.dumps({"config": {"original": f"receivers:\n{routing}"}})}]
# dev's Deployment: created by the up, running the image built.
SERVED = [{"args": ["get", "deployment", "api", TEMPLATE], "stdout": ["", '{"spec": "new"}']},
          {"args": ["get", "deployment", "api", IMAGE], "stdout": DEV_IMAGE}]


class Fakes:
    def __init__(self, directory: Path):
        self.bin = directory / "bin"
        self.bin.mkdir()
        self.log = directory / "calls.log"
        self.log.write_text("")
        self.scenario_file = directory / "scenario.json"
        self.scenario_file.write_text("{}")

    def install(self, *tools: str) -> None:
        for tool in tools:
            (self.bin / tool).symlink_to(FAKE)

    def scenario(self, scenario: dict) -> None:
        """A new scenario: its answer sequences start again."""
        scenario = {**scenario, "kubectl": [*scenario.get("kubectl", []), *POSTGRES_ROLLED_OUT, *_monitoring()]}
        self.scenario_file.write_text(json.dumps(scenario))
        for counter in self.log.parent.glob("count-*"):
            counter.unlink()

    def calls(self, tool: str | None = None) -> list[list[str]]:
        found = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [c[1:] for c in found if c[0] == tool] if tool else found


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    found = Fakes(tmp_path)
    monkeypatch.setenv("PATH", f"{found.bin}:/usr/bin:/bin")
    # A developer's ./bin (make tools) must not come before the fakes.
    monkeypatch.setattr(shell, "PINNED_BIN", tmp_path / "no-pinned-tools")
    monkeypatch.setenv("FAKE_LOG", str(found.log))
    monkeypatch.setenv("FAKE_SCENARIO", str(found.scenario_file))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    for variable in ("CI", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    monkeypatch.setattr(plan_module, "PLANS", tmp_path / "plans")
    # What a stack needs of its cluster is ops/release/prerequisites.py's, tested on its own and in the e2e.
    monkeypatch.setattr(preflight, "problems", lambda stack, registrations=None: [])
    monkeypatch.setattr(verify, "ROUTE_ATTEMPTS", 2)
    monkeypatch.setattr(verify, "ROUTE_PAUSE_SECONDS", 0.05)
    monkeypatch.setattr(verify, "ERROR_RATE_PAUSE_SECONDS", 0.05)
    monkeypatch.setattr(stack_module, "POLL_SECONDS", 0.01)
    return found


def _up_scenario(**changes) -> dict:
    scenario = {
        "docker": [{"args": ["info"], "stdout": "27.3.1"}],
        "kind": [{"args": ["get", "clusters"], "stdout": "other\n"}],
        "kubectl": [{"args": ["get", "service"], "stdout": "envoy-real-estate-dev-api-1a2b3c4d"},
                    {"args": ["get", "deployment", "api", TEMPLATE], "stdout": ["", '{"spec": "new"}']},
                    {"args": ["get", "deployment", "api", IMAGE], "stdout": DEV_IMAGE},
                    {"args": ["port-forward"], "serve": ROUTE}],
        "pulumi": [{"args": ["stack", "output", "apiImage"], "stdout": DEV_IMAGE + "\n"}],
    }
    scenario.update(changes)
    return scenario


def test_the_pinned_tools_come_first_for_every_script(fakes, monkeypatch, tmp_path):
    monkeypatch.setattr(shell, "PINNED_BIN", tmp_path / "pinned")
    first = []
    assert main(lambda argv: first.append(os.environ["PATH"].split(os.pathsep)[0]), []) == 0
    assert first == [str(tmp_path / "pinned")]


def test_up_names_every_missing_tool_and_runs_nothing(fakes, capsys):
    fakes.install("kubectl")
    assert main(up.up, []) == 1
    err = capsys.readouterr().err
    assert "pulumi is not installed; install the Pulumi CLI 3.276.0 (.pulumi-version): https://www.pulumi.com/docs/install/" in err
    assert "kind is not installed; run `make tools`" in err and "docker is not installed; install Docker:" in err
    assert "kubectl is not installed" not in err
    assert fakes.calls() == []


def test_up_stops_when_dockers_daemon_is_down(fakes, capsys):
    fakes.install("pulumi", "kind", "kubectl", "docker")
    fakes.scenario(_up_scenario(docker=[{"args": ["info"], "exit": 1}]))
    assert main(up.up, []) == 1
    assert "FAILED: Docker is installed but its daemon does not answer (start it)" in capsys.readouterr().err
    assert fakes.calls("kind") == [] and fakes.calls("pulumi") == []


def test_up_creates_the_cluster_deploys_waits_and_verifies(fakes, capsys):
    fakes.install("pulumi", "kind", "kubectl", "docker")
    fakes.scenario(_up_scenario())
    assert main(up.up, ["--stack", "dev"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    steps = [line.split("] ", 1)[1] for line in out.splitlines() if line.startswith("[up ")]
    assert steps[0] == "checking prerequisites: pulumi, kind, kubectl, docker"
    assert steps[-1].startswith("done: stack 'dev' serves version 1.0.0")
    order = [" ".join(c[:3]) for c in fakes.calls()]
    expected = ["docker info --format", "kind get clusters", "kind create cluster", "docker build --build-arg",
                "kind load docker-image", "pulumi login --local", "pulumi stack select", *["kubectl --context kind-real-estate"] * 2,
                # The plan, shown, then applied exactly (the state the same as when it was made).
                "pulumi stack export", "pulumi preview --stack", "pulumi stack export", "pulumi up --yes",
                *["kubectl --context kind-real-estate"] * 3,
                "pulumi stack output", *["kubectl --context kind-real-estate"] * 3,
                # Then the cluster's monitoring: dev's own kube-prometheus-stack took the stack's rules, scrape and routing.
                *["kubectl --context kind-real-estate"] * 4]
    assert order == expected, order
    assert [c[c.index("--raw") + 1] for c in fakes.calls("kubectl") if "--raw" in c][0] == f"{PROMETHEUS}/api/v1/rules"
    kubectl = [c[2:] for c in fakes.calls("kubectl")]
    assert kubectl[0] == ["version", "--request-timeout=10s"]
    assert kubectl[1][:3] == ["get", "deployment", "api"]
    # After the up, PostgreSQL's rollout as the operator's own PostgresCluster reports it, then the API's.
    assert kubectl[2][:3] == ["get", "perconapgcluster/postgres", "postgrescluster.upstream.pgv2.percona.com/postgres"]
    assert kubectl[3][:3] == ["get", "deployment", "api"]
    # dev runs no canary and no policy pack: the Deployment's own rollout is the verdict.
    assert kubectl[4][:4] == ["rollout", "status", "deployment/api", "--namespace"]
    plan = str(plan_module.PLANS / "dev.json")
    assert ["preview", "--stack", "dev", "--diff", "--save-plan", plan] in fakes.calls("pulumi")
    assert ["up", "--yes", "--stack", "dev", "--plan", plan] in fakes.calls("pulumi")
    # What serves is what was built.
    assert kubectl[5][:3] == ["get", "deployment", "api"] and IMAGE in kubectl[5]
    assert "gateway.envoyproxy.io/owning-gateway-namespace=real-estate-dev,gateway.envoyproxy.io/owning-gateway-name=api" in kubectl[6]
    assert kubectl[7][:4] == ["port-forward", "--namespace", "envoy-gateway-system", "service/envoy-real-estate-dev-api-1a2b3c4d"]
    assert ["kind", "create", "cluster", "--name", "real-estate", "--wait", "120s"] == ["kind", *fakes.calls("kind")[1]]


def test_up_reuses_an_existing_cluster_and_logs_in_to_the_shared_backend(fakes, capsys, monkeypatch):
    fakes.install("pulumi", "kind", "kubectl", "docker")
    fakes.scenario(_up_scenario(kind=[{"args": ["get", "clusters"], "stdout": "real-estate\n"}]))
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state-bucket/real-estate-ai")
    assert main(up.up, []) == 0, capsys.readouterr().err
    assert not any(c[:2] == ["create", "cluster"] for c in fakes.calls("kind"))
    assert ["login", "s3://state-bucket/real-estate-ai"] in fakes.calls("pulumi")


@pytest.mark.parametrize("failing,message", [
    ({"pulumi": [{"args": ["up"], "exit": 255}]}, "FAILED: pulumi up of stack 'dev' under its plan (where the engine says "
     "'violates plan', the program or its config now wants what the plan does not hold: plan again): `pulumi up --yes` exited 255"),
    ({"kubectl": [{"args": ["get", "deployment", TEMPLATE], "stdout": ["", "{}"]}, {"args": ["rollout"], "exit": 1}]},
     "FAILED: the API's rollout in stack 'dev': `kubectl --context kind-real-estate` exited 1"),
    ({"kubectl": [{"args": ["get", "deployment", TEMPLATE], "stdout": ["", "{}"]},
                  {"args": ["get", "deployment", IMAGE], "stdout": "real-estate-api:0.9.0-old"}]},
     f"FAILED: stack 'dev': api runs real-estate-api:0.9.0-old, not {DEV_IMAGE}"),
    ({"kubectl": [{"args": ["version"], "exit": 1, "stdout": "connection refused"}]},
     "FAILED: the cluster of stack 'dev' (context kind-real-estate) is unreachable"),
    ({"kubectl": [*SERVED, {"args": ["get", "service"], "stdout": "envoy-x"},
                  {"args": ["port-forward"], "serve": {**ROUTE, "/version": [200, {"version": "0.9.0"}]}}]},
     "FAILED: stack 'dev' through api.dev.real-estate.example.com: /ready answered 200, /version reported '0.9.0' (expected '1.0.0')"),
    ({"kubectl": [*SERVED, {"args": ["get", "service"], "stdout": "envoy-x"},
                  {"args": ["port-forward"], "serve": {**ROUTE, "/ready": [503, "{}"]}}]},
     "FAILED: stack 'dev' through api.dev.real-estate.example.com: /ready answered 503"),
])
def test_up_stops_at_the_first_failure(fakes, capsys, failing, message):
    fakes.install("pulumi", "kind", "kubectl", "docker")
    fakes.scenario(_up_scenario(**failing))
    assert main(up.up, []) == 1
    assert message in capsys.readouterr().err
    if "pulumi up" in message:
        assert not any("rollout" in c for c in fakes.calls("kubectl"))


def test_up_refuses_a_stack_that_is_not_on_kind(fakes, capsys):
    fakes.install("pulumi", "kind", "kubectl", "docker")
    fakes.scenario(_up_scenario())
    assert main(up.up, ["--stack", "prod"]) == 1
    assert "make up deploys a stack on kind; stack 'prod' deploys to context 'real-estate-prod'" in capsys.readouterr().err
    assert fakes.calls("pulumi") == []


# --- promotion and rollback over regions -------------------------------------------------------------------------


@pytest.fixture
def regions(tmp_path, monkeypatch):
    """Stack files test, prod-a, prod-b, prod-c (prod's, each on a cluster context of its own)."""
    directory = tmp_path / "stacks"
    directory.mkdir()
    (directory / "Pulumi.test.yaml").write_text((ROOT / "Pulumi.test.yaml").read_text())
    for region in "abc":
        text = (ROOT / "Pulumi.prod.yaml").read_text().replace("context: real-estate-prod", f"context: prod-{region}")
        (directory / f"Pulumi.prod-{region}.yaml").write_text(text)
    monkeypatch.setattr(stack_module, "STACK_DIR", directory)
    return directory


def _canary(phase: str, applied: str, promoted: str, failed_checks: int = 0) -> dict:
    return {"status": {"phase": phase, "lastAppliedSpec": applied, "lastPromotedSpec": promoted, "failedChecks": failed_checks}}


def _region(name: str, verdict: str, serving: str = DIGEST) -> list[dict]:
    """kubectl for one region: the pod template before and after the up; the Canary before the up, while it runs,
    and its verdict; the image its primary then runs."""
    final = _canary("Succeeded", "new", "new") if verdict == "Succeeded" else _canary("Failed", "new", "old", 5)
    context = ["--context", f"prod-{name}"]
    return [{"args": [*context, "get", "deployment", TEMPLATE], "stdout": ['{"image": "old"}', '{"image": "new"}']},
            {"args": [*context, "get", "canary"],
             "stdout": [_canary("Succeeded", "old", "old"), _canary("Progressing", "new", "old"), final]},
            {"args": [*context, "get", "deployment", "api-primary", IMAGE], "stdout": serving}]


def _promotion_scenario(verdicts: dict) -> dict:
    kubectl = [rule for name, verdict in verdicts.items() for rule in _region(name, verdict)]
    return {"pulumi": [{"args": ["stack", "output", "apiImage"], "stdout": DIGEST + "\n"},
                       {"args": ["stack", "output", "ingressUrl"], "stdout": "https://api.real-estate.example.com\n"}],
            "kubectl": kubectl}


def test_promotion_proposes_the_tested_digest_in_each_later_stages_file_and_nothing_else(fakes, regions, capsys):
    fakes.install("pulumi", "kubectl")
    fakes.scenario(_promotion_scenario({}))
    before = {path.name: path.read_text() for path in regions.glob("*.yaml")}
    assert main(promote.promote, ["--stages", "test,prod-a,prod-b"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.splitlines()[-2:] == ["Pulumi.prod-a.yaml", "Pulumi.prod-b.yaml"]
    for name in ("Pulumi.prod-a.yaml", "Pulumi.prod-b.yaml"):
        old, new = before[name].splitlines(), (regions / name).read_text().splitlines()
        changed = [(a, b) for a, b in zip(old, new) if a != b]
        # test runs version 1.0.0 as prod does: only the image line changed, every comment and key in place.
        assert len(old) == len(new) and [b.strip() for _, b in changed] == [f"image: {DIGEST}"]
    assert (regions / "Pulumi.prod-c.yaml").read_text() == before["Pulumi.prod-c.yaml"]
    # Nothing deployed, nothing set through the backend: test's output read, that is all.
    assert [c[:3] for c in fakes.calls("pulumi")] == [["login", "--local"], ["stack", "output", "apiImage"]]
    assert fakes.calls("kubectl") == []
    # Again: every stage already names it.
    assert main(promote.promote, ["--stages", "test,prod-a,prod-b"]) == 0
    assert "changed: nothing (every stage already names it)" in capsys.readouterr().out


def test_a_promotion_given_its_digest_needs_no_backend_and_refuses_what_the_stack_would(fakes, regions, capsys):
    fakes.install("pulumi", "kubectl")
    before = (regions / "Pulumi.prod-a.yaml").read_text()
    assert main(promote.promote, ["--stages", "test,prod-a", "--image", DIGEST, "--version", "1.1.0"]) == 0
    assert fakes.calls() == []
    text = (regions / "Pulumi.prod-a.yaml").read_text()
    assert f"    image: {DIGEST}\n" in text and "    version: 1.1.0\n" in text and len(text.splitlines()) == len(before.splitlines())
    # A version the stack's own validation refuses leaves every file as it was.
    assert main(promote.promote, ["--stages", "test,prod-a,prod-b", "--image", OLD_DIGEST, "--version", "1.2"]) == 1
    assert "Pulumi.prod-a.yaml is not valid" in capsys.readouterr().err
    assert (regions / "Pulumi.prod-a.yaml").read_text() == text
    assert main(promote.promote, ["--stages", "test,prod-a", "--image", "real-estate-api:1.0.0-abc", "--version", "1.1.0"]) == 1
    assert "'real-estate-api:1.0.0-abc' is not pinned by digest" in capsys.readouterr().err


def test_the_later_stages_are_released_in_order_each_under_its_own_plan(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    fakes.scenario(_promotion_scenario({"a": "Succeeded", "b": "Succeeded"}))
    monkeypatch.setattr(verify, "route", _route_serving("1.0.0"))
    assert main(release_module.release_stacks, ["prod-a", "prod-b"]) == 0, capsys.readouterr().err
    pulumi = fakes.calls("pulumi")
    operations = [c[:2] + c[2:4] for c in pulumi if c[0] in ("preview", "up")]
    assert operations == [["preview", "--stack", "prod-a", "--diff"], ["up", "--yes", "--stack", "prod-a"],
                          ["preview", "--stack", "prod-b", "--diff"], ["up", "--yes", "--stack", "prod-b"]]
    policy = ["--policy-pack", str(ROOT / "policy")]
    for region in "ab":
        plan = str(plan_module.PLANS / f"prod-{region}.json")
        # With the policy pack, mandatory outside dev, at the plan and at the up.
        assert ["preview", "--stack", f"prod-{region}", "--diff", "--save-plan", plan, *policy] in pulumi
        assert ["up", "--yes", "--stack", f"prod-{region}", "--plan", plan, *policy] in pulumi
    assert not any(c[0] == "config" for c in pulumi)
    # Each stage's cluster is checked before anything is planned for it.
    kubectl = [" ".join(c) for c in fakes.calls("kubectl")]
    assert kubectl[0] == "--context prod-a version --request-timeout=10s"
    assert "done: prod-a, prod-b released" in capsys.readouterr().out


def test_a_release_stops_at_the_first_failed_stage(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    fakes.scenario(_promotion_scenario({"a": "Succeeded", "b": "Failed", "c": "Succeeded"}))
    monkeypatch.setattr(verify, "route", _route_serving("1.0.0"))
    assert main(release_module.release_stacks, ["prod-a", "prod-b", "prod-c"]) == 1
    err = capsys.readouterr().err
    assert "the canary in stack 'prod-b' failed (Flagger rolled it back after 5 failed checks)" in err
    assert "released: prod-a; stopped at: prod-b; not started: prod-c" in err
    assert [c[3] for c in fakes.calls("pulumi") if c[0] == "up"] == ["prod-a", "prod-b"]
    assert not any("prod-c" in c for c in fakes.calls("kubectl"))


def test_ci_applies_the_reviewed_plans_and_refuses_one_whose_stack_changed_since(fakes, regions, capsys, monkeypatch, tmp_path):
    fakes.install("pulumi", "kubectl")
    scenario = _promotion_scenario({"a": "Succeeded"})
    scenario["pulumi"].append({"args": ["stack", "export"], "stdout": '{"version": 3, "deployment": {"resources": []}}'})
    fakes.scenario(scenario)
    monkeypatch.setattr(verify, "route", _route_serving("1.0.0"))
    plans = tmp_path / "reviewed"
    assert main(plan_module.plan, ["prod-a", "--out", str(plans / "prod-a.json")]) == 0, capsys.readouterr().err
    assert json.loads((plans / "prod-a.record.json").read_text())["stack"] == "prod-a"
    assert main(release_module.release_stacks, ["prod-a", "--plans", str(plans)]) == 0, capsys.readouterr().err
    ups = [c for c in fakes.calls("pulumi") if c[0] == "up"]
    assert ups == [["up", "--yes", "--stack", "prod-a", "--plan", str(plans / "prod-a.json"), "--policy-pack", str(ROOT / "policy")]]
    # Another update ran between the plan and its approval: the state is not the one the plan was made against.
    scenario["pulumi"][-1]["stdout"] = '{"version": 3, "deployment": {"resources": [{"urn": "changed"}]}}'
    fakes.scenario(scenario)
    assert main(release_module.release_stacks, ["prod-a", "--plans", str(plans)]) == 1
    assert ("stack 'prod-a' changed since its plan was made (another update or refresh ran): plan again and have the "
            "new plan reviewed") in capsys.readouterr().err
    assert [c for c in fakes.calls("pulumi") if c[0] == "up"] == ups
    # No plan for the stack, or a plan for another one: refused, nothing run.
    assert main(release_module.release_stacks, ["prod-b", "--plans", str(plans)]) == 1
    assert f"no plan for stack 'prod-b' at {plans / 'prod-b.json'}" in capsys.readouterr().err
    (plans / "prod-b.json").write_text("{}")
    (plans / "prod-b.record.json").write_text(json.dumps({"stack": "prod-a", "state": "x"}))
    assert main(release_module.release_stacks, ["prod-b", "--plans", str(plans)]) == 1
    assert f"the plan at {plans / 'prod-b.json'} is for stack 'prod-a', not 'prod-b'" in capsys.readouterr().err


def test_a_plan_says_whether_it_changes_anything_for_the_reviewers(fakes, regions, capsys, monkeypatch, tmp_path):
    fakes.install("pulumi", "kubectl")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    urn = "urn:pulumi:prod-a::real-estate-ai::kubernetes:core/v1:ConfigMap::app-config"
    unchanged = {"resourcePlans": {urn: {"goal": {}, "steps": ["same"]}}}
    scenario = _promotion_scenario({})
    scenario["pulumi"].append({"args": ["preview"], "stdout": "Resources:\n    104 unchanged\n", "plan": unchanged})
    fakes.scenario(scenario)
    assert main(plan_module.plan, ["prod-a"]) == 0, capsys.readouterr().err
    assert "stack 'prod-a': the plan changes nothing" in capsys.readouterr().out
    assert not (tmp_path / "output").exists()
    assert "### The plan of stack `prod-a`" in (tmp_path / "summary").read_text()
    scenario["pulumi"][-1]["plan"] = {"resourcePlans": {urn: {"goal": {}, "steps": ["update"]}}}
    fakes.scenario(scenario)
    assert main(plan_module.plan, ["prod-a"]) == 0
    assert "stack 'prod-a': the plan changes the stack" in capsys.readouterr().out
    assert (tmp_path / "output").read_text() == "changes=true\n"


def test_a_stack_that_does_not_exist_is_named_with_who_creates_it(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state-bucket")
    scenario = _promotion_scenario({})
    scenario["pulumi"].append({"args": ["stack", "export"], "exit": 6, "stdout": "error: no stack named 'prod-a' found"})
    fakes.scenario(scenario)
    assert main(plan_module.plan, ["prod-a"]) == 1
    assert ("stack 'prod-a' does not exist in s3://state-bucket: someone allowed to create it runs `pulumi stack init "
            "prod-a --secrets-provider <its key>` once") in capsys.readouterr().err
    assert not any(c[0] == "preview" for c in fakes.calls("pulumi"))


# The engine's own words when a program leaves its plan (pkg/resource/deploy/step_generator.go, plan.go MakeError),
# as the e2e's real engine prints them, and its exit code 1.
VIOLATES_PLAN = ("error: resource urn:pulumi:prod-a::real-estate-ai::kubernetes:core/v1:ConfigMap::app-config violates "
                 "plan: properties changed: ~~data[{...}!={...}]")


def test_an_up_the_engine_refuses_under_its_plan_says_to_plan_again(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    scenario = _promotion_scenario({"a": "Succeeded"})
    scenario["pulumi"].append({"args": ["up"], "stdout": VIOLATES_PLAN, "exit": 1})
    fakes.scenario(scenario)
    assert main(release_module.release_stacks, ["prod-a"]) == 1
    assert ("pulumi up of stack 'prod-a' under its plan (where the engine says 'violates plan', the program or its config "
            "now wants what the plan does not hold: plan again)") in capsys.readouterr().err


def test_unchanged_pods_still_need_the_last_releases_verdict(fakes, regions, capsys, monkeypatch):
    """A re-run after a job stopped mid-canary: nothing changes now, but the release it started must still pass."""
    fakes.install("pulumi", "kubectl")
    scenario = _promotion_scenario({"a": "Succeeded"})
    scenario["kubectl"][0]["stdout"] = ['{"image": "same"}']
    scenario["kubectl"][1]["stdout"] = [_canary("Progressing", "new", "old"), _canary("Progressing", "new", "old"),
                                        _canary("Succeeded", "new", "new")]
    fakes.scenario(scenario)
    monkeypatch.setattr(verify, "route", _route_serving("1.0.0"))
    assert main(release_module.release_stacks, ["prod-a"]) == 0, capsys.readouterr().err
    assert "waiting for the canary verdict of stack 'prod-a' (pods unchanged: the last release's)" in capsys.readouterr().out
    assert len([c for c in fakes.calls("kubectl") if "canary" in c]) == 3
    scenario["kubectl"][1]["stdout"] = [_canary("Failed", "new", "old", 5)]
    fakes.scenario(scenario)
    assert main(release_module.release_stacks, ["prod-a"]) == 1
    assert "the canary in stack 'prod-a' failed" in capsys.readouterr().err


def test_switching_the_canary_on_waits_for_flagger_to_take_over(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    scenario = _promotion_scenario({"a": "Succeeded"})
    scenario["kubectl"][0]["stdout"] = ['{"image": "same"}']
    # No Canary before the up (kubectl --ignore-not-found prints nothing), then Flagger's first pass.
    scenario["kubectl"][1]["stdout"] = ["", {"status": {"phase": "Initializing"}}, {"status": {"phase": "Initialized"}}]
    fakes.scenario(scenario)
    monkeypatch.setattr(verify, "route", _route_serving("1.0.0"))
    assert main(release_module.release_stacks, ["prod-a"]) == 0, capsys.readouterr().err
    assert "waiting for Flagger to take over the API of stack 'prod-a'" in capsys.readouterr().out
    assert all("--ignore-not-found" in c for c in fakes.calls("kubectl") if "canary" in c)


def test_the_stages_file_lists_existing_stacks():
    assert configured_stages() == ["test", "prod"]
    assert all((ROOT / f"Pulumi.{stage}.yaml").exists() for stage in configured_stages())


def _route_serving(version: str):
    """verify.route for a stack on a real cluster: the ingressUrl, here a page served on loopback."""
    import contextlib
    import http.server
    import threading

    @contextlib.contextmanager
    def serving(stack):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = json.dumps({"version": version} if self.path == "/version" else {"status": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", stack.config.ingress.host
        finally:
            server.shutdown()

    return serving


def _replica_sets(*revisions) -> dict:
    """api-primary's ReplicaSets: (revision, image, version) each."""
    return {"items": [{"metadata": {"annotations": {"deployment.kubernetes.io/revision": str(n)}},
                       "spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/version": version}},
                                             "spec": {"containers": [{"name": "api", "image": image}]}}}}
                      for n, image, version in revisions]}


def _prometheus(ratios: list[float]) -> list[dict]:
    """Prometheus behind a port-forward: one error ratio per query (a port-forward each), the last repeating."""
    return [{"args": ["port-forward", "--namespace", "monitoring"], "serve": [{"/api/v1/query": [200, {
        "status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(ratio)]}]}}]}
        for ratio in ratios]}]


PREVIOUS = OLD_DIGEST.replace("0" * 64, "7" * 64)


def test_rollback_returns_to_what_the_primary_served_before_and_checks_the_error_rate(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    fakes.scenario({
        "pulumi": [{"args": ["stack", "output", "apiImage"], "stdout": PREVIOUS}],
        # Revision 3 is serving; 2 had the same image (a config change); 1 the version before.
        "kubectl": [{"args": ["get", "replicasets"], "stdout": _replica_sets(
            (1, PREVIOUS, "0.9.0"), (3, DIGEST, "1.0.0"), (2, DIGEST, "1.0.0"))}]
        + _region("a", "Succeeded", serving=PREVIOUS) + _prometheus([0.2, 0.08, 0.002]),
    })
    monkeypatch.setattr(verify, "route", _route_serving("0.9.0"))
    assert main(rollback.rollback, ["prod-a"]) == 0, capsys.readouterr().err
    pulumi = fakes.calls("pulumi")
    assert ["config", "set", "--path", "api.image", PREVIOUS, "--stack", "prod-a"] in pulumi
    assert ["config", "set", "--path", "api.version", "0.9.0", "--stack", "prod-a"] in pulumi
    assert "app.kubernetes.io/name=api-primary" in fakes.calls("kubectl")[0]
    out = capsys.readouterr().out
    # 20 %, then 8 %: still above 5 %; then 0.2 %.
    assert "error rate 0.20 %" in out and "done: stack 'prod-a' runs version 0.9.0" in out
    assert len([c for c in fakes.calls("kubectl") if "port-forward" in c]) == 3


def test_rollback_fails_while_errors_stay_high_or_without_a_previous_image(fakes, regions, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    fakes.scenario({"pulumi": [{"args": ["stack", "output", "apiImage"], "stdout": OLD_DIGEST}],
                    "kubectl": _region("a", "Succeeded", serving=OLD_DIGEST) + _prometheus([0.2])})
    monkeypatch.setattr(verify, "route", _route_serving("0.9.0"))
    monkeypatch.setattr(rollback, "ERROR_RATE_WAIT_SECONDS", 0.1)
    assert main(rollback.rollback, ["prod-a", "--to", OLD_DIGEST, "--version", "0.9.0"]) == 1
    assert "stack 'prod-a': 20.00 % of user requests still fail, above 5.0 %" in capsys.readouterr().err
    fakes.scenario({"kubectl": [{"args": ["get", "replicasets"], "stdout": _replica_sets((4, DIGEST, "1.0.0"), (3, DIGEST, "1.0.0"))}]})
    assert main(rollback.rollback, ["prod-a"]) == 1
    assert "api-primary in stack 'prod-a' remembers no earlier image" in capsys.readouterr().err
    assert main(rollback.rollback, ["prod-a", "--to", "real-estate-api:0.9.0", "--version", "0.9.0"]) == 1
    assert "'real-estate-api:0.9.0' is not pinned by digest" in capsys.readouterr().err


def test_preflight_fails_when_the_cluster_does_not_answer(fakes, capsys):
    fakes.install("pulumi", "kubectl")
    fakes.scenario({"kubectl": [{"args": ["version"], "exit": 1, "stdout": "dial tcp: connection refused"}]})
    assert main(preflight.preflight, ["prod"]) == 1
    assert "FAILED: the cluster of stack 'prod' (context real-estate-prod) is unreachable" in capsys.readouterr().err
    fakes.scenario({})
    assert main(preflight.preflight, ["prod"]) == 0
    assert ["--context", "real-estate-prod", "version", "--request-timeout=10s"] in fakes.calls("kubectl")
    # The fake answers `auth can-i` with nothing: not "yes", so the preview is said to be client-side.
    assert "this identity cannot write in namespace 'real-estate': the provider previews client-side" in capsys.readouterr().out


def test_ci_release_of_a_first_canary_waits_for_flagger_to_take_over(fakes, capsys, monkeypatch, tmp_path):
    fakes.install("pulumi", "kubectl")
    built = "registry.example.com/real-estate-ai/real-estate-api@sha256:" + "2" * 64
    first = {"pulumi": [{"args": ["stack", "output", "apiImage"], "stdout": built}], "kubectl": [
        {"args": ["get", "deployment", TEMPLATE], "stdout": ["", '{"spec": 1}']},
        {"args": ["get", "deployment", "api-primary", IMAGE], "stdout": built},
        {"args": ["get", "canary"], "stdout": ["", {"status": {"phase": "Initializing"}}, {"status": {"phase": "Initialized"}}]}]}
    fakes.scenario(first)
    monkeypatch.setattr(verify, "route", _route_serving("1.0.0"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github-output"))
    assert main(release_module.release_stacks, ["test"]) == 0, capsys.readouterr().err
    assert "waiting for Flagger to take over the API of stack 'test'" in capsys.readouterr().out
    plan = str(plan_module.PLANS / "test.json")
    assert ["up", "--yes", "--stack", "test", "--plan", plan, "--policy-pack", str(ROOT / "policy")] in fakes.calls("pulumi")
    # The promotion proposal's input: what test now runs.
    assert (tmp_path / "github-output").read_text() == f"image={built}\nversion=1.0.0\n"
    first["kubectl"][2]["stdout"] = ["", {"status": {"phase": "Failed", "conditions": [{"message": "Canary analysis failed"}]}}]
    fakes.scenario(first)
    assert main(release_module.release_stacks, ["test"]) == 1
    assert "the canary in stack 'test' failed: Canary analysis failed" in capsys.readouterr().err


@pytest.mark.parametrize("sequence, pending", [
    # The operator's stale stamp: our state ready at our generation, its own cluster not yet past the new spec.
    ([_postgres(theirs_observed=2)], "the operator to observe PostgresCluster generation 3 (observed 2)"),
    ([_postgres(observed=1)], "the operator to observe PerconaPGCluster generation 2 (observed 1)"),
    ([_postgres(updated=1)], "instance set instance1: 1 of 2 updated, 2 ready"),
    ([_postgres(ready=1)], "instance set instance1: 2 of 2 updated, 1 ready"),
    ([_postgres(state="initializing")], "state initializing"),
])
def test_a_release_waits_for_postgresql_to_roll_out_not_for_the_operators_stamp(fakes, capsys, monkeypatch, sequence, pending):
    fakes.install("pulumi", "kind", "kubectl", "docker")
    scenario = _up_scenario()
    scenario["kubectl"].insert(0, {"args": ["get", "perconapgcluster/postgres"], "stdout": [json.dumps(s) for s in sequence]})
    fakes.scenario(scenario)
    monkeypatch.setattr(up, "ROLLOUT_TIMEOUT_SECONDS", 0.05)
    assert main(up.up, ["--stack", "dev"]) == 1
    assert f"PostgreSQL in stack 'dev' has not rolled out after 0 s: waiting for {pending}" in capsys.readouterr().err
    # Once it has, the release goes on.
    scenario["kubectl"][0]["stdout"] = [json.dumps(s) for s in sequence] + [json.dumps(_postgres())]
    fakes.scenario(scenario)
    monkeypatch.setattr(up, "ROLLOUT_TIMEOUT_SECONDS", 5)
    assert main(up.up, ["--stack", "dev"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("without, message", [
    ("rules", "Prometheus has not loaded the rule groups api.alerts, api.recording"),
    ("watchdog", "Prometheus does not evaluate the rules of namespace real-estate (its Watchdog is not firing)"),
    ("targets", "Prometheus scrapes no API pod of namespace real-estate (1 target(s), none up: context deadline exceeded)"),
    ("routing", "Alertmanager's configuration has no routing of namespace real-estate"),
    ("probes", "Prometheus runs no probe of namespace real-estate's public URL (1 target(s), none up: context deadline exceeded)"),
])
def test_the_monitoring_check_names_what_the_cluster_did_not_take(fakes, capsys, without, message):
    fakes.install("kubectl")
    fakes.scenario({"kubectl": _monitoring(without)})
    with pytest.raises(Failed) as failure:
        monitoring_check.check_monitoring(stack_module.Stack.load("prod"), timeout=0, sleep=lambda s: None)
    assert "stack 'prod': the cluster's monitoring did not take it within 0 s" in str(failure.value)
    assert message in str(failure.value)
    # One problem, one line.
    assert len(str(failure.value).splitlines()) == 2


def test_the_monitoring_check_passes_once_everything_is_taken(fakes):
    fakes.install("kubectl")
    fakes.scenario({"kubectl": []})
    monitoring_check.check_monitoring(stack_module.Stack.load("prod"), timeout=0, sleep=lambda s: None)
    paths = [c[c.index("--raw") + 1] for c in fakes.calls("kubectl") if "--raw" in c]
    assert all("--request-timeout=20s" in c for c in fakes.calls("kubectl") if "--raw" in c)
    assert paths == [f"{PROMETHEUS}/api/v1/rules", f"{PROMETHEUS}/api/v1/alerts", f"{PROMETHEUS}/api/v1/targets?state=active",
                     f"{ALERTMANAGER}/api/v2/status"]


def test_the_monitoring_check_does_not_take_another_stacks_rules_for_its_own(fakes):
    # test's namespace extends prod's: rule files of real-estate-test-api-rules-... are not real-estate's.
    fakes.install("kubectl")
    prod = stack_module.Stack.load("prod")
    taken = _monitoring()
    rules = json.loads(taken[0]["stdout"])
    rules["data"]["groups"] = [{**g, "file": g["file"].replace(f"/{prod.namespace}-", f"/{prod.namespace}-test-")}
                               if f"/{prod.namespace}-" in g["file"] else g for g in rules["data"]["groups"]]
    fakes.scenario({"kubectl": [{**taken[0], "stdout": json.dumps(rules)}]})
    with pytest.raises(Failed) as failure:
        monitoring_check.check_monitoring(prod, timeout=0, sleep=lambda s: None)
    assert "Prometheus has not loaded the rule groups" in str(failure.value)


def test_the_monitoring_check_asks_again_when_prometheus_does_not_answer(fakes):
    fakes.install("kubectl")
    fakes.scenario({"kubectl": [{"args": ["get", "--raw", f"{PROMETHEUS}/api/v1/rules"], "exit": [1, 0],
                                 "stdout": ["", _monitoring()[0]["stdout"]]}]})
    times = iter([0, 0, 10])
    monitoring_check.check_monitoring(stack_module.Stack.load("prod"), timeout=5, clock=lambda: next(times), sleep=lambda s: None)


# --- drift and the backend's refusals, in the real CLI's words and exit codes ----------------------------------------
# (pkg/backend/backenderr.go, sdk/go/common/util/cmdutil/exit_codes.go; the e2e runs the real CLI's refresh)

DRIFT_OUTPUT = ("Previewing refresh (prod):\n  ~ kubernetes:networking.k8s.io/v1:NetworkPolicy default-deny update "
                "[diff: ~spec]\nResources:\n    ~ 1 to update\n    103 unchanged\n"
                "error: no changes were expected for refresh but changes were proposed\n")


def test_drift_is_reported_for_the_workflow_to_open_an_issue(fakes, capsys, monkeypatch, tmp_path):
    from ops.release import drift

    fakes.install("pulumi")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    fakes.scenario({"pulumi": [{"args": ["refresh"], "stdout": DRIFT_OUTPUT, "exit": 7}]})
    assert main(drift.drift_main, ["prod"]) == 1
    captured = capsys.readouterr()
    assert "FAILED: stack 'prod' has drifted: its objects in the cluster differ from its state (above)" in captured.err
    assert "default-deny update" in captured.out
    assert (tmp_path / "output").read_text() == "drifted=true\n"
    assert "### Drift in stack `prod`" in (tmp_path / "summary").read_text()
    assert fakes.calls("pulumi")[-1] == ["refresh", "--preview-only", "--expect-no-changes", "--diff", "--non-interactive",
                                         "--stack", "prod", "--cwd", str(ROOT)]


def test_no_drift_and_a_check_that_could_not_run_are_not_drift(fakes, capsys, monkeypatch, tmp_path):
    from ops.release import drift

    fakes.install("pulumi")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    fakes.scenario({"pulumi": [{"args": ["refresh"], "stdout": "Resources:\n    104 unchanged\n"}]})
    assert main(drift.drift_main, ["prod"]) == 0
    assert "stack 'prod': no drift" in capsys.readouterr().out
    fakes.scenario({"pulumi": [{"args": ["refresh"], "exit": 1, "stdout": "error: getting stack configuration: get stack "
                                "secrets manager: incorrect passphrase\n"}]})
    assert main(drift.drift_main, ["prod"]) == 1
    assert ("the drift check of stack 'prod' could not run: `pulumi refresh` exited 1: error: getting stack configuration: "
            "get stack secrets manager: incorrect passphrase") in capsys.readouterr().err
    assert not (tmp_path / "output").exists()


def test_a_missing_credential_is_named_before_the_backend_is_called(fakes, capsys, monkeypatch):
    from ops.release import drift

    fakes.install("pulumi", "kubectl")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    for script, args in ((drift.drift_main, ["prod"]), (release_module.release_stacks, ["prod"]),
                         (plan_module.plan, ["prod"]), (rollback.rollback, ["prod"])):
        assert main(script, args) == 1
        err = capsys.readouterr().err
        assert "FAILED: stack 'prod': Pulumi Cloud (https://api.pulumi.com) needs PULUMI_ACCESS_TOKEN" in err, script
    assert fakes.calls("pulumi") == [] and fakes.calls("kubectl") == []


def test_a_refused_login_stops_the_script_with_the_clis_words(fakes, capsys, monkeypatch):
    fakes.install("pulumi", "kubectl")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state-bucket")
    fakes.scenario({"pulumi": [{"args": ["login"], "exit": 1, "stdout": (
        'error: could not log in to the state backend "s3://state-bucket": read ".pulumi/meta.yaml": blob (key '
        '".pulumi/meta.yaml") (code=Unknown): operation error S3: GetObject, get identity: get credentials: failed to '
        'refresh cached credentials, no EC2 IMDS role found')}]})
    assert main(plan_module.plan, ["prod"]) == 1
    err = capsys.readouterr().err
    assert "FAILED: log in to the Pulumi state backend: `pulumi login s3://state-bucket` exited 1" in err
    assert fakes.calls("kubectl") == [] and [c[0] for c in fakes.calls("pulumi")] == ["login"]
