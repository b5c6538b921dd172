"""`make demo`: run the example pipelines through Airflow on the embedded default.

SQLite metadata DB and the local file store under .demo/airflow, the local Docker engine, the
repository's own `dags/` folder as the dags folder. Prints the DAGs found, then for each example
pipeline each task's state (a task node's executions by their values) and where the outputs and
metadata landed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".demo" / "airflow"
EXAMPLE_DAGS = ("example__three-trainings", "example__learning-rate-sweep")


def configure() -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(HOME)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME / 'airflow.db'}"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")


def main() -> int:
    configure()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    started = time.monotonic()
    db.initdb()
    bag = DagBag(dag_folder=str(REPO / "dags"))
    print(f"\nDAGs in {REPO / 'dags'}:")
    for dag_id in sorted(bag.dags):
        dag = bag.dags[dag_id]
        print(f"  {dag_id:50s} {dag.dag_display_name!r:32s} {len(dag.tasks)} tasks")
    for path, error in bag.import_errors.items():
        print(f"  import error in {path}: {error}")
    if bag.import_errors or not set(EXAMPLE_DAGS) <= set(bag.dags):
        return 1
    states = [run_example(bag.dags[dag_id]) for dag_id in EXAMPLE_DAGS]
    print(f"\nstore: {HOME / 'valohai' / 'store'}   ({time.monotonic() - started:.0f} s)")
    return 0 if all(state == "success" for state in states) else 1


def run_example(dag: Any) -> str:
    print(f"\nRunning {dag.dag_id} with dag.test() ...")
    run = dag.test()
    print(f"\nrun {run.run_id}: {run.state}")
    manifests = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.start_date or t.end_date, t.map_index)):
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]"
        print(f"  {name:34s} {ti.state}")
        value = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index) if ti.state == "success" else None
        if isinstance(value, dict) and "execution_id" in value:
            manifests[name] = value
    for name, manifest in manifests.items():
        outputs = manifest.get("outputs", [])
        metadata = manifest.get("metadata", {})
        print(f"\n{name}: metadata {json.dumps(metadata)}")
        for output in outputs if isinstance(outputs, list) else []:
            print(f"  {output['path']:28s} {output['size']:>8d} B  {output['uri']}")
    return str(run.state)


if __name__ == "__main__":
    sys.exit(main())
