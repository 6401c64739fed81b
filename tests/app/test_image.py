"""The Dockerfile and the Pulumi api component agree on what the image is (it cannot be built here)."""

import re

from components.api import CONFIG_DIR, HTTP_PORT
from components.workload import RUN_AS_UID
from tests.app.conftest import APP_DIR

DOCKERFILE = (APP_DIR / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE[DOCKERFILE.rindex("\nFROM ") :]


def test_base_images_are_pinned_slim_python_311():
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", b) for b in bases)


def test_runs_as_the_uid_the_pod_enforces_on_the_probed_port():
    final = _final_stage()
    assert f"USER {RUN_AS_UID}:{RUN_AS_UID}" in final
    assert f"EXPOSE {HTTP_PORT}" in final
    assert '"real_estate_api.server"' in final and f'"--port", "{HTTP_PORT}"' in final


def test_final_stage_has_no_build_tools_and_writes_no_bytecode():
    final = _final_stage()
    assert "pip install" not in final and "apt-get" not in final and "gcc" not in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final and "compileall" in DOCKERFILE


def test_dependencies_are_pinned():
    lines = [l for l in (APP_DIR / "requirements.txt").read_text().splitlines() if l and not l.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", l) for l in lines)


def test_the_app_serves_the_probed_paths_and_reads_the_mounted_properties():
    from real_estate_api.config import DEFAULT_PROPERTIES

    assert DEFAULT_PROPERTIES == f"{CONFIG_DIR}/app.properties"
    source = (APP_DIR / "real_estate_api" / "app.py").read_text()
    for path in ('"/health"', '"/ready"', '"/metrics"', '"/version"'):
        assert f"@app.get({path})" in source
