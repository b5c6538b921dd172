"""The provider's self-description, read by Airflow through the `apache_airflow_provider` entry point."""

from __future__ import annotations

from typing import Any

from valohai_airflow import __version__


def _option(
    description: str, default: str, type_: str = "string", example: str | None = None
) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": type_,
        "example": example,
        "default": default,
    }


VALOHAI_OPTIONS: dict[str, dict[str, Any]] = {
    "store_url": _option(
        "Where node outputs are stored: a local directory, file:///path or s3://bucket/prefix. "
        "Empty means $AIRFLOW_HOME/valohai/store.",
        "",
        example="s3://my-bucket/valohai",
    ),
    "work_dir": _option(
        "Host directory for the per-task work dirs mounted into containers. "
        "Empty means $AIRFLOW_HOME/valohai/work.",
        "",
    ),
    "input_cache_dir": _option(
        "Host directory of the download cache for input URLs. Empty means $AIRFLOW_HOME/valohai/cache.",
        "",
    ),
    "docker_url": _option(
        "Docker engine URL for node containers. Empty means $DOCKER_HOST or the local socket.",
        "",
        example="unix://var/run/docker.sock",
    ),
    "s3_endpoint_url": _option(
        "Endpoint of an S3-compatible server (MinIO, SeaweedFS, ...) for an s3:// store_url "
        "and s3:// inputs. Empty means AWS (or AWS_ENDPOINT_URL_S3).",
        "",
        example="http://127.0.0.1:8333",
    ),
    "aws_conn_id": _option(
        "Airflow AWS connection whose credentials the S3 store and s3:// inputs use "
        "(needs apache-airflow-providers-amazon). Empty means boto3's default chain.",
        "",
    ),
    "clean_work_dirs": _option(
        "Remove a task's work dir after it succeeded. Failed tries always keep theirs for debugging.",
        "True",
        type_="boolean",
    ),
    "input_roots": _option(
        "Folders on the worker whose files a run conf, the trigger form or a valohai.yaml "
        "default may name as a local input path or file:// URL, besides the project's own "
        "folder and a local store_url (comma-separated absolute paths). Anything else local "
        "is refused before it is read.",
        "",
        example="/data/shared, /mnt/datasets",
    ),
    "input_private_networks": _option(
        "Non-public networks (loopback, private, link-local, ...) that http(s) inputs may "
        "reach, as comma-separated CIDRs. Empty: inputs are fetched from public addresses "
        "only; every address a host name resolves to is checked, also after redirects.",
        "",
        example="127.0.0.0/8, 10.20.0.0/16",
    ),
    "strict_loading": _option(
        "When True a broken valohai.yaml is an ordinary import error of the loader file "
        "(hiding its siblings' DAGs); when False it becomes a placeholder DAG that shows the error.",
        "False",
        type_="boolean",
    ),
}
"""The `[valohai]` options: the one place their defaults and meaning are written (settings.py reads the
defaults from here, docs/configuration.md is generated from it)."""


def option_default(name: str) -> str:
    """The declared default of `[valohai] name`, as Airflow's config holds it (a string)."""
    return str(VALOHAI_OPTIONS[name]["default"])


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "valohai-airflow",
        "name": "Valohai",
        "description": "Runs the pipelines of a valohai.yaml as Airflow DAGs, each node a Docker container "
        "that sees what it would see on Valohai.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Valohai",
                "external-doc-url": "https://docs.valohai.com/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Valohai",
                "python-modules": ["valohai_airflow.airflow.operators"],
            }
        ],
        "extra-links": [
            "valohai_airflow.airflow.links.ValohaiOutputsLink",
            "valohai_airflow.airflow.links.ValohaiMetadataLink",
            "valohai_airflow.airflow.links.ValohaiExecutionsLink",
            "valohai_airflow.airflow.links.ValohaiReusedFromLink",
        ],
        "asset-uris": [{"schemes": ["valohai"], "handler": "valohai_airflow.asset_uris.normalize"}],
        "config": {
            "valohai": {
                "description": "Settings of the valohai-airflow provider.",
                "options": {name: dict(option) for name, option in VALOHAI_OPTIONS.items()},
            }
        },
    }
