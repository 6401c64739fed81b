"""The release scripts' preflight (ops/release/preflight.py) over the e2e's stack, against the real API server: its
discovery, its objects, its label selectors. Run as its own process, since it renders the program under Pulumi's
test runtime, which must not share a process with the cycle's real engine.

    python -m e2e.preflight STACK CONFIG_JSON SECRET_KEYS_JSON    (kubectl and KUBECONFIG from the environment; prints the problems as JSON)
"""

from __future__ import annotations

import json
import sys

from ops.release.preflight import problems
from ops.release.stack import Stack
from settings import PlatformConfig, plain_values
from tools.render import PROJECT, render

if __name__ == "__main__":
    name, config, secret_keys = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    ours = {key.removeprefix(f"{PROJECT}:"): value for key, value in config.items() if key.startswith(f"{PROJECT}:")}
    stack = Stack(name, PlatformConfig.model_validate(plain_values(ours)))
    print(json.dumps(problems(stack, render(name, config, secret_keys).registrations)))
