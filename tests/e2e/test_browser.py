"""The web UI in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium)
against the running Airflow of tests/e2e/conftest.py: log in with the generated admin password,
find the pipeline in the DAG list, see its graph with the node names of valohai.yaml, fill the
trigger form (parameters grouped by node, typed, with defaults and bounds), trigger from it, read
the finished node's log, follow its Outputs link to the provider's page of its files and metadata,
and read a task's docs; the learning-rate sweep's executions are sorted by loss and the two best
compared on the provider's Executions page. Screenshots go to the artefacts directory the session prints.

The UI is a React app: every step waits for what it needs (WebDriverWait), nothing sleeps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import EXAMPLE_DAG, AirflowServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "the browser test needs chromium and chromedriver on PATH (Debian: apt-get install chromium "
        "chromium-driver; `make test` does it when run as root on Debian)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

UI_TIMEOUT = 60.0
DIALOG = "//*[@role='dialog' and contains(@class, 'dialog__content')]"  # not the popovers


def _example_nodes() -> list[str]:
    """Node names of the example's three-trainings pipeline, as written in its valohai.yaml."""
    config = yaml.safe_load((REPO_ROOT / "dags" / "example" / "valohai.yaml").read_text())
    (pipeline,) = [
        i["pipeline"] for i in config if "pipeline" in i and i["pipeline"]["name"] == "three-trainings"
    ]
    return [node["name"] for node in pipeline["nodes"]]


@pytest.fixture(scope="module")
def browser(artefacts_dir: Path) -> Iterator[WebDriver]:
    options = Options()
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The browser plus explicit waits and screenshots under the artefacts directory."""

    def __init__(self, driver: WebDriver, server: AirflowServer, artefacts: Path) -> None:
        self.driver, self.server, self.artefacts = driver, server, artefacts
        self.wait = WebDriverWait(driver, UI_TIMEOUT)

    def open(self, path: str) -> None:
        self.driver.get(self.server.base_url + path)

    def find(self, by: str, value: str) -> WebElement:
        return self.wait.until(ec.visibility_of_element_located((by, value)))

    def click(self, by: str, value: str) -> WebElement:
        element = self.wait.until(ec.element_to_be_clickable((by, value)))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        return element

    def wait_for_text(self, text: str, by: str = By.TAG_NAME, value: str = "body") -> WebElement:
        def shown(driver: WebDriver) -> WebElement | bool:
            element = driver.find_element(by, value)
            return element if text in element.text else False

        result: WebElement = self.wait.until(shown, f"text {text!r} in {value}")
        return result

    def screenshot(self, name: str) -> Path:
        path = self.artefacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path


@pytest.fixture(scope="module")
def page(
    browser: WebDriver, airflow_server: AirflowServer, artefacts_dir: Path, example_project: Path
) -> Page:
    """Logged in through SimpleAuthManager's login page with the password Airflow generated."""
    page = Page(browser, airflow_server, artefacts_dir)
    page.open("/")
    page.find(By.NAME, "username").send_keys("admin")
    page.find(By.NAME, "password").send_keys(airflow_server.password)
    page.screenshot("01-login")
    page.click(By.CSS_SELECTOR, "button[type=submit]")
    page.wait.until(lambda driver: "/auth/login" not in driver.current_url, "leaving the login page")
    return page


def test_dag_list_shows_the_pipeline(page: Page) -> None:
    page.open("/dags")
    card = page.wait_for_text("three-trainings")
    for tag in ("example", "retraining", "valohai"):
        assert tag in card.text
    assert "0 9 * * 1" in card.text  # the weekly trigger of valohai-airflow.yaml is the schedule
    page.screenshot("02-dag-list")


def test_graph_shows_the_nodes_of_valohai_yaml(page: Page) -> None:
    page.open(f"/dags/{EXAMPLE_DAG}")
    page.click(By.CSS_SELECTOR, "button[aria-label^='Show Graph']")
    nodes = _example_nodes()
    page.wait.until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".react-flow__node")) == len(nodes),
        "every node in the graph",
    )
    shown = {
        element.get_attribute("data-id"): element.text.splitlines()[0]
        for element in page.driver.find_elements(By.CSS_SELECTOR, ".react-flow__node")
    }
    assert shown == {name: name for name in nodes}
    page.screenshot("03-graph")


def test_trigger_form_groups_typed_parameters_by_node_and_runs(
    page: Page, airflow_server: AirflowServer
) -> None:
    page.open(f"/dags/{EXAMPLE_DAG}")
    page.click(By.CSS_SELECTOR, "[data-testid=trigger-dag-button]")
    dialog = DIALOG
    page.find(By.XPATH, f"{dialog}//button[@data-part='item-trigger']")
    sections = [
        button.text.strip()
        for button in page.driver.find_elements(By.XPATH, f"{dialog}//button[@data-part='item-trigger']")
    ]
    assert sections[: len(_example_nodes())] == _example_nodes()  # one section per node, in file order

    page.click(By.XPATH, f"{dialog}//button[@data-part='item-trigger' and normalize-space()='preprocess']")
    fraction = page.find(By.NAME, "element_preprocess.parameter.test_fraction")
    assert fraction.get_attribute("role") == "spinbutton"  # a float parameter is a number field
    assert (fraction.get_attribute("value"), fraction.get_attribute("aria-valuemin")) == ("0.25", "0.05")
    assert fraction.get_attribute("aria-valuemax") == "0.9"
    assert page.find(By.NAME, "element_preprocess.parameter.seed").get_attribute("value") == "7"
    page.wait_for_text("Share of the rows kept for evaluation", By.XPATH, dialog)  # its description
    page.wait_for_text("raw (input URLs)", By.XPATH, dialog)
    page.wait_for_text("data/points.csv", By.XPATH, dialog)  # the input's default

    page.click(By.XPATH, f"{dialog}//button[@data-part='item-trigger' and normalize-space()='train-fast']")
    epochs = page.find(By.NAME, "element_train-fast.parameter.epochs")
    learning_rate = page.find(By.NAME, "element_train-fast.parameter.learning_rate")
    assert (epochs.get_attribute("value"), learning_rate.get_attribute("value")) == ("50", "1")  # override
    assert page.driver.find_elements(By.NAME, "element_train-fast.parameter.features") == []  # edge-filled
    epochs.send_keys(Keys.CONTROL, "a")
    epochs.send_keys("9")
    page.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", epochs)
    page.screenshot("04-trigger-form")

    page.click(By.XPATH, f"{dialog}//button[normalize-space()='Trigger']")
    page.wait.until(lambda driver: "/runs/" in driver.current_url, "the new run's page")
    run_id = urllib.parse.unquote(page.driver.current_url.split("/runs/", 1)[1].split("/", 1)[0])
    airflow_server.run_ids.append(run_id)
    run = airflow_server.wait_for_run(EXAMPLE_DAG, run_id)
    assert run["state"] == "success", airflow_server.task_states(EXAMPLE_DAG, run_id)
    assert run["conf"]["train-fast.parameter.epochs"] == 9
    manifest = airflow_server.xcom(EXAMPLE_DAG, run_id, "train-fast")
    assert manifest["parameters"]["epochs"] == 9

    _finished_node_log_and_links(page, airflow_server, run_id)


def _finished_node_log_and_links(page: Page, server: AirflowServer, run_id: str) -> None:
    """The finished node's page: its log shows the command the form's value produced; its extra
    links (Details tab) lead to the node's outputs and metadata."""
    page.open(f"/dags/{EXAMPLE_DAG}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/train-fast")
    page.wait_for_text("Success")
    page.wait_for_text("Running node train-fast: python train.py --learning_rate=1.0 --epochs=9 --features=2")
    page.wait_for_text('{"epoch": 9')  # the container's own output
    page.screenshot("05-run-graph-and-log")
    page.click(By.CSS_SELECTOR, "button[aria-label^='Show Grid']")  # the log gets the page's width
    page.wait_for_text("Running node train-fast:")
    page.screenshot("06-task-log")

    answer = server.get(f"/dags/{EXAMPLE_DAG}/dagRuns/{run_id}/taskInstances/train-fast/links")
    links: dict[str, str] = {name: url for name, url in answer["extra_links"].items() if url}
    assert {"Outputs", "Metadata (metadata.jsonl)"} <= set(links), links
    # Airflow 3.3's UI drops a link unless it is same-origin or http(s)/mailto (file:// and s3:// vanish)
    hidden = {
        name: url
        for name, url in links.items()
        if not url.startswith(("/", "http://", "https://", "mailto:"))
    }
    if hidden:
        print(f"extra links the Airflow UI does not render (not http(s) or same-origin): {hidden}")
    # the task instance's Details tab shows them ("Extra Links")
    page.open(f"/dags/{EXAMPLE_DAG}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/train-fast/details")
    page.wait_for_text("Extra Links")
    for name, url in links.items():
        if name in hidden:
            continue
        anchor = page.find(By.XPATH, f"//a[normalize-space()={_xpath_literal(name)}]")
        assert anchor.get_attribute("href") == urllib.parse.urljoin(server.base_url, url)
    page.screenshot("07-task-links")
    _node_outputs_page(page, server, run_id)


def test_task_docs_show_the_nodes_command(page: Page) -> None:
    """The task's Documentation: step, image and the command the defaults give (edge values as placeholders)."""
    page.open(f"/dags/{EXAMPLE_DAG}/tasks/train-fast")
    page.click(By.CSS_SELECTOR, "[data-testid=markdown-button]")
    docs = page.wait_for_text("python train.py --learning_rate=1.0 --epochs=50", By.XPATH, DIALOG)
    assert "--features=<preprocess.metadata.features>" in docs.text, docs.text
    assert "valohai-airflow/python:3.11" in docs.text and "VH_OUTPUTS_DIR" in docs.text
    page.screenshot("07-task-docs")


def _node_outputs_page(page: Page, server: AirflowServer, run_id: str) -> None:
    """The Outputs link opens the provider's page (same tab, the UI's login cookie): every output file
    with size and sha256, downloadable, and the metadata's last values and series."""
    page.click(By.XPATH, "//a[normalize-space()='Outputs']")
    page.wait.until(lambda driver: "/valohai/nodes/" in driver.current_url, "the node's outputs page")
    body = page.wait_for_text("train-fast: outputs and metadata").text
    manifest = server.xcom(EXAMPLE_DAG, run_id, "train-fast")
    assert manifest["outputs"], manifest
    for output in manifest["outputs"]:
        assert output["path"] in body and output["sha256"] in body, body
    for key, value in manifest["metadata"].items():
        assert key in body and (value if isinstance(value, str) else json.dumps(value)) in body, (key, body)
    assert "Series (" in body and "metadata.jsonl" in body
    page.screenshot("07-node-outputs")
    # a file downloads with the browser's own session cookie, byte for byte what the store holds
    model = manifest["outputs"][0]
    href = page.find(By.XPATH, f"//a[normalize-space()={_xpath_literal(model['path'])}]").get_attribute(
        "href"
    )
    cookie = page.driver.get_cookie("_token")
    assert cookie is not None, "the UI's login left no _token cookie"
    download = httpx.get(str(href), cookies={"_token": cookie["value"]}, timeout=60)
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == model["sha256"]
    assert httpx.get(str(href), timeout=60).status_code == 401  # not without the login


def _xpath_literal(text: str) -> str:
    return f'"{text}"' if '"' not in text else "concat('" + text.replace("'", "', \"'\", '") + "')"


def test_broken_valohai_yaml_shows_its_error_in_the_ui(page: Page, airflow_server: AirflowServer) -> None:
    project = airflow_server.dags_folder / "typo"
    project.mkdir()
    text = (
        (REPO_ROOT / "dags" / "example" / "valohai.yaml")
        .read_text()
        .replace("step: pick-best", "step: pick-bets")
    )
    (project / "valohai.yaml").write_text(text)
    rows = text.splitlines()
    step_row = next(number for number, row in enumerate(rows, 1) if "step: pick-bets" in row)
    node_line = max(n for n, row in enumerate(rows[:step_row], 1) if row.strip().startswith("- name:"))
    airflow_server.wait_for_dag("valohai_error__typo")

    page.open("/dags")
    page.wait_for_text("⚠ typo: valohai.yaml has 1 error(s)")
    page.wait_for_text("three-trainings")  # the example's DAG stays beside it
    page.screenshot("08-dag-list-with-error")
    page.open("/dags/valohai_error__typo")
    page.click(By.CSS_SELECTOR, "[data-testid=markdown-button]")
    docs = page.wait_for_text('step "pick-bets" does not exist', By.XPATH, DIALOG)
    assert f"{project / 'valohai.yaml'}:{node_line}:" in docs.text, docs.text  # where the node starts
    page.screenshot("09-error-dag-docs")


def test_a_task_nodes_executions_are_listed_by_their_values(
    page: Page, airflow_server: AirflowServer
) -> None:
    """The example's learning-rate sweep: the task node's mapped executions, named by the learning
    rate each one trained with (`map_index_template`), on the task's Task Instances page."""
    dag_id = "example__learning-rate-sweep"
    airflow_server.wait_for_dag(dag_id)
    run_id = airflow_server.trigger(dag_id, {})
    run = airflow_server.wait_for_run(dag_id, run_id)
    assert run["state"] == "success", airflow_server.failures(dag_id, run_id)
    page.open(f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/train/mapped")
    for label in ("learning_rate=0.01", "learning_rate=0.1", "learning_rate=1.0"):
        page.wait_for_text(label)
    page.screenshot("10-mapped-executions")
    _sweep_compared(page, airflow_server, dag_id, run_id)


def _sweep_compared(page: Page, server: AirflowServer, dag_id: str, run_id: str) -> None:
    """The DAG's Executions tab (the plugin's page in the UI), then the train node's Executions link:
    sort the sweep by its last loss, select the two best, compare them with their loss series charted."""
    page.open(f"/dags/{dag_id}")
    page.click(By.XPATH, "//a[normalize-space()='Executions'] | //button[normalize-space()='Executions']")
    frame = page.find(By.TAG_NAME, "iframe")
    page.driver.switch_to.frame(frame)
    page.wait_for_text(f"{dag_id}: executions")
    page.driver.switch_to.default_content()

    run = urllib.parse.quote(run_id, safe="")
    links = server.get(f"/dags/{dag_id}/dagRuns/{run}/taskInstances/train/links", map_index=0)["extra_links"]
    assert links["Executions"] == f"/valohai/executions/{dag_id}?task=train", links
    page.open(links["Executions"])
    page.wait_for_text(f"{dag_id}: executions of train")
    page.click(By.CSS_SELECTOR, "a.sort[data-column='metadata.loss']")
    page.wait.until(lambda driver: "sort=metadata.loss" in driver.current_url, "the page sorted by loss")
    table = page.find(By.ID, "executions")
    names = [a.get_attribute("data-column") for a in table.find_elements(By.CSS_SELECTOR, "a.sort")]
    rows = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")][1:-1]
        for tr in table.find_elements(By.CSS_SELECTOR, "tr.execution")
    ]
    mine = [r for r in rows if r[names.index("run")] == run_id]
    assert sorted(r[names.index("execution")] for r in mine) == [
        "learning_rate=0.01",
        "learning_rate=0.1",
        "learning_rate=1.0",
    ]
    losses = [float(r[names.index("metadata.loss")]) for r in rows]
    assert losses == sorted(losses), losses
    best = [r[names.index("execution")] for r in rows[:2]]
    page.screenshot("11-executions-sorted")
    for checkbox in table.find_elements(By.CSS_SELECTOR, "tr.execution input[type=checkbox]")[:2]:
        checkbox.click()
    page.click(By.ID, "compare-button")
    page.wait_for_text("2 execution(s) side by side")
    chart = page.find(By.CSS_SELECTOR, "figure.chart[data-key='loss']")
    assert len(chart.find_elements(By.TAG_NAME, "polyline")) == 2
    legend = chart.find_element(By.CLASS_NAME, "legend").text
    assert all(name in legend for name in best), (best, legend)
    conf = page.find(By.CSS_SELECTOR, "pre.conf").text
    assert "train.parameter.epochs" in json.loads(conf), conf  # the run conf to paste into the trigger form
    page.driver.execute_script("window.scrollTo(0, 0)")
    page.screenshot("12-executions-compare")
