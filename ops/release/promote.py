"""Propose a version for the later stages: write the digest the first stage runs into each later stage's
Pulumi.<stack>.yaml (api.image, api.version), touching nothing else in the file. Nothing is deployed here: the
change goes to main through a reviewed pull request (CI opens it), and main's pipeline plans each stage, has the plan
approved and applies it (ops/release/plan.py, release.py). So what a stack runs is always what main says, and the
deploy job never pushes to main.

    python -m ops.release.promote [--image IMAGE@sha256:… --version X.Y.Z] [--stages test,prod-eu,prod-cn]

Without --image, the first stage's `apiImage` output and its api.version are read (this needs its state backend).
Prints the files it changed, one per line, after its steps.
"""

from __future__ import annotations

import argparse
import io

from ruamel.yaml import YAML

from ops.release.shell import Failed, Steps, main, require
from ops.release import stack as stack_module
from ops.release.stack import PROJECT, Stack, login, output
from ops.release.stages import configured_stages


def _yaml() -> YAML:
    # The layout the stack files are written in, so a round trip changes only the values set.
    yaml = YAML()
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def with_image(text: str, image: str, version: str, name: str) -> str:
    """The stack file's text with api.image and api.version set (api.registry dropped: the stage runs this digest
    instead of building), every other byte as it was."""
    yaml = _yaml()
    document = yaml.load(text)
    api = (document.get("config") or {}).get(f"{PROJECT}:api")
    if api is None:
        raise Failed(f"{name} has no {PROJECT}:api section to set the image in")
    api["image"], api["version"] = image, version
    api.pop("registry", None)
    written = io.StringIO()
    yaml.dump(document, written)
    return written.getvalue()


def set_images(names: list[str], image: str, version: str) -> list[str]:
    """Each stack's file set to `image` and `version`, all or none: a file the stack's own validation then refuses
    (a version that is no semantic version, say) puts every file back. Returns the files that changed."""
    files = {name: stack_module.STACK_DIR / f"Pulumi.{name}.yaml" for name in names}
    before = {name: path.read_text() for name, path in files.items()}
    after = {name: with_image(text, image, version, files[name].name) for name, text in before.items()}
    changed = [name for name in names if after[name] != before[name]]
    for name in changed:
        files[name].write_text(after[name])
    try:
        for name in names:
            Stack.load(name)
    except Failed:
        for name in changed:
            files[name].write_text(before[name])
        raise
    return [files[name].name for name in changed]


def promote(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="promote", description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="the image to promote, by digest (default: the first stage's apiImage)")
    parser.add_argument("--version", help="its semantic version (default: the first stage's api.version)")
    parser.add_argument("--stages", help="comma-separated stacks, first the source (default: ops/release/stages.txt)")
    args = parser.parse_args(argv)
    stages = args.stages.split(",") if args.stages else configured_stages()
    if len(stages) < 2:
        raise Failed("name at least two stages: the source and one to promote to")
    if bool(args.image) != bool(args.version):
        raise Failed("--image and --version go together")
    steps = Steps("promote")
    stacks = [Stack.load(name) for name in stages]
    source, targets = stacks[0], stacks[1:]
    image, version = args.image, args.version
    if image is None:
        steps.step(f"reading what stack '{source.name}' runs")
        require(["pulumi"])
        login(source)
        image, version = output(source, "apiImage"), source.config.api.version
    if "@sha256:" not in image:
        raise Failed(f"'{image}' is not pinned by digest; only a pushed, digest-pinned build is promoted")
    steps.step(f"proposing {image} (version {version}) for {', '.join(t.name for t in targets)}")
    changed = set_images([t.name for t in targets], image, version)
    steps.note("changed: " + (", ".join(changed) if changed else "nothing (every stage already names it)"))
    print("\n".join(changed))


if __name__ == "__main__":
    raise SystemExit(main(promote))
