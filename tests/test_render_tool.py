"""`make manifests` — the render tool run as a person runs it."""

import shutil
import subprocess
import sys

import pytest
import yaml

from tools.render import PROJECT_DIR, REDACTED


def _render(*args, cwd=PROJECT_DIR):
    return subprocess.run([sys.executable, "-m", "tools.render", *args], capture_output=True, text=True, cwd=cwd)


def test_writes_one_file_per_object_with_secrets_redacted_and_integers(tmp_path):
    out = tmp_path / "prod"
    result = _render("--stack", "prod", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "pulumi preview" in result.stdout
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert "deployment-api.yaml" in files and "namespace-real-estate.yaml" in files
    deployment = yaml.safe_load((out / "deployment-api.yaml").read_text())
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    replicas = deployment["spec"]["replicas"]
    assert type(replicas) is int and replicas == 3
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert type(port) is int
    for name in files:
        obj = yaml.safe_load((out / name).read_text())
        if obj["kind"] == "Secret":
            assert set(obj["stringData"].values()) == {REDACTED}, name
    assert "\nmetadata:" in (out / "deployment-api.yaml").read_text()


def test_rerender_replaces_stale_files(tmp_path):
    (tmp_path / "deployment-removed.yaml").write_text("kind: Deployment\n")
    assert _render("--stack", "dev", "--out", str(tmp_path)).returncode == 0
    assert not (tmp_path / "deployment-removed.yaml").exists()


def test_bad_config_fails_clearly_and_writes_nothing(tmp_path):
    project = _project_with(tmp_path, (PROJECT_DIR / "Pulumi.prod.yaml").read_text().replace("replicas: 3", "replicas: 0", 1))
    out = tmp_path / "out"
    result = _render("--stack", "prod", "--out", str(out), cwd=project)
    assert result.returncode == 1
    assert "invalid configuration for stack 'prod'" in result.stderr
    assert "real-estate-ai:api.replicas" in result.stderr
    assert not out.exists()


def test_unknown_stack_is_named(tmp_path):
    result = _render("--stack", "staging", "--out", str(tmp_path / "x"))
    assert result.returncode != 0
    assert "Pulumi.staging.yaml" in result.stderr and "dev, prod, test" in result.stderr


def _project_with(tmp_path, stack_file: str):
    """A copy of the project whose Pulumi.prod.yaml is `stack_file`."""
    project = tmp_path / "project"
    project.mkdir()
    # What the program reads: its code, the policy pack's contract it shares, the operator's vendored CRDs.
    for name in ("components", "tools", "settings", "ops", "app", "policy", "crds"):
        shutil.copytree(PROJECT_DIR / name, project / name, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    for name in ("__main__.py", "Pulumi.yaml"):
        (project / name).write_text((PROJECT_DIR / name).read_text())
    (project / "Pulumi.prod.yaml").write_text(stack_file)
    return project


PROD = (PROJECT_DIR / "Pulumi.prod.yaml").read_text()
BROKEN_FILES = [
    ("tab", PROD.replace("  real-estate-ai:protectData: true", "\treal-estate-ai:protectData: true"), "Pulumi.prod.yaml: not valid YAML (line"),
    ("list", "- config\n- other\n", "Pulumi.prod.yaml: must be a mapping with a 'config:' mapping"),
    ("scalar", "just some text\n", "Pulumi.prod.yaml: must be a mapping with a 'config:' mapping"),
    ("config list", "config:\n  - a\n", "Pulumi.prod.yaml: must be a mapping with a 'config:' mapping"),
    ("duplicate key", PROD.replace("  real-estate-ai:protectData: true\n", "  real-estate-ai:protectData: true\n  real-estate-ai:protectData: false\n"),
     "key 'real-estate-ai:protectData' appears twice"),
    ("duplicate nested key", PROD.replace("    replicas: 3\n", "    replicas: 3\n    replicas: 1\n", 1), "key 'replicas' appears twice"),
]


@pytest.mark.parametrize("name,text,message", BROKEN_FILES, ids=[b[0] for b in BROKEN_FILES])
def test_a_malformed_stack_file_is_one_line_naming_it(tmp_path, name, text, message):
    result = _render("--stack", "prod", "--out", str(tmp_path / "out"), cwd=_project_with(tmp_path, text))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_required_secret_in_plain_text_is_refused_as_pulumi_up_would(tmp_path):
    text = PROD.replace("config:\n", "config:\n  real-estate-ai:backupOffsiteSecretAccessKey: plain-text-key\n", 1)
    result = _render("--stack", "prod", "--out", str(tmp_path / "out"), cwd=_project_with(tmp_path, text))
    assert result.returncode == 1
    assert "real-estate-ai:backupOffsiteSecretAccessKey: is stored in plain text" in result.stderr
    assert "plain-text-key" not in result.stderr
