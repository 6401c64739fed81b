"""What the release scripts share: numbered steps that say what they do, external commands that stop the script
with their own message when they fail, and a clear line for each missing tool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
# Where `make tools` installs the pinned tools (ops/toolchain/pins.txt).
PINNED_BIN = ROOT / "bin"

# Where each tool comes from, for the message when it is missing.
PINNED = "run `make tools` (the pinned version, checked against ops/toolchain/pins.txt, into ./bin)"
INSTALL_HINTS = {
    "pulumi": f"install the Pulumi CLI {(ROOT / '.pulumi-version').read_text().strip()} (.pulumi-version): https://www.pulumi.com/docs/install/",
    "kubectl": PINNED,
    "kind": PINNED,
    "docker": "install Docker: https://docs.docker.com/engine/install/",
}


class Failed(Exception):
    """A step failed; the message says which and why. The scripts exit 1 with it."""


class Steps:
    def __init__(self, script: str):
        self.script = script
        self.count = 0

    def step(self, what: str) -> None:
        self.count += 1
        print(f"[{self.script} {self.count}] {what}", flush=True)

    def note(self, what: str) -> None:
        print(f"    {what}", flush=True)


def require(tools: list[str]) -> None:
    """Every tool on PATH, or one line per missing tool and a failure."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise Failed("\n".join(f"{tool} is not installed; {INSTALL_HINTS.get(tool, 'install ' + tool)}" for tool in missing))


def run(command: list[str], what: str, capture: bool = False, input_text: Optional[str] = None,
        timeout: Optional[float] = None) -> str:
    """Run `command`; on a non-zero exit fail with `what` and the command's last error lines."""
    try:
        result = subprocess.run(command, text=True, capture_output=capture, input=input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"{what}: `{' '.join(command)}` did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        detail = ""
        if capture and (result.stderr or result.stdout):
            detail = ": " + " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise Failed(f"{what}: `{' '.join(command[:3])}` exited {result.returncode}{detail}")
    return result.stdout if capture else ""


def run_shown(command: list[str], what: str) -> str:
    """Run `command`, print its output (stdout and stderr in order) once it ends, and return it; on a non-zero exit
    fail with `what` and its last lines."""
    result = subprocess.run(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(result.stdout, end="" if result.stdout.endswith("\n") or not result.stdout else "\n", flush=True)
    if result.returncode != 0:
        detail = " | ".join(result.stdout.strip().splitlines()[-3:])
        raise Failed(f"{what}: `{' '.join(command[:3])}` exited {result.returncode}" + (f": {detail}" if detail else ""))
    return result.stdout


def main(script, argv: Optional[list[str]] = None) -> int:
    """Run a script's `script(argv)`; a Failed ends it with its message and exit 1. The pinned tools come first for
    every command it runs, however it was started (make, CI, by hand)."""
    os.environ["PATH"] = os.pathsep.join([str(PINNED_BIN), os.environ.get("PATH", "")])
    try:
        script(sys.argv[1:] if argv is None else argv)
    except Failed as failure:
        print(f"FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0
