"""valohai-yaml's own example files, from the source distribution of the version constraints.txt pins.

The sdist on PyPI holds `examples/` and `tests/{valid,error,warning}_examples/`: Valohai's reference
files, which its own test-suite treats as known-good, known-bad and known-warning. We do not copy them
into this repository; the test set-up downloads the sdist once with pip, checks its sha256 against the
one written below, and unpacks it under `~/.cache/valohai-airflow/` (or `$VALOHAI_AIRFLOW_CACHE`).

Offline: put the sdist anywhere and point `VALOHAI_YAML_SDIST` at it (the same sha256 check applies).
When neither works, `ensure()` raises `UpstreamUnavailable` and every test that needs these files
fails with its message (see docs/contributing.md).

`python -m tests.support.upstream` fetches it ahead of time and prints the unpacked folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# sha256 of valohai_yaml-<version>.tar.gz as PyPI serves it. A version bump in constraints.txt needs a
# new line here (the tests say so); `pip download --no-deps --no-binary :all: valohai-yaml==X` and
# `sha256sum` give it, and PyPI's project page lists it.
SDIST_SHA256 = {
    "0.61.0": "0bcbee96cd3f65b5212f5d8fb784156e6560890851310038d27420caf8838490",
}

# The folders of the sdist the tests read.
FOLDERS = ("examples", "tests/valid_examples", "tests/error_examples", "tests/warning_examples")


class UpstreamUnavailable(RuntimeError):
    """The sdist could not be had: no network to PyPI, a wrong hash, or no hash for the pinned version."""


def pinned_version(constraints: Path = REPO_ROOT / "constraints.txt") -> str:
    """The valohai-yaml version constraints.txt pins: the one the package is tested and installed with."""
    match = re.search(r"^valohai-yaml==(\S+)", constraints.read_text(), re.MULTILINE)
    if match is None:
        raise UpstreamUnavailable(f"{constraints}: no line `valohai-yaml==<version>`")
    return match.group(1)


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "valohai-airflow"
    return Path(os.environ.get("VALOHAI_AIRFLOW_CACHE", default))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(version: str, expected: str, into: Path) -> Path:
    """pip, the ordinary client, with pip's own hash check on top of ours."""
    requirement = into / "requirement.txt"
    requirement.write_text(f"valohai-yaml=={version} --hash=sha256:{expected}\n")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--require-hashes",
        "--timeout",
        "30",
        "--retries",
        "2",
        "--dest",
        str(into),
        "-r",
        str(requirement),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(into.glob(f"valohai_yaml-{version}.tar.gz")) + sorted(
        into.glob(f"valohai-yaml-{version}.tar.gz")
    )
    if result.returncode != 0 or not found:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise UpstreamUnavailable(
            f"could not download the valohai-yaml {version} sdist from PyPI "
            f"(`{' '.join(command[2:])}` exited {result.returncode}):\n{tail}\n"
            "Offline: set VALOHAI_YAML_SDIST to a copy of the file."
        )
    return found[0]


def ensure() -> Path:
    """The unpacked sdist of the pinned valohai-yaml (downloaded and checked on first use)."""
    version = pinned_version()
    expected = SDIST_SHA256.get(version)
    if expected is None:
        raise UpstreamUnavailable(
            f"constraints.txt pins valohai-yaml {version}, but tests/support/upstream.py has no sha256 for "
            "its sdist: add it to SDIST_SHA256"
        )
    target = cache_root() / f"valohai-yaml-{version}-{expected[:12]}"
    if all((target / folder).is_dir() for folder in FOLDERS):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        work = Path(scratch)
        given = os.environ.get("VALOHAI_YAML_SDIST")
        sdist = Path(given) if given else _download(version, expected, work)
        if not sdist.is_file():
            raise UpstreamUnavailable(f"VALOHAI_YAML_SDIST={given}: no such file")
        actual = _sha256(sdist)
        if actual != expected:
            raise UpstreamUnavailable(
                f"{sdist}: sha256 {actual}, expected {expected} (valohai-yaml {version})"
            )
        unpacked = work / "unpacked"
        with tarfile.open(sdist) as archive:
            archive.extractall(unpacked, filter="data")
        (top,) = unpacked.iterdir()
        missing = [folder for folder in FOLDERS if not (top / folder).is_dir()]
        if missing:
            raise UpstreamUnavailable(f"{sdist} has no {', '.join(missing)}")
        try:
            top.rename(target)  # atomic: a parallel run sees the whole tree or none
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(top)  # another process was first
    return target


def files(root: Path) -> list[str]:
    """Every valohai.yaml-like file of the sdist's example folders, as a path relative to the sdist."""
    return sorted(str(p.relative_to(root)) for folder in FOLDERS for p in (root / folder).glob("*.yaml"))


if __name__ == "__main__":
    try:
        print(ensure())
    except UpstreamUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
