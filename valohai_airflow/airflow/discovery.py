"""Which valohai.yaml files Airflow would see: Airflow's own walk of the dags folder, so
`.airflowignore` (glob or regexp syntax, as `[core] dag_ignore_file_syntax` says) means here
exactly what it means for DAG files."""

from __future__ import annotations

from pathlib import Path

from airflow._shared.module_loading import find_path_from_directory
from airflow.configuration import conf

from valohai_airflow.plan.discovery import valohai_yamls


def find_valohai_yamls(folder: str | Path) -> list[Path]:
    syntax = conf.get("core", "dag_ignore_file_syntax", fallback="glob") or "glob"
    return valohai_yamls(find_path_from_directory(str(folder), ".airflowignore", syntax))
