"""A task node's fan-out: one `dag.test()` run of a task node with EXECUTIONS executions (its
`__variants` task, then the mapped ValohaiExecutionOperator) against a hand-written DAG of
`DockerOperator.partial(...).expand(command=[...])` running the same containers (busybox, one
`echo` per execution, no network). Both DAG files sit in the dags folder of a throwaway SQLite
Airflow, and run alternating after one untimed warm-up each, so Airflow's own cost per task
instance is in both; what remains is ours: the variants task, the work dirs, config files,
outputs, manifests.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from benchmarks.common import REPO_ROOT, Row, alternate, quiet

IMAGE = "valohai-airflow/busybox:1"
EXECUTIONS = 8
ROUNDS = 5

YAML = f"""
- step:
    name: echo
    image: {IMAGE}
    command: echo {{parameter-value:i}}
    parameters:
      - {{name: i, type: integer}}
- task:
    name: sweep
    step: echo
    parameters:
      - {{name: i, style: linear, rules: {{start: 1, end: {EXECUTIONS}, step: 1}}}}
- pipeline:
    name: fan
    nodes:
      - {{name: sweep, type: task, task: sweep}}
    edges: []
"""

BASELINE = f"""
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG

with DAG("bench_bare_mapping", schedule=None):
    DockerOperator.partial(
        task_id="sweep",
        image={IMAGE!r},
        auto_remove="force",
        mount_tmp_dir=False,
        network_mode="none",
        xcom_all=True,
    ).expand(command=[["/bin/sh", "-c", f"echo {{i}}"] for i in range(1, {EXECUTIONS + 1})])
"""


def measure(workdir: Path, rounds: int = ROUNDS) -> list[Row]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    dags = workdir / "dags"  # the configured dags folder: dag.test() parses all of it on every run
    shutil.rmtree(dags, ignore_errors=True)
    (dags / "fan").mkdir(parents=True)
    (dags / "fan" / "valohai.yaml").write_text(textwrap.dedent(YAML))
    (dags / "valohai_dags.py").write_text((REPO_ROOT / "dags" / "valohai_dags.py").read_text())
    (dags / "bench_bare_mapping.py").write_text(textwrap.dedent(BASELINE))
    with quiet(workdir / "fan-out.log"):
        db.resetdb()
        bag = DagBag(dag_folder=str(dags))
        ours, bare = bag.dags["fan__fan"], bag.dags["bench_bare_mapping"]

        def run(dag: object) -> None:
            result = dag.test()  # type: ignore[attr-defined]
            assert str(result.state) == "success", (dag, result.state)

        run(ours)
        run(bare)
        base, subject = alternate(lambda: run(bare), lambda: run(ours), rounds)
    return [
        Row(
            f"task node, {EXECUTIONS} executions (busybox `echo`): one dag.test() run",
            subject,
            subject / base,
            f"baseline DockerOperator.partial().expand() over the same {EXECUTIONS} containers; "
            f"{rounds} alternating rounds; {1000 * (subject - base) / EXECUTIONS:.0f} ms more per execution, "
            "the variants task included",
            "≤ 1.5×",
            base,
        )
    ]
