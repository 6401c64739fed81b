"""Release stacks as their files say (CI after a merge), one after another: for each, `pulumi up` under a plan with
the policy pack, Flagger's verdict on the API where its pods changed, the route checked. The first failure stops
the rest and exits 1, naming the stacks released, the one that failed and those not started.

    python -m ops.release.release STACK... [--plans DIR]

With --plans, each stack's plan made and reviewed before (DIR/STACK.json, by ops/release/plan.py in CI's plan job)
is applied exactly, or the release fails; without it, a plan is made and shown here, then applied.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ops.release.deploy import DEFAULT_TIMEOUT_SECONDS, release
from ops.release.preflight import check_prerequisites
from ops.release.shell import Failed, Steps, main, require
from ops.release.stack import Stack, login, output


def release_stacks(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="release", description=__doc__.splitlines()[0])
    parser.add_argument("stacks", nargs="+", metavar="stack")
    parser.add_argument("--plans", type=Path, help="apply the reviewed plans in this directory (default: plan here)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for each canary")
    args = parser.parse_args(argv)
    steps = Steps("release")
    steps.step("checking prerequisites: pulumi, kubectl")
    require(["pulumi", "kubectl"])
    stacks = [Stack.load(name) for name in args.stacks]
    login(*stacks)
    done: list[str] = []
    for stack in stacks:
        try:
            check_prerequisites(stack, steps)
            release(stack, steps, args.timeout, args.plans / f"{stack.name}.json" if args.plans else None)
        except Failed as failure:
            if len(stacks) == 1:
                raise
            left = [s.name for s in stacks[len(done) + 1:]]
            raise Failed(f"{failure}\n  released: {', '.join(done) or 'none'}; stopped at: {stack.name}; "
                         f"not started: {', '.join(left) or 'none'}") from None
        image = output(stack, "apiImage")
        done.append(stack.name)
        steps.note(f"stack '{stack.name}' runs {image} (version {stack.config.api.version})")
        if os.environ.get("GITHUB_OUTPUT"):
            # The next job (the promotion proposal) reads what the stage now runs.
            with open(os.environ["GITHUB_OUTPUT"], "a") as handle:
                handle.write(f"image={image}\nversion={stack.config.api.version}\n")
    steps.step(f"done: {', '.join(done)} released")


if __name__ == "__main__":
    raise SystemExit(main(release_stacks))
