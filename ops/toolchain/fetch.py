"""`make tools`: the pinned command-line tools in the project's ./bin, verified before anything is installed.

    python -m ops.toolchain.fetch [TOOL...]     (default: every tool ops/toolchain/pins.txt names)

For this machine's OS and architecture each tool's pinned download is fetched unless ./bin already holds that version,
its SHA-256 compared with the pin, unpacked in a staging directory and only then moved into ./bin; a stamp
(bin/.pins/<tool>) written last records what is installed. A download that fails, is cut short or does not match is
refused with one line and leaves ./bin as it was. The release scripts put ./bin first on their PATH
(ops/release/shell.py).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ops.release.shell import PINNED_BIN, Failed, main

PINS = Path(__file__).with_name("pins.txt")
DOWNLOAD_TIMEOUT_SECONDS = 60
# Largest download accepted: the Pulumi CLI's archive is about 160 MB; a server streaming without end is cut off.
MAX_DOWNLOAD_BYTES = 1 << 30

ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Pin:
    tool: str
    version: str
    platform: str
    sha256: str
    url: str
    # For an archive: the directory inside it whose files are installed; None when the download is the binary itself.
    directory: Optional[str]

    def describe(self) -> str:
        return f"{self.tool} {self.version} ({self.platform})"


def host_platform() -> str:
    system, machine = platform.system().lower(), platform.machine().lower()
    return f"{system}-{ARCHITECTURES.get(machine, machine)}"


def read_pins(path: Path) -> list[Pin]:
    pins = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (5, 6) or len(fields[3]) != 64 or not all(c in "0123456789abcdef" for c in fields[3]):
            raise Failed(f"{path.name} line {number}: expected `tool version os-arch sha256 url [directory]` "
                         f"with a 64-digit lowercase sha256")
        pins.append(Pin(*fields[:5], fields[5] if len(fields) == 6 else None))
    return pins


def pin_for(pins: list[Pin], tool: str, where: str) -> Optional[Pin]:
    """The tool's pin for `where`; None when it has none there (the machine's own tool may do)."""
    known = sorted({pin.tool for pin in pins})
    if tool not in known:
        raise Failed(f"{tool}: not a pinned tool (pinned: {', '.join(known)})")
    found = [pin for pin in pins if pin.tool == tool and pin.platform == where]
    if len(found) > 1:
        raise Failed(f"{tool}: {PINS.name} pins {len(found)} downloads for {where}; keep one")
    return found[0] if found else None


def download(pin: Pin, target: Path) -> None:
    """`pin.url` into `target`, refused unless complete and of the pinned SHA-256."""
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(pin.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, open(target, "wb") as out:
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise Failed(f"{pin.describe()}: the download passed {MAX_DOWNLOAD_BYTES >> 20} MiB; nothing installed")
                digest.update(chunk)
                out.write(chunk)
            # http.client ends a read by size quietly at a closed connection, however short of Content-Length.
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) != size:
                raise Failed(f"{pin.describe()}: the download from {pin.url} broke off after {size} of {announced} bytes; "
                             f"nothing installed")
    except urllib.error.HTTPError as error:
        raise Failed(f"{pin.describe()}: {pin.url} answered HTTP {error.code}; nothing installed") from None
    except (OSError, http.client.HTTPException) as error:
        # An unreachable host, a refused connection, a timeout, a broken chunk.
        raise Failed(f"{pin.describe()}: downloading {pin.url} failed ({_reason(error)}); nothing installed") from None
    if digest.hexdigest() != pin.sha256:
        raise Failed(f"{pin.describe()}: the download's sha256 is {digest.hexdigest()}, {PINS.name} pins {pin.sha256} "
                     f"({size} bytes received); nothing installed")


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None) or error
    return (type(reason).__name__ + ": " + str(reason)).encode("unicode_escape").decode()[:200]


def unpack(pin: Pin, downloaded: Path, staging: Path) -> list[Path]:
    """The files to install: the download itself, or the regular files directly in the archive's `pin.directory`."""
    if pin.directory is None:
        binary = staging / pin.tool
        shutil.copyfile(downloaded, binary)
        return [binary]
    prefix = pin.directory.rstrip("/") + "/"
    files = []
    try:
        with tarfile.open(downloaded) as archive:
            for member in archive.getmembers():
                name = member.name.removeprefix("./")
                if not name.startswith(prefix) or not member.isfile():
                    continue
                base = name[len(prefix):]
                if not base or "/" in base or base in (".", ".."):
                    continue
                source = archive.extractfile(member)
                with open(staging / base, "wb") as out:
                    shutil.copyfileobj(source, out)
                files.append(staging / base)
    except tarfile.TarError as error:
        raise Failed(f"{pin.describe()}: the archive does not unpack ({_reason(error)}); nothing installed") from None
    if not any(path.name == pin.tool for path in files):
        raise Failed(f"{pin.describe()}: the archive has no {prefix}{pin.tool}; nothing installed")
    return files


def installed(pin: Pin, bin_dir: Path) -> bool:
    """`pin` is in `bin_dir`: its stamp says so, and a downloaded binary still has the pinned SHA-256."""
    stamp, binary = bin_dir / ".pins" / pin.tool, bin_dir / pin.tool
    if not (binary.is_file() and stamp.is_file() and stamp.read_text() == f"{pin.version} {pin.sha256}\n"):
        return False
    return pin.directory is not None or hashlib.sha256(binary.read_bytes()).hexdigest() == pin.sha256


def install(pin: Pin, bin_dir: Path) -> str:
    """Install `pin` into `bin_dir` unless there already; say which."""
    if installed(pin, bin_dir):
        return f"{pin.describe()}: up to date in {bin_dir}"
    # Staged on ./bin's file system, so each file's move into it is a rename; ./bin itself only once all is checked.
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{bin_dir.name}-staging-", dir=bin_dir.parent) as staging:
        staging_dir = Path(staging)
        downloaded = staging_dir / "download"
        download(pin, downloaded)
        (staging_dir / "files").mkdir()
        files = unpack(pin, downloaded, staging_dir / "files")
        (bin_dir / ".pins").mkdir(parents=True, exist_ok=True)
        # The stamp goes first: if the moves below are interrupted, it no longer matches and the next run installs again.
        (bin_dir / ".pins" / pin.tool).unlink(missing_ok=True)
        for path in files:
            path.chmod(0o755)
            os.replace(path, bin_dir / path.name)
        (bin_dir / ".pins" / pin.tool).write_text(f"{pin.version} {pin.sha256}\n")
    return f"{pin.describe()}: installed {len(files)} file(s) in {bin_dir}"


def fetch(tools: list[str], pins_path: Path = PINS, bin_dir: Path = PINNED_BIN,
          where: Optional[str] = None) -> list[str]:
    pins = read_pins(pins_path)
    where = where or host_platform()
    said = []
    for tool in tools or sorted({pin.tool for pin in pins}):
        pin = pin_for(pins, tool, where)
        own = shutil.which(tool) if pin is None else None
        if pin is not None:
            said.append(install(pin, bin_dir))
        elif own:
            said.append(f"{tool}: no download pinned for {where}; using {own}")
        else:
            raise Failed(f"{tool}: no download pinned for {where} in {PINS.name} and none on PATH; install it yourself")
    return said


def fetch_main(argv: list[str]) -> None:
    for line in fetch(argv):
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main(fetch_main))
