"""The provider's Airflow plugin: the pages of valohai_airflow.airflow.web on the API server, an
Executions tab on every DAG's page (valohai_airflow.airflow.executions_page, in an iframe) and a
Data catalogue item in the UI's navigation (valohai_airflow.airflow.catalogue_page; the UI puts it
under Plugins when other plugins add items too).

Registered through the `airflow.plugins` entry point (Airflow 3.3 reads a provider's `plugins` only
with `[core] lazy_discover_providers = False`, and the two would register it twice). Workers load
plugins too, so the FastAPI app is imported only when the API server asks for `fastapi_apps`.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from valohai_airflow.airflow.links import URL_PREFIX, catalogue_path, ui_path


class ValohaiPlugin(AirflowPlugin):
    name = "valohai"

    @property  # lazy: the app pulls in the API server's modules
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from valohai_airflow.airflow import catalogue_page, executions_page  # noqa: F401  (add their routes)
        from valohai_airflow.airflow.web import app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "Valohai node outputs and metadata"}]

    @property  # lazy: `[api] base_url` is read when the UI asks
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The DAG page's Executions tab (the UI fills in {DAG_ID}); the Data catalogue page in the
        navigation."""
        return [
            {
                "name": "Executions",
                "href": ui_path(f"{URL_PREFIX}/executions/{{DAG_ID}}"),
                "destination": "dag",
                "url_route": "valohai-executions",
            },
            {
                "name": "Data catalogue",
                "href": ui_path(catalogue_path()),
                "destination": "nav",
                "url_route": "valohai-catalogue",
            },
        ]
