"""checkov over each stack's rendered manifests: no failure beyond the reasoned skips in tests/checkov-skips.yaml."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import STACKS
from tools.render import PROJECT_DIR, write_manifests

SKIPS_FILE = PROJECT_DIR / "tests" / "checkov-skips.yaml"


def _checkov() -> str:
    """checkov lives in its own virtualenv (its pins clash with Pulumi's); make test creates it."""
    candidates = [os.environ.get("CHECKOV"), str(PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"), shutil.which("checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("checkov not found: run `make test` (it creates .venv-checkov) or set CHECKOV")


def _skips(stack: str) -> set[tuple[str, str]]:
    entries = yaml.safe_load(SKIPS_FILE.read_text())["skips"]
    for entry in entries:
        assert entry["reason"].strip(), f"{entry['check']} has no reason"
    return {(e["check"], r) for e in entries if stack in e.get("stacks", STACKS) for r in e["resources"]}


def _failures(root: Path) -> dict[str, set[tuple[str, str]]]:
    """(check, kind/name) failed, per directory under `root`: one checkov run for all of them (its start-up is most
    of a run's time)."""
    result = subprocess.run(
        [_checkov(), "-d", str(root), "--framework", "kubernetes", "-o", "json", "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        timeout=600,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failures: dict[str, set[tuple[str, str]]] = {directory.name: set() for directory in root.iterdir()}
    for r in reports:
        for failed in r.get("results", {}).get("failed_checks", []):
            kind, _namespace, name = failed["resource"].split(".", 2)
            failures[failed["file_path"].strip("/").split("/")[0]].add((failed["check_id"], f"{kind}/{name}"))
    return failures


# prod with one privileged container: the check can fail.
WEAKENED = "prod-privileged"


# Session-scoped: under pytest-xdist's work stealing a module's tests interleave with others', and a module fixture
# would be set up again each time (checkov ran three times).
@pytest.fixture(scope="session")
def failures(rendered_stacks, tmp_path_factory):
    root = tmp_path_factory.mktemp("checkov")
    for stack in STACKS:
        write_manifests(rendered_stacks[stack], root / stack)
    written = write_manifests(rendered_stacks["prod"], root / WEAKENED)
    target = next(p for p in written if p.name == "statefulset-redis.yaml")
    obj = yaml.safe_load(target.read_text())
    obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    target.write_text(yaml.safe_dump(obj))
    return _failures(root)


def test_prod_fails_nothing_but_the_listed_skips(failures):
    assert failures["prod"] == _skips("prod")


@pytest.mark.parametrize("stack", STACKS)
def test_no_failure_beyond_the_listed_skips(stack, failures):
    unexpected = failures[stack] - _skips(stack)
    assert not unexpected, f"checkov failures on {stack} not in {SKIPS_FILE.name}: {sorted(unexpected)}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_skip_is_still_needed(stack, failures):
    stale = _skips(stack) - failures[stack]
    assert not stale, f"skips that no longer match a {stack} failure: {sorted(stale)}"


def test_checkov_reports_a_real_weakness(failures):
    """The check can fail: a privileged container is reported."""
    assert failures[WEAKENED] - _skips("prod") == {("CKV_K8S_16", "StatefulSet/redis")}
