"""The stack's life under the real engine (Pulumi CLI built by gotools/build.sh) against the e2e control plane: preview,
up, a second preview that must change nothing, day-2 changes each followed by a preview that must change nothing,
refresh without drift, destroy. Runs inside the control plane's network namespace (e2e/run.py starts it there).

The program is the real __main__.py, run as the Automation API's inline program: pulumi-language-python is not
served by the Go module proxy, so no language host runs it (and no policy pack runs in the engine; tests/test_policy.py
drives the pack through pulumi-policy's own analyzer servicer instead).

    python -m e2e.cycle RUN_DIR BIN_DIR     (writes RUN_DIR/results.json: [[step, "ok" or "FAILED: why"], ...])
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pulumi import automation as auto

from e2e import cluster_owners
from tools.render import PROJECT, encode_config, load_stack_config, with_stand_in_secrets, with_value

ROOT = Path(__file__).resolve().parent.parent
STACK = "test-e2e"
# An image by digest: no build (pulumi-docker needs a Docker engine), and kwok runs no container.
IMAGE = "registry.e2e.invalid/real-estate-ai/real-estate-api@sha256:" + "e" * 64
# Objects that hold data: the engine must never replace one.
STATEFUL = ("kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:PersistentVolumeClaim",
            "kubernetes:pgv2.percona.com/v2:PerconaPGCluster", "kubernetes:core/v1:Namespace")
REPLACING = {"replace", "create-replacement", "delete-replaced"}
# What the e2e cannot build (the proxy serves no pulumi-random or pulumi-tls provider): every generated credential is
# given, Milvus stores in an external S3 service, and the backups (their CA is pulumi-tls's) are off.
GIVEN_SECRETS = {
    "redisPassword": "e2e-redis-password-0123456789abcdefgh",
    "apiKey": "e2e-api-key-0123456789abcdefghijklmnop",
    "apiTesterKey": "e2e-tester-key-0123456789abcdefghijkl",
    "milvusS3AccessKeyId": "E2EACCESSKEY0001",
    "milvusS3SecretAccessKey": "e2e-milvus-secret-0123456789",
}


def decoded(config: dict) -> dict:
    return {key: json.loads(value) if value[:1] in "[{" else value for key, value in config.items()}


def stack_config(kubeconfig: str) -> tuple[dict, list[str]]:
    """test's stack file, changed only where this machine cannot do what test's cluster does."""
    config = decoded(load_stack_config("test"))

    def section(name: str) -> dict:
        return config.setdefault(f"{PROJECT}:{name}", {})

    section("kubernetes").pop("context", None)
    section("kubernetes")["kubeconfig"] = kubeconfig
    api = section("api")
    api.pop("registry", None)
    api["image"] = IMAGE
    section("postgres").setdefault("operator", {})["install"] = False
    section("backups")["enabled"] = False
    section("milvus")["externalS3"] = {"endpoint": "s3.e2e.example.com", "bucket": "e2e-milvus"}
    config[f"{PROJECT}:protectData"] = "false"
    for key, value in GIVEN_SECRETS.items():
        config[f"{PROJECT}:{key}"] = value
    with_stand_ins, stand_in_keys = with_stand_in_secrets(STACK, encode_config(config))
    return decoded(with_stand_ins), sorted(set(stand_in_keys) | {f"{PROJECT}:{k}" for k in GIVEN_SECRETS})


# The warnings that say what this e2e is, and nothing about the program: the provider comes from the build's PATH at
# the version the proxy serves; it reports a Deployment's progress while it awaits the rollout (kwok makes pods Ready
# a moment after they are scheduled); and it relays the API server's ClusterIP repair loop catching up with Services
# created and deleted within a second (the fake Flagger's). Any other warning fails the step (server-side apply
# reports unknown fields as warnings).
EXPECTED_WARNINGS = ("using pulumi-resource-kubernetes from $PATH",
                     "resource plugin kubernetes is expected to have version >=4.34.2, but has 4.25.0",
                     "[MinimumReplicasUnavailable] Deployment does not have minimum availability.",
                     "ClusterIPNotAllocated: Cluster IP [IPv4]:")


@dataclass
class Recorder:
    """The engine's events of one operation: warnings and errors, and every step's operation on each resource."""

    diagnostics: list[str] = field(default_factory=list)
    # (operation, type, URN, the properties that force a replacement or differ)
    steps: list[tuple[str, str, str, str]] = field(default_factory=list)

    def __call__(self, event: auto.EngineEvent) -> None:
        if event.diagnostic_event and event.diagnostic_event.severity in ("warning", "error") and \
                not event.diagnostic_event.message.strip().startswith(EXPECTED_WARNINGS):
            self.diagnostics.append(f"{event.diagnostic_event.severity}: {event.diagnostic_event.message.strip()}")
        if event.resource_pre_event:
            meta = event.resource_pre_event.metadata
            op = str(meta.op.value if hasattr(meta.op, "value") else meta.op)
            self.steps.append((op, meta.type, meta.urn, ", ".join(meta.keys or meta.diffs or [])))


class Cycle:
    def __init__(self, run: Path, bin_dir: Path):
        home = run / "pulumi-home"
        state = run / "state"
        for directory in (home, state, run / "project"):
            directory.mkdir(parents=True, exist_ok=True)
        self.results: list[tuple[str, str]] = []
        env = {"PULUMI_CONFIG_PASSPHRASE": "e2e", "PULUMI_BACKEND_URL": f"file://{state}",
               "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
               "PATH": f"{bin_dir}:/usr/bin:/bin"}
        # For the release scripts run as the CLI runs them (a local run: no CI variables, which would refuse file://).
        self.script_env = {**{k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}, **env,
                           "PULUMI_HOME": str(home), "KUBECONFIG": str(run / "admin.kubeconfig")}
        self.run_dir, self.kubectl = run, [str(bin_dir / "kubectl"), "--kubeconfig", str(run / "admin.kubeconfig")]
        self.config, self.secret_keys = stack_config(str(run / "admin.kubeconfig"))
        workspace = auto.LocalWorkspaceOptions(
            work_dir=str(run / "project"), pulumi_home=str(home), env_vars=env,
            project_settings=auto.ProjectSettings(name=PROJECT, runtime="python"),
            pulumi_command=auto.PulumiCommand(root=str(bin_dir.parent), skip_version_check=True))
        self.stack = auto.create_or_select_stack(stack_name=STACK, project_name=PROJECT, program=self._program,
                                                 opts=workspace)
        self._configure(self.config)

    @staticmethod
    def _program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    def _configure(self, config: dict) -> None:
        values = {key: auto.ConfigValue(value, secret=key in self.secret_keys)
                  for key, value in encode_config(config).items() if key.startswith(f"{PROJECT}:")}
        self.stack.set_all_config(values)

    def check(self, name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001 (every failure is reported and the cycle goes on where it can)
            message = " | ".join(line.strip() for line in str(error).strip().splitlines() if line.strip())[:3000]
            self.results.append((name, f"FAILED: {message}"))
            print(f"e2e: FAILED {name}: {message}", flush=True)
        else:
            self.results.append((name, "ok"))
            print(f"e2e: ok     {name}", flush=True)

    def _operation(self, operation: Callable[..., object], **options) -> Recorder:
        recorder = Recorder()
        try:
            operation(on_event=recorder, color="never", **options)
        except auto.CommandError as error:
            # The engine's own diagnostics say what failed; the command's output only that something did.
            raise AssertionError("; ".join(recorder.diagnostics) or str(error)) from None
        problems = list(recorder.diagnostics)
        problems += [f"{op} of {urn} (by {why})" for op, kind, urn, why in recorder.steps
                     if op in REPLACING and kind in STATEFUL]
        if problems:
            raise AssertionError("; ".join(problems))
        return recorder

    def preview(self) -> None:
        self._operation(self.stack.preview)

    def up(self) -> None:
        self._operation(self.stack.up)

    def unchanged(self) -> None:
        """A preview right after an up must find nothing to do: anything else is a perpetual diff."""
        recorder = self._operation(self.stack.preview)
        changed = [f"{op} {urn} ({why})" for op, _, urn, why in recorder.steps if op not in ("same", "read")]
        if changed:
            raise AssertionError("perpetual diff: " + "; ".join(changed))

    def refresh(self) -> None:
        recorder = self._operation(self.stack.refresh)
        drift = [f"{op} {urn} ({why})" for op, _, urn, why in recorder.steps if op not in ("same", "read", "refresh")]
        if drift:
            raise AssertionError("drift after refresh: " + "; ".join(drift))

    def destroy(self) -> None:
        self._operation(self.stack.destroy)

    def _settings(self, key: str) -> dict:
        return self.config.get(f"{PROJECT}:{key}") or {}

    def preflight(self, expected: list[str]) -> None:
        """ops/release/preflight.py's problems with this stack and cluster, exactly `expected`."""
        done = subprocess.run([sys.executable, "-m", "e2e.preflight", STACK, json.dumps(encode_config(self.config)),
                               json.dumps(self.secret_keys)],
                              cwd=ROOT, env=self.script_env, capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"the preflight failed: {done.stderr.strip()[-1500:]}")
        found = json.loads(done.stdout.strip().splitlines()[-1])
        if found != expected:
            raise AssertionError(f"the preflight found {found}, not {expected}")

    def cluster_owners(self) -> None:
        addons = self._settings("clusterAddons")
        cluster_owners.create(self.kubectl, {
            "monitoring": self._settings("monitoring").get("namespace", "monitoring"),
            "cert_manager": (addons.get("certManager") or {}).get("namespace", "cert-manager"),
            "flagger": (addons.get("flagger") or {}).get("namespace", "flagger-system"),
            "gateway_class": (self._settings("ingress").get("gateway") or {}).get("className", "eg"),
            "issuer": (self._settings("ingress").get("tls") or {}).get("clusterIssuer", "letsencrypt-prod")})

    def drift(self) -> subprocess.CompletedProcess:
        """ops/release/drift.py with the real CLI (refresh runs no program, so no language host is needed)."""
        return subprocess.run([sys.executable, "-m", "ops.release.drift", STACK, "--cwd", str(self.run_dir / "project")],
                              cwd=ROOT, env=self.script_env, capture_output=True, text=True)

    def no_drift(self) -> None:
        done = self.drift()
        if done.returncode != 0 or f"stack '{STACK}': no drift" not in done.stdout:
            raise AssertionError(f"the drift check failed on an untouched stack: {(done.stdout + done.stderr).strip()[-1500:]}")

    def drift_found(self) -> None:
        """A field the stack set, changed behind Pulumi's back (the default-deny policy no longer covering egress), is
        drift, and named."""
        namespace = self._settings("namespace").get("name")
        subprocess.run([*self.kubectl, "patch", "networkpolicy", "default-deny", "--namespace", namespace, "--type", "merge",
                        "--patch", '{"spec": {"policyTypes": ["Ingress"]}}'], check=True, capture_output=True, text=True)
        done = self.drift()
        if done.returncode != 1 or f"FAILED: stack '{STACK}' has drifted" not in done.stderr or "default-deny" not in done.stdout:
            raise AssertionError(f"the drift went unreported: exit {done.returncode}: {(done.stdout + done.stderr).strip()[-1500:]}")
        subprocess.run([*self.kubectl, "patch", "networkpolicy", "default-deny", "--namespace", namespace, "--type", "merge",
                        "--patch", '{"spec": {"policyTypes": ["Ingress", "Egress"]}}'], check=True, capture_output=True, text=True)

    def planned_change(self, path: str, value) -> None:
        """A plan saved by preview, then an up held to it (what CI's plan and deploy jobs do)."""
        plan = self.run_dir / "plan.json"
        self.config = with_value(self.config, path, value)
        self._configure(self.config)
        self._operation(self.stack.preview, plan=str(plan))
        self._operation(self.stack.up, plan=str(plan))

    def plan_refused(self, path: str, value) -> None:
        """A plan saved, then the config changed: the engine refuses the up ("violates plan") and changes nothing."""
        plan = self.run_dir / "stale-plan.json"
        self._operation(self.stack.preview, plan=str(plan))
        before = self.config
        self.config = with_value(self.config, path, value)
        self._configure(self.config)
        try:
            self._operation(self.stack.up, plan=str(plan))
        except AssertionError as error:
            if "violates plan" not in str(error):
                raise
        else:
            raise AssertionError("the engine applied a change its plan did not hold")
        finally:
            self.config = before
            self._configure(self.config)

    def change(self, name: str, path: str, value) -> None:
        self.config = with_value(self.config, path, value)
        self._configure(self.config)
        self.check(f"day 2, {name}: up", self.up)
        self.check(f"day 2, {name}: then a preview changes nothing", self.unchanged)


def bare_cluster_problems(namespace: str) -> list[str]:
    """What the preflight must name on a cluster that serves the stack's CRDs but runs none of its controllers."""
    stack = f"stack '{STACK}'"
    return [f"{stack}: no Prometheus in namespace '{namespace}' to load its {kind}s"
            for kind in ("PrometheusRule", "PodMonitor", "ServiceMonitor", "Probe")] + [
        f"{stack}: no Alertmanager in namespace '{namespace}' to load its AlertmanagerConfigs",
        f"{stack}: ClusterIssuer 'letsencrypt-prod' (ingress.tls.clusterIssuer) does not exist; create it, with an ACME solver for HTTP-01 on gateway",
        f"{stack}: no cert-manager controller in namespace 'cert-manager' (clusterAddons.certManager.namespace) to issue the Gateway's certificate",
        f"{stack}: GatewayClass 'eg' (ingress.gateway.className) does not exist",
        f"{stack}: no running Flagger in namespace 'flagger-system' (clusterAddons.flagger.namespace) to release the canary"]


def main(run: Path, bin_dir: Path) -> int:
    cycle = Cycle(run, bin_dir)
    monitoring = cycle._settings("monitoring").get("namespace", "monitoring")
    cycle.check("the preflight names what the bare cluster lacks", lambda: cycle.preflight(bare_cluster_problems(monitoring)))
    cycle.check("the cluster owners' controllers, as their charts make them (stand-ins)", cycle.cluster_owners)
    cycle.check("the preflight passes once they are there", lambda: cycle.preflight([]))
    cycle.check("preview of an empty cluster", cycle.preview)
    cycle.check("up", cycle.up)
    cycle.check("a preview after up changes nothing", cycle.unchanged)
    cycle.check("the drift check finds none", cycle.no_drift)
    cycle.change("canary off", "release.canary.enabled", False)
    cycle.change("canary on again", "release.canary.enabled", True)
    cycle.change("Redis volume grown", "redis.storage.size", "3Gi")
    cycle.change("Redis password replaced", "redisPassword", "e2e-redis-password-replaced-0123456789")
    cycle.change("API replicas", "api.replicas", 3)
    cycle.change("app config changed", "appConfig.recommendation.topK", 12)
    cycle.check("refresh finds no drift", cycle.refresh)
    cycle.check("the drift check names a field changed behind Pulumi's back", cycle.drift_found)
    cycle.check("a saved plan, then an up held to it", lambda: cycle.planned_change("appConfig.recommendation.topK", 14))
    cycle.check("then a preview changes nothing", cycle.unchanged)
    cycle.check("an up whose config left its plan is refused", lambda: cycle.plan_refused("appConfig.recommendation.topK", 16))
    cycle.check("and changed nothing", cycle.unchanged)
    cycle.check("destroy", cycle.destroy)
    # e2e/run.py prints the verdict last, once the control plane is down.
    (run / "results.json").write_text(json.dumps(cycle.results))
    return 1 if any(result != "ok" for _, result in cycle.results) else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
