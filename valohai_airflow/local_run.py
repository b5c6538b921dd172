"""`valohai-airflow run --local`: one DAG run without any Airflow service.

Airflow's own `dag.test()` runs the DAG in this process: a throwaway AIRFLOW_HOME with a SQLite
metadata database, no scheduler, API server or executor; each node still runs in its Docker
container. Airflow reads its configuration when first imported, so `run_local` starts this module in
a fresh interpreter with that environment; the outputs go to a store that outlives the run
(`local_store()`), and the nodes' manifests come back in a JSON file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError

#: The dags folder's loader file (as dags/valohai_dags.py in the repository).
LOADER = "from valohai_airflow.airflow.loader import load_dags\n\nglobals().update(load_dags())\n"


def local_store() -> Path:
    """Where `--local` runs keep their outputs: `$XDG_CACHE_HOME/valohai-airflow/local-store`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "valohai-airflow" / "local-store"


def run_local(
    valohai_yaml: Path, dag_id: str, conf: Mapping[str, Any], *, log: Path | None
) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    """Run `dag_id` of the project once; its state, each task's state and the nodes' manifests.
    `log`: where Airflow's own output goes (None: to this process's stderr, as it comes)."""
    with tempfile.TemporaryDirectory(prefix="valohai-airflow-local-") as home:
        result = Path(home) / "result.json"
        environ = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(home) / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{Path(home) / 'airflow.db'}",
            "AIRFLOW__VALOHAI__STORE_URL": os.environ.get("AIRFLOW__VALOHAI__STORE_URL")
            or str(local_store()),
        }
        command = [
            sys.executable,
            "-m",
            __name__,
            str(valohai_yaml),
            dag_id,
            json.dumps(dict(conf)),
            str(result),
        ]
        with open(log, "ab") if log else contextlib.nullcontext(sys.stderr) as out:
            finished = subprocess.run(command, env=environ, stdout=out, stderr=out, check=False)
        if not result.is_file():
            where = f" (see {log})" if log else ""
            raise ValohaiAirflowError(
                f"the local run of {dag_id} did not finish: exit {finished.returncode}{where}"
            )
        data = json.loads(result.read_text())
    return str(data["state"]), dict(data["tasks"]), list(data["manifests"])


def _main(valohai_yaml: str, dag_id: str, conf: str, result: str) -> None:
    """dag.test() wants the DAG as the DAG processor would see it (serialized from a DagBag): the
    project is linked into the throwaway dags folder beside the loader file."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.resetdb()
    project = Path(valohai_yaml).resolve().parent
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    (dags / project.name).symlink_to(project, target_is_directory=True)
    (dags / "valohai_dags.py").write_text(LOADER)
    bag = DagBag(dag_folder=str(dags))
    if dag_id not in bag.dags:
        raise SystemExit(f"{dag_id} did not load: {bag.import_errors or 'no such DAG'}")
    dag = bag.dags[dag_id]
    run = dag.test(run_conf=json.loads(conf))
    instances = run.get_task_instances()
    manifests = []
    for ti in instances:
        value = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index, key="return_value")
        if isinstance(value, Mapping) and "execution_id" in value:
            manifests.append(dict(value))
    tasks = {
        f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
        for ti in instances
    }
    Path(result).write_text(json.dumps({"state": str(run.state), "tasks": tasks, "manifests": manifests}))


if __name__ == "__main__":
    _main(*sys.argv[1:5])
