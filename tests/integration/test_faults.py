"""Bad input and faults, run for real: Airflow's `dag.test()`, the real Docker engine, real images.

Every case checks the same four things: the task fails, its message says what happened and what
to do, it leaves no manifest in XCom, and no container of ours is left running or left behind
(`docker ps -a --filter label=valohai-airflow`, after each test). Retries are exercised with
`retries=1, retry_delay=0` set on the task before `dag.test()`, which then runs the second try
in the same DAG run.

The failure message is read from the `TaskRunResult` Airflow's in-process supervisor returns
(tests/integration/pipelines.py keeps it; `dag.test()` throws it away).

No fault here is injected: the missing image is a real failed pull (no registry is reachable),
the OOM kill is the kernel's under a 16 MiB `mem_limit`, the full disk is a 1 MB tmpfs holding
the store, and the S3 failure is a real SeaweedFS server stopped as the upload begins.
"""

from __future__ import annotations

import hashlib
import html
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import STORE, Try, one_node, run_pipeline, step
from tests.support.containers import created_events
from valohai_airflow.runtime.ids import ExecutionKey

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

LABEL = "valohai-airflow"


PREFIX = "flt"  # every project here is named flt-…, so its dag ids (and container labels) start with it


def our_containers() -> list[str]:
    """This module's containers, running or not: `docker ps -a --filter label=valohai-airflow`.

    Other suites may run containers on the same engine at the same time; ours are told apart by
    the `valohai-airflow.dag` label, which starts with the project name.
    """
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label={LABEL}",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{LABEL}.dag"}}}} {{{{.Status}}}}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [
        line for line in out.splitlines() if line.split(" ")[1:2] and line.split(" ")[1].startswith(PREFIX)
    ]


def containers_created_since(since: float) -> list[str]:
    """Containers of ours the engine created after `since` (its event log, not our bookkeeping)."""
    events = created_events(
        since, [LABEL], f'{{{{.Actor.Attributes.name}}}} {{{{index .Actor.Attributes "{LABEL}.dag"}}}}'
    )
    return [words[0] for words in events if words[1:2] and words[1].startswith(PREFIX)]


@pytest.fixture(autouse=True)
def no_container_left_behind() -> Iterator[None]:
    assert our_containers() == [], "a container of this module existed before the test"
    yield
    left = our_containers()
    if left:  # do not let one failure cascade into the next tests
        subprocess.run(
            ["docker", "rm", "-f", *[c.split()[0] for c in left]], capture_output=True, check=False
        )
    assert left == [], f"containers left behind: {left}"


def stored_outputs(run_id_part: str = "") -> list[Path]:
    return sorted(
        p for p in STORE.rglob("*") if p.is_file() and "/outputs/" in str(p) and run_id_part in str(p)
    )


# --- 1. image not available ----------------------------------------------------------------------


def test_missing_image_names_node_and_image(dags_folder: Path) -> None:
    image = "valohai-airflow/no-such-image:0"
    outcome = run_pipeline(dags_folder, "flt-noimage", one_node(step("s", "echo hi", image=image)), retries=1)
    assert outcome.states == {"only": "failed"}
    errors = outcome.errors("only")
    assert len(errors) == 2, errors  # the retry ran, and failed the same clean way
    for message in errors:
        assert "'only'" in message and image in message, message
    assert outcome.xcom("only") is None


# --- 2. command not found ------------------------------------------------------------------------


def test_command_not_found_gives_127_and_the_last_lines(dags_folder: Path) -> None:
    outcome = run_pipeline(
        dags_folder,
        "flt-nocmd",
        one_node(step("s", "echo before; nosuchcommand --go")),
        retries=1,
    )
    assert outcome.states == {"only": "failed"}
    errors = outcome.errors("only")
    assert len(errors) == 2, errors
    for message in errors:
        assert "'only'" in message and "code 127" in message, message
        assert "before" in message and "nosuchcommand" in message, message
    assert outcome.xcom("only") is None


# --- 3. non-zero exit after writing outputs ------------------------------------------------------


def test_outputs_written_before_a_failure_are_still_stored(dags_folder: Path) -> None:
    command = "echo kept > /valohai/outputs/partial.txt; echo '{\"loss\": 0.5}'; echo going down; exit 3"
    outcome = run_pipeline(dags_folder, "flt-exit3", one_node(step("s", command)))
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "code 3" in message and "going down" in message, message
    assert "1 file(s)" in message, message
    key = ExecutionKey(outcome.run.dag_id, outcome.run.run_id, "only")
    stored = STORE / key.prefix / "outputs" / "partial.txt"
    assert stored.read_text() == "kept\n"
    assert outcome.xcom("only") is None  # a failed try publishes no manifest


# --- 4. time-limit -------------------------------------------------------------------------------


def test_time_limit_stops_and_removes_the_container(dags_folder: Path) -> None:
    one = step("s", "echo started; echo early > /valohai/outputs/early.txt; sleep 30", extra="time-limit: 3")
    outcome = run_pipeline(dags_folder, "flt-timelimit", one_node(one), retries=1)
    assert outcome.states == {"only": "failed"}
    errors = outcome.errors("only")
    assert len(errors) == 2, errors
    for message in errors:
        assert "'only'" in message and "time-limit" in message and "3 s" in message, message
    assert outcome.seconds < 30, outcome.seconds  # two tries of 3 s, not two of 30 s
    key = ExecutionKey(outcome.run.dag_id, outcome.run.run_id, "only", try_number=2)
    assert (STORE / key.prefix / "outputs" / "early.txt").read_text() == "early\n"
    assert outcome.xcom("only") is None


# --- 5. no-output-timeout ------------------------------------------------------------------------


def test_no_output_timeout_stops_a_silent_step(dags_folder: Path) -> None:
    one = step("s", "echo started once; sleep 60", extra="no-output-timeout: 3")
    outcome = run_pipeline(dags_folder, "flt-silent", one_node(one))
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert (
        "'only'" in message
        and "no output for 3 s" in message
        and "no-output-timeout" in message
        and "started once" in message
    ), message
    assert outcome.seconds < 30, outcome.seconds
    assert outcome.xcom("only") is None


# --- 6. upstream manifest missing ----------------------------------------------------------------

TWO_NODES = """\
- step:
    name: make
    image: {busybox}
    command: "echo '{{\\"score\\": 3.5}}'; echo x > /valohai/outputs/data.txt"
- step:
    name: use
    image: {busybox}
    command: echo epochs={{parameter-value:epochs}}; ls /valohai/inputs/data
    parameters:
      - name: epochs
        type: integer
        default: 1
    inputs:
      - name: data
- pipeline:
    name: p
    nodes:
      - name: up
        type: execution
        step: make
      - name: down
        type: execution
        step: use
    edges:
      - [up.output.*.txt, down.input.data]
{more_edges}
"""


def test_missing_upstream_manifest_names_edge_and_upstream(dags_folder: Path) -> None:
    since = time.time()
    yaml = TWO_NODES.format(busybox=BUSYBOX, more_edges="")
    outcome = run_pipeline(dags_folder, "flt-noxcom", yaml, mark_success_pattern="^up$")
    assert outcome.states == {"up": "success", "down": "failed"}
    (message,) = outcome.errors("down")
    assert "up.output.*.txt → down.input.data" in message and "no manifest from 'up'" in message, message
    assert containers_created_since(since) == []
    assert outcome.xcom("down") is None


# --- 7. wrong parameter type in the run conf -----------------------------------------------------


def test_wrong_parameter_type_in_run_conf(dags_folder: Path) -> None:
    """Airflow validates the run conf against the DAG's Params (built from the step's types) before
    the run exists; the key names node and parameter, the message the value."""
    from airflow.sdk.exceptions import ParamValidationError

    since = time.time()
    one = step(
        "s", "echo {parameters}", extra="parameters:\n  - name: epochs\n    type: integer\n    default: 2"
    )
    with pytest.raises(ParamValidationError) as raised:
        run_pipeline(dags_folder, "flt-badconf", one_node(one), conf={"only.parameter.epochs": "many"})
    message = str(raised.value)
    assert "only.parameter.epochs" in message and "'many'" in message and "integer" in message, message
    assert containers_created_since(since) == []


# --- 8. required input without files -------------------------------------------------------------


def test_required_input_without_files_fails_before_the_container(dags_folder: Path) -> None:
    since = time.time()
    one = step("s", "ls /valohai/inputs/data", extra="inputs:\n  - name: data")
    outcome = run_pipeline(dags_folder, "flt-noinput", one_node(one))
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "required input 'data'" in message, message
    assert "only.input.data" in message, message  # what to do: the run conf key
    assert containers_created_since(since) == []


# --- 9. metadata edge with a value of the wrong type ---------------------------------------------


def test_metadata_edge_value_of_the_wrong_type(dags_folder: Path) -> None:
    yaml = TWO_NODES.format(busybox=BUSYBOX, more_edges="      - [up.metadata.score, down.parameter.epochs]")
    since = time.time()
    outcome = run_pipeline(dags_folder, "flt-metatype", yaml)
    assert outcome.states == {"up": "success", "down": "failed"}
    (message,) = outcome.errors("down")
    assert "'down'" in message and "epochs" in message and "3.5" in message, message
    assert "up.metadata.score → down.parameter.epochs" in message, message
    assert len(containers_created_since(since)) == 1  # the upstream's only
    assert outcome.xcom("down") is None


# --- 10. out of memory ---------------------------------------------------------------------------


def test_oom_killed_step_says_so(dags_folder: Path) -> None:
    one = step(
        "s",
        "echo allocating; head -c 200m /dev/zero | tail > /dev/null",
        extra="resources:\n  memory:\n    max: 16",
    )
    outcome = run_pipeline(dags_folder, "flt-oom", one_node(one))
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "out of memory" in message and "16 MiB" in message
    assert "resources.memory" in message, message
    assert "allocating" in message, message
    assert outcome.xcom("only") is None


# --- 12. a full disk and an S3 server that stops mid-upload --------------------------------------


@pytest.fixture
def tiny_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A real full disk: the store on a 1 MB tmpfs (we run as root in the test machine)."""
    mountpoint = tmp_path / "tiny-store"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    monkeypatch.setenv("AIRFLOW__VALOHAI__STORE_URL", str(mountpoint))
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def test_full_store_disk_fails_the_task_cleanly(dags_folder: Path, tiny_store: Path) -> None:
    command = "head -c 3000000 /dev/zero > /valohai/outputs/big.bin; echo wrote"
    outcome = run_pipeline(dags_folder, "flt-fulldisk", one_node(step("s", command)))
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "No space left on device" in message and "clear the task" in message, message
    assert "'only'" in message and "big.bin" in message, message
    assert outcome.xcom("only") is None
    assert not [p for p in tiny_store.rglob("big.bin")], "no half-written output under its final name"


def test_s3_server_stopping_mid_upload_fails_the_task_cleanly(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real: a private SeaweedFS server is stopped (SIGTERM) the moment the container exits, so it
    goes away while the 400 MB output is hashed and uploaded in 8 MiB multipart chunks. The test
    does not prove that some parts were already sent when it stopped (hashing takes about a second,
    the stop a moment): it shows the server vanishing around the upload, not a byte-exact cut.
    """
    import threading

    from tests.support.seaweed import SeaweedServer, make_bucket

    server = SeaweedServer()
    endpoint = server.start()
    try:
        make_bucket(endpoint, "faults")
        monkeypatch.setenv("AIRFLOW__VALOHAI__STORE_URL", "s3://faults/store")
        monkeypatch.setenv("AIRFLOW__VALOHAI__S3_ENDPOINT_URL", endpoint.endpoint_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", endpoint.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", endpoint.secret_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", endpoint.region)
        events = subprocess.Popen(
            ["docker", "events", "--filter", "event=die", "--filter", f"label={LABEL}.dag=flt-s3stop__p"],
            stdout=subprocess.PIPE,
            text=True,
        )

        def stop_on_die() -> None:
            assert events.stdout is not None
            if events.stdout.readline():
                server.stop()

        stopper = threading.Thread(target=stop_on_die, daemon=True)
        stopper.start()
        command = "head -c 400000000 /dev/urandom > /valohai/outputs/big.bin; echo wrote"
        outcome = run_pipeline(dags_folder, "flt-s3stop", one_node(step("s", command)))
        events.terminate()
        events.wait(timeout=10)
        stopper.join(timeout=20)
    finally:
        server.stop()
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "s3://faults/store" in message and "clear the task" in message, message
    assert outcome.xcom("only") is None
    assert outcome.seconds < 120, outcome.seconds


def outputs_page(dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
    """The Outputs page of one try, as the plugin's route renders it (auth left to its own tests)."""
    from airflow.utils.session import create_session
    from fastapi import HTTPException

    from valohai_airflow.airflow import web

    with create_session() as session:
        try:
            response = web.node_page(dag_id, run_id, task_id, -1, try_number, session)
        except HTTPException as error:
            return f"{error.status_code}: {error.detail}"
    return bytes(response.body).decode()


def test_full_store_mid_upload_keeps_no_partial_outputs_and_a_retry_starts_clean(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real full disk in the middle of a stage-out: the store on a 2 MB tmpfs that a 1 MB ballast
    half fills, and a step writing three 400 kB files, so the third does not fit. After the failed
    try the ballast is removed (freeing space) and the retry runs."""
    mountpoint = tmp_path / "store"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("AIRFLOW__VALOHAI__STORE_URL", str(mountpoint))
        ballast = mountpoint / "ballast"
        ballast.write_bytes(b"\1" * 1_000_000)
        seen: dict[str, Any] = {}

        def after_try(attempt: Try) -> None:
            if attempt.try_number == 1:
                seen["files"] = sorted(p.name for p in mountpoint.rglob("*") if p.is_file())
                seen["error"] = str(attempt.error)
                ballast.unlink()

        command = "for f in a b c; do head -c 400000 /dev/urandom > /valohai/outputs/$f.bin; done"
        outcome = run_pipeline(
            dags_folder,
            "flt-fullmid",
            one_node(step("s", command)),
            retries=1,
            after_try=after_try,
        )
        assert seen["files"] == ["ballast"], seen["files"]  # no partial a.bin / b.bin left by try 1
        assert "No space left on device" in seen["error"], seen["error"]
        assert "No output of this try is kept in the store" in seen["error"], seen["error"]
        assert outcome.states == {"only": "success"}
        first = ExecutionKey(outcome.run.dag_id, outcome.run.run_id, "only", try_number=1)
        second = ExecutionKey(outcome.run.dag_id, outcome.run.run_id, "only", try_number=2)
        assert not (mountpoint / first.prefix).exists()
        assert sorted(p.name for p in (mountpoint / second.prefix / "outputs").iterdir()) == [
            "a.bin",
            "b.bin",
            "c.bin",
        ]
        assert [f["path"] for f in outcome.xcom("only")["outputs"]] == ["a.bin", "b.bin", "c.bin"]
        page = outputs_page(outcome.run.dag_id, outcome.run.run_id, "only", 1)
        assert page.startswith("404: nothing stored for try 1"), page
        assert "Outputs (3)" in outputs_page(outcome.run.dag_id, outcome.run.run_id, "only", 2)
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


#: File names a POSIX step may write that a store key cannot hold as they are (backslash, a newline,
#: a percent sign, wildcard characters, a control character, LocalStore's temp-file prefix).
ODD_NAMES = [
    "back\\slash.txt",
    "new\nline.txt",
    "50%.csv",
    "d[1]*?.txt",
    "tab\there.txt",
    ".vh-tmp-x",
    "sub/%41.txt",
]

ODD_PIPELINE = """\
- step:
    name: make
    image: {busybox}
    command: {make}
- step:
    name: use
    image: {busybox}
    command: cp -R /valohai/inputs/data/. /valohai/outputs/
    inputs:
      - name: data
- pipeline:
    name: p
    nodes:
      - name: up
        type: execution
        step: make
      - name: down
        type: execution
        step: use
    edges:
      - [up.output.**, down.input.data]
"""


def _odd_files_script() -> str:
    """Shell that writes each of ODD_NAMES with its own name as content (names via printf escapes)."""
    lines = ["mkdir -p /valohai/outputs/sub"]
    for name in ODD_NAMES:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("%", "%%")
        lines.append(f"n=$(printf '{escaped}x'); printf '%s' \"${{n%x}}\" > \"/valohai/outputs/${{n%x}}\"")
    return "; ".join(lines)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_any_file_name_is_stored_listed_and_staged_downstream(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch, store: str, request: pytest.FixtureRequest
) -> None:
    """Before: a backslash name failed the node whose step succeeded (the key was refused), and the
    other names were stored under keys that did not read back as themselves."""
    from airflow.utils.session import create_session

    from valohai_airflow.airflow import web

    name = f"flt-names{store}"
    if store == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        for key, value in {
            "AIRFLOW__VALOHAI__STORE_URL": f"s3://{bucket}/store",
            "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": endpoint.endpoint_url,
            "AWS_ACCESS_KEY_ID": endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": endpoint.secret_key,
            "AWS_DEFAULT_REGION": endpoint.region,
        }.items():
            monkeypatch.setenv(key, value)
    yaml = ODD_PIPELINE.format(busybox=BUSYBOX, make=json.dumps(_odd_files_script()))
    outcome = run_pipeline(dags_folder, name, yaml)
    assert outcome.states == {"up": "success", "down": "success"}, outcome.tries
    up, down = outcome.xcom("up"), outcome.xcom("down")
    want = sorted(ODD_NAMES)
    assert sorted(f["path"] for f in up["outputs"]) == want
    content = {n: hashlib.sha256(n.encode()).hexdigest() for n in ODD_NAMES}  # each holds its own path
    assert {f["path"]: f["sha256"] for f in up["outputs"]} == content
    # down got every file under its name and copied it back out: every name arrived whole
    basenames = {n.rpartition("/")[2]: sha for n, sha in content.items()}
    assert {f["path"]: f["sha256"] for f in down["inputs"]["data"]} == basenames
    assert {f["path"]: f["sha256"] for f in down["outputs"]} == basenames
    page = outputs_page(outcome.run.dag_id, outcome.run.run_id, "up", 1)
    assert f"Outputs ({len(ODD_NAMES)})" in page
    for odd in ODD_NAMES:
        assert html.escape(odd) in page, odd
    with create_session() as session:
        response = web.output_file(
            outcome.run.dag_id, outcome.run.run_id, "up", -1, 1, "back\\slash.txt", session
        )
        assert Path(response.path).read_bytes() == b"back\\slash.txt"
        assert "back%5Cslash.txt" in response.headers["content-disposition"]  # its real name, quoted


def test_s3_upload_failing_mid_stage_out_keeps_no_partial_outputs(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: Any, s3_bucket: str
) -> None:
    """A real S3 refusal in the middle of a stage-out: one output's key is longer than S3's 1,024
    bytes (a deep but legal POSIX path), which SeaweedFS rejects while the other files upload."""
    from valohai_airflow.store.s3 import S3Store

    options = {
        "AIRFLOW__VALOHAI__STORE_URL": f"s3://{s3_bucket}/store",
        "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_key,
        "AWS_DEFAULT_REGION": s3_endpoint.region,
    }
    for key, value in options.items():
        monkeypatch.setenv(key, value)
    command = (
        "cd /valohai/outputs; echo a > a.txt; echo b > b.txt; d=$(head -c 200 /dev/zero | tr '\\0' x); "
        "mkdir -p $d/$d/$d/$d/$d; echo deep > $d/$d/$d/$d/$d/deep.txt"
    )
    outcome = run_pipeline(dags_folder, "flt-s3long", one_node(step("s", command)))
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "No output of this try is kept in the store" in message, message
    store = S3Store(
        s3_bucket,
        "store",
        endpoint_url=s3_endpoint.endpoint_url,
        access_key=s3_endpoint.access_key,
        secret_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    key = ExecutionKey(outcome.run.dag_id, outcome.run.run_id, "only")
    assert store.list_prefix(key.prefix) == []  # a.txt and b.txt were uploaded, then removed
    page = outputs_page(outcome.run.dag_id, outcome.run.run_id, "only", 1)
    assert page.startswith("404: nothing stored for try 1"), page
