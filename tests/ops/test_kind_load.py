"""ops/dev/kind-load-api.sh with docker and kind replaced by fakes that log their arguments."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "dev" / "kind-load-api.sh"


def _run(tmp_path, stack="dev", tools=("docker", "kind"), **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls"\n')
        fake.chmod(0o755)
    # Without the fakes, PATH holds only a directory with the shell utilities the script needs, not docker or kind.
    if set(tools) != {"docker", "kind"}:
        for util in ("dirname", "cat"):
            target = bin_dir / util
            if not target.exists():
                target.symlink_to(f"/usr/bin/{util}")
    path = f"{bin_dir}:/usr/bin:/bin" if set(tools) == {"docker", "kind"} else str(bin_dir)
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), stack], capture_output=True, text=True, timeout=60,
        env={"PATH": path, "PYTHON": sys.executable, "HOME": str(tmp_path), **env},
    )
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return result, calls


def test_dev_builds_the_tag_pulumi_builds_and_loads_it_into_its_kind_cluster(tmp_path):
    result, calls = _run(tmp_path, BUILD_REVISION="0123abcd4567")
    assert result.returncode == 0, result.stderr
    assert calls[0].startswith("docker build --build-arg APP_VERSION=1.0.0 --build-arg BUILD_REVISION=0123abcd4567 -t real-estate-api:1.0.0-0123abcd4567")
    assert calls[1] == "kind load docker-image real-estate-api:1.0.0-0123abcd4567 --name real-estate"


def test_a_stack_on_another_cluster_loads_nothing_and_needs_no_docker_or_kind(tmp_path):
    for stack in ("test", "prod"):
        result, calls = _run(tmp_path, stack=stack, tools=(), BUILD_REVISION="0123abcd4567")
        assert result.returncode == 0 and "nothing to load" in result.stdout, result.stderr
        assert calls == []


def test_missing_tools_are_named_for_a_kind_stack(tmp_path):
    result, _ = _run(tmp_path, tools=(), BUILD_REVISION="x")
    assert result.returncode == 1 and "docker is not installed" in result.stderr


def test_the_revision_is_cleaned_as_the_program_cleans_it(tmp_path):
    result, calls = _run(tmp_path, BUILD_REVISION="feature/x-1")
    assert result.returncode == 0, result.stderr
    assert calls[1] == "kind load docker-image real-estate-api:1.0.0-featurex-1 --name real-estate"


def test_the_tag_is_the_one_the_program_builds():
    from components.api import image_name
    from settings import ApiSettings

    assert image_name(ApiSettings(replicas=1, version="1.0.0"), "0123abcd4567") == "real-estate-api:1.0.0-0123abcd4567"
