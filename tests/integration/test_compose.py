"""The compose stack with real parts: a Compose implementation's `config` validates the file, with
and without the Celery profile (`docker compose`, or Debian's `docker-compose`, which
`scripts/compose.sh` installs for `make test`; skipped without one), and the stack's bucket job runs
against a real SeaweedFS on 127.0.0.1. The checks of the files alone are tests/unit/test_compose.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.compose import (
    CELERY_ONLY,
    DEFAULT_STACK,
    NO_COMPOSE,
    active,
    check_resolved_stack,
    compose_command,
    compose_config,
    environment,
    load,
    script_of,
    services,
)
from tests.support.seaweed import S3Endpoint

needs_compose = pytest.mark.skipif(compose_command() is None, reason=NO_COMPOSE)


def test_the_bucket_job_creates_the_bucket_once(s3_endpoint: S3Endpoint) -> None:
    """The job's own script, run against a real S3 server: creates the bucket, then finds it."""
    import boto3

    job = services(load())["s3-bucket"]
    assert job["entrypoint"] == ["python", "-c"]
    bucket = f"compose-{uuid.uuid4().hex[:10]}"
    env = {
        **environment(job),
        "VALOHAI_BUCKET": bucket,
        "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_key,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script_of(job)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    assert outputs == [f"bucket {bucket} created", f"bucket {bucket} exists"]
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint.endpoint_url,
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


@needs_compose
def test_compose_config_accepts_the_default_stack(tmp_path: Path) -> None:
    svcs = active(compose_config(tmp_path), set())
    assert set(svcs) == DEFAULT_STACK
    check_resolved_stack(svcs, "LocalExecutor")
    assert environment(svcs["airflow-scheduler"])["AIRFLOW__VALOHAI__STORE_URL"] == "s3://valohai/store"


@needs_compose
def test_compose_config_accepts_the_celery_profile(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "--profile", "celery", env={"AIRFLOW_EXECUTOR": "CeleryExecutor"})
    svcs = active(config, {"celery"})
    assert set(svcs) == DEFAULT_STACK | CELERY_ONLY
    check_resolved_stack(svcs, "CeleryExecutor")


@needs_compose
def test_compose_config_reads_the_switch_and_secrets_from_the_env_file(tmp_path: Path) -> None:
    """The manual's way (docs/operating.md): the executor, paths and secrets in .env (here: the file given as --env-file)."""
    env = {
        "COMPOSE_PROFILES": "celery",
        "AIRFLOW_EXECUTOR": "CeleryExecutor",
        "VALOHAI_WORK_DIR": "/srv/valohai/work",
        "POSTGRES_PASSWORD": "pg-from-env",
        "AIRFLOW_JWT_SECRET": "jwt-from-env",
    }
    svcs = active(compose_config(tmp_path, "--profile", "celery", env=env), {"celery"})
    check_resolved_stack(svcs, "CeleryExecutor")
    worker = environment(svcs["airflow-worker"])
    assert worker["AIRFLOW__VALOHAI__WORK_DIR"] == "/srv/valohai/work"
    assert json.loads(worker["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]) == {
        "imports": ["valohai_airflow.airflow.worker"]
    }
    assert worker["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-from-env"
    assert ":pg-from-env@postgres/" in worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert environment(svcs["postgres"])["POSTGRES_PASSWORD"] == "pg-from-env"
