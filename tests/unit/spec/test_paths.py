"""Paths valohai.yaml names below a folder: `lint` refuses the ones that leave it, at the value's line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from valohai_airflow.cli import main
from valohai_airflow.spec.parse import parse_text
from valohai_airflow.spec.paths import climbs_out, escape_problem, relative_path_problem, segment_problem

ESCAPING = textwrap.dedent(
    """\
    - step:
        name: a
        image: busybox
        command: ls
        inputs:
          - name: data
            default: data/x.csv
            filename: ../../../../anywhere/x
    - pipeline:
        name: p
        nodes:
          - {name: only, type: execution, step: a}
        edges: []
    """
)


def test_lint_refuses_an_input_filename_that_leaves_the_inputs_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "valohai.yaml"
    path.write_text(ESCAPING)
    code = main(["lint", str(path)])
    out = capsys.readouterr().out
    assert code != 0, out
    assert (
        f"{path}:8:19: error: step 'a', input 'data': 'filename' '../../../../anywhere/x' contains '..'"
        in out
    )
    assert out.splitlines()[-1] == f"{path}: 1 error(s), 0 warning(s)"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("- {name: data, filename: /etc/cron.d/x}", "'filename' '/etc/cron.d/x' is absolute"),
        ("- {name: data, filename: 'sub/../../x'}", "'filename' 'sub/../../x' contains '..'"),
        ("- {name: data, filename: 'a\\\\b'}", "contains a backslash"),
        ("- {name: data, filename: ./}", "'filename' './' names no file"),
        ("- {name: ../../dags}", "'name' '../../dags' must be one folder name"),
        ("- {name: '..'}", "'name' '..' must name a folder"),
        ("- {name: data, default: ../../etc/passwd}", "'../../etc/passwd' leaves the project folder"),
        ("- {name: data, default: [ok.csv, 'a/../../x/*.csv']}", "'a/../../x/*.csv' leaves the project"),
    ],
)
def test_every_input_path_that_leaves_its_folder_is_an_error_at_its_place(item: str, expected: str) -> None:
    text = f"- step:\n    name: a\n    image: busybox\n    command: ls\n    inputs:\n      {item}\n"
    result = parse_text(text, "valohai.yaml")
    (error,) = result.diagnostics.errors
    assert expected in error.message, error
    assert (error.location.line, error.location.column) >= (6, 9), error  # the item's own line


def test_an_endpoint_file_path_that_leaves_the_code_folder_is_an_error() -> None:
    text = textwrap.dedent(
        """\
        - endpoint:
            name: serve
            image: busybox
            server-command: ls
            files:
              - {name: model, path: ../../../etc/model.pb}
        """
    )
    (error,) = parse_text(text, "valohai.yaml").diagnostics.errors
    assert str(error.location) == "valohai.yaml:6:29", error
    assert "'../../../etc/model.pb' contains '..'" in error.message, error


def test_paths_inside_their_folder_are_accepted() -> None:
    text = textwrap.dedent(
        """\
        - step:
            name: a
            image: busybox
            command: ls
            inputs:
              - {name: data, filename: sub/dir/x.csv, default: [data/x.csv, ./a/../b.csv, ~/x, /abs/y, 's3://b/../k']}
        - endpoint:
            name: serve
            image: busybox
            server-command: ls
            files:
              - {name: model, path: models/model.pb}
        """
    )
    result = parse_text(text, "valohai.yaml")
    assert result.ok, [str(d) for d in result.diagnostics.items]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x", None),
        ("a/b/c", None),
        ("./a//b", None),
        ("../x", "contains '..'; it must stay inside its folder"),
        ("/x", "is absolute; it must be relative to its folder"),
        ("a\x00b", "contains a NUL character"),
        (".", "names no file"),
    ],
)
def test_relative_path_problem(value: str, problem: str | None) -> None:
    assert relative_path_problem(value) == problem


def test_segment_and_climbing_rules() -> None:
    assert segment_problem("data") is None
    assert segment_problem("a/b") is not None and segment_problem(".") is not None
    assert climbs_out("..") and climbs_out("a/../../b") and not climbs_out("a/../b") and not climbs_out("..a")


def test_a_backslash_is_refused_where_a_person_writes_it_and_kept_where_a_file_names_it() -> None:
    """valohai.yaml's `filename: a\\b` is a Windows separator; an upstream output named `a\\b` is one
    POSIX file name (stored and staged as it is, tests/integration/test_faults.py)."""
    assert relative_path_problem("a\\b.txt") == "contains a backslash; use '/' between folders"
    assert escape_problem("a\\b.txt") is None
    assert escape_problem("..\\..") is None  # one odd name below the folder, not a way up
    assert escape_problem("../x") == "contains '..'; it must stay inside its folder"
