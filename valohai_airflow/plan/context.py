"""What the checks of one pipeline share: the config, the pipeline, the diagnostics they report to
(each message prefixed with the pipeline's name), and the nodes resolved so far.

The checkers (nodes.py, actions.py, edges.py, pipeline_parameters.py, limits.py) are functions of
this context, called in order by compile.py; nodes are resolved first, and edges and pipeline
parameters are checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from valohai_airflow.plan.model import NodeKind
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.diagnostics import Diagnostics, Location
from valohai_airflow.spec.pipeline import Pipeline
from valohai_airflow.spec.step import Step


@dataclass(frozen=True, slots=True)
class ResolvedNode:
    """A node with what its edges and parameters are checked against."""

    kind: NodeKind
    step: Step | None  # effective step; None for deployment nodes and nodes whose step is unknown


@dataclass(slots=True)
class PipelineContext:
    config: Config
    pipeline: Pipeline
    diagnostics: Diagnostics
    resolved: dict[str, ResolvedNode] = field(default_factory=dict)
    subject: str = ""  # what messages name; '' for `pipeline "<name>"` (a step's DAG: `step "<name>"`)

    def error(self, message: str, location: Location, hint: str | None = None) -> None:
        self.diagnostics.error(self._text(message), location, hint)

    def warning(self, message: str, location: Location, hint: str | None = None) -> None:
        self.diagnostics.warning(self._text(message), location, hint)

    def _text(self, message: str) -> str:
        if not self.subject:
            return f'pipeline "{self.pipeline.name}": {message}'
        # a step's or blueprint's own pipeline: its one node is named after it, and says nothing more
        node = f'node "{self.pipeline.name}"'
        return f"{self.subject}: {message.removeprefix(node + ': ').removeprefix(node + ', ')}"
