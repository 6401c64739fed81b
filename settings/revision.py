"""The commit a build comes from, read once at the edge like the stack's config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def build_revision() -> str:
    """BUILD_REVISION (CI sets it), else the checkout's HEAD, else 'unknown'; only characters a tag and a label allow."""
    revision = os.environ.get("BUILD_REVISION", "")
    if not revision:
        try:
            revision = subprocess.run(
                ["git", "-C", str(PROJECT_DIR), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            revision = ""
    # A tag part and a label value: the characters both allow, nothing else.
    cleaned = "".join(c for c in revision if (c.isascii() and c.isalnum()) or c in "-_.").lstrip("-_.")[:40]
    return cleaned or "unknown"
