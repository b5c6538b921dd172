"""The data catalogue in a real headless Chromium against the running Airflow (tests/e2e/conftest.py):
a pipeline triggered through the API publishes a dataset version and moves an alias in one node and
reads `dataset://…/latest` in the next; the navigation's Data catalogue item shows the plugin's
page inside Airflow's UI, whose links lead to the dataset's log, the version's files (size, sha256)
and the producing node's Outputs page, which says what each file became. Screenshots go to the
artefacts directory (docs/screenshots/catalogue.png is one of them)."""

from __future__ import annotations

import textwrap
import uuid

from selenium.webdriver.common.by import By

from tests.e2e.conftest import AirflowServer
from tests.e2e.test_browser import Page, browser, page  # noqa: F401  (shared fixtures: one login)
from tests.support.synthetic import BUSYBOX

PIPELINE = """\
- step:
    name: make
    image: {image}
    command: |-
      cd /valohai/outputs
      echo weights > model.bin
      echo '{{"valohai.alias": "best-{tag}"}}' > model.bin.metadata.json
      mkdir -p train && echo a > train/a.csv && echo bb > train/b.csv
      for f in a b; do
        echo "{{\\"file\\": \\"train/$f.csv\\", \\"metadata\\": {{\\"valohai.dataset-versions\\": [\\"dataset://harbor-{tag}/v1\\"]}}}}"
      done > valohai.metadata.jsonl
- step:
    name: use
    image: {image}
    command: cat /valohai/inputs/train/* /valohai/inputs/model/* > /valohai/outputs/read.txt
    inputs:
      - {{name: model}}
      - {{name: train, default: "dataset://harbor-{tag}/latest"}}
- pipeline:
    name: lineage
    nodes:
      - {{name: make, type: execution, step: make}}
      - {{name: use, type: execution, step: use}}
    edges:
      - [make.output.model.bin, use.input.model]
"""


def test_the_catalogue_page_inside_the_ui_leads_to_the_producer(
    page: Page,  # noqa: F811
    airflow_server: AirflowServer,
) -> None:
    tag = uuid.uuid4().hex[:6]
    project = airflow_server.dags_folder / f"lineage{tag}"
    project.mkdir()
    (project / "valohai.yaml").write_text(textwrap.dedent(PIPELINE.format(image=BUSYBOX, tag=tag)))
    dag_id = f"lineage{tag}__lineage"
    airflow_server.wait_for_dag(dag_id)
    run_id = airflow_server.trigger(dag_id, {})
    run = airflow_server.wait_for_run(dag_id, run_id)
    assert run["state"] == "success", airflow_server.failures(dag_id, run_id)
    produced = {o["path"]: o for o in airflow_server.xcom(dag_id, run_id, "make")["outputs"]}
    read = airflow_server.xcom(dag_id, run_id, "use")["inputs"]["train"]
    assert [f["catalogue"] for f in read] == [
        [f"dataset://harbor-{tag}/latest", f"dataset://harbor-{tag}/v1"]
    ] * 2

    # the Plugins menu's item opens the plugin's page in Airflow's own UI (an iframe)
    page.open("/")
    # the only navigation view of any plugin here, so the UI shows it in the bar itself (with others,
    # under Plugins)
    item = page.click(By.XPATH, "//a[contains(@href, 'plugin/valohai-catalogue')]")
    assert "Data catalogue" in (
        item.text or item.get_attribute("title") or item.get_attribute("aria-label") or ""
    )
    page.wait.until(lambda driver: "/plugin/valohai-catalogue" in driver.current_url, "the catalogue view")
    page.driver.switch_to.frame(page.find(By.TAG_NAME, "iframe"))
    try:
        page.wait_for_text(f"dataset://harbor-{tag}")
        page.wait_for_text(f"datum://best-{tag}")
        page.driver.switch_to.default_content()
        page.screenshot("13-catalogue")
        page.driver.switch_to.frame(page.find(By.TAG_NAME, "iframe"))

        page.click(By.XPATH, f"//a[normalize-space()='dataset://harbor-{tag}']")
        page.wait_for_text("version created")
        page.click(By.XPATH, "//table[@id='log']//a[normalize-space()='v1']")
        body = page.wait_for_text(f"dataset://harbor-{tag}/v1").text
        for name in ("train/a.csv", "train/b.csv"):
            assert name in body and produced[name]["sha256"] in body, body
        page.screenshot("14-catalogue-dataset-version")
        page.click(By.XPATH, "//a[contains(@class, 'producer')]")
        body = page.wait_for_text("make: outputs and metadata").text
        assert f"dataset://harbor-{tag}/v1" in body and f"datum://best-{tag}" in body, body
    finally:
        page.driver.switch_to.default_content()
