"""Roll a stack back to the image it ran before, and verify it (readiness, version, error rate):

    python -m ops.release.rollback STACK [--to IMAGE@sha256:… --version X.Y.Z]

Without --to, the previous image is the newest earlier successful update's api.image in `pulumi stack history` that
differs from the current one (stacks that deploy a pinned image, as prod does; a stack that builds its own image
names it with --to, e.g. from the release notes or `pulumi stack output apiImage` of an earlier run). The old
version goes out through the same canary as any release; then the route must serve it and the user-facing error
rate must come down to release.canary.maxErrorPercent (default 5 %) within 10 minutes.
"""

from __future__ import annotations

import argparse
import json

from ops.release.deploy import DEFAULT_TIMEOUT_SECONDS, deploy
from ops.release.shell import Failed, Steps, main, require, run
from ops.release.stack import Stack, login
from ops.release.verify import check_error_rate
from tools.render import PROJECT

ERROR_RATE_WAIT_SECONDS = 600


def previous_image(stack: Stack) -> tuple[str, str]:
    """(image, version) of the newest successful update whose api.image differs from the stack's current one."""
    history = json.loads(run(["pulumi", "stack", "history", "--json", "--stack", stack.name],
                             f"read the update history of stack '{stack.name}'", capture=True) or "[]")
    current = stack.config.api.image
    for update in sorted(history, key=lambda u: u.get("version", 0), reverse=True):
        if update.get("result") != "succeeded":
            continue
        entry = (update.get("config") or {}).get(f"{PROJECT}:api") or {}
        api = entry.get("objectValue")
        if api is None and entry.get("value"):
            try:
                api = json.loads(entry["value"])
            except ValueError:
                api = None
        if isinstance(api, dict) and api.get("image") and api["image"] != current and api.get("version"):
            return api["image"], api["version"]
    raise Failed(f"no earlier image in the history of stack '{stack.name}' (it builds its own, or never ran another); "
                 f"name one: --to IMAGE@sha256:... --version X.Y.Z")


def rollback(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="rollback", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--to", help="the image to go back to, by digest")
    parser.add_argument("--version", help="its semantic version")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for the canary")
    args = parser.parse_args(argv)
    if bool(args.to) != bool(args.version):
        raise Failed("--to and --version go together")
    steps = Steps("rollback")
    steps.step("checking prerequisites")
    require(["pulumi", "kubectl"])
    stack = Stack.load(args.stack)
    login()
    if args.to:
        image, version = args.to, args.version
    else:
        steps.step(f"finding the image stack '{stack.name}' ran before {stack.config.api.image or 'its current build'}")
        image, version = previous_image(stack)
    steps.note(f"rolling stack '{stack.name}' back to {image} (version {version})")
    deploy(stack, image, version, steps, args.timeout)
    limit = stack.config.release.canary.max_error_percent
    steps.step(f"checking the user-facing error rate of stack '{stack.name}' comes down to {limit} %")
    ratio = check_error_rate(stack, limit, ERROR_RATE_WAIT_SECONDS)
    steps.note("no user traffic in the last 5 minutes to judge by" if ratio is None else f"error rate {ratio * 100:.2f} %")
    steps.step(f"done: stack '{stack.name}' runs version {version}; commit Pulumi.{stack.name}.yaml")


if __name__ == "__main__":
    raise SystemExit(main(rollback))
