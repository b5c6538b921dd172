"""Which edges make sense: socket types, their plural spellings, and which source may feed which target;
and the pipeline's edges checked against its resolved nodes (`compile_edge`).

valohai-yaml only checks that each socket type is one of eight words. We also check the pairing,
because an edge Valohai would silently ignore (an output into a parameter, metadata into an input)
is a mistake a user wants to hear about before the pipeline runs; and that each socket names a node,
and something that node has (a parameter, an input, an endpoint file), and that only one edge fills
a parameter or environment variable.

An edge whose two ends are the same socket (`[n.parameter.p, n.parameter.p]`, as in Valohai's own
Three-Trainings example) passes a value onto itself: it is accepted with a warning and dropped. Any
other edge from a node to itself needs the node to finish before it starts, and is reported as a cycle.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from valohai_airflow.plan.context import PipelineContext, ResolvedNode
from valohai_airflow.plan.model import EdgeKind, EdgePlan, NodeKind
from valohai_airflow.spec.hints import did_you_mean, quoted
from valohai_airflow.spec.pipeline import DeploymentNode, Edge, Socket

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

_SPELLED = {
    EdgeKind.OUTPUT: "an output",
    EdgeKind.INPUT: "an input",
    EdgeKind.PARAMETER: "a parameter",
    EdgeKind.METADATA: "metadata",
    EdgeKind.FILE: "a deployment file",
    EdgeKind.DEPLOYMENT: "a deployment",
    EdgeKind.ENVIRONMENT_VARIABLE: "an environment variable",
    EdgeKind.DEPENDENCY: "a dependency",
}


def edge_kind(written: str) -> tuple[EdgeKind | None, bool]:
    """The kind a socket type spells and whether it was a plural alias; (None, False) if unknown."""
    try:
        return EdgeKind(written), False
    except ValueError:
        plural = PLURALS.get(written)
        return plural, plural is not None


def compile_edge(context: PipelineContext, edge: Edge) -> EdgePlan | None:
    """The edge's plan, or None when it is reported (after every check of it has run) or does nothing."""
    source_kind = _socket_kind(context, edge.source, edge, "source")
    target_kind = _socket_kind(context, edge.target, edge, "target")
    source = _socket_node(context, edge.source, "source")
    target = _socket_node(context, edge.target, "target")
    if source_kind is None or target_kind is None:
        return None
    ok = True
    allowed = ALLOWED_TARGETS[source_kind]
    if target_kind not in allowed:
        goes = " or ".join(_SPELLED[k] for k in allowed) if allowed else "nowhere; it is only an edge target"
        context.error(
            f"edge {edge.source} → {edge.target}: "
            f"{_SPELLED[source_kind]} cannot go into {_SPELLED[target_kind]} "
            f"({_SPELLED[source_kind]} goes into {goes})",
            edge.location,
        )
        ok = False
    if source is not None:
        ok &= _check_socket(context, edge.source, source_kind, source, "source")
    if target is not None:
        ok &= _check_socket(context, edge.target, target_kind, target, "target")
    if not ok or source is None or target is None:
        return None
    if (edge.source.node, source_kind, edge.source.key) == (edge.target.node, target_kind, edge.target.key):
        context.warning(
            f"edge {edge.source} → {edge.target}: both ends are the same socket, so the edge does nothing; "
            "it is dropped",
            edge.location,
        )
        return None
    return EdgePlan(
        source_node=edge.source.node,
        source_kind=source_kind,
        source_key=edge.source.key,
        target_node=edge.target.node,
        target_kind=target_kind,
        target_key=edge.target.key,
        location=edge.location,
    )


def check_single_valued_targets(context: PipelineContext, edges: Sequence[EdgePlan]) -> None:
    """Two edges into one parameter or environment variable: which value would win is undefined."""
    first: dict[tuple[str, EdgeKind, str], EdgePlan] = {}
    for edge in edges:
        if edge.target_kind not in SINGLE_VALUED:
            continue
        key = (edge.target_node, edge.target_kind, edge.target_key)
        if key in first:
            what = "parameter" if edge.target_kind is EdgeKind.PARAMETER else "environment variable"
            context.error(
                f'{what} "{edge.target_key}" of node "{edge.target_node}" is filled by two edges '
                f"(the other at line {first[key].location.line}); only one edge may fill a {what}",
                edge.location,
            )
        else:
            first[key] = edge


def _socket_kind(context: PipelineContext, socket: Socket, edge: Edge, side: str) -> EdgeKind | None:
    kind, plural = edge_kind(socket.type)
    if kind is None:
        context.error(
            f'edge {edge.source} → {edge.target}: "{socket.type}" is not an edge type',
            socket.location,
            did_you_mean(socket.type, [k.value for k in EdgeKind]),
        )
    elif plural:
        context.warning(
            f'edge {side} {socket}: "{socket.type}" read as "{kind.value}" '
            f'(valohai-yaml lint rejects the plural; write "{kind.value}")',
            socket.location,
        )
    return kind


def _socket_node(context: PipelineContext, socket: Socket, side: str) -> ResolvedNode | None:
    resolved = context.resolved.get(socket.node)
    if resolved is None:
        context.error(
            f'edge {side} {socket}: node "{socket.node}" does not exist',
            socket.location,
            did_you_mean(socket.node, context.resolved),
        )
    return resolved


def _check_socket(
    context: PipelineContext, socket: Socket, kind: EdgeKind, node: ResolvedNode, side: str
) -> bool:
    """The socket's kind fits its node and its key names something the node has."""
    fitting = SOURCE_KINDS[node.kind] if side == "source" else TARGET_KINDS[node.kind]
    if kind not in fitting:
        context.error(
            f'edge {side} {socket}: a {node.kind.value} node has no "{kind.value}" {side} '
            f"(its edges can {'start from' if side == 'source' else 'go into'} {quoted(k.value for k in fitting)})",
            socket.location,
        )
        return False
    where = f"edge {side} {socket}"
    if kind is EdgeKind.PARAMETER and node.step is not None:
        known = [p.name for p in node.step.parameters]
        if socket.key not in known:
            context.error(
                f'{where}: step "{node.step.name}" has no parameter "{socket.key}"',
                socket.location,
                did_you_mean(socket.key, known),
            )
            return False
    elif kind is EdgeKind.INPUT and side == "source" and node.step is not None:
        known = [i.name for i in node.step.inputs]
        if not any(fnmatch.fnmatchcase(name, socket.key) for name in known):
            context.error(
                f'{where}: "{socket.key}" matches no input of step "{node.step.name}" '
                "(an input edge passes on the files of the inputs whose names match)",
                socket.location,
                did_you_mean(socket.key, known),
            )
            return False
    elif kind is EdgeKind.INPUT and side == "target" and node.step is not None:
        known = [i.name for i in node.step.inputs]
        if socket.key not in known:
            context.error(
                f'{where}: step "{node.step.name}" has no input "{socket.key}"',
                socket.location,
                did_you_mean(socket.key, known),
            )
            return False
    elif kind is EdgeKind.ENVIRONMENT_VARIABLE and node.step is not None:
        known = [v.name for v in node.step.environment_variables]
        if socket.key not in known:
            context.warning(
                f'{where}: step "{node.step.name}" does not declare environment variable "{socket.key}"',
                socket.location,
                did_you_mean(socket.key, known),
            )
    elif kind is EdgeKind.DEPLOYMENT and socket.key not in DEPLOYMENT_KEYS:
        context.warning(
            f'{where}: a deployment node gives {quoted(DEPLOYMENT_KEYS)}, not "{socket.key}"',
            socket.location,
            did_you_mean(socket.key, DEPLOYMENT_KEYS),
        )
    elif kind is EdgeKind.FILE:
        return _check_file_target(context, socket)
    return True


def _check_file_target(context: PipelineContext, socket: Socket) -> bool:
    """`<endpoint>.<file>`: an endpoint of the deployment node and, if it lists files, one of them."""
    where = f"edge target {socket}"
    endpoint_name, dot, file_name = socket.key.partition(".")
    if not dot or not endpoint_name or not file_name:
        context.error(f'{where}: a deployment file is written "<endpoint>.<file>"', socket.location)
        return False
    node = next(n for n in context.pipeline.nodes if n.name == socket.node)
    endpoints = list(node.endpoints) if isinstance(node, DeploymentNode) else []
    if endpoint_name not in endpoints:
        context.error(
            f'{where}: deployment node "{socket.node}" has no endpoint "{endpoint_name}"',
            socket.location,
            did_you_mean(endpoint_name, endpoints),
        )
        return False
    endpoint = context.config.endpoints.get(endpoint_name)
    files = [f.name for f in endpoint.files] if endpoint is not None else []
    if files and file_name not in files:
        context.error(
            f'{where}: endpoint "{endpoint_name}" has no file "{file_name}"',
            socket.location,
            did_you_mean(file_name, files),
        )
        return False
    return True
