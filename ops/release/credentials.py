"""Before any call to the state backend: does this environment hold what the stack's backend and secrets provider
need? One line per missing credential, naming it and the stack, never a value. Without this the Pulumi CLI fails
later and less clearly (pulumi/actions only warns when a login fails; a missing passphrase surfaces mid-operation).

In CI (GITHUB_ACTIONS or CI set) every credential must be mapped into the job explicitly, and a local backend is
refused: the runner's disk, and the state on it, is gone when the job ends. On a workstation a cloud SDK's own
sources (profiles, SSO, metadata) may hold what is missing here, so only the backend URL's form and the passphrase
are checked there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import yaml

# Who may hold a cloud credential: any one of these sets, complete, will do (what the SDKs behind Pulumi's DIY
# backends and secrets providers read from the environment; the OIDC actions export the first or second form).
_AWS = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"), ("AWS_PROFILE",))
_GOOGLE = (("GOOGLE_APPLICATION_CREDENTIALS",), ("GOOGLE_CREDENTIALS",), ("CLOUDSDK_AUTH_ACCESS_TOKEN",))
_AZURE = (("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"),
          ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"), ("AZURE_STORAGE_KEY",), ("AZURE_STORAGE_SAS_TOKEN",))
# gocloud's hashivault keeper (Pulumi's hashivault:// secrets provider) reads these two.
_VAULT = (("VAULT_SERVER_URL", "VAULT_SERVER_TOKEN"),)
CLOUDS = {"aws": _AWS, "google": _GOOGLE, "azure": _AZURE, "vault": _VAULT}
_BACKEND_CLOUD = {"s3": "aws", "gs": "google", "azblob": "azure"}
_PROVIDER_CLOUD = {"awskms": "aws", "gcpkms": "google", "azurekeyvault": "azure", "hashivault": "vault"}


def in_ci(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("GITHUB_ACTIONS") or environ.get("CI"))


def _has(environ: Mapping[str, str], cloud: str) -> bool:
    return any(all(environ.get(name) for name in names) for names in CLOUDS[cloud])


def _wanted(cloud: str) -> str:
    return " or ".join("+".join(names) for names in CLOUDS[cloud])


def secrets_provider(stack_file: Path) -> Optional[str]:
    """The stack file's secrets provider: a URL (awskms://…, hashivault://…), 'passphrase', or None (not initialised
    here: the backend's default, Pulumi Cloud's own keys or a passphrase on a DIY backend)."""
    try:
        document = yaml.safe_load(stack_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None  # the stack's own validation names an unreadable file
    if not isinstance(document, dict):
        return None
    provider = document.get("secretsprovider")
    if isinstance(provider, str) and provider:
        return provider
    return "passphrase" if document.get("encryptionsalt") else None


def _passphrase_problem(stack: str, environ: Mapping[str, str]) -> Optional[str]:
    # Pulumi takes the variable whenever it is set, empty too (its passphrase manager), over the file; an empty one is
    # what GitHub passes for a secret the environment does not hold.
    if "PULUMI_CONFIG_PASSPHRASE" in environ:
        return None if environ["PULUMI_CONFIG_PASSPHRASE"] else \
            f"stack '{stack}': PULUMI_CONFIG_PASSPHRASE is set but empty (a secret this job's environment does not hold?)"
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        return None if Path(path).is_file() else \
            f"stack '{stack}': PULUMI_CONFIG_PASSPHRASE_FILE names a file that does not exist"
    return (f"stack '{stack}': its secrets are encrypted with a passphrase; set PULUMI_CONFIG_PASSPHRASE (or "
            f"PULUMI_CONFIG_PASSPHRASE_FILE) to this stack's own passphrase")


def problems(stack: str, stack_file: Path, environ: Mapping[str, str], interactive: bool = False) -> list[str]:
    """What is missing for `stack` in `environ`; [] when the backend and the secrets provider can be reached. At an
    interactive terminal outside CI the Pulumi CLI asks for a missing passphrase itself."""
    found: list[str] = []
    ci = in_ci(environ)
    backend = environ.get("PULUMI_BACKEND_URL", "")
    scheme = backend.split("://", 1)[0] if "://" in backend else ""
    cloud_backend = scheme in ("http", "https")
    if not backend and ci:
        found.append(f"stack '{stack}': PULUMI_BACKEND_URL is not set; CI needs the shared state backend "
                     f"(s3://…, gs://…, azblob://…, or Pulumi Cloud's https:// URL)")
    elif backend and not scheme:
        found.append(f"stack '{stack}': PULUMI_BACKEND_URL is not a URL (s3://…, gs://…, azblob://…, file://…, https://…)")
    elif scheme == "file" and ci:
        found.append(f"stack '{stack}': PULUMI_BACKEND_URL is a local file:// backend; in CI its state would be lost "
                     f"with the runner")
    elif scheme and scheme not in ("file", "http", "https") and scheme not in _BACKEND_CLOUD:
        found.append(f"stack '{stack}': PULUMI_BACKEND_URL has the scheme {scheme!r}, which no Pulumi backend serves")
    elif scheme in _BACKEND_CLOUD and ci and not _has(environ, _BACKEND_CLOUD[scheme]):
        found.append(f"stack '{stack}': the {scheme}:// state backend needs {_BACKEND_CLOUD[scheme]} credentials in "
                     f"this job: {_wanted(_BACKEND_CLOUD[scheme])}")
    if cloud_backend and not environ.get("PULUMI_ACCESS_TOKEN"):
        found.append(f"stack '{stack}': Pulumi Cloud ({backend}) needs PULUMI_ACCESS_TOKEN (in CI: pulumi/auth-actions "
                     f"exchanges the job's OIDC token for one)")
    provider = secrets_provider(stack_file)
    provider_scheme = provider.split("://", 1)[0] if provider and "://" in provider else provider
    if provider == "passphrase" or (provider is None and not cloud_backend):
        problem = None if interactive and not ci else _passphrase_problem(stack, environ)
        if problem:
            found.append(problem)
    elif provider_scheme in _PROVIDER_CLOUD:
        cloud = _PROVIDER_CLOUD[provider_scheme]
        if (ci or cloud == "vault") and not _has(environ, cloud):
            found.append(f"stack '{stack}': its secrets provider {provider_scheme}:// needs {cloud} credentials in "
                         f"this job: {_wanted(cloud)}")
    elif provider not in (None, "default", "service"):
        found.append(f"stack '{stack}': Pulumi.{stack}.yaml names the secrets provider {provider_scheme!r}, which this "
                     f"project does not know (passphrase, awskms, gcpkms, azurekeyvault, hashivault)")
    return found


def check(stack: str, stack_dir: Path, environ: Optional[Mapping[str, str]] = None, interactive: bool = False) -> list[str]:
    return problems(stack, stack_dir / f"Pulumi.{stack}.yaml", os.environ if environ is None else environ, interactive)
