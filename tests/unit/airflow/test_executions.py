"""The Executions page's data shaping: rows from manifests, sorting and filtering by any column,
the run conf "copy" gives, and the SVG polylines of the compare charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from valohai_airflow.airflow import executions
from valohai_airflow.airflow.executions import (
    CHART_HEIGHT,
    CHART_MARGIN,
    CHART_WIDTH,
    ExecutionRef,
    ExecutionRow,
)
from valohai_airflow.runtime.manifest import Manifest

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _manifest(index: int, rate: float, loss: float | None, seconds: float = 10.0, **extra: Any) -> Manifest:
    return Manifest(
        execution_id=f"e{index}",
        node="train",
        map_index=index,
        variant={"learning_rate": rate},
        step="train",
        image="python:3.11",
        status="completed",
        started_at=START,
        finished_at=START + timedelta(seconds=seconds),
        parameters={"learning_rate": rate, "epochs": 50},
        metadata={} if loss is None else {"loss": loss, "note": f"run {index}"},
        **extra,
    )


def _row(index: int, rate: float, loss: float | None, seconds: float = 10.0) -> ExecutionRow:
    ref = ExecutionRef("run-1", "train", index, 1)
    return executions.row(ref, "success", None, None, _manifest(index, rate, loss, seconds))


ROWS = [_row(0, 0.01, 0.9, 30.0), _row(1, 0.1, 0.2, 12.5), _row(2, 1.0, 0.45, 8.0), _row(3, 3.0, None)]


def test_a_row_takes_status_parameters_metadata_duration_and_label_from_the_manifest() -> None:
    r = ROWS[1]
    assert (r.node, r.status, r.label) == ("train", "completed", "learning_rate=0.1")
    assert r.value("parameter.learning_rate") == 0.1 and r.value("metadata.loss") == 0.2
    assert r.value("duration") == 12.5 and r.value("started") == START.isoformat()
    assert (r.value("run"), r.value("task"), r.value("metadata.nope")) == ("run-1", "train", None)


def test_a_task_instance_without_a_manifest_is_a_row_with_its_airflow_state() -> None:
    ref = ExecutionRef("run-2", "train", 4, 2)
    r = executions.row(ref, "running", START, START + timedelta(seconds=3), None, "learning_rate=9")
    assert (r.status, r.label, r.duration, r.parameters) == ("running", "learning_rate=9", 3.0, {})
    assert executions.row(ref, None, None, None, None).status == "none"


def test_columns_are_the_fixed_ones_then_every_parameter_then_every_metadata_key() -> None:
    assert executions.columns(ROWS) == [
        *executions.FIXED_COLUMNS,
        "parameter.learning_rate",
        "parameter.epochs",
        "metadata.loss",
        "metadata.note",
    ]


@pytest.mark.parametrize(
    ("column", "descending", "expected"),
    [
        ("metadata.loss", False, [1, 2, 0, 3]),  # numbers in numeric order, the empty cell last
        ("metadata.loss", True, [0, 2, 1, 3]),  # ... last either way
        ("parameter.learning_rate", True, [3, 2, 1, 0]),
        ("duration", False, [2, 3, 1, 0]),
        ("execution", False, [0, 1, 2, 3]),
    ],
)
def test_rows_sort_by_any_column(column: str, descending: bool, expected: list[int]) -> None:
    ordered = executions.sort_rows(ROWS, column, descending)
    assert [r.ref.map_index for r in ordered] == expected


def test_numbers_sort_before_text_and_text_before_nothing() -> None:
    values = ["b", None, 10, 2.5, "a", True]
    assert sorted(values, key=executions.sort_key) == [True, 2.5, 10, "a", "b", None]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"metadata.loss": "<0.5"}, [1, 2]),
        ({"metadata.loss": ">=0.45"}, [0, 2]),
        ({"metadata.loss": "=0.2"}, [1]),
        ({"parameter.learning_rate": ">0.05", "metadata.loss": "<0.3"}, [1]),
        ({"execution": "RATE=1"}, [2]),  # text: case-insensitive containment
        ({"metadata.note": "run 2"}, [2]),
        ({"metadata.loss": ">x"}, []),  # not a number: text containment, and no cell holds ">x"
        ({"metadata.loss": "  "}, [0, 1, 2, 3]),
    ],
)
def test_rows_filter_by_any_column(conditions: dict[str, str], expected: list[int]) -> None:
    assert [r.ref.map_index for r in executions.filter_rows(ROWS, conditions)] == expected


def test_the_checkbox_value_round_trips_any_ids_and_refuses_a_forged_one() -> None:
    ref = ExecutionRef('manual__2026-12-01T10:00:00+00:00 "x"', "train/a", 2, 3)
    assert ExecutionRef.parse(ref.token()) == ref
    for forged in ("", "[1, 2]", '["r", "t", "2", 1]', '["r", "t", true, 1]', "{}", "[null, 't', 1, 1]"):
        with pytest.raises(ValueError, match="not an execution reference"):
            ExecutionRef.parse(forged)


def test_copy_gives_the_parameters_the_trigger_form_offers_under_their_conf_keys() -> None:
    offered = {"train.parameter.epochs", "preprocess.parameter.seed"}
    assert ROWS[0].trigger_conf(offered) == {
        "train.parameter.epochs": 50
    }  # the blueprint's rate is not a field
    assert ROWS[0].trigger_conf(offered | {"train.parameter.learning_rate"}) == {
        "train.parameter.epochs": 50,
        "train.parameter.learning_rate": 0.01,
    }


def _points(line: executions.Line) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.points.split())]


def test_charts_draw_one_line_per_execution_on_one_scale_per_key() -> None:
    bottom, top = CHART_HEIGHT - CHART_MARGIN, CHART_MARGIN
    fast = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}, {"epoch": 3, "loss": 0.0, "_time": "t"}]
    slow = [{"epoch": 1, "loss": 1.0, "label": "text is not charted"}, {"epoch": 2, "loss": 0.75}]
    charts = executions.charts([("fast", fast), ("slow", slow)])
    assert [c.key for c in charts] == ["epoch", "loss"]  # `_time` and text-only keys have no chart
    loss = charts[1]
    assert (loss.low, loss.high, loss.longest) == (0.0, 1.0, 3)
    fast_line, slow_line = loss.lines
    assert (fast_line.name, slow_line.name, fast_line.count, slow_line.count) == ("fast", "slow", 3, 2)
    assert fast_line.colour != slow_line.colour
    assert _points(fast_line) == [
        (CHART_MARGIN, top),
        (CHART_WIDTH / 2, (top + bottom) / 2),
        (CHART_WIDTH - CHART_MARGIN, bottom),
    ]
    # the shorter series keeps the same x step: its 2nd value sits where the 2nd of the longer one does
    assert _points(slow_line) == [(CHART_MARGIN, top), (CHART_WIDTH / 2, top + (bottom - top) * 0.25)]


def test_a_flat_or_single_point_series_is_drawn_in_the_middle() -> None:
    (chart,) = executions.charts([("one", [{"acc": 0.5}]), ("none", [{"other": "x"}])])
    (line,) = chart.lines  # an execution without the key has no line
    assert _points(line) == [(CHART_WIDTH / 2, CHART_HEIGHT / 2)]
    assert executions.charts([("nan", [{"v": float("nan")}, {"v": True}])]) == []


def test_the_page_lists_the_tasks_of_every_node_operator_class() -> None:
    """`TaskInstance.operator` holds the class name: a new subclass must be listed, or its
    executions vanish from the page (the step operator's did)."""
    import importlib
    import pkgutil

    import valohai_airflow.airflow
    from valohai_airflow.airflow.executions_page import NODE_OPERATORS
    from valohai_airflow.airflow.operators import ValohaiExecutionOperator

    for module in pkgutil.iter_modules(valohai_airflow.airflow.__path__):  # every subclass defined
        importlib.import_module(f"valohai_airflow.airflow.{module.name}")

    def classes(cls: type) -> set[str]:
        return {cls.__name__}.union(*(classes(sub) for sub in cls.__subclasses__()))

    assert set(NODE_OPERATORS) == classes(ValohaiExecutionOperator)
