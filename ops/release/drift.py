"""Drift: has anyone changed what a stack owns behind Pulumi's back? `pulumi refresh --preview-only
--expect-no-changes` reads every object the state holds from the cluster and compares (it runs no program, so
neither the language host nor the policy pack is needed, and it takes no lock). CI runs it on a schedule per stack
(.github/workflows/drift.yml) and opens an issue when it finds any.

    python -m ops.release.drift STACK [--cwd PROJECT_DIR]

Exit 0: no drift. Exit 1: drift (what changed is printed, written to $GITHUB_STEP_SUMMARY and `drifted=true` to
$GITHUB_OUTPUT when set), or the check itself failed (the line says which).
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from ops.release.shell import Failed, Steps, main, require
from ops.release.stack import ROOT, STACK_DIR, backend_login

# The CLI's exit code when --expect-no-changes finds changes (sdk/go/common/util/cmdutil/exit_codes.go ExitNoChanges).
EXIT_CHANGES = 7


def drift(stack: str, cwd: Path, steps: Steps) -> None:
    backend_login([stack], STACK_DIR if cwd == ROOT else cwd)
    steps.step(f"pulumi refresh --preview-only --expect-no-changes --stack {stack}")
    done = subprocess.run(["pulumi", "refresh", "--preview-only", "--expect-no-changes", "--diff", "--non-interactive",
                           "--stack", stack, "--cwd", str(cwd)], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(done.stdout, end="", flush=True)
    if done.returncode == 0:
        steps.note(f"stack '{stack}': no drift")
        return
    if done.returncode != EXIT_CHANGES:
        tail = " | ".join(done.stdout.strip().splitlines()[-3:])
        raise Failed(f"the drift check of stack '{stack}' could not run: `pulumi refresh` exited {done.returncode}: {tail}")
    if os.environ.get("GITHUB_OUTPUT"):
        # The workflow opens an issue for drift, not for a check that could not run.
        with open(os.environ["GITHUB_OUTPUT"], "a") as handle:
            handle.write("drifted=true\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(f"### Drift in stack `{stack}`\n\n```\n{done.stdout.strip()}\n```\n")
    raise Failed(f"stack '{stack}' has drifted: its objects in the cluster differ from its state (above). Either put the "
                f"change into the program and deploy it, or run `pulumi refresh --stack {stack}` to accept it into the "
                f"state and `pulumi up` to undo it")


def drift_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="drift", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("--cwd", type=Path, default=ROOT, help="the Pulumi project's directory (default: this repository)")
    args = parser.parse_args(argv)
    steps = Steps("drift")
    steps.step("checking prerequisites: pulumi")
    require(["pulumi"])
    drift(args.stack, args.cwd.resolve(), steps)


if __name__ == "__main__":
    raise SystemExit(main(drift_main))
