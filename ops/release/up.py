"""`make up`: the dev stack on a kind cluster of its own, from a fresh machine with Docker.

    python -m ops.release.up [--stack dev]

Checks the tools (Pulumi CLI, kind, kubectl, Docker and its daemon), creates the kind cluster the stack's context
names if it does not exist, builds the API image and loads it into kind, logs in to the state backend
(PULUMI_BACKEND_URL, else local state on this machine), deploys with `pulumi up` (the stack's cluster add-ons
too: Envoy Gateway, Flagger, kube-prometheus-stack, the PostgreSQL operator), waits for the API, and checks /ready
and /version through the Gateway. Each step says what it does; the first failure stops it with exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from ops.release.shell import Failed, Steps, main, require, run
from ops.release.deploy import release
from ops.release.stack import ROOT, Stack, login

TOOLS = ["pulumi", "kind", "kubectl", "docker"]
# Images of every add-on and store pulled on a fresh node, then the operator's cluster bootstrap.
ROLLOUT_TIMEOUT_SECONDS = 900


def up(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="up", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    steps = Steps("up")

    steps.step("checking prerequisites: " + ", ".join(TOOLS))
    require(TOOLS)
    run(["docker", "info", "--format", "{{.ServerVersion}}"], "Docker is installed but its daemon does not answer (start it)",
        capture=True)
    stack = Stack.load(args.stack)
    if not (stack.context or "").startswith("kind-"):
        raise Failed(f"make up deploys a stack on kind; stack '{stack.name}' deploys to context '{stack.context}': "
                     f"use `make preview STACK={stack.name}` and the CI workflow")
    cluster = stack.context.removeprefix("kind-")

    steps.step(f"kind cluster '{cluster}'")
    existing = run(["kind", "get", "clusters"], "list kind clusters", capture=True).split()
    if cluster in existing:
        steps.note("exists")
    else:
        run(["kind", "create", "cluster", "--name", cluster, "--wait", "120s"], f"create kind cluster '{cluster}'")

    steps.step("building the API image and loading it into kind")
    # The script computes the tag with the program's code: this interpreter has its packages.
    os.environ.setdefault("PYTHON", sys.executable)
    run([str(ROOT / "ops" / "dev" / "kind-load-api.sh"), stack.name], "build and load the API image")

    steps.step("state backend and stack")
    login(stack)
    run(["pulumi", "stack", "select", stack.name, "--create", "--secrets-provider", "passphrase"], f"select stack '{stack.name}'")

    # The platform and its cluster add-ons; then the API's rollout and the route.
    release(stack, steps, ROLLOUT_TIMEOUT_SECONDS)
    steps.step(f"done: stack '{stack.name}' serves version {stack.config.api.version} at http://{stack.config.ingress.host} "
               f"(on kind: kubectl port-forward to the Gateway's Envoy Service in {stack.config.ingress.proxy_namespace})")


if __name__ == "__main__":
    raise SystemExit(main(up))
