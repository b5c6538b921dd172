"""Which edges make sense: socket types, their plural spellings, and which source may feed which target.

valohai-yaml only checks that each socket type is one of eight words. We also check the pairing,
because an edge Valohai would silently ignore (an output into a parameter, metadata into an input)
is a mistake a user wants to hear about before the pipeline runs.
"""

from __future__ import annotations

from valohai_airflow.plan.model import EdgeKind, NodeKind

# Spellings seen in real files (valohai/NVIDIA-MONAI-Valohai, valohai-cli#354); the platform accepts them.
PLURALS: dict[str, EdgeKind] = {
    "outputs": EdgeKind.OUTPUT,
    "inputs": EdgeKind.INPUT,
    "parameters": EdgeKind.PARAMETER,
}

ALLOWED_TARGETS: dict[EdgeKind, tuple[EdgeKind, ...]] = {
    EdgeKind.OUTPUT: (EdgeKind.INPUT, EdgeKind.FILE),
    EdgeKind.INPUT: (EdgeKind.INPUT,),
    EdgeKind.PARAMETER: (EdgeKind.PARAMETER,),
    EdgeKind.METADATA: (EdgeKind.PARAMETER,),
    EdgeKind.DEPLOYMENT: (EdgeKind.PARAMETER,),
    EdgeKind.ENVIRONMENT_VARIABLE: (EdgeKind.ENVIRONMENT_VARIABLE,),
    EdgeKind.DEPENDENCY: (EdgeKind.DEPENDENCY,),
    EdgeKind.FILE: (),
}

_EXECUTION_LIKE_SOURCES = (
    EdgeKind.OUTPUT,
    EdgeKind.INPUT,
    EdgeKind.PARAMETER,
    EdgeKind.METADATA,
    EdgeKind.ENVIRONMENT_VARIABLE,
    EdgeKind.DEPENDENCY,
)
_EXECUTION_LIKE_TARGETS = (
    EdgeKind.INPUT,
    EdgeKind.PARAMETER,
    EdgeKind.ENVIRONMENT_VARIABLE,
    EdgeKind.DEPENDENCY,
)

SOURCE_KINDS: dict[NodeKind, tuple[EdgeKind, ...]] = {
    NodeKind.EXECUTION: _EXECUTION_LIKE_SOURCES,
    NodeKind.TASK: _EXECUTION_LIKE_SOURCES,
    NodeKind.DEPLOYMENT: (EdgeKind.DEPLOYMENT, EdgeKind.DEPENDENCY),
}
TARGET_KINDS: dict[NodeKind, tuple[EdgeKind, ...]] = {
    NodeKind.EXECUTION: _EXECUTION_LIKE_TARGETS,
    NodeKind.TASK: _EXECUTION_LIKE_TARGETS,
    NodeKind.DEPLOYMENT: (EdgeKind.FILE, EdgeKind.DEPENDENCY),
}

# What a deployment node publishes ([vy-gh] examples/pipeline-deployment-edge-example.yaml).
DEPLOYMENT_KEYS = ("id", "version_id")

# Edge targets a single value flows into: only one edge may fill each (Valohai help-center 18704244122257).
SINGLE_VALUED = (EdgeKind.PARAMETER, EdgeKind.ENVIRONMENT_VARIABLE)


def edge_kind(written: str) -> tuple[EdgeKind | None, bool]:
    """The kind a socket type spells and whether it was a plural alias; (None, False) if unknown."""
    try:
        return EdgeKind(written), False
    except ValueError:
        plural = PLURALS.get(written)
        return plural, plural is not None
