"""Run the pack's real pulumi-policy policies over a stack's resources without the engine (tests, reviews):

    policy/.venv/bin/python -m policy.offline RESOURCES.json

RESOURCES.json: a list of {"type", "name", "props", "protect"}, as the program registers them (tools/render.py can
write it). Prints {policy name: [violations]} as JSON; exits 1 when any policy reports one.
"""

from __future__ import annotations

import json
import sys

from pulumi_policy import ResourceValidationPolicy
from pulumi_policy.policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policy.pack import policies


def _options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def run(resources: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for policy in policies():
        reported: list[str] = []
        found[policy.name] = reported

        def report(message: str, urn=None, reported=reported) -> None:
            reported.append(message)

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                urn = f"urn:pulumi:offline::real-estate-ai::{r['type']}::{r['name']}"
                policy.validate(ResourceValidationArgs(r["type"], r["props"], urn, r["name"], _options(r["protect"]), None), report)
        else:
            stack = [PolicyResource(r["type"], r["props"], f"urn:pulumi:offline::real-estate-ai::{r['type']}::{r['name']}",
                                    r["name"], _options(r["protect"]), None, None, [], {}) for r in resources]
            policy.validate(StackValidationArgs(stack), report)
    return found


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        result = run(json.load(handle))
    print(json.dumps(result, indent=2, sort_keys=True))
    sys.exit(1 if any(result.values()) else 0)
