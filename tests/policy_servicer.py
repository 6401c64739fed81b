"""Run the pack the way the engine runs it, without the engine (tests, reviews), from a pack directory alone:

    policy/.venv/bin/python -I tests/policy_servicer.py PACK_DIR RESOURCES.json

PACK_DIR goes first on the path as the engine puts it (pulumi.policy runs the directory with runpy) and, under `-I`,
nothing else of the repository is importable: a pack that reaches outside its directory fails here as it would once
published.

RESOURCES.json: a list of {"type", "name", "props", "protect"}, as the program registers them (tools/render.py can
write it); a value may be one of the engine's unknown sentinels (pulumi_policy.proxy UNKNOWN_*), as in a preview.

Each resource's props go through what the engine does to them: encoded into a protobuf Struct (every number a
double; pulumi sdk/go/common/resource/plugin/analyzer_plugin.go marshals them with MarshalProperties) and handed to
pulumi-policy's own analyzer servicer (`_PolicyAnalyzerServicer`, the gRPC service `--policy-pack` talks to): Analyze
per resource, AnalyzeStack once. Prints {"violations": {policy: [messages]}, "advisory": [messages]} as JSON, the
advisory ones being what the servicer could not judge; exits 1 when any mandatory policy reports a violation.
"""

from __future__ import annotations

import json
import sys

from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

sys.path.insert(0, sys.argv[1])
from guardrails.pack import PACK, policies  # noqa: E402

URN = "urn:pulumi:offline::real-estate-ai::{type}::{name}"


def _struct(props: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def _options(protect: bool) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(protect=protect)


def run(resources: list[dict]) -> dict:
    servicer = _PolicyAnalyzerServicer(PACK, "0.0.1", policies(), EnforcementLevel.MANDATORY)
    responses = [
        servicer.Analyze(analyzer_pb2.AnalyzeRequest(
            type=r["type"], properties=_struct(r["props"]), urn=URN.format(**r), name=r["name"],
            options=_options(r["protect"])), None)
        for r in resources
    ]
    responses.append(servicer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r["type"], properties=_struct(r["props"]), urn=URN.format(**r),
                                      name=r["name"], options=_options(r["protect"]))
        for r in resources
    ]), None))
    violations: dict[str, list[str]] = {policy.name: [] for policy in policies()}
    advisory: list[str] = []
    for response in responses:
        for diagnostic in response.diagnostics:
            # The servicer writes "<description>\n<message>"; keep the message the rule reported.
            message = diagnostic.message.removeprefix(f"{diagnostic.description}\n")
            if diagnostic.enforcementLevel == analyzer_pb2.MANDATORY:
                violations[diagnostic.policyName].append(message)
            else:
                advisory.append(message)
    return {"violations": violations, "advisory": advisory}


if __name__ == "__main__":
    with open(sys.argv[2]) as handle:
        result = run(json.load(handle))
    print(json.dumps(result, indent=2, sort_keys=True))
    sys.exit(1 if any(result["violations"].values()) else 0)
