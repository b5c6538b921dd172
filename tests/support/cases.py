"""The valohai.yaml files the corpus tests walk, from three sources, each case named by its source.

- `shapes`: tests/fixtures/shapes/*.yaml, written here from scratch for the shapes real files have.
- `valohai-yaml`: the example and error/warning files of valohai-yaml's sdist (tests/support/upstream.py),
  named by their path inside the sdist; needed: without them those tests fail, they do not skip.
- `corpus`: `../shared/corpus` (or `$VALOHAI_CORPUS`) when it is there: more cases, none required.
  Without it every corpus case is one skip with `CORPUS_SKIP` as its reason.

Which upstream file is expected to do what is written out by name in the tests, so the parameter
lists do not depend on the download; `test_upstream_files_are_the_listed_ones` checks the list.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import upstream as upstream_sdist

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_DIR = REPO_ROOT / "tests" / "fixtures" / "shapes"
CORPUS_DIR = Path(os.environ.get("VALOHAI_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))
HAVE_CORPUS = CORPUS_DIR.is_dir()
CORPUS_SKIP = (
    f"optional corpus not present ({CORPUS_DIR}; set VALOHAI_CORPUS to use one): "
    "its extra cases are skipped, the shape fixtures and valohai-yaml's examples still run"
)

SHAPES = "shapes"
UPSTREAM = "valohai-yaml"
CORPUS = "corpus"

# Every *.yaml of the folders tests/support/upstream.FOLDERS of valohai-yaml 0.61.0's sdist.
UPSTREAM_FILES: tuple[str, ...] = (
    "examples/edge-merge-mode.yaml",
    "examples/endpoint-example.yaml",
    "examples/environment-variable-group-example.yaml",
    "examples/example1.yaml",
    "examples/example2.yaml",
    "examples/example3.yaml",
    "examples/flag-param-example.yaml",
    "examples/flag-param-pass-as-example.yaml",
    "examples/input-extras.yaml",
    "examples/keep-order.yaml",
    "examples/mount-example.yaml",
    "examples/multiple-param.yaml",
    "examples/optional-default-param.yaml",
    "examples/pipeline-deployment-edge-example.yaml",
    "examples/pipeline-edge-types-example.yaml",
    "examples/pipeline-example.yaml",
    "examples/pipeline-execution-retry-example.yaml",
    "examples/pipeline-with-automatic-deployment-creation.yaml",
    "examples/pipeline-with-autorestart-override.yaml",
    "examples/pipeline-with-different-commit.yaml",
    "examples/pipeline-with-override-example.yaml",
    "examples/pipeline-with-override-only-preset.yaml",
    "examples/pipeline-with-param-referring-to-different-commit.yaml",
    "examples/pipeline-with-parameters-example.yaml",
    "examples/pipeline-with-runtime-config-preset.yaml",
    "examples/pipeline-with-task-blueprint-example.yaml",
    "examples/pipeline-with-tasks-example.yaml",
    "examples/shebang-example.yaml",
    "examples/step-with-autorestart.yaml",
    "examples/step-with-cache-volumes.yaml",
    "examples/step-with-partial-resources.yaml",
    "examples/step-with-preset.yaml",
    "examples/step-with-resources.yaml",
    "examples/task-example.yaml",
    "examples/timeouts-example.yaml",
    "tests/error_examples/endpoint-names-invalid.yaml",
    "tests/error_examples/endpoint-shared-volumes-invalid-paths.yaml",
    "tests/error_examples/endpoint-workspace-volume-invalid-paths.yaml",
    "tests/error_examples/input-name-too-long.yaml",
    "tests/error_examples/invalid-YAML-indentation.yaml",
    "tests/error_examples/invalid-edge-parts.yaml",
    "tests/error_examples/invalid-indentation-with-valid-YAML.yaml",
    "tests/error_examples/invalid-on-error-value.yaml",
    "tests/error_examples/invalid-pipeline-with-override-example.yaml",
    "tests/error_examples/invalid-shorthand-edge.yaml",
    "tests/error_examples/invalid-task-blueprint-reference.yaml",
    "tests/error_examples/invalid-upload-store-value.yaml",
    "tests/error_examples/pipeline-with-null-autorestart-override.yaml",
    "tests/error_examples/pipeline-with-preset-override-without-environment.yaml",
    "tests/error_examples/step-invalid-resources.yaml",
    "tests/error_examples/step-missing-required-properties.yaml",
    "tests/error_examples/step-preset-without-environment.yaml",
    "tests/error_examples/step-stop-condition.yaml",
    "tests/error_examples/step-with-error-tasks.yaml",
    "tests/error_examples/task-stop-condition.yaml",
    "tests/error_examples/wrong-edge-merge-mode.yaml",
    "tests/valid_examples/edge-merge-mode.yaml",
    "tests/valid_examples/endpoint-names-valid.yaml",
    "tests/valid_examples/step-stop-condition.yaml",
    "tests/valid_examples/task-stop-condition.yaml",
    "tests/warning_examples/duplicate_step_names.yaml",
    "tests/warning_examples/ineffective-optional-on-flag.yaml",
    "tests/warning_examples/invalid-numeric-parameter-default.yaml",
    "tests/warning_examples/invalid-numeric-range-parameter-default.yaml",
    "tests/warning_examples/invalid-string-parameter-default.yaml",
    "tests/warning_examples/nonsensical-task-bits.yaml",
    "tests/warning_examples/override-with-extra-fields-warning.yaml",
    "tests/warning_examples/targetless-pipeline-params.yaml",
)

_UPSTREAM_PREFIX = "valohai__valohai-yaml__"


@dataclass(frozen=True)
class Case:
    """One file: its source and its name there (for valohai-yaml, its path inside the sdist)."""

    source: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def upstream_name(self) -> str | None:
        """The valohai-yaml path of this file: itself, or what a corpus copy of a valohai-yaml file was."""
        if self.source == UPSTREAM:
            return self.name
        if self.source == CORPUS and self.name.startswith(_UPSTREAM_PREFIX):
            return self.name.removeprefix(_UPSTREAM_PREFIX).replace("__", "/")
        return None


def shape_files() -> list[str]:
    return sorted(p.name for p in SHAPES_DIR.glob("*.yaml"))


def corpus_files() -> list[str]:
    """The corpus's file names, or none when it is not here."""
    return sorted(p.name for p in CORPUS_DIR.glob("*.yaml")) if HAVE_CORPUS else []


def shapes(*names: str) -> list[Case]:
    return [Case(SHAPES, n) for n in (names or shape_files())]


def upstream(names: Iterable[str] = UPSTREAM_FILES) -> list[Case]:
    listed = set(UPSTREAM_FILES)
    cases = [Case(UPSTREAM, n) for n in names]
    unknown = [c.name for c in cases if c.name not in listed]
    assert not unknown, f"not in UPSTREAM_FILES: {unknown}"
    return cases


def corpus(names: Iterable[str] | None = None) -> list[Case]:
    """Corpus cases: the named ones (when the corpus is here), or all of its files."""
    if not HAVE_CORPUS:
        return []
    return [Case(CORPUS, n) for n in (corpus_files() if names is None else names)]


def params(cases: Iterable[Case], *, marks: dict[str, Any] | None = None) -> list[Any]:
    """pytest parameters with readable ids; without the corpus, one skipped `corpus` parameter stands
    for all of its cases (with `CORPUS_SKIP` as the reason), so a run says what it left out."""
    out = [pytest.param(c, id=c.id, marks=(marks or {}).get(c.id, ())) for c in cases]
    if not HAVE_CORPUS:
        out.append(pytest.param(Case(CORPUS, "-"), id="corpus", marks=pytest.mark.skip(reason=CORPUS_SKIP)))
    return out


class Files:
    """Paths of cases. The valohai-yaml sdist is fetched once per session, before the tests run
    (tests/conftest.py); a failure is kept and reported by every test that needs it. The corpus is
    never required."""

    def __init__(self) -> None:
        self._upstream_root: Path | None = None
        self._upstream_error: str | None = None

    def fetch_upstream(self) -> str:
        """Download (or find in the cache) and check the sdist; say what happened."""
        try:
            self._upstream_root = upstream_sdist.ensure()
        except upstream_sdist.UpstreamUnavailable as error:
            self._upstream_error = str(error)
            return f"unavailable, the tests that read them fail: {error}"
        return str(self._upstream_root)

    @property
    def upstream_root(self) -> Path:
        if self._upstream_root is None:
            reason = (
                self._upstream_error or "not fetched: the session fetches it only for tests using `files`"
            )
            pytest.fail(f"valohai-yaml's example files are needed: {reason}", pytrace=False)
        return self._upstream_root

    def path(self, case: Case) -> Path:
        if case.source == SHAPES:
            return SHAPES_DIR / case.name
        if case.source == UPSTREAM:
            return self.upstream_root / case.name
        if case.source == CORPUS:
            if not HAVE_CORPUS:
                pytest.skip(CORPUS_SKIP)
            return CORPUS_DIR / case.name
        raise ValueError(case.source)


def rows(*rows: tuple[Any, ...]) -> list[Any]:
    """pytest parameters from rows whose first item is a Case; a corpus row is skipped (with
    `CORPUS_SKIP`) when the corpus is not here."""
    out = []
    for row in rows:
        case = row[0]
        absent = case.source == CORPUS and not HAVE_CORPUS
        out.append(
            pytest.param(*row, id=case.id, marks=pytest.mark.skip(reason=CORPUS_SKIP) if absent else ())
        )
    return out


# The fan-out/fan-in project: our fixture and the corpus file whose shapes it reproduces, with the
# names each gives its pipelines and nodes, so one test asserts the same on both.
@dataclass(frozen=True)
class FanOut:
    case: Case
    linear: str
    three: str
    deploy: str
    broken: str
    dynamic: str
    first: str
    last: str
    deployment: str
    endpoint: str
    broken_image: str


FAN_OUT = [
    FanOut(
        Case(SHAPES, "fan-out-fan-in.yaml"),
        "linear",
        "fan-out-fan-in",
        "fan-out-fan-in-deploy",
        "fan-out-fan-in-deploy-broken",
        "fan-out-task",
        "tokenise",
        "pick",
        "ship",
        "classify-text",
        "no-such-registry/python:0.0.0-never-released",
    ),
    FanOut(
        Case(CORPUS, "valohai__tensorflow-example__valohai.yaml"),
        "training-pipeline",
        "three-trainings-pipeline",
        "three-trainings-pipeline-w-deployment",
        "three-trainings-pipeline-w-deployment-broken",
        "three-trainings-pipeline-dynamic",
        "preprocess",
        "find-best-model",
        "deploy",
        "predict-digit",
        "python/python:3.12.0b1-slim-buster",
    ),
]


def fan_out_params() -> list[Any]:
    return rows(*((f.case, f) for f in FAN_OUT))
