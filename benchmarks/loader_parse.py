"""Parse time of the loader against a hand-written DAG file that builds the same DAGs directly.

Cases, each in a dags folder of its own: every valid corpus file as its own project (when the
corpus is there), and one synthetic pipeline (tests/support/synthetic.py: 10 steps with one
integer parameter and one optional input each, 4 edges per node) of 100, 500, 1,000 and 2,000
nodes. The loader is measured with a cold plan cache (in-process and on-disk caches emptied before
each run) and a warm one (only the on-disk cache survives, as in a DAG processor's fresh process).

The baseline is generated once per case from all the DAGs the loader built and is what an expert
writes by hand for the same graph with the same operator classes (benchmarks/handwritten.py: the
plan objects the operators take spelled out as constructor calls, one `[upstreams] >> task` per
task, the same Params set on the DAG once its tasks exist). The peer is dag-factory 1.1 building
the same DAGs from a YAML config generated from them (benchmarks/dag_factory_peer.py); it has no
cache, so each parse is the same for it, and both loader parses are compared with it. The files
are imported the way Airflow's DagBag imports a DAG file (importlib's source loader), in
alternating rounds. Cold against cold, warm against warm: the first parse after an edit
compiles the hand-written file to bytecode (its `__pycache__` removed before each cold run) as it
compiles a valohai.yaml to a plan; later parses read the bytecode, and the plan from the on-disk
cache.

Also measured: what a worker pays per task start for the 1,000-node pipeline (the loader file
under the parsing context of that one DAG, beside the 2,000-node project, warm plan cache).
"""

from __future__ import annotations

import gc
import importlib.util
import math
import os
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import CORPUS_DIR, REPO_ROOT, Row, corpus_files_that_compile
from benchmarks.dag_factory_peer import ENVIRONMENT as DAG_FACTORY_ENVIRONMENT
from benchmarks.dag_factory_peer import write_peer
from benchmarks.handwritten import handwritten_source
from tests.support.synthetic import synthetic_yaml

SIZES = (100, 500, 1000, 2000)
PEER = "dag-factory"
# dag-factory passes the Params to DAG(params=...), so every operator deep-copies all of them
# (nodes × parameters): minutes a parse at 1,000 nodes, one round there, none at 2,000
PEER_ROUNDS = {100: 3, 500: 3, 1000: 1}
IMPORT_TIMEOUT_SECONDS = 30.0  # Airflow's [core] dagbag_import_timeout default


def _import(path: Path) -> None:
    """As DagBag imports a DAG file: a module spec and exec_module, bytecode cached in __pycache__
    even where PYTHONDONTWRITEBYTECODE is set (as it is on these machines: the warm baseline would
    compile its source on every parse)."""
    name = f"bench_{path.stem}_{time.monotonic_ns()}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    was, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = was
        sys.modules.pop(name, None)


def _peak_mib(fn: Callable[[], object]) -> float:
    """Peak traced MiB of one more run (tracemalloc slows Python down, so it stays out of the timing)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def _rounds(sides: dict[str, Callable[[], object]], repeat: int, peer_rounds: int = 3) -> dict[str, float]:
    """Median CPU seconds of this process per side; the sides take turns, in a rotated order every
    round. A parse is single-threaded and CPU-bound: on a shared machine its wall time would also
    count the time the neighbours held the cores. Before each run, untimed, the in-process plan cache
    is emptied and garbage collected, as in the fresh process a DAG processor parses in. dag-factory takes part in the first
    `peer_rounds` rounds only: it is 20-1,000× slower than the others (seconds to minutes a parse)."""
    from valohai_airflow.loading import project as project_loading

    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if name == PEER and round_ >= peer_rounds:
                continue
            # untimed: a DAG processor parses in a fresh process, which has no plans of an earlier parse
            # in memory to drop, nor its garbage (DAGs are cycles) to collect
            project_loading.clear_cache()
            gc.collect()
            started = time.process_time()
            sides[name]()
            times[name].append(time.process_time() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _project_folder(folder: Path, projects: dict[str, str]) -> None:
    """Files dated an hour back, as in a checkout parsed every 30 s: the folder index does not trust
    the stat of a file modified in the last 2 s (folder_index.py), and no DAG processor parses that soon."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    for name, text in projects.items():
        (folder / name).mkdir()
        (folder / name / "valohai.yaml").write_text(text)
        os.utime(folder / name / "valohai.yaml", (an_hour_ago, an_hour_ago))
    shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", folder / "valohai_dags.py")


def _sides(
    folder: Path, handwritten: Path, only: str | None = None, peer: bool = True
) -> dict[str, Callable[[], object]]:
    """Baseline, dag-factory, cold and warm parses of `folder`; with `only`, the baseline holds that
    one DAG (and there is no dag-factory side without `peer`)."""
    from valohai_airflow.airflow import loader
    from valohai_airflow.airflow.settings import valohai_settings
    from valohai_airflow.loading import project as project_loading

    loader_file = folder / "valohai_dags.py"
    dags = {k: v for k, v in loader.load_dags(folder).items() if only in (None, k)}
    handwritten.write_text(handwritten_source(dags))
    peer_file = handwritten.with_name("dag_factory_dags.py")
    if peer:
        write_peer(dags, peer_file)
    cache_dir = valohai_settings().plan_cache_dir

    def cold() -> None:
        project_loading.clear_cache()
        shutil.rmtree(cache_dir, ignore_errors=True)
        _import(loader_file)

    def warm() -> None:
        project_loading.clear_cache()  # a DAG processor parses in a fresh process: only the disk cache is left
        _import(loader_file)

    def baseline_cold() -> None:
        shutil.rmtree(handwritten.parent / "__pycache__", ignore_errors=True)
        _import(handwritten)

    _import(handwritten)  # writes its bytecode cache, as a DAG processor's first parse does
    if not Path(importlib.util.cache_from_source(str(handwritten))).is_file():
        raise RuntimeError(
            f"no bytecode cache was written for {handwritten}: the warm baseline would compile"
        )
    warm()
    sides = {
        "baseline cold": baseline_cold,
        "baseline": lambda: _import(handwritten),
        "cold": cold,
        "warm": warm,
    }
    if peer:
        sides[PEER] = lambda: _import(peer_file)
    return sides


def _case_rows(
    label: str, seconds: dict[str, float], peaks: dict[str, float], slopes: str = "", peer_rounds: int = 3
) -> list[Row]:
    """The loader's cold and warm parse, each against the hand-written file's parse of the same kind
    and against dag-factory's."""
    note = {name: f"{peaks[name]:.1f} MiB peak" for name in seconds if name in peaks}
    rows = []
    for side, base, target, what in (
        ("cold", "baseline cold", "≤ 1.3×", "cold plan cache vs the hand-written file compiled anew"),
        ("warm", "baseline", "≤ 1.1×", "warm plan cache vs the hand-written file's cached bytecode"),
    ):
        extra = f"; {slopes}" if slopes else ""
        rows.append(
            Row(
                f"parse {label}: loader, {what}",
                seconds[side],
                seconds[side] / seconds[base],
                f"{note[side]}, baseline {note[base]}{extra}",
                target,
                seconds[base],
            )
        )
    for side in ("cold", "warm") if PEER in seconds else ():
        rows.append(
            Row(
                f"parse {label}: loader, {side} plan cache vs dag-factory 1.1 (same DAGs from YAML)",
                seconds[side],
                seconds[side] / seconds[PEER],
                f"{peer_rounds} round(s) of dag-factory; loader {note[side]}",
                "< 1×",
                seconds[PEER],
            )
        )
    return rows


def _slope(sizes: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) over log(nodes): 1.0 is linear, 2.0 quadratic."""
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in times]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _round_count(nodes: int, repeat: int) -> int:
    """More rounds for short parses: a 100-node parse takes tens of ms, where a neighbour's burst on
    the shared host moves a median of 5 by a quarter; the 2,000-node one takes seconds a round."""
    if nodes <= 100:
        return 4 * repeat
    return repeat if nodes <= 1000 else max(3, repeat // 2)


def measure(workdir: Path, repeat: int) -> list[Row]:
    os.environ.update(DAG_FACTORY_ENVIRONMENT)
    rows: list[Row] = []
    folder, handwritten = workdir / "dags", workdir / "handwritten_dags.py"
    if CORPUS_DIR.is_dir():
        files = corpus_files_that_compile()
        _project_folder(folder, {f"c{i}": path.read_text() for i, path in enumerate(files)})
        sides = _sides(folder, handwritten)
        seconds = _rounds(sides, 4 * repeat)  # parses of tens of ms: see _round_count
        rows += _case_rows(
            f"{len(files)} corpus files", seconds, {n: _peak_mib(f) for n, f in sides.items() if n != PEER}
        )
    else:
        print(f"loader: no corpus at {CORPUS_DIR}; measuring the synthetic pipelines only", file=sys.stderr)
    measured: dict[int, dict[str, float]] = {}
    peaks: dict[int, dict[str, float]] = {}
    for nodes in SIZES:
        _project_folder(folder, {"synthetic": synthetic_yaml(nodes, 4 * nodes)})
        peer_rounds = PEER_ROUNDS.get(nodes, 0)
        sides = _sides(folder, handwritten, peer=bool(peer_rounds))
        measured[nodes] = _rounds(sides, _round_count(nodes, repeat), peer_rounds)
        peaks[nodes] = {name: _peak_mib(fn) for name, fn in sides.items() if name != PEER}
    slopes = {name: _slope(list(SIZES), [measured[n][name] for n in SIZES]) for name in measured[SIZES[-1]]}
    for nodes in SIZES:
        slope_note = (
            "slope " + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()) if nodes == SIZES[-1] else ""
        )
        label = f"{nodes:,} nodes, {4 * nodes:,} edges"
        rows += _case_rows(label, measured[nodes], peaks[nodes], slope_note, PEER_ROUNDS.get(nodes, 0))
    cold_1000 = measured[1000]["cold"]
    rows.append(
        Row(
            "parse 1,000 nodes: loader, cold plan cache, against Airflow's import timeout",
            cold_1000,
            cold_1000 / IMPORT_TIMEOUT_SECONDS,
            f"ratio to the {IMPORT_TIMEOUT_SECONDS:.0f} s default dagbag_import_timeout",
            "< 0.1×",
        )
    )
    rows.append(_worker_start(folder, handwritten, repeat))
    return rows


def _worker_start(folder: Path, handwritten: Path, repeat: int) -> Row:
    """A worker parses the loader file under the parsing context of the DAG it runs: only that project
    is built. Baseline: the hand-written file of that one DAG."""
    from valohai_airflow.loading import project as project_loading

    _project_folder(folder, {"big": synthetic_yaml(1000, 4000), "other": synthetic_yaml(2000, 8000, seed=2)})
    sides = _sides(folder, handwritten, only="big__synthetic", peer=False)
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = "big__synthetic"
    try:
        loader_file = folder / "valohai_dags.py"

        def worker() -> None:
            project_loading.clear_cache()
            _import(loader_file)

        worker()
        seconds = _rounds({"baseline": sides["baseline"], "worker": worker}, repeat)
    finally:
        del os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"]
    return Row(
        "worker task start, 1,000-node pipeline: loader file under the DAG's parsing context, warm plan cache",
        seconds["worker"],
        seconds["worker"] / seconds["baseline"],
        "a 2,000-node project beside it is not built; baseline: the hand-written file of that one DAG",
        "≤ 1.1×",
        seconds["baseline"],
    )
