"""ops/release/credentials.py: what a job must hold for a stack's backend and secrets provider, named one line per
missing credential before any call to the backend, never with a value."""

from __future__ import annotations

import pytest

from ops.release.credentials import problems

PASSPHRASE_FILE = "encryptionsalt: v1:7wwfKWu7oaI=:v1:uffZ6EJpecm6jS9l:j3RBKETLQGnQ4WSDm1ekAtmSqUMOWA==\nconfig: {}\n"
KMS_FILE = "secretsprovider: awskms://alias/real-estate-prod?region=eu-central-1\nencryptedkey: AQICAHh...\nconfig: {}\n"
VAULT_FILE = "secretsprovider: hashivault://real-estate-prod\nencryptedkey: dmF1bHQ6djE6...\nconfig: {}\n"
CI = {"GITHUB_ACTIONS": "true"}
AWS = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-never-printed", "AWS_SESSION_TOKEN": "t"}


@pytest.fixture
def stack_file(tmp_path):
    def write(text: str):
        path = tmp_path / "Pulumi.prod.yaml"
        path.write_text(text)
        return path
    return write


@pytest.mark.parametrize("environ, text, expected", [
    # Everything there: an S3 backend with the job's AWS role, the stack's own passphrase.
    ({**CI, **AWS, "PULUMI_BACKEND_URL": "s3://state/real-estate", "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE, []),
    # The OIDC role's web identity form.
    ({**CI, "AWS_ROLE_ARN": "arn:aws:iam::1:role/prod", "AWS_WEB_IDENTITY_TOKEN_FILE": "/tmp/t",
      "PULUMI_BACKEND_URL": "s3://state", "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE, []),
    # Pulumi Cloud with its token; the stack's secrets are the service's.
    ({**CI, "PULUMI_BACKEND_URL": "https://api.pulumi.com", "PULUMI_ACCESS_TOKEN": "pul-x"}, "config: {}\n", []),
    # No backend in CI: its state would be a new, empty one on the runner.
    ({**CI, "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE,
     ["stack 'prod': PULUMI_BACKEND_URL is not set; CI needs the shared state backend (s3://…, gs://…, azblob://…, or "
      "Pulumi Cloud's https:// URL)"]),
    ({**CI, "PULUMI_BACKEND_URL": "file:///tmp/state", "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE,
     ["stack 'prod': PULUMI_BACKEND_URL is a local file:// backend; in CI its state would be lost with the runner"]),
    ({**CI, "PULUMI_BACKEND_URL": "s3://state", "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE,
     ["stack 'prod': the s3:// state backend needs aws credentials in this job: AWS_ACCESS_KEY_ID+AWS_SECRET_ACCESS_KEY "
      "or AWS_ROLE_ARN+AWS_WEB_IDENTITY_TOKEN_FILE or AWS_PROFILE"]),
    ({**CI, "PULUMI_BACKEND_URL": "https://api.pulumi.com"}, "config: {}\n",
     ["stack 'prod': Pulumi Cloud (https://api.pulumi.com) needs PULUMI_ACCESS_TOKEN (in CI: pulumi/auth-actions "
      "exchanges the job's OIDC token for one)"]),
    # Both missing: both named, in the order the CLI would need them.
    ({**CI, **AWS, "PULUMI_BACKEND_URL": "s3://state"}, PASSPHRASE_FILE,
     ["stack 'prod': its secrets are encrypted with a passphrase; set PULUMI_CONFIG_PASSPHRASE (or "
      "PULUMI_CONFIG_PASSPHRASE_FILE) to this stack's own passphrase"]),
    ({**CI, **AWS, "PULUMI_BACKEND_URL": "s3://state", "PULUMI_CONFIG_PASSPHRASE_FILE": "/nonexistent/passphrase"}, PASSPHRASE_FILE,
     ["stack 'prod': PULUMI_CONFIG_PASSPHRASE_FILE names a file that does not exist"]),
    # GitHub passes "" for a secret the environment does not hold; Pulumi would take it over the file.
    ({**CI, **AWS, "PULUMI_BACKEND_URL": "s3://state", "PULUMI_CONFIG_PASSPHRASE": "",
      "PULUMI_CONFIG_PASSPHRASE_FILE": "/etc/hostname"}, PASSPHRASE_FILE,
     ["stack 'prod': PULUMI_CONFIG_PASSPHRASE is set but empty (a secret this job's environment does not hold?)"]),
    # Local state (no backend URL, a workstation): a stack not initialised here gets the passphrase provider.
    ({}, "config: {}\n", ["stack 'prod': its secrets are encrypted with a passphrase; set PULUMI_CONFIG_PASSPHRASE (or "
                           "PULUMI_CONFIG_PASSPHRASE_FILE) to this stack's own passphrase"]),
    # A KMS key: the cloud credentials are the key to it; no passphrase is asked for.
    ({**CI, **AWS, "PULUMI_BACKEND_URL": "s3://state"}, KMS_FILE, []),
    ({**CI, "PULUMI_BACKEND_URL": "gs://state", "GOOGLE_APPLICATION_CREDENTIALS": "/tmp/creds.json"}, KMS_FILE,
     ["stack 'prod': its secrets provider awskms:// needs aws credentials in this job: AWS_ACCESS_KEY_ID+AWS_SECRET_ACCESS_KEY "
      "or AWS_ROLE_ARN+AWS_WEB_IDENTITY_TOKEN_FILE or AWS_PROFILE"]),
    # Vault's transit key needs its address and token, on a workstation too.
    ({"PULUMI_BACKEND_URL": "s3://state"}, VAULT_FILE,
     ["stack 'prod': its secrets provider hashivault:// needs vault credentials in this job: VAULT_SERVER_URL+VAULT_SERVER_TOKEN"]),
    # A workstation: the SDKs' own sources (profiles, SSO) may hold cloud credentials; not guessed at here.
    ({"PULUMI_BACKEND_URL": "s3://state", "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE, []),
    ({}, PASSPHRASE_FILE, ["stack 'prod': its secrets are encrypted with a passphrase; set PULUMI_CONFIG_PASSPHRASE (or "
                           "PULUMI_CONFIG_PASSPHRASE_FILE) to this stack's own passphrase"]),
    ({"PULUMI_BACKEND_URL": "state-bucket"}, PASSPHRASE_FILE + "",
     ["stack 'prod': PULUMI_BACKEND_URL is not a URL (s3://…, gs://…, azblob://…, file://…, https://…)",
      "stack 'prod': its secrets are encrypted with a passphrase; set PULUMI_CONFIG_PASSPHRASE (or "
      "PULUMI_CONFIG_PASSPHRASE_FILE) to this stack's own passphrase"]),
    ({"PULUMI_BACKEND_URL": "ftp://x\nFAKE LINE", "PULUMI_CONFIG_PASSPHRASE": "x"}, PASSPHRASE_FILE,
     ["stack 'prod': PULUMI_BACKEND_URL has the scheme 'ftp', which no Pulumi backend serves"]),
    ({"PULUMI_CONFIG_PASSPHRASE": "x"}, "secretsprovider: \"rot13://k\\nobjects written\"\nconfig: {}\n",
     ["stack 'prod': Pulumi.prod.yaml names the secrets provider 'rot13', which this project does not know (passphrase, "
      "awskms, gcpkms, azurekeyvault, hashivault)"]),
])
def test_each_missing_credential_is_one_line(environ, text, expected, stack_file):
    assert problems("prod", stack_file(text), environ) == expected


def test_an_interactive_terminal_is_asked_for_the_passphrase_by_the_cli_but_ci_never(stack_file):
    path = stack_file(PASSPHRASE_FILE)
    assert problems("prod", path, {}, interactive=True) == []
    assert problems("prod", path, {**CI, **AWS, "PULUMI_BACKEND_URL": "s3://state"}, interactive=True) != []


def test_no_value_is_ever_printed(stack_file):
    environ = {**CI, "PULUMI_BACKEND_URL": "s3://state", "AWS_SECRET_ACCESS_KEY": "secret-never-printed",
               "PULUMI_ACCESS_TOKEN": "pul-secret-never-printed", "PULUMI_CONFIG_PASSPHRASE": ""}
    found = "\n".join(problems("prod", stack_file(PASSPHRASE_FILE), environ))
    assert found and "never-printed" not in found
