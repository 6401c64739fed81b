"""What the API image is built from, read once at the edge like the stack's config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The build context, relative to the project: Pulumi runs the program from the project's directory, so the same
# input whoever runs it (an absolute path made every checkout's preview differ).
APP_DIR = "app"
# Hex digits of the tree id kept in a tag.
LENGTH = 12


def _git(project_dir: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def source_revision(project_dir: Path = PROJECT_DIR) -> str:
    """The git tree of app/ (not the commit): every commit that leaves app/ as it is (docs, infrastructure) names the
    same build, so it builds no new image that would then canary through test and prod, and a developer's make and
    CI name it alike. '-dirty' when app/ differs from that tree; '' outside a checkout."""
    tree = _git(project_dir, "rev-parse", f"HEAD:{APP_DIR}")[:LENGTH]
    if not tree:
        return ""
    dirty = _git(project_dir, "status", "--porcelain", "--", APP_DIR)
    return f"{tree}-dirty" if dirty else tree


def build_revision(project_dir: Path = PROJECT_DIR) -> str:
    """BUILD_REVISION where set (an override), else source_revision(), else 'unknown'; only characters a tag and a
    label allow."""
    revision = os.environ.get("BUILD_REVISION", "") or source_revision(project_dir)
    # A tag part and a label value: the characters both allow, nothing else.
    cleaned = "".join(c for c in revision if (c.isascii() and c.isalnum()) or c in "-_.").lstrip("-_.")[:40]
    return cleaned or "unknown"
