"""`make bench`: every benchmark, printed as a markdown table of ratios against its baseline.

Groups (`--only`, comma-separated; default all): loader (DAG file parse time), node (per-node
overhead against a bare DockerOperator), staging (outputs and inputs through the local store
against `cp -r`), s3 (S3Store against a plain boto3 transfer loop on a local SeaweedFS), glob
(one output edge over a 100,000-file manifest), fanout (a task node's mapped executions through
dag.test() against DockerOperator.partial().expand()).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import CORPUS_DIR, HEADER, Row, quiet

GROUPS = ("loader", "node", "staging", "s3", "glob", "fanout")


def _groups(text: str) -> list[str]:
    chosen = [g.strip() for g in text.split(",") if g.strip()]
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}"
        )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--repeat", type=int, default=5, help="rounds for the loader and glob groups")
    parser.add_argument(
        "--only", type=_groups, default=list(GROUPS), help=f"comma-separated: {','.join(GROUPS)}"
    )
    parser.add_argument(
        "--big-mib", type=int, default=1024, help="size of the single big file of the local staging group"
    )
    parser.add_argument(
        "--s3-big-mib", type=int, default=128, help="size of the single big file of the s3 group"
    )
    parser.add_argument(
        "--s3-small-files", type=int, default=500, help="how many 10 KiB files the s3 group moves"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="valohai-airflow-bench-", dir=os.environ.get("BENCH_TMP")))
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(workdir / "dags")
    rows: list[Row] = []
    try:
        for group in GROUPS:
            if group not in args.only:
                continue
            if group == "loader":
                from benchmarks import loader_parse

                if not CORPUS_DIR.is_dir():  # said here: the group's own output goes to loader.log
                    print(
                        f"loader: no corpus at {CORPUS_DIR} (set VALOHAI_CORPUS to use one); "
                        "measuring the synthetic pipelines only",
                        file=sys.stderr,
                    )
                with quiet(workdir / "loader.log"):  # the loader logs every corpus warning
                    rows += loader_parse.measure(workdir, args.repeat)
            elif group == "node":
                from benchmarks import node_overhead

                rows += node_overhead.measure(workdir)
            elif group == "staging":
                from benchmarks import staging

                rows += staging.measure(workdir, big_mib=args.big_mib)
            elif group == "s3":
                from benchmarks import s3_staging

                rows += s3_staging.measure(workdir, big_mib=args.s3_big_mib, small_files=args.s3_small_files)
            elif group == "glob":
                from benchmarks import glob_resolution

                rows += glob_resolution.measure(workdir, max(args.repeat, 7))
            elif group == "fanout":
                from benchmarks import fan_out

                rows += fan_out.measure(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print(HEADER)  # also what was measured before a group failed
        for row in rows:
            print(row.markdown())


if __name__ == "__main__":
    main()
