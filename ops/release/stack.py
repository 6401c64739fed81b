"""A stack's facts the release scripts need, read from Pulumi.<stack>.yaml through the program's own settings
model (the same validation `pulumi up` runs), and the Pulumi and kubectl calls they make about it."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from components.postgres import NAME as POSTGRES
from ops.release import credentials
from ops.release.shell import Failed, run
from settings import PlatformConfig, plain_values
from tools.render import PROJECT, load_stack_config

ROOT = Path(__file__).resolve().parents[2]
# Where Pulumi.<stack>.yaml live.
STACK_DIR = ROOT
# How often the Canary's status is read while a release runs (Flagger acts once per analysis interval).
POLL_SECONDS = 10.0


@dataclass(frozen=True)
class Stack:
    name: str
    config: PlatformConfig

    @classmethod
    def load(cls, name: str) -> "Stack":
        try:
            raw = load_stack_config(name, STACK_DIR)
        except SystemExit as error:
            raise Failed(str(error)) from None
        ours = {key.removeprefix(f"{PROJECT}:"): value for key, value in raw.items() if key.startswith(f"{PROJECT}:")}
        try:
            return cls(name, PlatformConfig.model_validate(plain_values(ours)))
        except ValueError as error:
            raise Failed(f"Pulumi.{name}.yaml is not valid (`make manifests STACK={name}` names every problem): "
                         f"{str(error).splitlines()[0]}") from None

    @property
    def context(self) -> Optional[str]:
        return self.config.kubernetes.context

    @property
    def namespace(self) -> str:
        return self.config.namespace.name

    @property
    def canary(self) -> bool:
        return self.config.release.canary.enabled

    def kubectl(self, *args: str) -> list[str]:
        return ["kubectl", *(["--context", self.context] if self.context else []), *args]


def login(*stacks: "Stack") -> None:
    backend_login([stack.name for stack in stacks])


def backend_login(names: list[str], stack_dir: Optional[Path] = None) -> None:
    """The state backend: PULUMI_BACKEND_URL (shared: s3://, azblob://, gs://, or Pulumi Cloud), else the laptop's.
    First, what each stack's backend and secrets provider need must be in the environment (ops/release/credentials.py):
    one line per missing credential and nothing called."""
    found = [problem for name in names
             for problem in credentials.check(name, stack_dir or STACK_DIR, interactive=sys.stdin.isatty())]
    if found:
        raise Failed("\n".join(found))
    backend = os.environ.get("PULUMI_BACKEND_URL")
    run(["pulumi", "login", backend] if backend else ["pulumi", "login", "--local"], "log in to the Pulumi state backend")


def check_cluster(stack: Stack) -> None:
    """The stack's cluster answers: a preview against an unreachable cluster would succeed and prove nothing."""
    run(stack.kubectl("version", "--request-timeout=10s"),
        f"the cluster of stack '{stack.name}' (context {stack.context or 'the current one'}) is unreachable", capture=True, timeout=30)


def output(stack: Stack, name: str) -> str:
    return run(["pulumi", "stack", "output", name, "--stack", stack.name], f"read output {name} of stack '{stack.name}'",
               capture=True).strip()


def canary_status(stack: Stack) -> dict:
    """The API Canary's status; {} where there is no Canary (yet)."""
    text = run(stack.kubectl("get", "canary", "api", "--namespace", stack.namespace, "--ignore-not-found", "--output", "json"),
               f"read the API's Canary in stack '{stack.name}'", capture=True)
    if not text.strip():
        return {}
    try:
        return json.loads(text).get("status") or {}
    except (ValueError, AttributeError):
        raise Failed(f"the API's Canary in stack '{stack.name}' could not be read: {text[:200]!r}") from None


def serving_deployment(stack: Stack) -> str:
    """The Deployment whose pods serve users: Flagger's primary under a canary, else the program's own."""
    return "api-primary" if stack.canary else "api"


def running_image(stack: Stack, deployment: str) -> str:
    return run(stack.kubectl("get", "deployment", deployment, "--namespace", stack.namespace, "--output",
                             'jsonpath={.spec.template.spec.containers[?(@.name=="api")].image}'),
               f"read the image of {deployment} in stack '{stack.name}'", capture=True).strip()


def wait_for_phase(stack: Stack, phases: tuple[str, ...], timeout: float) -> dict:
    """Wait until the Canary's phase is one of `phases`; Failed (or the deadline) fails."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = canary_status(stack)
        if status.get("phase") in phases:
            return status
        if status.get("phase") == "Failed":
            message = next((c.get("message") for c in status.get("conditions") or [] if c.get("message")), "no message")
            raise Failed(f"the canary in stack '{stack.name}' failed: {message}")
        time.sleep(POLL_SECONDS)
    raise Failed(f"the canary in stack '{stack.name}' is still {status.get('phase', 'unknown')} after {timeout:.0f} s")


def wait_for_release(stack: Stack, before: Optional[str], timeout: float) -> dict:
    """Wait for Flagger's verdict on the revision that replaced `before` (status.lastAppliedSpec; None: whatever
    revision it last took): promoted (Succeeded, or Initialized on its first pass), or fail naming the phase. A
    rollback by Flagger is a failure of this release."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = canary_status(stack)
        started = status.get("lastAppliedSpec") not in (None, before)
        if started and status.get("phase") == "Failed":
            raise Failed(f"the canary in stack '{stack.name}' failed (Flagger rolled it back after {status.get('failedChecks', '?')} "
                         f"failed checks); the previous version still serves")
        if started and status.get("phase") in ("Succeeded", "Initialized") and \
                status.get("lastPromotedSpec") == status.get("lastAppliedSpec"):
            return status
        time.sleep(POLL_SECONDS)
    raise Failed(f"the canary in stack '{stack.name}' reached no verdict within {timeout:.0f} s "
                 f"(phase {status.get('phase', 'unknown')}, weight {status.get('canaryWeight', '?')} %)")


# The operator's own PostgresCluster (the Crunchy-derived object it writes from ours, same name): its controller rolls
# the instances and reports each set's updated and ready replicas.
POSTGRES_CLUSTER = "postgrescluster.upstream.pgv2.percona.com"


def postgres_pending(stack: Stack) -> Optional[str]:
    """What PostgreSQL's rollout still waits for, or None once every instance runs the stack's current spec.

    The PerconaPGCluster's `state: ready` cannot say it (the `waitFor` Pulumi holds): in one reconcile the operator
    writes the PostgresCluster's new spec, then stamps our status with the new generation and a state computed from
    the PostgresCluster's status as it was before its controller saw that spec (percona-postgresql-operator v3.0.0
    percona/controller/pgcluster/controller.go Reconcile: CreateOrUpdate, then updateStatus; status.go getState).
    So: ours observed (the spec has been handed down), theirs observed, and every instance updated and ready."""
    text = run(stack.kubectl("get", f"perconapgcluster/{POSTGRES}", f"{POSTGRES_CLUSTER}/{POSTGRES}", "--namespace",
                             stack.namespace, "--output", "json"), f"read PostgreSQL's clusters in stack '{stack.name}'",
               capture=True)
    try:
        items = {item["kind"]: item for item in json.loads(text)["items"]}
        ours, theirs = items["PerconaPGCluster"], items["PostgresCluster"]
    except (ValueError, KeyError, TypeError):
        raise Failed(f"PostgreSQL's clusters in stack '{stack.name}' could not be read: {text[:200]!r}") from None
    for kind, item in (("PerconaPGCluster", ours), ("PostgresCluster", theirs)):
        generation, observed = item["metadata"].get("generation"), (item.get("status") or {}).get("observedGeneration")
        if observed != generation:
            return f"the operator to observe {kind} generation {generation} (observed {observed})"
    for instances in (theirs.get("status") or {}).get("instances") or [{"name": "?", "replicas": 0}]:
        counts = [instances.get(key, 0) for key in ("replicas", "updatedReplicas", "readyReplicas")]
        if counts[0] == 0 or len(set(counts)) != 1:
            return (f"instance set {instances.get('name')}: {counts[1]} of {counts[0]} updated, {counts[2]} ready")
    state = (ours.get("status") or {}).get("state")
    return None if state == "ready" else f"state {state}"


def wait_for_postgres(stack: Stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = postgres_pending(stack)
    while pending is not None:
        if time.monotonic() >= deadline:
            raise Failed(f"PostgreSQL in stack '{stack.name}' has not rolled out after {timeout:.0f} s: waiting for {pending}")
        time.sleep(POLL_SECONDS)
        pending = postgres_pending(stack)
