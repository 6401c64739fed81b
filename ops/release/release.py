"""Release a stack as its files say (CI after a merge): `pulumi up` with the policy pack, Flagger's verdict on the
API where its pods changed, the route checked. Exits 1 on the first failure.

    python -m ops.release.release STACK
"""

from __future__ import annotations

import argparse

from ops.release.deploy import DEFAULT_TIMEOUT_SECONDS, release
from ops.release.shell import Steps, main, require
from ops.release.stack import Stack, login


def release_stack(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="release", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for the canary")
    args = parser.parse_args(argv)
    steps = Steps("release")
    steps.step("checking prerequisites: pulumi, kubectl")
    require(["pulumi", "kubectl"])
    stack = Stack.load(args.stack)
    login()
    release(stack, steps, args.timeout)
    steps.step(f"done: stack '{stack.name}' runs version {stack.config.api.version}")


if __name__ == "__main__":
    raise SystemExit(main(release_stack))
