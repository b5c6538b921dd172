"""Large pipelines written the way a team would: the scale tests and the loader benchmark share them."""

from __future__ import annotations

import random
from collections.abc import Sequence

BUSYBOX = "valohai-airflow/busybox:1"


def synthetic_yaml(
    nodes: int,
    edges: int,
    *,
    steps: int = 10,
    seed: int = 1,
    more_steps: Sequence[str] = (),
    more_nodes: Sequence[str] = (),
    more_edges: Sequence[str] = (),
    pipeline_parameters: Sequence[str] = (),
) -> str:
    """One pipeline `synthetic` of `nodes` execution nodes n0…, over `steps` steps (one integer
    parameter and one optional input each), and `edges` random output → input edges that point
    forward (a DAG). `more_*` are extra YAML lines (already indented for their list) appended to the
    steps, nodes and edges, and `pipeline_parameters` the pipeline's `parameters:` items."""
    rng = random.Random(seed)
    lines: list[str] = []
    for s in range(steps):
        lines += [
            "- step:",
            f"    name: work-{s}",
            f"    image: {BUSYBOX}",
            "    command: echo {parameters}",
            "    parameters:",
            f"      - {{name: size-{s}, type: integer, default: {s}, min: 0}}",
            "    inputs:",
            "      - {name: data, optional: true}",
        ]
    lines += list(more_steps)
    lines += ["- pipeline:", "    name: synthetic", "    nodes:"]
    lines += [f"      - {{name: n{i}, type: execution, step: work-{i % steps}}}" for i in range(nodes)]
    lines += list(more_nodes)
    lines.append("    edges:")
    pairs: set[tuple[int, int]] = set()
    most = nodes * (nodes - 1) // 2
    while len(pairs) < min(edges, most):
        target = rng.randrange(1, nodes)
        pairs.add((rng.randrange(0, target), target))
    lines += [f"      - [n{a}.output.out-{a}*, n{b}.input.data]" for a, b in sorted(pairs)]
    lines += list(more_edges)
    if pipeline_parameters:
        lines.append("    parameters:")
        lines += list(pipeline_parameters)
    return "\n".join(lines) + "\n"
