"""Extra-link URLs stay same-origin and follow `[api] base_url`'s path (Airflow served below /airflow)."""

from __future__ import annotations

import pytest

from valohai_airflow.airflow.links import node_page_path, ui_path


def test_node_page_path_quotes_every_segment() -> None:
    path = node_page_path("p__x", "manual__2026-12-01T10:00:00+00:00", "train/a", 3, 2)
    assert path == "/valohai/nodes/p__x/manual__2026-12-01T10%3A00%3A00%2B00%3A00/train%2Fa/3/2"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("", "/valohai/x"),
        ("http://127.0.0.1:8080", "/valohai/x"),
        ("https://example.org/", "/valohai/x"),
        ("https://example.org/airflow/", "/airflow/valohai/x"),
    ],
)
def test_ui_path_follows_the_base_urls_path(
    monkeypatch: pytest.MonkeyPatch, base_url: str, expected: str
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", base_url)
    assert ui_path("/valohai/x") == expected


def test_executions_path_quotes_the_dag_and_the_task() -> None:
    from valohai_airflow.airflow.links import executions_path

    assert executions_path("p__x/y") == "/valohai/executions/p__x%2Fy"
    assert executions_path("p__x", "train&a=b") == "/valohai/executions/p__x?task=train%26a%3Db"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("datum://best model", "/valohai/catalogue/datums/best%20model"),
        ("dataset://images", "/valohai/catalogue/datasets/images"),
        ("dataset://images/v1?x", "/valohai/catalogue/datasets/images/v1%3Fx"),
        ("model://churn/latest", "/valohai/catalogue/models/churn/latest"),
        ("", "/valohai/catalogue"),
        ("s3://bucket/key", "/valohai/catalogue"),
        ("dataset://a/b/c", "/valohai/catalogue"),
    ],
)
def test_catalogue_path_maps_each_reference_to_its_page(reference: str, expected: str) -> None:
    from valohai_airflow.airflow.links import catalogue_path

    assert catalogue_path(reference) == expected
