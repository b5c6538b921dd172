"""The fetch of valohai-yaml's sdist (tests/support/upstream.py): the pin it follows, the hash it checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import valohai_yaml

from tests.support import upstream
from tests.support.cases import Files


def test_the_pin_is_the_installed_version() -> None:
    """The examples must be those of the parser the tests compare against."""
    assert upstream.pinned_version() == valohai_yaml.__version__
    assert upstream.pinned_version() in upstream.SDIST_SHA256


def test_a_file_with_another_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tampered = tmp_path / "valohai_yaml.tar.gz"
    tampered.write_bytes(b"not the sdist")
    monkeypatch.setenv("VALOHAI_YAML_SDIST", str(tampered))
    monkeypatch.setenv("VALOHAI_AIRFLOW_CACHE", str(tmp_path / "cache"))
    with pytest.raises(upstream.UpstreamUnavailable, match=r"sha256 [0-9a-f]{64}, expected "):
        upstream.ensure()
    assert not any((tmp_path / "cache").glob("valohai-yaml-*"))  # nothing half-unpacked is left to reuse


def test_the_cached_tree_is_reused(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once unpacked, no download and no sdist are needed (an offline rerun works)."""
    root = files.upstream_root
    monkeypatch.setenv("VALOHAI_AIRFLOW_CACHE", str(root.parent))
    monkeypatch.setenv("VALOHAI_YAML_SDIST", "/nonexistent/valohai_yaml.tar.gz")
    assert upstream.ensure() == root
