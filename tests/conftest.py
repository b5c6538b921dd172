"""Shared fixtures: the valohai.yaml files the corpus tests read (tests/support/cases.py), real S3;
the kind of each test (`unit`, `integration`, `e2e`) from its folder."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import seaweed
from tests.support.cases import CORPUS_DIR, CORPUS_SKIP, HAVE_CORPUS, Files

#: Shared fixtures of the support modules (a module of tests/support is not a conftest).
pytest_plugins = ["tests.support.files"]

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "integration", "e2e")  # the folders under tests/, each its marker (pyproject.toml)

FILES = Files()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's kind is the folder it lives in: `-m unit` selects tests/unit, and so on."""
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue  # not this suite's
        kind = item.path.relative_to(TESTS).parts[0]
        if kind not in KINDS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives under tests/{{{','.join(KINDS)}}}")
        item.add_marker(kind)


def pytest_collection_finish(session: pytest.Session) -> None:
    """valohai-yaml's sdist is fetched here, before any test runs and only when a selected test reads
    files, with its time printed: not inside the first test that needs it."""
    if session.config.option.collectonly or not any("files" in item.fixturenames for item in session.items):
        return
    started = time.monotonic()
    outcome = FILES.fetch_upstream()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"valohai-yaml's example files ({time.monotonic() - started:.1f} s): {outcome}")


@pytest.fixture(scope="session")
def files() -> Files:
    """Paths of shape fixtures, valohai-yaml's example files (fetched before the session's first test)
    and the optional corpus."""
    return FILES


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The optional corpus of real valohai.yaml files; a test that needs all of it is skipped without it."""
    if not HAVE_CORPUS:
        pytest.skip(CORPUS_SKIP)
    return CORPUS_DIR


def _isolated_airflow_home() -> Path:
    """Airflow reads its config at import time: point it at a throwaway home before anything imports it."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="valohai-airflow-test-"))
    (home / "dags").mkdir()
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    os.environ.pop("_AIRFLOW_PARSING_CONTEXT_TASK_ID", None)
    return home


AIRFLOW_HOME = _isolated_airflow_home()
DAGS_FOLDER = AIRFLOW_HOME / "dags"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[seaweed.S3Endpoint]:
    """A real SeaweedFS S3 server on 127.0.0.1, started once for the whole session."""
    endpoint = seaweed.acquire()
    try:
        yield endpoint
    finally:
        seaweed.release()


@pytest.fixture
def s3_bucket(s3_endpoint: seaweed.S3Endpoint) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweed.make_bucket(s3_endpoint, name)
    return name
