"""Roll a stack back to the image it ran before, and verify it (readiness, version, error rate):

    python -m ops.release.rollback STACK [--to IMAGE@sha256:… --version X.Y.Z]

Without --to, the previous image is the one users were served before the current one, as the cluster remembers it:
the newest older ReplicaSet of the serving Deployment (Flagger's api-primary, whose ReplicaSets are exactly the
promoted versions, or api without a canary) with another image, and its version label. A version Flagger rolled back
never reached the primary, so it is never chosen. The old version goes out through the same canary as any release;
then the route must serve it and the user-facing error rate must come down to release.canary.maxErrorPercent
(default 5 %) within 10 minutes.
"""

from __future__ import annotations

import argparse
import json

from ops.release.deploy import DEFAULT_TIMEOUT_SECONDS, deploy
from ops.release.shell import Failed, Steps, main, require, run
from ops.release.stack import Stack, login, serving_deployment
from ops.release.verify import check_error_rate

ERROR_RATE_WAIT_SECONDS = 600


def previous_image(stack: Stack) -> tuple[str, str]:
    """(image, version) the serving Deployment ran before its current image, from its ReplicaSets (newest first)."""
    serving = serving_deployment(stack)
    text = run(stack.kubectl("get", "replicasets", "--namespace", stack.namespace, "--selector",
                             f"app.kubernetes.io/name={serving}", "--output", "json"),
               f"read the ReplicaSets of {serving} in stack '{stack.name}'", capture=True)
    sets = json.loads(text or "{}").get("items") or []

    def revision(replica_set: dict) -> int:
        return int(((replica_set.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))

    def image_and_version(replica_set: dict) -> tuple[str, str]:
        template = replica_set["spec"]["template"]
        image = next((c["image"] for c in template["spec"]["containers"] if c["name"] == "api"), "")
        return image, (template["metadata"].get("labels") or {}).get("app.kubernetes.io/version", "")

    ordered = [image_and_version(r) for r in sorted(sets, key=revision, reverse=True)]
    if ordered:
        current = ordered[0][0]
        for image, version in ordered[1:]:
            if image != current and version:
                return image, version
    raise Failed(f"{serving} in stack '{stack.name}' remembers no earlier image (no older ReplicaSet with another one); "
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
    login(stack)
    if args.to:
        image, version = args.to, args.version
    else:
        steps.step(f"finding the image stack '{stack.name}' served before the current one")
        image, version = previous_image(stack)
    steps.note(f"rolling stack '{stack.name}' back to {image} (version {version})")
    deploy(stack, image, version, steps, args.timeout)
    limit = stack.config.release.canary.max_error_percent
    steps.step(f"checking the user-facing error rate of stack '{stack.name}' comes down to {limit} %")
    ratio = check_error_rate(stack, limit, ERROR_RATE_WAIT_SECONDS)
    steps.note("no user traffic in the last 5 minutes to judge by" if ratio is None else f"error rate {ratio * 100:.2f} %")
    steps.step(f"done: stack '{stack.name}' runs version {version}; open a pull request with Pulumi.{stack.name}.yaml "
               f"at once: main must say what the stack runs, or its next release brings the failed version back")


if __name__ == "__main__":
    raise SystemExit(main(rollback))
