"""Parse time of the loader against a hand-written DAG file that builds the same DAGs directly.

Both run in this process, alternating, on the same dags folder contents: (a) every valid corpus
file as its own project, (b) one synthetic pipeline of 500 nodes and 2,000 edges. The loader is
measured with a cold plan cache (in-process and on-disk caches emptied before each run) and a
warm one. The hand-written file is generated once from the compiled plans: plain `DAG(...)` and
`DockerOperator(...)` calls with the same ids, images, commands, Params and dependencies, which
is what a user would otherwise write by hand.
"""

from __future__ import annotations

import random
import runpy
import shutil
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import CORPUS_DIR, REPO_ROOT, SHAPES_DIR, Row, corpus_files_that_compile


def synthetic_yaml(nodes: int = 500, edges: int = 2000, seed: int = 1) -> str:
    rng = random.Random(seed)
    lines = [
        "- step:",
        "    name: work",
        "    image: valohai-airflow/busybox:1",
        "    command: echo {parameters}",
        "    parameters:",
        "      - {name: rate, type: float, default: 0.1, min: 0, max: 1}",
        "      - {name: size, type: integer, default: 3}",
        "    inputs:",
        "      - {name: data, optional: true}",
        "- pipeline:",
        "    name: synthetic",
        "    nodes:",
    ]
    lines += [f"      - {{name: n{i}, type: execution, step: work}}" for i in range(nodes)]
    lines.append("    edges:")
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < edges:
        target = rng.randrange(1, nodes)
        pairs.add((rng.randrange(0, target), target))
    for source, target in sorted(pairs):
        lines.append(f"      - [n{source}.output.out-{source}*, n{target}.input.data]")
    return "\n".join(lines) + "\n"


def handwritten_source(dags: dict[str, Any]) -> str:
    """Python that builds the given DAGs with plain DAG + DockerOperator calls."""
    out = [
        "from datetime import datetime, timezone",
        "from airflow.sdk import DAG, Param",
        "from airflow.providers.docker.operators.docker import DockerOperator",
        "START = datetime(2024, 1, 1, tzinfo=timezone.utc)",
    ]
    for dag_id, dag in dags.items():
        params = {
            key: (param.value if param.has_value else None, dict(param.schema))
            for key, param in dag.params.items()
        }
        out.append(f"params = {{k: Param(v, **s) for k, (v, s) in {params!r}.items()}}")
        out.append(
            f"with DAG(dag_id={dag_id!r}, dag_display_name={dag.dag_display_name!r}, schedule=None, "
            f"start_date=START, catchup=False, params=params, doc_md={dag.doc_md!r}, tags={sorted(dag.tags)!r}) as dag:"
        )
        out.append("    t = {}")
        for task in dag.tasks:
            command = getattr(task, "node", None)
            image = getattr(task, "image", "busybox")
            out.append(
                f"    t[{task.task_id!r}] = DockerOperator(task_id={task.task_id!r}, "
                f"task_display_name={task.task_display_name!r}, image={image!r}, "
                f"command={list(command.step.command) if command and command.step else None!r}, "
                "auto_remove='force', mount_tmp_dir=False, network_mode='none')"
            )
        for task in dag.tasks:
            for up in sorted(task.upstream_task_ids):
                out.append(f"    t[{up!r}] >> t[{task.task_id!r}]")
    return "\n".join(out) + "\n"


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median seconds of `fn` over `repeat` runs, then its peak traced MiB in one more run
    (tracemalloc slows Python down, so it stays out of the timed runs)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak


def _run_file(path: Path) -> dict[str, Any]:
    return runpy.run_path(str(path))


def _measure_case(label: str, folder: Path, handwritten: Path, repeat: int) -> list[Row]:
    from valohai_airflow.airflow import loader
    from valohai_airflow.airflow.settings import valohai_settings
    from valohai_airflow.plan import project as plan_project

    loader_file = folder / "valohai_dags.py"
    handwritten.write_text(handwritten_source(loader.load_dags(folder)))
    cache_dir = valohai_settings().plan_cache_dir

    def cold() -> None:
        plan_project.clear_cache()
        shutil.rmtree(cache_dir, ignore_errors=True)
        runpy.run_path(str(loader_file))

    def warm() -> None:
        # a DAG processor parses each file in a fresh process: only the on-disk cache survives
        plan_project.clear_cache()
        runpy.run_path(str(loader_file))

    base_time, base_mem = _time(lambda: _run_file(handwritten), repeat)
    cold_time, cold_mem = _time(cold, repeat)
    warm()
    warm_time, warm_mem = _time(warm, repeat)
    return [
        Row(f"parse {label}: hand-written DAG file", base_time, 1.0, f"{base_mem:.1f} MiB peak"),
        Row(
            f"parse {label}: loader, cold plan cache",
            cold_time,
            cold_time / base_time,
            f"{cold_mem:.1f} MiB peak",
            "≤ 1.3×",
        ),
        Row(
            f"parse {label}: loader, warm plan cache",
            warm_time,
            warm_time / base_time,
            f"{warm_mem:.1f} MiB peak",
            "≤ 1.1×",
        ),
    ]


def _real_files() -> tuple[str, list[Path]]:
    """The corpus files that compile; without the corpus, the shape fixtures, said in the label."""
    corpus = corpus_files_that_compile()
    if corpus:
        return f"{len(corpus)} corpus files", corpus
    shapes = corpus_files_that_compile(SHAPES_DIR)
    return f"{len(shapes)} shape fixtures (no corpus)", shapes


def corpus_note() -> str | None:
    """What to tell the reader before measuring when the corpus is not here."""
    if corpus_files_that_compile():
        return None
    return (
        f"loader: no corpus at {CORPUS_DIR} (set VALOHAI_CORPUS to use one): the loader group parses "
        f"the {len(corpus_files_that_compile(SHAPES_DIR))} shape fixtures of tests/fixtures/shapes instead"
    )


def measure(workdir: Path, repeat: int) -> list[Row]:
    rows: list[Row] = []
    label, real = _real_files()
    cases = {
        label: {f"c{i}": path.read_text() for i, path in enumerate(real)},
        "500 nodes, 2,000 edges": {"synthetic": synthetic_yaml()},
    }
    for label, projects in cases.items():
        folder = workdir / "dags"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in projects.items():
            (folder / name).mkdir()
            (folder / name / "valohai.yaml").write_text(text)
        shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", folder / "valohai_dags.py")
        rows += _measure_case(label, folder, workdir / "handwritten_dags.py", repeat)
    return rows
