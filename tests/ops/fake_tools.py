#!/usr/bin/env python3
"""One stand-in for pulumi, kubectl, kind and docker on PATH (installed under each name): it answers from the
scenario in $FAKE_SCENARIO and logs every call to $FAKE_LOG. Never talks to a cluster, a registry or a backend.

Scenario: {tool: [rule, ...]}; the first rule whose `args` all appear in the call, in order, answers:
  stdout  a string, or a list answered one per call (the last repeats)
  exit    the exit status (default 0), or a list like stdout
  serve   (kubectl port-forward) {path: [status, body]}, or a list of those one per call: serve HTTP on the
          forwarded local port until stopped
  plan    (pulumi preview --save-plan) the plan file to write
A call no rule matches exits 0 with no output. A pulumi call with `--save-plan PATH` that exits 0 writes a plan there,
as the real CLI does (its shape: sdk/go/common/apitype/plan.go DeploymentPlanV1).
"""

import json
import os
import sys
from pathlib import Path

tool, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\n")
scenario = json.loads(Path(os.environ["FAKE_SCENARIO"]).read_text())


def contains(call: list, wanted: list) -> bool:
    position = 0
    for token in call:
        if position < len(wanted) and token == wanted[position]:
            position += 1
    return position == len(wanted)


def nth(value, index):
    return value[min(index, len(value) - 1)] if isinstance(value, list) else value




def finish(code: int, plan: dict | None = None) -> None:
    if tool == "pulumi" and code == 0 and "--save-plan" in args:
        plan = plan or {"manifest": {"version": "v3.276.0"}, "resourcePlans": {}}
        Path(args[args.index("--save-plan") + 1]).write_text(json.dumps(plan))
    sys.exit(code)


for number, rule in enumerate(scenario.get(tool, [])):
    if not contains(args, rule.get("args", [])):
        continue
    counter = Path(os.environ["FAKE_LOG"]).with_name(f"count-{tool}-{number}")
    calls = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(calls + 1))
    if "serve" in rule:
        local = int(next(a for a in args if ":" in a and a.split(":")[0].isdigit()).split(":")[0])
        pages = nth(rule["serve"], calls)

        import http.server  # here: its import is half of a call's start-up, and most calls serve nothing

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                status, body = pages.get(self.path.split("?")[0], [404, "not found"])
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        http.server.HTTPServer(("127.0.0.1", local), Handler).serve_forever()
    output = nth(rule.get("stdout", ""), calls)
    sys.stdout.write(output if isinstance(output, str) else json.dumps(output))
    finish(nth(rule.get("exit", 0), calls), rule.get("plan"))
finish(0)
