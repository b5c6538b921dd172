"""The provider's `[valohai]` config section, read once per use from Airflow's configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from airflow.configuration import conf


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))


@dataclass(frozen=True)
class ValohaiSettings:
    store_url: str
    work_dir: Path
    input_cache_dir: Path
    plan_cache_dir: Path
    docker_url: str | None
    strict_loading: bool


def valohai_settings() -> ValohaiSettings:
    base = _airflow_home() / "valohai"

    def get(key: str) -> str:
        return str(conf.get("valohai", key, fallback="") or "")

    return ValohaiSettings(
        store_url=get("store_url") or str(base / "store"),
        work_dir=Path(get("work_dir") or base / "work"),
        input_cache_dir=Path(get("input_cache_dir") or base / "cache"),
        plan_cache_dir=base / "plans",
        docker_url=get("docker_url") or None,
        strict_loading=conf.getboolean("valohai", "strict_loading", fallback=False),
    )
