"""`stop-condition` at run time (a step's, and a task blueprint's for each of its executions):
watch the metadata as the container prints it and say, once, when a condition holds
(spec/stop_condition.py evaluates it).

The watch sees the container's output chunk by chunk (the engine's attach stream), keeps the last
value per metadata key, as the manifest does, and evaluates after each metadata point, so the
execution stops at the first point after which the condition holds, not at its end.
"""

from __future__ import annotations

import json
from typing import Any

from valohai_airflow.runtime.metadata import TIME_KEY, parse_metadata_line
from valohai_airflow.spec.diagnostics import shown
from valohai_airflow.spec.stop_condition import evaluate

MAX_BUFFER = 1024 * 1024  # a "line" longer than this without a newline is not metadata


class StopWatch:
    """Feed it the container's output; `feed` is True once, when one of the conditions first holds."""

    def __init__(self, *expressions: str) -> None:
        self.expressions = expressions
        self.last: dict[str, Any] = {}
        self.held: str | None = None  # the expression that held
        self.reason: str | None = None  # set when it held: which metadata made it hold
        self._buffer = ""

    def feed(self, chunk: bytes | str) -> bool:
        if self.reason is not None:
            return False
        text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        *lines, self._buffer = (self._buffer + text).split("\n")
        if len(self._buffer) > MAX_BUFFER:
            self._buffer = ""
        return any(self._line(line) for line in lines)

    def _line(self, line: str) -> bool:
        point = parse_metadata_line(line)
        if point is None:
            return False
        self.last.update((k, v) for k, v in point.items() if k != TIME_KEY)
        self.held = next((e for e in self.expressions if evaluate(e, self.last)[0]), None)
        if self.held is None:
            return False
        printed = shown(json.loads(json.dumps(point, default=str)))
        self.reason = f"stop-condition `{self.held}` holds after the metadata point {printed}"
        return True
