"""The DAG's doc_md: the pipeline as the user wrote it, so the web UI explains the graph."""

from __future__ import annotations

from valohai_airflow.plan.model import PipelinePlan, ProjectPlan


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pipeline_doc_md(project: ProjectPlan, pipeline: PipelinePlan) -> str:
    lines = [
        f"# {_cell(pipeline.name)}",
        "",
        f"Valohai pipeline from `{project.source}` (project `{project.name}`).",
        "",
        "| node | kind | step | image |",
        "| --- | --- | --- | --- |",
    ]
    for node in pipeline.nodes:
        step = node.step
        lines.append(
            f"| {_cell(node.name)} | {node.kind.value} | {_cell(step.name if step else node.deployment or '')} "
            f"| {_cell(step.image if step else '')} |"
        )
    lines += ["", "| edge from | to |", "| --- | --- |"]
    for edge in pipeline.edges:
        lines.append(
            f"| `{_cell(f'{edge.source_node}.{edge.source_kind.value}.{edge.source_key}')}` "
            f"| `{_cell(f'{edge.target_node}.{edge.target_kind.value}.{edge.target_key}')}` |"
        )
    if pipeline.parameters:
        lines += ["", "| pipeline parameter | default | targets |", "| --- | --- | --- |"]
        for pp in pipeline.parameters:
            targets = ", ".join(f"{n}.parameter.{p}" for n, p in pp.targets)
            lines.append(f"| {_cell(pp.name)} | `{_cell(pp.default)}` | {_cell(targets)} |")
    return "\n".join(lines) + "\n"
