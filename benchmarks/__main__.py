"""`make bench`: every benchmark, printed as a markdown table of ratios against its baseline."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="valohai-airflow-bench-"))
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(workdir / "dags")
    from benchmarks import loader_parse

    rows = loader_parse.measure(workdir, args.repeat)
    print("| benchmark | median | ratio to baseline | target | note |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(row.markdown())


if __name__ == "__main__":
    main()
