"""Reviewed plans: what a stack's update will do, saved by `pulumi preview --save-plan`, and applied by
`pulumi up --plan` exactly, or not at all.

    python -m ops.release.plan STACK [--out build/plans/STACK.json]

The engine holds `up --plan` to the plan's resource goals: a resource whose inputs, provider, parent or operation
differ from the plan fails the update before anything changes (the CLI previews under the plan first; exit 1,
"violates plan"). It does not hold it to the state the plan was made against (a plan carries no state version), so
the plan's record here also keeps a fingerprint of the stack's state: another update in between, and the plan is
refused. Values unknown at preview (a build's digest) may resolve to anything; secrets in the plan are ciphertext
under the stack's own secrets provider (never run this with --show-secrets).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

from ops.release.preflight import check_prerequisites
from ops.release.shell import Failed, Steps, main, require, run, run_shown
from ops.release.stack import ROOT, Stack, login

PLANS = ROOT / "build" / "plans"


def default_path(stack: Stack) -> Path:
    return PLANS / f"{stack.name}.json"


def record_path(plan: Path) -> Path:
    """Beside the plan: the stack it is for and the state it was made against."""
    return plan.with_name(plan.stem + ".record.json")


def policy_args(stack: Stack) -> list[str]:
    return [] if stack.config.environment == "dev" else ["--policy-pack", str(ROOT / "policy")]


def state_fingerprint(stack: Stack) -> str:
    """A digest of the stack's whole state as the backend holds it now (never --show-secrets: secrets stay
    ciphertext, and nothing is decrypted)."""
    try:
        text = run(["pulumi", "stack", "export", "--stack", stack.name], f"read the state of stack '{stack.name}'", capture=True)
    except Failed as failure:
        if "no stack named" in str(failure):
            raise Failed(f"stack '{stack.name}' does not exist in {os.environ.get('PULUMI_BACKEND_URL') or 'the local backend'}: "
                         f"someone allowed to create it runs `pulumi stack init {stack.name} --secrets-provider <its key>` "
                         f"once (README, Delivery); CI's identities only read and update it") from None
        raise
    return hashlib.sha256(text.encode()).hexdigest()


def has_changes(plan: Path) -> bool:
    """Whether the plan does anything: a step other than `same` for some resource (the plan file's resourcePlans,
    sdk/go/common/apitype/plan.go)."""
    try:
        resources = json.loads(plan.read_text()).get("resourcePlans") or {}
    except (OSError, ValueError):
        return True  # unreadable: let the apply judge it
    return any(step != "same" for resource in resources.values() for step in (resource or {}).get("steps") or [])


def save(stack: Stack, steps: Steps, path: Path) -> Path:
    """Preview `stack` with the policy pack outside dev and save the plan to `path` (the preview's diff printed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    policy = policy_args(stack)
    steps.step(f"pulumi preview --stack {stack.name} --save-plan {path}" + (" with the policy pack" if policy else ""))
    state = state_fingerprint(stack)
    diff = run_shown(["pulumi", "preview", "--stack", stack.name, "--diff", "--save-plan", str(path), *policy],
                     f"the preview of stack '{stack.name}'")
    record_path(path).write_text(json.dumps({"stack": stack.name, "state": state}) + "\n")
    changes = has_changes(path)
    steps.note(f"stack '{stack.name}': " + ("the plan changes the stack" if changes else "the plan changes nothing"))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(f"### The plan of stack `{stack.name}`\n\n```\n{diff.strip()}\n```\n")
    if changes and os.environ.get("GITHUB_OUTPUT"):
        # CI asks its reviewers to approve only plans that change something.
        with open(os.environ["GITHUB_OUTPUT"], "a") as handle:
            handle.write("changes=true\n")
    return path


def apply(stack: Stack, steps: Steps, path: Path) -> None:
    """`pulumi up` held to the plan at `path`, refused where the plan is for another stack or another state."""
    record = record_path(path)
    if not path.is_file() or not record.is_file():
        raise Failed(f"no plan for stack '{stack.name}' at {path} (and its record {record.name}): "
                     f"`python -m ops.release.plan {stack.name}` makes one")
    try:
        made = json.loads(record.read_text())
    except ValueError:
        raise Failed(f"{record} is not a plan record") from None
    if made.get("stack") != stack.name:
        raise Failed(f"the plan at {path} is for stack {made.get('stack')!r}, not '{stack.name}'")
    steps.step(f"checking the state of stack '{stack.name}' is the one its plan was made against")
    if state_fingerprint(stack) != made.get("state"):
        raise Failed(f"stack '{stack.name}' changed since its plan was made (another update or refresh ran): "
                     f"plan again and have the new plan reviewed")
    policy = policy_args(stack)
    steps.step(f"pulumi up --stack {stack.name} --plan {path}" + (" with the policy pack" if policy else ""))
    run(["pulumi", "up", "--yes", "--stack", stack.name, "--plan", str(path), *policy],
        f"pulumi up of stack '{stack.name}' under its plan (where the engine says 'violates plan', the program or its "
        f"config now wants what the plan does not hold: plan again)")


def plan(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="plan", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--out", type=Path, help="where to write the plan (default build/plans/STACK.json)")
    args = parser.parse_args(argv)
    steps = Steps("plan")
    steps.step("checking prerequisites: pulumi, kubectl")
    require(["pulumi", "kubectl"])
    stack = Stack.load(args.stack)
    login(stack)
    check_prerequisites(stack, steps)
    save(stack, steps, args.out or default_path(stack))


if __name__ == "__main__":
    raise SystemExit(main(plan))
