"""`make tools` (ops/toolchain/fetch.py) against a local HTTP server serving fake releases: a right download is
installed, every bad one (wrong checksum, 404, cut short, an archive without the tool) is refused with one line and
leaves ./bin as it was; and the real pins file is complete and agrees with the versions the e2e builds."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading
from pathlib import Path

import pytest

from ops.release.shell import Failed
from ops.toolchain.fetch import PINS, fetch, read_pins

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = "linux-amd64"


class Releases:
    """Files by path; `short` paths announce more bytes than they send."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.short: set[str] = set()
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                owner.requests.append(self.path)
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (1000 if self.path in owner.short else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        # An in-process stub on an ephemeral port: no real server, so this stays in `make check`.
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def releases():
    served = Releases()
    yield served
    served.stop()


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pins_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pins.txt"
    path.write_text("# fake releases\n" + "\n".join(lines) + "\n")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_binary_and_an_archive_are_installed_executable_with_their_stamps(tmp_path, releases):
    kind = b"#!/bin/sh\necho kind v9\n"
    cli = tarball({"pulumi/pulumi": b"cli", "pulumi/pulumi-language-python": b"host", "other/x": b"no",
                   "pulumi/../../escape": b"no", "pulumi/sub/deep": b"no"})
    releases.files = {"/kind": kind, "/cli.tgz": cli}
    pins = pins_file(tmp_path, [f"kind v9 {PLATFORM} {sha(kind)} {releases.base}/kind",
                                f"pulumi 9.0 {PLATFORM} {sha(cli)} {releases.base}/cli.tgz pulumi"])
    bin_dir = tmp_path / "bin"

    said = fetch(["kind", "pulumi"], pins, bin_dir, PLATFORM)

    assert said == [f"kind v9 ({PLATFORM}): installed 1 file(s) in {bin_dir}",
                    f"pulumi 9.0 ({PLATFORM}): installed 2 file(s) in {bin_dir}"]
    assert (bin_dir / "kind").read_bytes() == kind and (bin_dir / "kind").stat().st_mode & 0o777 == 0o755
    assert (bin_dir / "pulumi").read_bytes() == b"cli" and (bin_dir / "pulumi-language-python").read_bytes() == b"host"
    assert sorted(p.name for p in bin_dir.iterdir()) == [".pins", "kind", "pulumi", "pulumi-language-python"]
    assert not (tmp_path / "escape").exists()
    assert (bin_dir / ".pins" / "kind").read_text() == f"v9 {sha(kind)}\n"


def test_an_installed_pin_is_not_downloaded_again_and_a_new_pin_is(tmp_path, releases):
    old, new = b"old", b"new"
    releases.files = {"/old": old, "/new": new}
    bin_dir = tmp_path / "bin"
    fetch(["kind"], pins_file(tmp_path, [f"kind v1 {PLATFORM} {sha(old)} {releases.base}/old"]), bin_dir, PLATFORM)

    again = fetch(["kind"], pins_file(tmp_path, [f"kind v1 {PLATFORM} {sha(old)} {releases.base}/old"]), bin_dir, PLATFORM)
    assert again == [f"kind v1 ({PLATFORM}): up to date in {bin_dir}"] and releases.requests == ["/old"]

    fetch(["kind"], pins_file(tmp_path, [f"kind v2 {PLATFORM} {sha(new)} {releases.base}/new"]), bin_dir, PLATFORM)
    assert (bin_dir / "kind").read_bytes() == new and releases.requests == ["/old", "/new"]


@pytest.mark.parametrize("case, expected", [
    ("wrong checksum", r"^kind v2 \(linux-amd64\): the download's sha256 is [0-9a-f]{64}, pins\.txt pins 0{64} "
                       r"\(7 bytes received\); nothing installed$"),
    ("not found", r"^kind v2 \(linux-amd64\): http://127\.0\.0\.1:\d+/gone answered HTTP 404; nothing installed$"),
    ("cut short", r"^kind v2 \(linux-amd64\): the download from http://127\.0\.0\.1:\d+/short broke off after 7 of 1007 "
                  r"bytes; nothing installed$"),
    ("no server", r"^kind v2 \(linux-amd64\): downloading http://127\.0\.0\.1:9/kind failed \(ConnectionRefusedError: .*\); "
                  r"nothing installed$"),
    ("archive without the tool", r"^kind v2 \(linux-amd64\): the archive has no kind/kind; nothing installed$"),
    ("not an archive", r"^kind v2 \(linux-amd64\): the archive does not unpack \(.*\); nothing installed$"),
])
def test_a_bad_download_is_refused_in_one_line_and_the_installed_version_stays(tmp_path, releases, case, expected):
    good = b"kind v1"
    releases.files = {"/good": good, "/bad": b"kind v2", "/short": b"kind v2", "/empty.tgz": tarball({"kind/other": b"x"}),
                      "/text.tgz": b"not a tarball"}
    releases.short = {"/short"}
    bin_dir = tmp_path / "bin"
    fetch(["kind"], pins_file(tmp_path, [f"kind v1 {PLATFORM} {sha(good)} {releases.base}/good"]), bin_dir, PLATFORM)
    line = {
        "wrong checksum": f"kind v2 {PLATFORM} {'0' * 64} {releases.base}/bad",
        "not found": f"kind v2 {PLATFORM} {sha(b'x')} {releases.base}/gone",
        "cut short": f"kind v2 {PLATFORM} {sha(b'kind v2')} {releases.base}/short",
        "no server": f"kind v2 {PLATFORM} {sha(b'kind v2')} http://127.0.0.1:9/kind",
        "archive without the tool": f"kind v2 {PLATFORM} {sha(releases.files['/empty.tgz'])} {releases.base}/empty.tgz kind",
        "not an archive": f"kind v2 {PLATFORM} {sha(b'not a tarball')} {releases.base}/text.tgz kind",
    }[case]

    with pytest.raises(Failed) as refused:
        fetch(["kind"], pins_file(tmp_path, [line]), bin_dir, PLATFORM)

    assert re.match(expected, str(refused.value)) and "\n" not in str(refused.value)
    assert (bin_dir / "kind").read_bytes() == good
    assert (bin_dir / ".pins" / "kind").read_text() == f"v1 {sha(good)}\n"
    assert sorted(p.name for p in bin_dir.iterdir()) == [".pins", "kind"]


def test_a_platform_without_a_pin_uses_the_machines_own_tool_or_is_named(tmp_path, monkeypatch):
    pins = pins_file(tmp_path, [f"kind v1 {PLATFORM} {'a' * 64} http://127.0.0.1:9/kind"])
    own = tmp_path / "own"
    own.mkdir()
    monkeypatch.setenv("PATH", str(own))
    with pytest.raises(Failed, match=r"^kind: no download pinned for plan9-mips in pins\.txt and none on PATH; install it yourself$"):
        fetch(["kind"], pins, tmp_path / "bin", "plan9-mips")
    (own / "kind").write_text("#!/bin/sh\n")
    (own / "kind").chmod(0o755)
    assert fetch(["kind"], pins, tmp_path / "bin", "plan9-mips") == [f"kind: no download pinned for plan9-mips; using {own / 'kind'}"]
    assert not (tmp_path / "bin").exists()
    with pytest.raises(Failed, match=r"^helm: not a pinned tool \(pinned: kind\)$"):
        fetch(["helm"], pins, tmp_path / "bin", PLATFORM)
    twice = pins_file(tmp_path, [f"kind v1 {PLATFORM} {'a' * 64} http://127.0.0.1:9/kind"] * 2)
    with pytest.raises(Failed, match=r"^kind: pins\.txt pins 2 downloads for linux-amd64; keep one$"):
        fetch(["kind"], twice, tmp_path / "bin", PLATFORM)


def test_a_first_download_that_fails_leaves_no_bin_and_a_changed_binary_is_fetched_again(tmp_path, releases):
    good = b"kind v1"
    releases.files = {"/good": good}
    bin_dir = tmp_path / "bin"
    with pytest.raises(Failed):
        fetch(["kind"], pins_file(tmp_path, [f"kind v1 {PLATFORM} {sha(good)} {releases.base}/gone"]), bin_dir, PLATFORM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pins.txt"]
    pins = pins_file(tmp_path, [f"kind v1 {PLATFORM} {sha(good)} {releases.base}/good"])
    fetch(["kind"], pins, bin_dir, PLATFORM)
    (bin_dir / "kind").write_bytes(b"tampered")
    assert fetch(["kind"], pins, bin_dir, PLATFORM) == [f"kind v1 ({PLATFORM}): installed 1 file(s) in {bin_dir}"]
    assert (bin_dir / "kind").read_bytes() == good


@pytest.mark.parametrize("line", ["kind v1 linux-amd64 ABC http://x/kind", "kind v1 linux-amd64", "kind v1 a b c d e"])
def test_a_malformed_pins_line_is_refused_naming_its_number(tmp_path, line):
    with pytest.raises(Failed, match=r"^pins\.txt line 2: expected `tool version os-arch sha256 url \[directory\]`"):
        read_pins(pins_file(tmp_path, [line]))


def test_the_real_pins_cover_every_tool_on_every_platform_at_one_version():
    pins = read_pins(PINS)
    platforms = {"linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"}
    assert {pin.tool for pin in pins} == {"kind", "kubectl"}
    for tool in ("kind", "kubectl"):
        mine = [pin for pin in pins if pin.tool == tool]
        assert {pin.platform for pin in mine} == platforms and len(mine) == 4
        assert len({pin.version for pin in mine}) == 1 and len({pin.sha256 for pin in mine}) == 4
        assert all(pin.url.startswith("https://") and pin.version.lstrip("v") in pin.url for pin in mine)


def test_the_pinned_kubectl_is_the_e2e_api_servers_version():
    pins = {pin.tool: pin.version for pin in read_pins(PINS)}
    assert f"gitVersion={pins['kubectl']}" in (ROOT / "gotools" / "build.sh").read_text()
