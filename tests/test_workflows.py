"""The GitHub workflows (.github/): read by actionlint v1.7.12 (built from its Go module) with shellcheck over every
script, and held to what a hostile reviewer checks: what a pull request's code can reach, how actions are pinned,
that nothing pushes to main or applies anything but a reviewed plan, and that CI installs the Pulumi CLI the e2e
proves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.gotools import binary

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTIONS = sorted((GITHUB / "actions").glob("*/action.yml"))
# The environments whose identity can change a stack or decrypt prod's secrets.
PROTECTED = {"test", "production-plan", "production"}
# What a same-repository pull request may use: test's read-only identity.
PULL_REQUEST_ENVIRONMENTS = {"test-preview"}
SHA_PIN = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?:\s+#\s*(?P<comment>\S.*))?$")


def _load(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True.
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def _actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (Debian package shellcheck): actionlint would skip every script"
    return subprocess.run([binary("actionlint"), f"-shellcheck={shellcheck}", "-oneline", *map(str, files)], cwd=cwd,
                          capture_output=True, text=True)


def test_actionlint_and_shellcheck_pass_every_workflow():
    assert WORKFLOWS
    done = _actionlint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path):
    # The same files in a repository of their own, one job needing a job that does not exist and one script that
    # word-splits a variable: both must be reported.
    shutil.copytree(GITHUB, tmp_path / ".github")
    (tmp_path / ".git").mkdir()
    delivery = tmp_path / ".github" / "workflows" / "delivery.yml"
    text = delivery.read_text().replace("needs: plan-prod", "needs: plan-production")
    text = text.replace('[ -n "$changed" ] || exit 0', '[ -n $changed ] || exit 0')
    delivery.write_text(text)
    done = _actionlint(delivery, cwd=tmp_path)
    assert done.returncode == 1
    assert 'job "deploy-prod" needs job "plan-production" which does not exist' in done.stdout
    assert "SC2086" in done.stdout


def _steps_uses(path: Path) -> list[re.Match]:
    return [m for line in path.read_text().splitlines() if (m := SHA_PIN.match(line))]


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_action_is_pinned_by_commit_with_its_version_named(path):
    for use in _steps_uses(path):
        if use["action"].startswith("./"):
            continue
        assert re.fullmatch(r"[0-9a-f]{40}", use["ref"]), f"{use['action']}@{use['ref']} is not pinned by commit"
        assert use["comment"] and re.match(r"v\d+\.\d+\.\d+", use["comment"]), f"{use['action']}: name its version"


def _jobs():
    for path in WORKFLOWS:
        workflow = _load(path)
        for name, job in workflow["jobs"].items():
            yield path.name, workflow, name, job


def _scripts(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) for step in job.get("steps", []))


def _environment(job: dict) -> str:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else (environment or "")


def _needs(job: dict) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else needs


def _runs_on_pull_requests(workflow: dict, name: str) -> bool:
    """Whether a pull_request event can run this job: its workflow takes pull requests and neither it nor any job
    it needs is limited to pushes to main."""
    triggers = workflow["on"]
    if not (isinstance(triggers, dict) and "pull_request" in triggers or triggers == "pull_request"):
        return False
    job = workflow["jobs"][name]
    condition = str(job.get("if", ""))
    if "github.event_name == 'push'" in condition and "github.ref == 'refs/heads/main'" in condition:
        return False
    return all(_runs_on_pull_requests(workflow, need) for need in _needs(job))


def test_no_workflow_runs_on_events_that_hand_untrusted_code_secrets():
    for path in WORKFLOWS:
        triggers = _load(path)["on"]
        assert not {"pull_request_target", "workflow_run"} & set(triggers), path.name
        assert _load(path)["permissions"] == {}, f"{path.name}: every job asks for its own permissions"


def test_pull_request_code_reaches_no_protected_environment_and_no_repository_secret():
    seen_pull_request_jobs = []
    for workflow_name, workflow, name, job in _jobs():
        text = yaml.safe_dump(job)
        environment = _environment(job)
        # Secrets only through an environment: a repository secret would reach every job, a pull request's too.
        if "secrets." in text:
            assert environment, f"{workflow_name} {name}: reads secrets outside an environment"
        if _runs_on_pull_requests(workflow, name):
            seen_pull_request_jobs.append(name)
            assert environment in PULL_REQUEST_ENVIRONMENTS | {""}, f"{workflow_name} {name}: a pull request reaches {environment}"
            assert "contents: write" not in text and "pull-requests: write" not in text, name
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("actions/checkout@"):
                    assert (step.get("with") or {}).get("persist-credentials") is False, f"{name}: the token stays in .git"
            if environment:
                # Forks' pull requests run with no secrets at all; same-repository ones with test's read-only identity.
                assert "github.event.pull_request.head.repo.full_name == github.repository" in str(job.get("if")), name
        if environment in PROTECTED:
            assert not _runs_on_pull_requests(workflow, name), f"{workflow_name} {name}"
    assert set(seen_pull_request_jobs) == {"render", "preview"}


def test_only_main_deploys_and_only_a_reviewed_plan_reaches_prod():
    jobs = {name: job for _, _, name, job in _jobs()}
    assert _environment(jobs["deploy-prod"]) == "production" and jobs["deploy-prod"]["needs"] == "plan-prod"
    assert _environment(jobs["plan-prod"]) == "production-plan"
    assert '.venv/bin/python -m ops.release.release "${stages[@]}" --plans build/plans' in _scripts(jobs["deploy-prod"])
    assert any(str(step.get("uses", "")).startswith("actions/download-artifact@") for step in jobs["deploy-prod"]["steps"])
    # Each stack's operations one at a time, never cancelled halfway.
    for name in ("release-test", "plan-prod", "deploy-prod"):
        assert jobs[name]["concurrency"]["cancel-in-progress"] is False, name
    assert jobs["release-test"]["concurrency"]["group"] == "pulumi-test"
    # A deploy waiting for approval neither blocks nor is cancelled by the next run's plan.
    assert (jobs["plan-prod"]["concurrency"]["group"], jobs["deploy-prod"]["concurrency"]["group"]) == ("plan-prod", "pulumi-prod")
    # Only plans that change something are put to the reviewers, only main's head is applied, only this run's plans.
    assert jobs["deploy-prod"]["if"] == "needs.plan-prod.outputs.changes == 'true'"
    apply = next(step for step in jobs["deploy-prod"]["steps"] if step.get("name") == "Apply the approved plans")
    assert apply["if"] == "steps.head.outputs.superseded != 'true'"
    download = next(step for step in jobs["deploy-prod"]["steps"] if str(step.get("uses", "")).startswith("actions/download-artifact@"))
    assert set(download["with"]) == {"name", "path"}
    upload = next(step for step in jobs["plan-prod"]["steps"] if str(step.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["with"]["retention-days"] == 30 and upload["with"]["overwrite"] is True


def test_nothing_pushes_to_main():
    pushes = [line for path in WORKFLOWS for line in path.read_text().splitlines() if "git push" in line]
    assert pushes == ['          git push --force origin "HEAD:refs/heads/$branch"']
    promote = next(job for _, _, name, job in _jobs() if name == "propose-promotion")
    assert re.search(r'^branch="promote/\$VERSION-\$\{GITHUB_SHA::12\}"$', _scripts(promote), re.MULTILINE)
    assert "branch=" not in _scripts(promote).replace('branch="promote/', "")
    assert not _environment(promote)


def test_tokens_and_secrets_reach_only_the_steps_that_use_them():
    for workflow_name, _, name, job in _jobs():
        # OIDC tokens only where an environment's identity is wanted.
        if (job.get("permissions") or {}).get("id-token") == "write":
            assert _environment(job), f"{workflow_name} {name}"
        # The passphrase in the steps that run Pulumi, not in the job's environment for every install step.
        assert "PULUMI_CONFIG_PASSPHRASE" not in (job.get("env") or {}), f"{workflow_name} {name}"
        for step in job["steps"]:
            if "secrets.PULUMI_CONFIG_PASSPHRASE" in yaml.safe_dump(step):
                assert str(step.get("run", "")).lstrip().startswith((".venv/bin/python -m ops.release.", "for stack", "mapfile")), step
    # No script asks the CLI for secrets in plain text (an argument "--show-secrets").
    assert all('"--show-secrets"' not in path.read_text() for path in (ROOT / "ops").rglob("*.py"))


def test_every_pulumi_up_in_the_release_scripts_is_held_to_a_plan():
    calls = [line for path in (ROOT / "ops").rglob("*.py") for line in path.read_text().splitlines()
             if re.search(r'"pulumi",\s*"up"', line)]
    assert calls and all('"--plan"' in line and "--skip-preview" not in line for line in calls), calls


def test_ci_installs_the_pulumi_cli_the_e2e_builds_and_runs_and_kubectl_through_make_tools():
    version = (ROOT / ".pulumi-version").read_text().strip()
    build = (ROOT / "gotools" / "build.sh").read_text()
    assert f"sdk/v3/go/common/version.Version=v{version}" in build
    assert re.search(rf"github.com/pulumi/pulumi/pkg/v3 v{re.escape(version)}\b", (ROOT / "gotools" / "pulumi" / "go.mod").read_text())
    steps = yaml.safe_load((GITHUB / "actions" / "tools" / "action.yml").read_text())["runs"]["steps"]
    assert [step.get("uses", "").split("@")[0] for step in steps] == ["actions/setup-python", "", "pulumi/actions"]
    assert steps[1]["run"] == "make venv policy-venv tools TOOLS=kubectl"
    assert steps[2]["with"] == {"pulumi-version-file": ".pulumi-version"}
    # kubectl's version and checksums: ops/toolchain/pins.txt (tests/ops/test_toolchain_fetch.py ties it to the e2e).


def test_the_first_stage_is_the_one_the_workflow_releases_and_previews():
    from ops.release.stages import configured_stages, drift_environment

    assert configured_stages()[0] == "test"
    # Drift reads Secrets: never with the identity pull requests get.
    assert [drift_environment(i) for i in range(len(configured_stages()))][:2] == ["test", "production-plan"]
