"""Roll the version the first stage runs through the later ones, in order (ops/release/stages.txt), by digest:

    python -m ops.release.promote [--image IMAGE@sha256:… --version X.Y.Z] [--stages test,prod-eu,prod-cn]

Without --image, the first stage's `apiImage` output and its api.version are promoted. Each stage is deployed,
its canary awaited and its route checked before the next starts; the first failure stops the promotion (Flagger has
already rolled that stage back) and exits 1, naming the stages done and those left. Commit the changed
Pulumi.<stack>.yaml files afterwards: they record what each stack runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ops.release.deploy import DEFAULT_TIMEOUT_SECONDS, deploy
from ops.release.shell import Failed, Steps, main, require
from ops.release.stack import Stack, login, output

STAGES_FILE = Path(__file__).resolve().parent / "stages.txt"


def configured_stages() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in STAGES_FILE.read_text().splitlines())
    return [line for line in lines if line]


def promote(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="promote", description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="the image to promote, by digest (default: the first stage's apiImage)")
    parser.add_argument("--version", help="its semantic version (default: the first stage's api.version)")
    parser.add_argument("--stages", help="comma-separated stacks, first the source (default: ops/release/stages.txt)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="seconds to wait for each canary")
    args = parser.parse_args(argv)
    stages = args.stages.split(",") if args.stages else configured_stages()
    if len(stages) < 2:
        raise Failed("name at least two stages: the source and one to promote to")
    if bool(args.image) != bool(args.version):
        raise Failed("--image and --version go together")
    steps = Steps("promote")
    steps.step("checking prerequisites")
    require(["pulumi", "kubectl"])
    stacks = [Stack.load(name) for name in stages]
    login()
    source, targets = stacks[0], stacks[1:]
    image, version = args.image, args.version
    if image is None:
        steps.step(f"reading what stack '{source.name}' runs")
        image, version = output(source, "apiImage"), source.config.api.version
    if "@sha256:" not in image:
        raise Failed(f"stack '{source.name}' runs '{image}', not a digest; only a pushed, digest-pinned build is promoted")
    steps.note(f"promoting {image} (version {version}) through {', '.join(t.name for t in targets)}")
    done: list[str] = []
    for stack in targets:
        try:
            deploy(stack, image, version, steps, args.timeout)
        except Failed as failure:
            left = [t.name for t in targets if t.name not in done and t.name != stack.name]
            raise Failed(f"{failure}\n  promoted: {', '.join(done) or 'none'}; stopped at: {stack.name}; "
                         f"not started: {', '.join(left) or 'none'}") from None
        done.append(stack.name)
        steps.note(f"stack '{stack.name}' runs version {version}")
    steps.step(f"done: {version} runs in {', '.join(done)}; commit the Pulumi.<stack>.yaml files that changed")


if __name__ == "__main__":
    raise SystemExit(main(promote))
