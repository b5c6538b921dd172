"""`valohai-airflow`: check valohai.yaml files and show their pipelines (and the DAGs of their steps
and task blueprints) without starting Airflow."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from valohai_airflow import data_cli, run_cli
from valohai_airflow.loading.dags_folder import VALOHAI_YAML, valohai_yamls
from valohai_airflow.loading.project import compile_project
from valohai_airflow.plan.blueprints import variant_count
from valohai_airflow.plan.model import DagKind, PipelinePlan, ProjectPlan
from valohai_airflow.spec.diagnostics import Diagnostic, Severity, ValohaiSpecError


def _below(folder: Path) -> list[Path]:
    """Airflow's walk (so `.airflowignore` means what it means to the loader). Airflow refuses a tree
    where one directory is reachable twice through symlinks, as in every virtualenv (`lib64 -> lib`);
    a repository with a `.venv` must still lint, so there we walk without following symlinks."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; stdout is our report
            from valohai_airflow.airflow.discovery import find_valohai_yamls  # imports Airflow: lazily

            return find_valohai_yamls(folder)
    except RuntimeError as error:
        print(f"{folder}: {error}; searching without following symlinks or .airflowignore", file=sys.stderr)
    return valohai_yamls(
        Path(root) / name for root, _, names in os.walk(folder, followlinks=False) for name in names
    )


def _files(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths or ["."]:
        path = Path(raw)
        found.extend(_below(path) if path.is_dir() else [path])
    return found


def _compiled(path: Path) -> tuple[list[Diagnostic], ProjectPlan | None]:
    try:
        project = compile_project(path)
    except ValohaiSpecError as error:  # a missing or unreadable path too: a finding, not a traceback
        return list(error.diagnostics), None
    return list(project.diagnostics), project


def dags_line(file: str, project: ProjectPlan) -> str:
    """What becomes a DAG: the pipelines, and the steps and task blueprints run on their own, counted
    and named (`step_dags:` / `task_dags:` of valohai-airflow.yaml choose the last two)."""
    parts = []
    for kind, label in (
        (DagKind.PIPELINE, "pipeline(s)"),
        (DagKind.STEP, "step(s)"),
        (DagKind.TASK, "task blueprint(s)"),
    ):
        names = [p.name for p in project.dag_plans if p.kind is kind]
        parts.append(f"{len(names)} {label}" + (f" ({', '.join(names)})" if names else ""))
    return f"{file}: DAGs: {'; '.join(parts)}"


def lint(paths: Sequence[str], *, strict: bool, output: str) -> int:
    files = _files(paths)
    if not files:
        print(f"no {VALOHAI_YAML} found below {', '.join(paths or ['.'])}", file=sys.stderr)
        return 1
    compiled = {str(path): _compiled(path) for path in files}
    results = {file: found for file, (found, _) in compiled.items()}
    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    failed = any(d.severity in failing for found in results.values() for d in found)
    if output == "json":
        print(json.dumps({file: [d.as_dict() for d in found] for file, found in results.items()}, indent=2))
    else:
        for file, found in results.items():
            for diagnostic in found:
                print(diagnostic)
            project = compiled[file][1]
            if project is not None:
                print(dags_line(file, project))
            errors = sum(d.severity is Severity.ERROR for d in found)
            print(f"{file}: {errors} error(s), {len(found) - errors} warning(s)")
    return 1 if failed else 0


def _mermaid_label(text: str) -> str:
    """Mermaid's entity codes for the characters that end a quoted label or start an entity."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("|", "#124;")


_HEADINGS = {DagKind.PIPELINE: "pipeline", DagKind.STEP: "step", DagKind.TASK: "task blueprint"}


def render_graph(pipeline: PipelinePlan, output: str) -> str:
    if output == "mermaid":
        # Ids by position: names like "a-b" and "a_b" are different nodes and must stay apart.
        ids = {node.name: f"n{index}" for index, node in enumerate(pipeline.nodes)}
        lines = ["flowchart LR"]
        for node in pipeline.nodes:
            lines.append(f'    {ids[node.name]}["{_mermaid_label(node.name)}"]')
        for edge in pipeline.edges:
            label = f"{edge.source_kind.value}.{edge.source_key} → {edge.target_kind.value}.{edge.target_key}"
            lines.append(
                f'    {ids[edge.source_node]} -->|"{_mermaid_label(label)}"| {ids[edge.target_node]}'
            )
        return "\n".join(lines)
    lines = [f"{_HEADINGS[pipeline.kind]} {pipeline.name}"]
    for node in pipeline.nodes:
        step = node.step
        where = f"step {step.name} in {step.image}" if step else f"deployment {node.deployment}"
        if node.blueprint:
            where += (
                f", {variant_count(node.blueprint)} execution(s) from task blueprint {node.blueprint.name}"
            )
        lines.append(f"  {node.name} [{node.kind.value}] {where}")
        for edge in pipeline.edges_into(node.name):
            lines.append(f"    <- {edge.source_text} into {edge.target_kind.value}.{edge.target_key}")
    return "\n".join(lines)


def graph(path: str, name: str | None, output: str, kind: DagKind = DagKind.PIPELINE) -> int:
    """The pipelines (or the one named); with `kind` step or task, the DAG of that step or blueprint.
    A file without pipelines shows its steps' and blueprints' DAGs."""
    try:
        project: ProjectPlan = compile_project(Path(path))
    except ValohaiSpecError as error:
        print(error, file=sys.stderr)
        return 1
    if kind is DagKind.PIPELINE and name is None and not project.pipelines:
        plans = list(project.standalone)
    else:
        plans = [p for p in project.dag_plans if p.kind is kind and name in (None, p.name)]
    if not plans and name is None:
        print(
            f"{path}: no pipelines, and valohai-airflow.yaml gives no step or task blueprint a DAG",
            file=sys.stderr,
        )
        return 1
    if not plans:
        what = _HEADINGS[kind]
        names = ", ".join(p.name for p in project.dag_plans if p.kind is kind) or "none"
        which = f"{what}s" if kind is DagKind.PIPELINE else f"{what}s with a DAG"
        print(f"{path}: no {what} {name!r} ({which}: {names})", file=sys.stderr)
        return 1
    print("\n\n".join(render_graph(p, output) for p in plans))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="valohai-airflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lint_parser = commands.add_parser("lint", help="check valohai.yaml files; exit 1 on errors")
    lint_parser.add_argument("paths", nargs="*", help="files, or folders to search for valohai.yaml")
    lint_parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    lint_parser.add_argument("--format", choices=["text", "json"], default="text")
    graph_parser = commands.add_parser(
        "graph", help="show a pipeline's nodes and edges (a file without pipelines: its steps' DAGs)"
    )
    graph_parser.add_argument("path", help="a valohai.yaml")
    chosen = graph_parser.add_mutually_exclusive_group()
    chosen.add_argument("--pipeline", help="only this pipeline")
    chosen.add_argument("--step", help="the DAG of this step, run on its own")
    chosen.add_argument("--task", help="the DAG of this task blueprint, run on its own")
    graph_parser.add_argument("--format", choices=["text", "mermaid"], default="text")
    data_cli.add_parser(commands)
    run_cli.add_parsers(commands)
    args = parser.parse_args(argv)
    if args.command == "data":
        return data_cli.run(args)
    if args.command in run_cli.COMMANDS:
        return run_cli.dispatch(args)
    if args.command == "lint":
        return lint(args.paths, strict=args.strict, output=args.format)
    if args.step is not None:
        return graph(args.path, args.step, args.format, DagKind.STEP)
    if args.task is not None:
        return graph(args.path, args.task, args.format, DagKind.TASK)
    return graph(args.path, args.pipeline, args.format)


if __name__ == "__main__":
    sys.exit(main())
