"""The executions of a DAG's nodes side by side (the provider's Executions page): one row per node
task instance, a task node's mapped executions included, with its status, parameters, last metadata
values and duration; sorting and filtering by any column; and the metadata series of the selected
executions as SVG line charts drawn on the server (no script, no chart library).

Pure data shaping: rows come from manifests (the node's XCom) and task-instance fields the page
reads through Airflow's ORM (valohai_airflow.airflow.executions_page).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from valohai_airflow.plan.blueprints import label
from valohai_airflow.plan.conf_keys import node_parameter_key
from valohai_airflow.runtime.manifest import Manifest
from valohai_airflow.runtime.metadata import TIME_KEY

#: Columns every row has; parameters and metadata add `parameter.<name>` and `metadata.<key>`.
FIXED_COLUMNS = ("run", "task", "execution", "status", "started", "duration")
PARAMETER = "parameter."
METADATA = "metadata."
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 560, 220, 40
#: Line colours of the compared executions, in selection order (then repeated).
COLOURS = ("#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d")


@dataclass(frozen=True)
class ExecutionRef:
    """One node task instance: what a row's checkbox selects."""

    run_id: str
    task_id: str
    map_index: int
    try_number: int

    def token(self) -> str:
        """The checkbox value: JSON, so any run id or task id round-trips."""
        return json.dumps([self.run_id, self.task_id, self.map_index, self.try_number])

    @classmethod
    def parse(cls, token: str) -> ExecutionRef:
        """A checkbox value back; ValueError names what is wrong with a forged one."""
        try:
            run_id, task_id, map_index, try_number = json.loads(token)
        except (ValueError, TypeError) as error:
            raise ValueError(f"not an execution reference: {token!r}") from error
        if not (isinstance(run_id, str) and isinstance(task_id, str)):
            raise ValueError(f"not an execution reference: {token!r}")
        if type(map_index) is not int or type(try_number) is not int:
            raise ValueError(f"not an execution reference: {token!r}")
        return cls(run_id, task_id, map_index, try_number)


@dataclass
class ExecutionRow:
    ref: ExecutionRef
    node: str
    status: str
    label: str = ""
    started: datetime | None = None
    duration: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    manifest: Manifest | None = None

    def value(self, column: str) -> Any:
        """The cell of `column` as data (sorting and filtering use this, the page formats it)."""
        if column.startswith(PARAMETER):
            return self.parameters.get(column[len(PARAMETER) :])
        if column.startswith(METADATA):
            return self.metadata.get(column[len(METADATA) :])
        return {
            "run": self.ref.run_id,
            "task": self.ref.task_id,
            "execution": self.label,
            "status": self.status,
            "started": self.started.isoformat() if self.started else None,
            "duration": self.duration,
        }.get(column)

    def trigger_conf(self, offered: Iterable[str]) -> dict[str, Any]:
        """The run conf that gives this execution's parameters to a new run: only the keys the DAG's
        trigger form offers (a task blueprint's or an edge's values are not form fields)."""
        keys = set(offered)
        conf = {node_parameter_key(self.node, name): value for name, value in self.parameters.items()}
        return {key: value for key, value in conf.items() if key in keys}


def row(
    ref: ExecutionRef,
    state: str | None,
    started: datetime | None,
    ended: datetime | None,
    manifest: Manifest | None,
    map_label: str | None = None,
) -> ExecutionRow:
    """A row from a task instance's fields and its manifest (None: not finished, or no stage-out)."""
    duration = (ended - started).total_seconds() if started and ended else None
    if manifest is None:
        return ExecutionRow(ref, ref.task_id, state or "none", map_label or "", started, duration)
    if manifest.started_at and manifest.finished_at:
        duration = (manifest.finished_at - manifest.started_at).total_seconds()
    return ExecutionRow(
        ref,
        manifest.node,
        manifest.status or state or "none",
        label(manifest.variant) if manifest.variant else (map_label or ""),
        manifest.started_at or started,
        duration,
        dict(manifest.parameters),
        dict(manifest.metadata),
        manifest,
    )


def columns(rows: Sequence[ExecutionRow]) -> list[str]:
    """Fixed columns, then every parameter and every metadata key any row has, in first-seen order."""
    found: dict[str, None] = dict.fromkeys(FIXED_COLUMNS)
    for r in rows:
        found.update(dict.fromkeys(PARAMETER + name for name in r.parameters))
    for r in rows:
        found.update(dict.fromkeys(METADATA + key for key in r.metadata))
    return list(found)


def sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, then text, then empty cells (last whichever way the user sorts)."""
    if isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, int | float) and not math.isnan(value):
        return (0, float(value), "")
    if value is None:
        return (2, 0.0, "")
    return (1, 0.0, value if isinstance(value, str) else json.dumps(value, default=str))


def sort_rows(rows: Sequence[ExecutionRow], column: str, descending: bool) -> list[ExecutionRow]:
    present = [r for r in rows if r.value(column) is not None]
    empty = [r for r in rows if r.value(column) is None]
    return sorted(present, key=lambda r: sort_key(r.value(column)), reverse=descending) + empty


def matches(value: Any, condition: str) -> bool:
    """A filter cell: `>0.5`, `<=10`, `=3` (numeric), otherwise case-insensitive text containment."""
    condition = condition.strip()
    if not condition:
        return True
    for operator in (">=", "<=", ">", "<", "="):
        if condition.startswith(operator):
            try:
                bound = float(condition[len(operator) :])
            except ValueError:
                break
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return {
                ">=": value >= bound,
                "<=": value <= bound,
                ">": value > bound,
                "<": value < bound,
                "=": value == bound,
            }[operator]
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
    return condition.lower() in text.lower()


def filter_rows(rows: Sequence[ExecutionRow], conditions: Mapping[str, str]) -> list[ExecutionRow]:
    return [r for r in rows if all(matches(r.value(c), text) for c, text in conditions.items())]


@dataclass(frozen=True)
class Line:
    name: str
    colour: str
    points: str  # SVG polyline points, "x,y x,y ..."
    count: int


@dataclass(frozen=True)
class Chart:
    """One metadata key over its points, one line per execution that printed it."""

    key: str
    low: float
    high: float
    longest: int
    lines: list[Line]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    margin: int = CHART_MARGIN


def _numbers(series: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    values = [point.get(key) for point in series]
    return [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    ]


def charts(named_series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> list[Chart]:
    """A chart per numeric metadata key of the given executions' series: x is the n-th value the
    execution printed for the key, y the value, on one scale for all lines of the chart."""
    keys: dict[str, None] = {}
    for _, series in named_series:
        for point in series:
            keys.update(dict.fromkeys(k for k in point if k != TIME_KEY))
    found = []
    for key in keys:
        values = [(name, _numbers(series, key)) for name, series in named_series]
        every = [v for _, numbers in values for v in numbers]
        if not every:
            continue
        low, high = min(every), max(every)
        longest = max(len(numbers) for _, numbers in values)
        lines = [
            Line(name, COLOURS[i % len(COLOURS)], _polyline(numbers, low, high, longest), len(numbers))
            for i, (name, numbers) in enumerate(values)
            if numbers
        ]
        found.append(Chart(key, low, high, longest, lines))
    return found


def _polyline(values: Sequence[float], low: float, high: float, longest: int) -> str:
    inner_w = CHART_WIDTH - 2 * CHART_MARGIN
    inner_h = CHART_HEIGHT - 2 * CHART_MARGIN
    span = high - low or 1.0
    step = inner_w / (longest - 1) if longest > 1 else 0.0
    points = []
    for i, v in enumerate(values):
        x = CHART_MARGIN + (i * step if longest > 1 else inner_w / 2)
        y = CHART_MARGIN + inner_h - (v - low) / span * inner_h if high != low else CHART_MARGIN + inner_h / 2
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)
