"""Helpers shared by the tests: run components under Pulumi's mocks and look into what they registered."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, TypeVar

# Editing a decoded config: tools/render.py's, which e2e/cycle.py uses too.
from tools.render import (  # noqa: F401 (re-exported for the tests)
    DELETE, PROJECT, RenderedStack, encode_config, load_stack_config, resolve, run_program, with_value,
)

T = TypeVar("T")
STACKS = ("dev", "test", "prod")
# The Kubernetes version the manifests are validated against (a supported release in November 2026).
KUBERNETES_VERSION = "1.35.0"


def run_component(factory: Callable[[], T], stack: str = "test") -> tuple[RenderedStack, T]:
    """Build one component under the mocks; its registrations and resolved outputs come back."""
    return run_program(stack, factory)


def value(output: Any) -> Any:
    """Await an Output (the run has finished, so it is resolved) and return its value."""
    return resolve(output).value


def is_secret(output: Any) -> bool:
    return resolve(output).is_secret


def decoded_config(stack: str) -> dict[str, Any]:
    """The stack file's config as the engine passes it, with JSON values decoded for editing."""
    decoded = {}
    for key, raw in load_stack_config(stack).items():
        try:
            decoded[key] = json.loads(raw)
        except ValueError:
            decoded[key] = raw
    return decoded




def render_with(stack: str, changes: dict[str, Any]) -> RenderedStack:
    """The real program over the stack's file with `changes` (`a.b.c` paths → values, or DELETE) applied."""
    from tools.render import render

    config = decoded_config(stack)
    for path, new in changes.items():
        config = with_value(config, path, new)
    return render(stack, encode_config(config))


def containers(obj: dict) -> Iterator[dict]:
    spec = pod_spec(obj)
    if spec:
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


def pod_spec(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def pod_labels(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["metadata"].get("labels", {})
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return None


def env_value(container: dict, name: str) -> dict:
    for entry in container.get("env", []):
        if entry["name"] == name:
            return entry
    raise KeyError(name)
