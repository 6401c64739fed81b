"""Binaries the tests run that gotools/build.sh builds from Go modules: Prometheus and Alertmanager of the versions
kube-prometheus-stack 88.3.0 runs (promtool, amtool and both servers), and our mains over upstream packages
(promql-scope: Prometheus' PromQL parser; amconfig: prometheus-operator's AlertmanagerConfig rendering; ksm-crs:
kube-state-metrics' CustomResourceState metrics of given objects), and actionlint for the workflows.

`make test` builds them and passes their directory in GOTOOLS_BIN. Without it (a bare `pytest`), a built cache is
used, and for Prometheus and Alertmanager Debian's packages as a fallback; the report header says which ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("prometheus", "alertmanager", "blackbox", "promql-scope", "amconfig", "ksm-crs", "actionlint")
# Debian's names for the fallback (older releases than the chart's).
DEBIAN = {"prometheus": "prometheus", "promtool": "promtool", "alertmanager": "prometheus-alertmanager", "amtool": "amtool"}


@cache
def _built() -> Optional[Path]:
    if os.environ.get("GOTOOLS_BIN"):
        return Path(os.environ["GOTOOLS_BIN"])
    done = subprocess.run([str(ROOT / "gotools" / "build.sh"), "--check", *TOOLS], capture_output=True, text=True)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def binary(name: str) -> str:
    """The path of a built tool; Debian's Prometheus or Alertmanager where none is built; a failed test otherwise."""
    built = _built()
    if built is not None and (built / name).exists():
        return str(built / name)
    if name in DEBIAN and shutil.which(DEBIAN[name]):
        return shutil.which(DEBIAN[name])
    pytest.fail(f"{name} is not built: `make test-tools` builds it from Go modules (gotools/build.sh)")


def versions() -> str:
    """One line for the report header: which Prometheus and Alertmanager run."""
    found = []
    for name in ("prometheus", "alertmanager"):
        try:
            path = binary(name)
        except pytest.fail.Exception:
            found.append(f"{name}: none")
            continue
        done = subprocess.run([path, "--version"], capture_output=True, text=True)
        first = (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else "?"
        found.append(f"{first} ({'built from Go modules' if _built() and path.startswith(str(_built())) else 'Debian fallback'})")
    return "; ".join(found)
