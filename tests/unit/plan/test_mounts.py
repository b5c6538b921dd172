"""`mounts`: host folders valohai-airflow.yaml allows become the node's bind mounts; anything else is
a warning at the mount's line and no mount, and the worker checks each source again."""

from __future__ import annotations

from pathlib import Path

import pytest

from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.mounts import BindMount, MountError, checked_mounts, decide
from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.spec.step import Mount


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "shared" / "sub").mkdir(parents=True)
    (tmp_path / "private").mkdir()
    (tmp_path / "shared" / "out").symlink_to(tmp_path / "private")
    return tmp_path


def _project(host: Path, mounts: str, sidecar: str | None) -> Path:
    folder = host / "project"
    folder.mkdir()
    (folder / "valohai.yaml").write_text(
        "- step:\n    name: s\n    image: busybox\n    command: date\n    mounts:\n"
        + mounts
        + "- pipeline:\n    name: p\n    nodes:\n      - {name: n, type: execution, step: s}\n    edges: []\n"
    )
    if sidecar is not None:
        (folder / "valohai-airflow.yaml").write_text(sidecar)
    clear_cache()
    return folder / "valohai.yaml"


def test_allowed_mounts_reach_the_node_and_refused_ones_warn_at_their_line(host: Path) -> None:
    mounts = (
        f"      - {host}/shared/sub:/data\n"
        f"      - {{source: {host}/shared, destination: /ro, readonly: true}}\n"
        f"      - {host}/private:/p\n"
        f"      - {host}/shared/out:/escape\n"
        f"      - {host}/shared/../private:/dots\n"
        f"      - {{source: {host}/shared, destination: /valohai/outputs}}\n"
        f"      - {{source: server:/export, destination: /nfs, type: nfs, options: {{vers: 4}}}}\n"
    )
    plan = compile_project(_project(host, mounts, f"mounts:\n  allow: ['{host}/shared']\n"))
    (node,) = plan.pipelines[0].nodes
    assert node.machine.mounts == (
        BindMount(f"{host}/shared/sub", "/data", False, f"{host}/shared"),
        BindMount(f"{host}/shared", "/ro", True, f"{host}/shared"),
    )
    warnings = sorted((d.location.line, d.message) for d in plan.diagnostics)
    assert [line for line, _ in warnings] == [8, 9, 10, 11, 12]
    assert "outside `mounts.allow`" in warnings[0][1]
    assert "outside `mounts.allow`" in warnings[1][1]  # a symlink out of the allowed folder
    assert "outside `mounts.allow`" in warnings[2][1]  # `..` out of it
    assert "inside /valohai" in warnings[3][1]
    assert "type 'nfs' is not mounted" in warnings[4][1]
    assert all("so the container runs without it" in message for _, message in warnings)


def test_without_an_allow_list_nothing_is_mounted(host: Path) -> None:
    plan = compile_project(_project(host, f"      - {host}/shared:/data\n", None))
    assert plan.pipelines[0].nodes[0].machine.mounts == ()
    (warning,) = plan.diagnostics
    assert "(allowed: none)" in warning.message
    assert warning.location.line == 6


def test_the_allow_list_must_be_absolute_without_dots(host: Path) -> None:
    with pytest.raises(ValohaiSpecError, match=r"must be an absolute host path without '\.\.'"):
        compile_project(
            _project(host, f"      - {host}/shared:/data\n", "mounts:\n  allow: ['data', '/a/../b']\n")
        )


def test_the_worker_checks_each_source_again(host: Path) -> None:
    allowed = decide(Mount(source=f"{host}/shared/sub", destination="/data"), [f"{host}/shared"])
    assert isinstance(allowed, BindMount)
    assert checked_mounts("n", [allowed]) == [(f"{host}/shared/sub", "/data", False)]
    (host / "shared" / "sub").rmdir()
    (host / "shared" / "sub").symlink_to(host / "private")  # replaced by a way out since compile time
    with pytest.raises(MountError, match=r"outside .* of `mounts\.allow`"):
        checked_mounts("n", [allowed])
    gone = BindMount(f"{host}/shared/missing", "/m", False, f"{host}/shared")
    with pytest.raises(MountError, match="does not exist on this worker"):
        checked_mounts("n", [gone])


def test_a_node_overrides_mount_is_checked_too(host: Path) -> None:
    path = _project(host, f"      - {host}/shared:/data\n", f"mounts:\n  allow: ['{host}/shared']\n")
    text = path.read_text().replace("step: s}", f"step: s, override: {{mounts: ['{host}/private:/p']}}}}")
    path.write_text(text)
    clear_cache()
    plan = compile_project(path)
    assert plan.pipelines[0].nodes[0].machine.mounts == ()  # the override replaces the step's mounts
    (warning,) = plan.diagnostics
    assert warning.message.startswith(f"pipeline 'p', node 'n' override, mount {host}/private:/p: host path")
    assert warning.location.line == 10
