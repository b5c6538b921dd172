"""build_command/build_script against valohai-yaml's own Step.build_command (the reference).

valohai-yaml ignores flag defaults; ours fills every default in, so the reference always gets
the complete value set (all defaults including flags, overlaid with the given values).
"""

from __future__ import annotations

from typing import Any

import pytest
import valohai_yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from valohai_yaml.objs import Step as VyStep

from tests.support import cases
from tests.support.cases import Case, Files
from valohai_airflow.spec import Step, build_command, build_script, parse_file, parse_text
from valohai_airflow.spec.commands import effective_values, join_command

# Files whose steps parse here and in valohai-yaml: not the error examples, not duplicate step names
# (an error here), not the unknown override key (a schema error to valohai-yaml).
NOT_BOTH = ("error_examples", "duplicate_step_names", "extra-fields")
WITH_STEPS = [
    c
    for c in cases.shapes() + cases.upstream() + cases.corpus()
    if not any(part in (c.upstream_name or c.name) for part in NOT_BOTH)
]


@pytest.mark.parametrize("case", cases.params(WITH_STEPS))
def test_corpus_commands_match_valohai_yaml(files: Files, case: Case) -> None:
    path = files.path(case)
    config = parse_file(path).raise_if_errors()
    reference = valohai_yaml.parse(path.read_text())
    assert config.steps or not reference.steps
    for step_name, step in config.steps.items():
        values = effective_values(step, {})
        assert build_command(step, {}) == reference.steps[step_name].build_command(values), step_name


def test_flag_defaults_are_passed_and_readme_example() -> None:
    text = """
- step:
    name: train
    image: python:3.12
    command:
      - pip install -r requirements.txt
      - python train.py {parameters} --name={parameter-value:model_name} {parameter:epochs}
    parameters:
      - {name: epochs, type: integer, default: 10}
      - {name: learning_rate, type: float, default: 0.001, pass-as: "--lr {v}"}
      - {name: model_name, default: "my model's name"}
      - {name: verbose, type: flag, default: true}
      - {name: layers, type: integer, multiple: separate, multiple-separator: ":", default: [1,2,3]}
      - {name: tags, multiple: repeat, pass-as: "-t {v}", default: ["a b", "c"]}
"""
    step = parse_text(text, "v.yaml").raise_if_errors().steps["train"]
    assert build_command(step, {})[1] == (
        "python train.py --epochs=10 --lr 0.001 '--model_name=my model'\"'\"'s name' --verbose "
        "--layers=1:2:3 -t 'a b' -t c --name='my model'\"'\"'s name' --epochs=10"
    )
    assert "--verbose" not in build_command(step, {"verbose": False})[1]
    assert "--epochs" not in build_command(step, {"epochs": None})[1]
    assert build_script(step, {}).split("\n")[0] == "pip install -r requirements.txt"


def test_script_keeps_shebang_first_and_drops_blank_commands() -> None:
    assert join_command(["#!/bin/bash\nfoo", "", "  ", "bar"]) == "#!/bin/bash\nfoo\nbar"
    step = Step(
        name="s", image="i", command=("#!/usr/bin/env python\nprint(1)", "print({parameter-value:x})")
    )
    assert build_script(step, {"x": 3}) == "#!/usr/bin/env python\nprint(1)\nprint(3)"


def test_unknown_placeholders_stay_and_source_path_is_quoted() -> None:
    step = Step.model_validate(
        {
            "name": "s",
            "image": "i",
            "command": "awk '{print $1}' {inputs} {parameter:nope} ${HOME} {source-path}",
            "source-path": "my dir/x.py",
        }
    )
    assert build_command(step, {}) == ["awk '{print $1}' {inputs} {parameter:nope} ${HOME} 'my dir/x.py'"]


NAMES = st.sampled_from(["a", "b", "lr", "epochs", "name-x", "with_us"])
TEXT = st.text(alphabet="ab '\"$x-=:,", max_size=6)
INTS = st.integers(min_value=-1000, max_value=10**6)
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=32)
PASS_AS = st.sampled_from([None, "--{name}={value}", "-{name} {v}", "{v}", "--x {value} --y={v}", "--{name}"])


def _atom(type_: str) -> st.SearchStrategy[Any]:
    return {"string": TEXT, "integer": INTS, "float": FLOATS, "flag": st.booleans()}[type_]


@st.composite
def parameter_and_value(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], Any]:
    type_ = draw(st.sampled_from(["string", "integer", "float", "flag"]))
    param: dict[str, Any] = {"name": name, "type": type_}
    multiple = None if type_ == "flag" else draw(st.sampled_from([None, "none", "repeat", "separate"]))
    if multiple:
        param["multiple"] = multiple
        if draw(st.booleans()):
            param["multiple-separator"] = draw(st.sampled_from([",", ":", " ", ";;"]))
    pass_as = draw(PASS_AS)
    if pass_as:
        param["pass-as"] = pass_as
    if type_ == "flag":
        for key in ("pass-true-as", "pass-false-as"):
            choice = draw(st.sampled_from([None, "--yes", "--no-{name}", "-f {v}"]))
            if choice:
                param[key] = choice
    is_multi = multiple in ("repeat", "separate")
    value_strategy = st.lists(_atom(type_), max_size=3) if is_multi else _atom(type_)
    if draw(st.booleans()):
        param["default"] = draw(value_strategy)
    value = draw(st.one_of(st.just("unset"), st.none(), value_strategy))
    return param, value


@st.composite
def steps(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    names = draw(st.lists(NAMES, unique=True, max_size=5))
    params, values = [], {}
    for name in names:
        param, value = draw(parameter_and_value(name))
        params.append(param)
        if value != "unset":
            values[name] = value
    pieces = ["{parameters}", "{params}", "{inputs}", "{print $1}", "{source-path}", "${HOME}", "x"]
    for name in [*names, "missing"]:
        pieces += [f"{{parameter:{name}}}", f"{{parameter-value:{name}}}"]
    command = draw(
        st.lists(st.lists(st.sampled_from(pieces), max_size=4).map(" ".join), min_size=1, max_size=3)
    )
    data: dict[str, Any] = {
        "name": "s",
        "image": "i",
        "command": command if draw(st.booleans()) else command[0],
    }
    data["parameters"] = params
    if draw(st.booleans()):
        data["source-path"] = draw(st.sampled_from(["train.py", "dir with space/x.py"]))
    return data, values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps())
def test_generated_steps_match_valohai_yaml(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    data, values = case
    ours = Step.model_validate(data)
    reference = VyStep.parse(data)
    assert build_command(ours, values) == reference.build_command(effective_values(ours, values))


class _CountedTuple(tuple):  # type: ignore[type-arg]
    """A step's parameters that count how often anything walks them."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).walks += 1
        return super().__iter__()


def test_command_building_walks_the_parameters_a_bounded_number_of_times() -> None:
    """`{parameters}` and `{parameter:x}` over 2,000 parameters: each name is found through an index,
    not by walking every parameter again (quadratic: a 20,000-parameter step took 22 s to build)."""
    count = 2000
    step = Step.model_validate(
        {
            "name": "wide",
            "image": "busybox",
            "command": [
                "run {parameters} {parameters}",
                "one " + " ".join(f"{{parameter:p{i}}}" for i in range(count)),
            ],
            "parameters": [{"name": f"p{i}", "type": "integer", "default": i} for i in range(count)],
        }
    )
    counted = step.model_copy(update={"parameters": _CountedTuple(step.parameters)})
    _CountedTuple.walks = 0
    command = build_command(counted, {})
    assert _CountedTuple.walks <= 3  # the defaults, `{parameters}` once, the index once
    assert command[0].split()[1:3] == ["--p0=0", "--p1=1"] and command[0].count("--p1999=1999") == 2
    assert command[1] == "one " + " ".join(f"--p{i}={i}" for i in range(count))


def test_the_parameter_index_is_not_pickled_and_is_rebuilt() -> None:
    """Plans are pickled once per edit and read by every fresh process: the index is derived state."""
    import pickle

    step = Step.model_validate(
        {"name": "s", "image": "i", "command": "c", "parameters": [{"name": f"p{i}"} for i in range(500)]}
    )
    assert step.parameter("p7") is step.parameters[7]
    loaded = pickle.loads(pickle.dumps(step))
    assert "parameter_index" in step.__dict__ and "parameter_index" not in loaded.__dict__
    assert loaded == step and step.model_dump() == loaded.model_dump()
    assert loaded.parameter("p499") is loaded.parameters[499] and loaded.parameter("nope") is None
    assert step.model_copy(update={"parameters": step.parameters[:1]}).parameter("p7") is None
