"""The loader file in DAG bundle checkouts outside the dags folder, parsed by Airflow's own
BundleDagBag the way the DAG processor and a worker parse a Git bundle's file: each checkout builds
its own projects, under the same DAG ids, with its own code."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUSYBOX

PROJECT = f"""
- step:
    name: hello
    image: {BUSYBOX}
    command: echo %s
- pipeline:
    name: greet
    nodes:
      - name: say
        type: execution
        step: hello
    edges: []
"""


@pytest.fixture
def checkouts(tmp_path: Path) -> Iterator[Path]:
    """Two versions of one repository as a Git bundle checks them out (versions/<commit>), the
    loader file at the top, the project in a subfolder."""
    for version, word in (("c1", "v1"), ("c2", "v2")):
        root = tmp_path / "versions" / version
        (root / "team" / "hello").mkdir(parents=True)
        shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", root / "valohai_dags.py")
        (root / "team" / "hello" / "valohai.yaml").write_text(PROJECT % word)
    before = list(sys.path)
    yield tmp_path / "versions"
    sys.path[:] = before  # BundleDagBag adds the bundle root to sys.path for good


def _parse(checkout: Path) -> dict[str, object]:
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(checkout / "valohai_dags.py"), bundle_path=checkout, bundle_name="repo")
    assert bag.import_errors == {}
    return dict(bag.dags)


def test_each_bundle_version_builds_its_own_code_under_the_same_dag_ids(checkouts: Path) -> None:
    first, second = _parse(checkouts / "c1"), _parse(checkouts / "c2")
    # named below the bundle root, not by the version: the pipeline's DAG and the step's own
    assert sorted(first) == sorted(second) == ["team__hello__greet", "team__hello__step__hello"]
    for checkout, dags, word in ((checkouts / "c1", first, "v1"), (checkouts / "c2", second, "v2")):
        for dag in dags.values():
            (task,) = dag.tasks  # type: ignore[attr-defined]
            assert task.project_root == str(checkout / "team" / "hello")
            assert task.node.step.command == (f"echo {word}",)


def test_a_checkout_updated_in_place_is_compiled_anew(checkouts: Path) -> None:
    """A Git bundle's tracking checkout keeps its path while the branch moves."""
    checkout = checkouts / "c1"
    dag_id = "team__hello__greet"
    assert dag_id in _parse(checkout)
    (checkout / "team" / "hello" / "valohai.yaml").write_text(PROJECT % "v3")
    (task,) = _parse(checkout)[dag_id].tasks  # type: ignore[attr-defined]
    assert task.node.step.command == ("echo v3",)
