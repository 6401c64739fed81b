"""Before a preview or an up of STACK (make preview, CI): the tools are there and the stack's cluster answers. A
preview against an unreachable cluster succeeds with the Kubernetes provider skipping every check, so it proves
nothing; this makes it fail instead.

    python -m ops.release.preflight STACK
"""

from __future__ import annotations

import argparse

from ops.release.shell import Steps, main, require
from ops.release.stack import Stack, check_cluster


def preflight(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="preflight", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    stack = Stack.load(parser.parse_args(argv).stack)
    steps = Steps("preflight")
    steps.step("checking prerequisites: pulumi, kubectl")
    require(["pulumi", "kubectl"])
    steps.step(f"checking that stack '{stack.name}' reaches its cluster ({stack.context or 'current context'})")
    check_cluster(stack)


if __name__ == "__main__":
    raise SystemExit(main(preflight))
