"""Valohai's parallel-pipelines example, re-done with valohai-airflow's Python client.

Valohai's version creates one pipeline run per parameter set through Valohai's API, waits for them,
downloads the trained models and makes predictions with them. Here the pipeline is the example
project's `three-trainings` (dags/example): one run per test fraction, triggered together with a
title each, waited for with progress; then each run's best model (node `pick-best`) and its
evaluations (the `evaluate-*` nodes: the predictions' accuracy on that run's test split) are
downloaded, and the runs are listed with their best accuracy.

    AIRFLOW_URL=http://localhost:8080 AIRFLOW_USERNAME=admin AIRFLOW_PASSWORD=... \\
        python examples/parallel_pipelines.py --fractions 0.2,0.3 --download models/

Exit status 0 when every run succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from valohai_airflow.client import AirflowClient, NodeState
from valohai_airflow.errors import ValohaiAirflowError

DAG = "example__three-trainings"


def _progress(run_id: str) -> Callable[[list[NodeState]], None]:
    seen: dict[str, str | None] = {}

    def show(nodes: list[NodeState]) -> None:
        for node in nodes:
            if seen.get(node.task_id, "") != node.state:
                print(f"{run_id}: {node.task_id} {node.state}", flush=True)
                seen[node.task_id] = node.state

    return show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dag", default=DAG)
    parser.add_argument("--fractions", default="0.2,0.3", help="one run per preprocess test_fraction")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every training")
    parser.add_argument("--download", type=Path, default=Path("parallel-models"))
    args = parser.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    try:
        with AirflowClient() as client:
            runs = {}
            for fraction in fractions:
                conf = {"preprocess.parameter.test_fraction": fraction}
                conf.update({f"train-{s}.parameter.epochs": args.epochs for s in ("fast", "medium", "slow")})
                runs[fraction] = client.trigger(args.dag, conf, title=f"test_fraction={fraction}")
                print(f"triggered {args.dag}/{runs[fraction]} with test_fraction={fraction}", flush=True)
            states = {f: client.wait(args.dag, r, on_progress=_progress(r)) for f, r in runs.items()}
            summary = {}
            for fraction, run_id in runs.items():
                if states[fraction] != "success":
                    print(f"{run_id}: {states[fraction]}", file=sys.stderr)
                    continue
                wanted = [
                    m
                    for m in client.manifests(args.dag, run_id)
                    if m.node == "pick-best" or m.node.startswith("evaluate-")
                ]
                files = client.download(wanted, args.download / run_id)
                best = next(m for m in wanted if m.node == "pick-best")
                summary[run_id] = {
                    "test_fraction": fraction,
                    "best_model": best.metadata.get("best_model"),
                    "best_accuracy": best.metadata.get("best_accuracy"),
                    "files": sorted(str(f.relative_to(args.download)) for f in files),
                }
            listed = {run["dag_run_id"]: run.get("note") for run in client.runs(args.dag)}
    except ValohaiAirflowError as error:
        print(f"parallel_pipelines: {error}", file=sys.stderr)
        return 2
    for run_id, result in summary.items():
        print(f"{run_id} ({listed.get(run_id)}): {result['best_model']} accuracy {result['best_accuracy']}")
    (args.download / "summary.json").parent.mkdir(parents=True, exist_ok=True)
    (args.download / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0 if all(state == "success" for state in states.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
