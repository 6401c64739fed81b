"""offsite.conf (components.pgbackrest.offsite_credentials) as real pgBackRest reads it: the cluster mounts it in the
configuration include directory, and every value the stack file can hold must reach pgBackRest exactly. The proof:
a repository encrypted with the passphrase from the generated file opens with the same passphrase given directly
(the environment, which pgBackRest does not trim), and not with a passphrase one character off."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components import pgbackrest
from settings import load_settings
from tests.harness import decoded_config, encode_config, run_program
from tests.services import PostgresServer

pytestmark = pytest.mark.server

# Printable one-line values a careless or hostile stack file can hold: ini syntax, quotes, shell syntax, non-ASCII.
HOSTILE = ["#not a comment", "a=b=c", "[global]", "semi;colons", "quote\"s and 's", "back\\slash\\", "unicode 密码 ✓",
           "$HOME ${X} `id` $(id)", "repo2-cipher-pass=other", "inner  double  spaces"]


@pytest.fixture(scope="module")
def postgres():
    pg = PostgresServer().init().start()
    yield pg
    pg.stop()


def _pgbackrest(pg: PostgresServer, *args: str, **env: str) -> subprocess.CompletedProcess:
    # Bytes: output of a repository that did not decrypt may hold anything.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, "pgbackrest", *args], capture_output=True, cwd=pg.base, timeout=120,
                          env={**os.environ, **env})


def _opens(pg: PostgresServer, conf: Path, passphrase: str) -> bool:
    done = _pgbackrest(pg, f"--config={conf}", f"--config-include-path={pg.base / 'no-include'}", "--stanza=db", "info",
                       "--output=json", PGBACKREST_REPO2_CIPHER_PASS=passphrase)
    return done.returncode == 0 and b'"system-id"' in done.stdout


@pytest.mark.parametrize("passphrase", HOSTILE)
def test_the_generated_file_gives_pgbackrest_the_passphrase_exactly(postgres, passphrase, tmp_path):
    case = postgres.base / f"case-{HOSTILE.index(passphrase)}"
    include, repo = case / "conf.d", case / "repo2"
    for directory in (case, include, repo, postgres.base / "no-include"):
        directory.mkdir(exist_ok=True)
    conf = case / "pgbackrest.conf"
    conf.write_text("\n".join([
        "[global]", f"repo2-path={repo}", f"repo2-cipher-type={pgbackrest.OFFSITE_CIPHER}", f"lock-path={case}",
        "log-level-console=warn", "log-level-file=off",
        "[db]", f"pg1-path={postgres.data}", f"pg1-port={postgres.port}", f"pg1-socket-path={postgres.socket_dir}", ""]))
    # The file the cluster mounts; on a posix repository pgBackRest ignores the S3 keys in it.
    (include / pgbackrest.OFFSITE_CONFIG_FILE).write_text(pgbackrest.offsite_credentials("AKIDEXAMPLE", "s3-secret", passphrase))
    for path in (case, include, repo, conf, include / pgbackrest.OFFSITE_CONFIG_FILE, postgres.base / "no-include"):
        postgres.give(path)
    created = _pgbackrest(postgres, f"--config={conf}", f"--config-include-path={include}", "--stanza=db", "stanza-create")
    assert created.returncode == 0, created.stderr
    assert _opens(postgres, conf, passphrase)
    assert not _opens(postgres, conf, passphrase[:-1] + chr(ord(passphrase[-1]) ^ 1))


def test_pgbackrest_trims_a_value_so_the_stack_file_refuses_one_with_spaces_at_its_ends(postgres):
    """Why settings.loading refuses a secret that begins or ends with a space: pgBackRest would encrypt with the trimmed
    passphrase, and the one `pulumi stack output` gives back would not open the repository."""
    case = postgres.base / "trimmed"
    include, repo = case / "conf.d", case / "repo2"
    for directory in (case, include, repo, postgres.base / "no-include"):
        directory.mkdir(exist_ok=True)
    conf = case / "pgbackrest.conf"
    conf.write_text(f"[global]\nrepo2-path={repo}\nrepo2-cipher-type={pgbackrest.OFFSITE_CIPHER}\nlock-path={case}\n"
                    f"log-level-console=warn\nlog-level-file=off\n[db]\npg1-path={postgres.data}\npg1-port={postgres.port}\n"
                    f"pg1-socket-path={postgres.socket_dir}\n")
    (include / pgbackrest.OFFSITE_CONFIG_FILE).write_text(pgbackrest.offsite_credentials("AKIDEXAMPLE", "s3-secret", "  padded  "))
    for path in (case, include, repo, conf, include / pgbackrest.OFFSITE_CONFIG_FILE):
        postgres.give(path)
    assert _pgbackrest(postgres, f"--config={conf}", f"--config-include-path={include}", "--stanza=db", "stanza-create").returncode == 0
    assert not _opens(postgres, conf, "  padded  ") and _opens(postgres, conf, "padded")

    from settings import StackConfigError

    config = {**encode_config(decoded_config("prod")), "real-estate-ai:backupOffsiteCipherPass": "  " + "p" * 40 + "  "}
    with pytest.raises(StackConfigError) as error:
        run_program("prod", load_settings, config, secret_keys=["real-estate-ai:backupOffsiteCipherPass"])
    assert "real-estate-ai:backupOffsiteCipherPass: must not begin or end with a space (configuration files drop it)" in str(error.value)
    assert "p" * 40 not in str(error.value)
