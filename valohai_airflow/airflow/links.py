"""The node task's extra links in the web UI: its outputs and metadata and the node's executions
across runs (served same-origin by the provider's plugin, valohai_airflow.airflow.web, because
Airflow 3.3's UI drops file:// and s3:// links), and the run a reused node took its results from.

The worker computes each link when the task finishes and Airflow keeps it as an XCom; the API
server only reads it back. A link is empty (the UI hides it) when there is nothing to link to.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseOperatorLink

#: Where the plugin's FastAPI app is mounted on the API server.
URL_PREFIX = "/valohai"


def ui_path(path: str) -> str:
    """`path` below the API server's root: same-origin, and under `[api] base_url`'s path when
    Airflow is served below one (https://host/airflow/...)."""
    base = urllib.parse.urlparse(str(conf.get("api", "base_url", fallback="") or "")).path.rstrip("/")
    return f"{base}{path}"


def _quoted(*segments: object) -> str:
    return "/".join(urllib.parse.quote(str(segment), safe="") for segment in segments)


def node_page_path(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """The plugin's page of one try of one node (outputs and metadata), without the base path."""
    return f"{URL_PREFIX}/nodes/{_quoted(dag_id, run_id, task_id, map_index, try_number)}"


def executions_path(dag_id: str, task_id: str | None = None) -> str:
    """The plugin's Executions page of a DAG (of one node task with `task_id`), without the base path."""
    path = f"{URL_PREFIX}/executions/{_quoted(dag_id)}"
    return path + (f"?task={urllib.parse.quote(task_id, safe='')}" if task_id else "")


def catalogue_path(reference: str = "") -> str:
    """The plugin's page of a data catalogue record, without the base path: `datum://x` (an alias's
    history, or a datum), `dataset://d` and `dataset://d/v`, `model://m` and `model://m/N`; the
    catalogue's front page for "" or anything else."""
    scheme, sep, rest = reference.partition("://")
    folders = {"datum": "datums", "dataset": "datasets", "model": "models"}
    parts = [p for p in rest.split("/") if p]
    if not sep or scheme not in folders or not 1 <= len(parts) <= 2:
        return f"{URL_PREFIX}/catalogue"
    return f"{URL_PREFIX}/catalogue/{folders[scheme]}/{_quoted(*parts)}"


def _ti_page_path(ti_key: Any) -> str:
    return node_page_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index, ti_key.try_number)


def _manifest(ti_key: Any) -> dict[str, Any] | None:
    from airflow.sdk.execution_time.xcom import XCom

    value = XCom.get_value(ti_key=ti_key, key="return_value")
    return value if isinstance(value, dict) else None


class ValohaiOutputsLink(BaseOperatorLink):
    """The node's output files (size, sha256, download) and its metadata, on the plugin's page."""

    name = "Outputs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return ui_path(_ti_page_path(ti_key))


class ValohaiMetadataLink(BaseOperatorLink):
    """The node's metadata series, `metadata.jsonl` from beside its outputs in the store."""

    name = "Metadata (metadata.jsonl)"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return ui_path(_ti_page_path(ti_key) + "/metadata.jsonl")


class ValohaiExecutionsLink(BaseOperatorLink):
    """Every execution of this node across the DAG's runs, side by side (the plugin's Executions page)."""

    name = "Executions"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return ui_path(executions_path(ti_key.dag_id, ti_key.task_id))


class ValohaiReusedFromLink(BaseOperatorLink):
    """The DAG run whose execution a reused node returned (`reuse-executions`), in the Airflow UI."""

    name = "Reused from run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        manifest = _manifest(ti_key)
        source = manifest.get("reused_from") if manifest else None
        if not isinstance(source, dict) or not source.get("dag_id") or not source.get("run_id"):
            return ""
        return ui_path(f"/dags/{_quoted(source['dag_id'])}/runs/{_quoted(source['run_id'])}")


NODE_LINKS = (ValohaiOutputsLink(), ValohaiMetadataLink(), ValohaiExecutionsLink(), ValohaiReusedFromLink())
