"""ops/toolchain/system-packages.sh with dpkg-query, apt-get and sudo replaced by recording fakes on PATH: nothing run
when every package is there, the missing ones installed as root or through sudo, and otherwise one line naming them
and the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "toolchain" / "system-packages.sh"
NOBODY = [shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def fake_bin(tmp_path: Path, installed: set[str], sudo: bool = False, dpkg: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    for tool in ("bash", "env", "true", "sh", "printf", "chmod", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    if dpkg:
        (bin_dir / "dpkg-query").write_text(
            "#!/bin/bash\n"  # dpkg-query -W -f=FORMAT PACKAGE
            f'case " {" ".join(sorted(installed))} " in *" $3 "*) printf "install ok installed";; *) exit 1;; esac\n')
    # Records whether the services' start policy was in place while it ran.
    (bin_dir / "apt-get").write_text(f'#!/bin/bash\necho "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND'
                                     f'$([[ -x $POLICY_RC_D ]] && echo " services held")" >> {log}\n')
    if sudo:
        (bin_dir / "sudo").write_text(f'#!/bin/bash\necho "sudo $1" >> {log}\nshift\nexec "$@"\n')
    for path in bin_dir.iterdir():
        if not path.is_symlink():
            path.chmod(0o755)
    # The sudo test runs as another user, whose fake sudo grants nothing: it writes the policy file here itself.
    tmp_path.chmod(0o777)
    log.touch()
    log.chmod(0o666)
    return bin_dir


def run(bin_dir: Path, *args: str, user: list[str] = ()) -> subprocess.CompletedProcess:
    # A copy beside the fakes: another user may not read the checkout (a clone in a mode-700 directory, say).
    script = shutil.copy(SCRIPT, bin_dir.parent / SCRIPT.name)
    return subprocess.run([*user, str(bin_dir / "bash"), str(script), *args], capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "POLICY_RC_D": str(bin_dir.parent / "policy-rc.d")})


def packages() -> list[str]:
    text = SCRIPT.read_text()
    block = text[text.index("PACKAGES=(") + len("PACKAGES=("):text.index("\n)\n")]
    return [word for line in block.splitlines() for word in line.split("#")[0].split()]


def test_nothing_runs_when_every_package_is_installed(tmp_path):
    bin_dir = fake_bin(tmp_path, set(packages()))
    done = run(bin_dir)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "calls").read_text() == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="installs as root (the sudo path is the next test's)")
def test_root_installs_exactly_the_missing_packages_with_the_services_held(tmp_path):
    bin_dir = fake_bin(tmp_path, set(packages()) - {"patroni", "shellcheck"})
    done = run(bin_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "system packages: installing patroni shellcheck"
    assert (tmp_path / "calls").read_text().splitlines() == [
        "apt-get update -q DEBIAN_FRONTEND=noninteractive services held",
        "apt-get install -y -q --no-install-recommends patroni shellcheck DEBIAN_FRONTEND=noninteractive services held"]
    # The policy goes once the install is done; one the machine had stays.
    assert not (tmp_path / "policy-rc.d").exists()
    (tmp_path / "policy-rc.d").write_text("#!/bin/sh\nexit 0\n")
    assert run(bin_dir).returncode == 0 and (tmp_path / "policy-rc.d").read_text() == "#!/bin/sh\nexit 0\n"


def test_check_only_names_what_is_missing_and_installs_nothing(tmp_path):
    bin_dir = fake_bin(tmp_path, set(packages()) - {"redis-server"})
    done = run(bin_dir, "--check")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("system packages missing: redis-server; install them with: sudo apt-get update && "
                           "sudo apt-get install -y -q --no-install-recommends redis-server\n")
    assert (tmp_path / "calls").read_text() == ""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become another user")
def test_a_user_installs_through_sudo_when_it_asks_no_password_else_is_told_the_command():
    # Outside pytest's own temporary directory, which only root may enter.
    with tempfile.TemporaryDirectory() as base:
        _as_a_user(Path(base))


def _as_a_user(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, set(packages()) - {"etcd-server"}, sudo=True)
    done = run(bin_dir, user=NOBODY)
    assert done.returncode == 0, done.stderr
    # sudo -n: whether it asks a password; then the policy, the update, the install, the policy's removal.
    assert (tmp_path / "calls").read_text().splitlines() == [
        "sudo -n", "sudo -n", "sudo -n", "apt-get update -q DEBIAN_FRONTEND=noninteractive services held",
        "sudo -n", "apt-get install -y -q --no-install-recommends etcd-server DEBIAN_FRONTEND=noninteractive services held",
        "sudo -n"]
    assert not (tmp_path / "policy-rc.d").exists()

    (bin_dir / "sudo").unlink()
    (tmp_path / "calls").write_text("")
    done = run(bin_dir, user=NOBODY)
    assert done.returncode == 1 and done.stderr.startswith("system packages missing: etcd-server; install them with: ")
    assert len(done.stderr.splitlines()) == 1 and (tmp_path / "calls").read_text() == ""


def test_a_machine_without_dpkg_is_told_what_to_install(tmp_path):
    done = run(fake_bin(tmp_path, set(), dpkg=False))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("system packages: this is not a Debian or Ubuntu machine; install the equivalents of: make")


def test_ci_and_the_makefile_use_this_list_and_no_other():
    root = SCRIPT.parents[2]
    assert "apt-get install" not in (root / ".ci" / "run").read_text()
    assert "ops/toolchain/system-packages.sh" in (root / ".ci" / "run").read_text()
    makefile = (root / "Makefile").read_text()
    # The quick tier installs nothing; the whole suite sets itself up.
    assert "\nsystem-packages:\n\tops/toolchain/system-packages.sh\n" in makefile and "test: system-packages" in makefile
    assert "check: venv checkov policy-venv test-tools\n\tops/toolchain/system-packages.sh --check\n" in makefile
