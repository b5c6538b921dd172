"""Hostile and odd inputs: every one gives a clear diagnostic with the file name, quickly."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec import parse_file, parse_text
from valohai_airflow.spec.yaml_loader import MAX_BYTES, load_yaml

STEP = "- step:\n    name: s\n    image: i\n    command: c\n"


def _only_error(text: str | bytes) -> str:
    started = time.monotonic()
    result = parse_text(text, "bad.yaml")
    assert time.monotonic() - started < 5
    assert result.config is None
    assert result.diagnostics.errors
    error = result.diagnostics.errors[0]
    assert error.location.file == "bad.yaml"
    return str(error)


@pytest.mark.parametrize("text", ["", "   \n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert "empty" in _only_error(text) or "no content" in _only_error(text)


def test_not_yaml() -> None:
    message = _only_error("- step: [\n  name: {")
    assert "not valid YAML" in message and "bad.yaml:" in message


def test_binary_garbage() -> None:
    assert "not UTF-8" in _only_error(b"\xff\xfe\x00\x81garbage")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            STEP.encode() + b"    description: caf\xc3\xa9 \x07 bell\n",
            "bad.yaml:5:23: error: not valid YAML: character #x0007",
        ),
        (
            b"\xef\xbb\xbf" + STEP.encode() + b"    description: caf\xc3\xa9 \x1b\n",
            "bad.yaml:5:23: error: not valid YAML: character #x001b",
        ),
        (
            STEP.replace("\n", "\r\n").encode() + b"  \x00",
            "bad.yaml:5:3: error: not valid YAML: character #x0000",
        ),
        (
            STEP.encode() + b"    description: caf\xc3\xa9 \xff\n",
            "bad.yaml:5:23: error: file is not UTF-8 text (invalid start byte: byte 0xff at offset",
        ),
        (
            b"\xef\xbb\xbf" + STEP.encode() + b"    description: \xe2\x82",
            "bad.yaml:5:18: error: file is not UTF-8 text (unexpected end of data",
        ),
        (STEP + "    description: caf\u00e9 \ud800\n", "bad.yaml:5:23: error: text is not valid Unicode"),
    ],
)
def test_characters_that_cannot_be_read_are_located(text: str | bytes, expected: str) -> None:
    """Control characters and bytes that are not UTF-8 get a line and column (they used to give a
    byte position, "position 805", and no line); BOM and multi-byte characters do not shift them."""
    assert _only_error(text).startswith(expected)


def test_a_huge_bad_scalar_is_cut_in_the_message() -> None:
    scalar = "u" * 9_000_000
    message = _only_error(STEP + f"    time-limit: {scalar}\n")
    assert message.startswith("bad.yaml:5:17: error: step 's': 'time-limit' cannot read 'uuuu")
    assert "uuu… (9,000,000 characters) as a duration" in message and len(message) < 400


def test_any_long_message_is_cut() -> None:
    from tests.unit.plan.support import plan_errors

    step = "s" * 100_000
    (error,) = plan_errors(
        STEP
        + f"- pipeline:\n    name: p\n    nodes: [{{name: a, type: execution, step: {step}}}]\n    edges: []\n"
    )
    assert (
        error.location.line == 7
        and error.message.endswith("… (100,046 characters)")
        and len(error.message) == 1000
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: CI\non:\n  push: {}\njobs:\n  build:\n    runs-on: ubuntu-latest\n", "GitHub Actions"),
        ("version: '3'\nservices:\n  web:\n    image: nginx\n", "docker-compose"),
        ("apiVersion: v1\nkind: Pod\n", "Kubernetes"),
        ("step:\n  name: x\n", "with a dash"),
        ("just a string\n", "top level is a string"),
        ("42\n", "top level is a number"),
        ("- hosts: all\n  tasks: []\n", "does not look like a valohai.yaml"),
    ],
)
def test_files_for_other_tools(text: str, expected: str) -> None:
    assert expected in _only_error(text)


def test_too_large_is_refused_before_parsing(tmp_path: pytest.TempPathFactory) -> None:
    big = STEP.encode() + b"# " + b"x" * (50 * 1024 * 1024) + b"\n"
    assert "refusing" in _only_error(big)
    path = tmp_path / "valohai.yaml"  # type: ignore[operator]
    path.write_bytes(big)
    started = time.monotonic()
    result = parse_file(path)
    assert time.monotonic() - started < 2
    assert "valohai-airflow reads at most 10,485,760 bytes" in result.diagnostics.errors[0].message
    assert len(big) > MAX_BYTES


def test_missing_file_is_a_diagnostic(tmp_path: pytest.TempPathFactory) -> None:
    result = parse_file(tmp_path / "nope.yaml")  # type: ignore[operator]
    assert "cannot read: " in result.diagnostics.errors[0].message


def test_deep_nesting() -> None:
    assert "nesting deeper" in _only_error("[" * 100_000 + "]" * 100_000)
    assert "nesting deeper" in _only_error("".join("  " * i + "a:\n" for i in range(1000)))


def test_billion_laughs() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    message = _only_error("\n".join(lines) + "\n")
    assert "too many aliases" in message


def test_multiple_documents() -> None:
    assert "more than one YAML document" in _only_error(STEP + "---\n" + STEP)


def test_duplicate_keys_name_both_places() -> None:
    text = "- step:\n    name: s\n    image: i\n    command: c\n    image: j\n"
    result = parse_text(text, "dup.yaml")
    (error,) = result.diagnostics.errors
    assert str(error.location) == "dup.yaml:5:5"
    assert "duplicate key 'image'" in error.message and "line 3" in error.message


def test_unsafe_tags_are_refused() -> None:
    assert "unsupported YAML tag" in _only_error("- !!python/object/apply:os.system ['true']\n")


def test_yaml_11_scalars() -> None:
    data = load_yaml("a: yes\nb: off\nc: 1e-4\nd: 1.0e-4\ne: ~\nf: 0x10\n", "x.yaml").data
    assert data == {"a": True, "b": False, "c": "1e-4", "d": 1e-4, "e": None, "f": 16}


def test_merge_keys_and_anchors_keep_locations() -> None:
    text = (
        "- step:\n    name: s\n    image: i\n    command: c\n"
        "    parameters:\n      - &p {name: a, type: integer, default: 1}\n"
        "      - {<<: *p, name: b}\n"
    )
    step = parse_text(text, "m.yaml").raise_if_errors().steps["s"]
    assert [(p.name, p.type, p.default) for p in step.parameters] == [
        ("a", "integer", 1),
        ("b", "integer", 1),
    ]
    assert step.parameters[0].location.line == 6


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_give_diagnostics(data: bytes) -> None:
    result = parse_text(data, "fuzz.yaml")
    assert result.config is not None or result.diagnostics.errors


YAMLISH = st.text(alphabet="- :\n\t[]{},&*!|>'\"#%@`?abcstepnmiagcod0123456789.eE", max_size=200)


@settings(max_examples=500, deadline=None)
@given(YAMLISH)
def test_random_yamlish_text_only_gives_diagnostics(text: str) -> None:
    try:
        result = parse_text(text, "fuzz.yaml")
    except ValohaiAirflowError:  # pragma: no cover - would still be the project's error type
        return
    assert result.config is not None or result.diagnostics.errors


@st.composite
def valohai_ish(draw: st.DrawFn) -> str:
    """Structurally plausible items with random keys and values, to reach the model layer."""
    keys = st.sampled_from(
        [
            "name",
            "image",
            "command",
            "parameters",
            "inputs",
            "type",
            "default",
            "nodes",
            "edges",
            "step",
            "pass-as",
            "multiple",
            "time-limit",
            "on-error",
            "override",
            "source",
            "target",
            "targets",
            "tags",
        ]
    )
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.sampled_from(["90", "1h", "a.b.c"])
    )
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )
    kind = draw(st.sampled_from(["step", "pipeline", "task", "endpoint", "deployment", "blueprint", "other"]))
    body = draw(st.dictionaries(keys, values, max_size=6))
    return json.dumps([{kind: body}])


@settings(max_examples=200, deadline=None)
@given(valohai_ish())
def test_random_structures_only_give_diagnostics(text: str) -> None:
    result = parse_text(text, "fuzz.yaml")
    for diagnostic in result.diagnostics.items:
        assert diagnostic.location.file == "fuzz.yaml"
        assert diagnostic.location.line >= 1
