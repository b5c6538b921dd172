"""The provider's `[valohai]` config section, read once per use from Airflow's configuration.

Defaults come from provider.py's declaration, the one place they are written; an empty path there means
a folder under $AIRFLOW_HOME/valohai, as the declaration says."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.configuration import conf

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.provider import option_default
from valohai_airflow.runtime.confinement import InputPolicy, parse_networks, parse_roots
from valohai_airflow.store.resolver import StoreResolver


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
    clean_work_dirs: bool
    s3_options: dict[str, Any]
    input_roots: str
    input_private_networks: str

    @functools.cached_property
    def input_policy(self) -> InputPolicy:
        """Where run-conf inputs may lead; parsed when a task needs it, so a bad value fails the
        tasks that read inputs, not the loading of every DAG."""
        try:
            roots = parse_roots(self.input_roots)
        except ValueError as error:
            raise ValohaiAirflowError(f"[valohai] input_roots: {error}") from error
        try:
            return InputPolicy(roots, parse_networks(self.input_private_networks))
        except ValueError as error:
            raise ValohaiAirflowError(f"[valohai] input_private_networks: {error}") from error

    @functools.cached_property
    def stores(self) -> StoreResolver:
        """The artefact store and every store URL, opened with the configured S3 options."""
        return StoreResolver(self.store_url, s3=self.s3_options)


def valohai_settings() -> ValohaiSettings:
    base = _airflow_home() / "valohai"

    def get(key: str) -> str:
        return str(conf.get("valohai", key, fallback=option_default(key)) or "")

    def flag(key: str) -> bool:
        return conf.getboolean("valohai", key, fallback=option_default(key).lower() == "true")

    return ValohaiSettings(
        store_url=get("store_url") or str(base / "store"),
        work_dir=Path(get("work_dir") or base / "work"),
        input_cache_dir=Path(get("input_cache_dir") or base / "cache"),
        plan_cache_dir=base / "plans",
        docker_url=get("docker_url") or None,
        strict_loading=flag("strict_loading"),
        clean_work_dirs=flag("clean_work_dirs"),
        s3_options=_s3_options(get("s3_endpoint_url") or None, get("aws_conn_id") or None),
        input_roots=get("input_roots"),
        input_private_networks=get("input_private_networks"),
    )


def _s3_options(endpoint_url: str | None, aws_conn_id: str | None) -> dict[str, Any]:
    """S3 settings for the store and s3:// inputs: an Airflow AWS connection when one is named and
    the amazon provider is installed, otherwise boto3's default chain (environment, profile, role)."""
    options: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    if not aws_conn_id:
        return options
    try:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    except ImportError as error:
        raise RuntimeError(
            f"[valohai] aws_conn_id = {aws_conn_id} needs apache-airflow-providers-amazon installed"
        ) from error
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    credentials = hook.get_credentials()
    options.update(access_key=credentials.access_key, secret_key=credentials.secret_key)
    if credentials.token:
        options["session_token"] = credentials.token
    endpoint = hook.conn_config.endpoint_url
    if endpoint and "endpoint_url" not in options:
        options["endpoint_url"] = endpoint
    if hook.region_name:
        options["region_name"] = hook.region_name
    return options
