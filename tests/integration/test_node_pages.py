"""The node task's extra links and the provider's pages on the real Airflow API app: real containers
write real store files (dag.test()), the links are the XComs the task runner stored, and the pages
are fetched over HTTP from Airflow's own FastAPI app (create_app: the plugin comes in through its
entry point) with Airflow's own JWT auth, as the UI's `_token` cookie or a bearer token."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import textwrap
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, add_project, dag_bag
from tests.support.seaweed import StoreBucket

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

STORE_ROOT = AIRFLOW_HOME / "valohai" / "store"

YAML = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command:
      - mkdir -p /valohai/outputs/sub
      - printf 'hello <b>store</b>' > "/valohai/outputs/a <x>.txt"
      - printf 'second' > /valohai/outputs/sub/b.bin
      - "echo '{{\\"step\\": 1, \\"loss\\": 0.5}}'"
      - echo plain log line
      - "echo '{{\\"step\\": 2, \\"loss\\": 0.25, \\"note\\": \\"<script>alert(1)</script>\\"}}'"
- pipeline:
    name: pages
    reuse-executions: true
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Airflow's API server app, with every plugin it finds, in process; logins required (another
    test module may have run an all-admins app in this process)."""
    from airflow.api_fastapi.app import create_app
    from airflow.configuration import conf
    from fastapi.testclient import TestClient

    conf.set("core", "simple_auth_manager_all_admins", "False")
    with TestClient(create_app(), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture(scope="module")
def token(client: Any) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin")))


def _run(dag: Any) -> tuple[str, dict[str, Any]]:
    """One dag.test(): the run id and, for node `make`, its manifest and link XComs."""
    run = dag.test()
    (ti,) = run.get_task_instances()
    assert ti.state == "success"
    xcoms = {
        key: ti.xcom_pull(task_ids="make", key=key)
        for key in (
            "return_value",
            "_link_ValohaiOutputsLink",
            "_link_ValohaiMetadataLink",
            "_link_ValohaiExecutionsLink",
        )
    }
    xcoms["_link_ValohaiReusedFromLink"] = ti.xcom_pull(task_ids="make", key="_link_ValohaiReusedFromLink")
    return run.run_id, xcoms


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def test_links_and_pages_show_outputs_and_metadata_only_to_logged_in_users(
    dags_folder: Path, client: Any, token: str
) -> None:
    add_project(dags_folder, "web", textwrap.dedent(YAML))
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = bag.dags["web__pages"]
    run_id, xcoms = _run(dag)
    manifest = xcoms["return_value"]
    page = f"/valohai/nodes/web__pages/{_quote(run_id)}/make/-1/1"
    assert xcoms["_link_ValohaiOutputsLink"] == page  # same-origin: the 3.3 UI renders it
    assert xcoms["_link_ValohaiMetadataLink"] == page + "/metadata.jsonl"
    assert xcoms["_link_ValohaiExecutionsLink"] == "/valohai/executions/web__pages?task=make"
    assert xcoms["_link_ValohaiReusedFromLink"] == ""  # not reused: the UI hides it

    # not logged in, or a forged token: refused before anything is read
    assert client.get(page).status_code == 401
    assert client.get(page + "/outputs/sub/b.bin").status_code == 401
    assert client.get(page, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403

    client.cookies.set("_token", token)  # what the UI's login leaves in the browser
    try:
        answer = client.get(page)
        assert answer.status_code == 200, answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        text = answer.text
        outputs = {f["path"]: f for f in manifest["outputs"]}
        assert set(outputs) == {"a <x>.txt", "sub/b.bin"}
        for path, entry in outputs.items():
            stored = Path(urllib.parse.unquote(urllib.parse.urlparse(entry["uri"]).path))
            assert stored.is_relative_to(STORE_ROOT)
            assert entry["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
            assert entry["sha256"] in text
            assert f">{entry['size']} B<" in text
            href = f"{page}/outputs/{urllib.parse.quote(path)}"
            assert f'<a href="{href}" download>' in text  # every file downloadable from the page
        assert "a &lt;x&gt;.txt" in text and "<x>" not in text  # names are escaped, never markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
        last = dict(re.findall(r"<tr><td>(\w+)</td><td><code>([^<]*)</code></td></tr>", text))
        assert last == {"step": "2", "loss": "0.25", "note": "&lt;script&gt;alert(1)&lt;/script&gt;"}
        assert "Series (2 points)" in text

        download = client.get(f"{page}/outputs/{urllib.parse.quote('a <x>.txt')}")
        assert download.status_code == 200
        assert download.content == b"hello <b>store</b>"
        assert download.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in download.headers["content-security-policy"]
        assert client.get(f"{page}/outputs/sub/b.bin").content == b"second"

        series = client.get(page + "/metadata.jsonl")
        assert series.status_code == 200 and series.headers["content-type"].startswith("text/plain")
        points = [json.loads(line) for line in series.text.splitlines()]
        assert [(p["step"], p["loss"]) for p in points] == [(1, 0.5), (2, 0.25)]

        # nothing outside the node's outputs, however the path is spelled
        for escape in (
            "..%2F..%2F..%2Fmetadata.jsonl",
            "sub/%2E%2E/%2E%2E/x",
            "%2Fetc%2Fpasswd",
        ):
            refused = client.get(f"{page}/outputs/{escape}")
            assert refused.status_code == 400, (escape, refused.status_code, refused.text)
            assert "may not contain '..'" in refused.json()["detail"]
        # a backslash is an ordinary character of a file name here, and this one is no output
        assert client.get(f"{page}/outputs/sub%5C..%5Cx").status_code == 404
        assert client.get(f"{page}/outputs/not-an-output.txt").status_code == 404
        assert client.get(f"/valohai/nodes/web__pages/{_quote(run_id)}/make/-1/7").status_code == 404

        # a bearer token works as well (API clients)
        client.cookies.clear()
        assert client.get(page, headers={"Authorization": f"Bearer {token}"}).status_code == 200

        # the second run reuses the first: a link to that run, and the page serves its files
        client.cookies.set("_token", token)
        second_id, again = _run(dag)
        assert again["return_value"]["reused_from"]["run_id"] == run_id
        assert again["_link_ValohaiReusedFromLink"] == f"/dags/web__pages/runs/{_quote(run_id)}"
        second = f"/valohai/nodes/web__pages/{_quote(second_id)}/make/-1/1"
        reused = client.get(second)
        assert reused.status_code == 200
        assert f'href="/dags/web__pages/runs/{_quote(run_id)}"' in reused.text
        assert client.get(f"{second}/outputs/sub/b.bin").content == b"second"
        assert client.get(second + "/metadata.jsonl").text == series.text
    finally:
        client.cookies.clear()


def test_the_plugin_is_found_through_its_entry_point() -> None:
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    (ours,) = [a for a in apps if a["url_prefix"] == "/valohai"]
    from valohai_airflow.airflow.web import app

    assert ours["app"] is app


def test_pages_read_the_s3_store(
    dags_folder: Path, client: Any, token: str, s3_endpoint: Any, s3_bucket: str, monkeypatch: Any
) -> None:
    """The same pages with the store on a real S3 server (SeaweedFS): files stream through a
    temporary copy that is gone after the response."""
    url = f"s3://{s3_bucket}/runs"
    for key, value in StoreBucket(s3_endpoint, s3_bucket, "runs").environment().items():
        monkeypatch.setenv(key, value)
    add_project(dags_folder, "webs3", textwrap.dedent(YAML))
    run_id, xcoms = _run(dag_bag(dags_folder).dags["webs3__pages"])
    manifest = xcoms["return_value"]
    assert manifest["outputs"] and all(f["uri"].startswith(f"{url}/") for f in manifest["outputs"])
    page = f"/valohai/nodes/webs3__pages/{_quote(run_id)}/make/-1/1"
    assert client.get(page).status_code == 401
    client.cookies.set("_token", token)
    try:
        text = client.get(page).text
        assert all(f["sha256"] in text for f in manifest["outputs"])
        temp = Path(tempfile.gettempdir())
        before = set(temp.glob("valohai-airflow-download-*"))
        download = client.get(f"{page}/outputs/{urllib.parse.quote('a <x>.txt')}")
        assert download.status_code == 200 and download.content == b"hello <b>store</b>"
        (entry,) = [f for f in manifest["outputs"] if f["path"] == "a <x>.txt"]
        assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]
        series = client.get(page + "/metadata.jsonl")
        assert [json.loads(line)["step"] for line in series.text.splitlines()] == [1, 2]
        assert set(temp.glob("valohai-airflow-download-*")) == before  # no copies left behind
        assert client.get(f"{page}/outputs/..%2Fmetadata.jsonl").status_code == 400
    finally:
        client.cookies.clear()


FAILING_YAML = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command:
      - printf partial > /valohai/outputs/partial.txt
      - "echo '{{\\"loss\\": 9}}'"
      - exit 3
- pipeline:
    name: broken
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""


def test_a_failed_try_shows_what_it_left_in_the_store(dags_folder: Path, client: Any, token: str) -> None:
    """No manifest XCom (the task failed), yet its stage-out finished and stored its manifest: the
    Outputs link still leads to its outputs and metadata."""
    add_project(dags_folder, "webfail", textwrap.dedent(FAILING_YAML))
    run = dag_bag(dags_folder).dags["webfail__broken"].test()
    (ti,) = run.get_task_instances()
    assert ti.state == "failed"
    assert ti.xcom_pull(task_ids="make") is None
    page = f"/valohai/nodes/webfail__broken/{_quote(run.run_id)}/make/-1/1"
    assert ti.xcom_pull(task_ids="make", key="_link_ValohaiOutputsLink") == page
    client.cookies.set("_token", token)
    try:
        answer = client.get(page)
        assert answer.status_code == 200, answer.text
        assert "This try failed; its stage-out finished" in answer.text and "partial.txt" in answer.text
        assert "<tr><td>loss</td><td><code>9</code></td></tr>" in answer.text
        assert client.get(f"{page}/outputs/partial.txt").content == b"partial"
        assert client.get(f"{page}/outputs/..%2F..%2F1%2Fmetadata.jsonl").status_code == 400
    finally:
        client.cookies.clear()


def test_airflow_cli_lists_the_links_and_the_plugin() -> None:
    """As a user's Airflow sees the installed package: the provider's extra links and the plugin's app."""
    from tests.integration.test_provider import _airflow

    links, plugins = _airflow(
        (("providers", "links", "--output", "json"), {}), (("plugins", "--output", "json"), {})
    )
    assert links.returncode == 0, links.stderr
    listed = {entry["extra_link_class_name"] for entry in json.loads(links.stdout)}
    assert {
        "valohai_airflow.airflow.links.ValohaiOutputsLink",
        "valohai_airflow.airflow.links.ValohaiMetadataLink",
        "valohai_airflow.airflow.links.ValohaiExecutionsLink",
        "valohai_airflow.airflow.links.ValohaiReusedFromLink",
    } <= listed
    assert plugins.returncode == 0, plugins.stderr
    (ours,) = [p for p in json.loads(plugins.stdout) if p["name"] == "valohai"]
    assert [(a["url_prefix"], a["name"]) for a in ours["fastapi_apps"]] == [
        ("/valohai", "Valohai node outputs and metadata")
    ]
    assert [(v["href"], v["destination"]) for v in ours["external_views"]] == [
        ("/valohai/executions/{DAG_ID}", "dag"),
        ("/valohai/catalogue", "nav"),
    ]
