"""on-error modes and node actions, run for real: Airflow's `dag.test()`, real containers.

`dag.test()` runs one task at a time, so "parallel" branches here are branches that have not
started when a node fails. Approvals are answered the way a person would: through Airflow's HITL
REST endpoint (`PATCH .../taskInstances/{task}/-1/hitlDetails` of the core API app, in process,
on the same metadata DB). An unanswered approval is ended by the scheduler's own timeout sweep
(`SchedulerJobRunner.check_awaiting_input_timeouts`), which `dag.test()` does not run itself.
Every wait is bounded: a watchdog fails the DAG run in the DB if a test would otherwise hang.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.pipelines import WATCHDOG_SECONDS, Outcome, run_pipeline, step

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PREFIX = "ctl"


INPUTS = """
inputs:
  - name: x
    optional: true
  - name: y
    optional: true
"""
LOSS = """
parameters:
  - name: loss
    type: float
    default: 0.5
"""
STEPS = (
    step("ok", "echo ok", INPUTS)
    + step("boom", "echo about to fail; echo '{\"loss\": 0.9}'; exit 3")
    + step("report", r"""printf '\173"loss": %s}\n' {parameter-value:loss}""", LOSS + INPUTS)
)


def branches(bad_extra: str = "") -> str:
    """bad → next, and an independent branch side → after-side."""
    extra = f"        {bad_extra}\n" if bad_extra else ""
    return (
        STEPS
        + "- pipeline:\n    name: p\n    nodes:\n"
        + "      - name: bad\n        type: execution\n        step: boom\n"
        + extra
        + "".join(
            f"      - name: {n}\n        type: execution\n        step: ok\n"
            for n in ("next", "side", "after-side")
        )
        + "    edges:\n      - [bad.output.*, next.input.x]\n      - [side.output.*, after-side.input.x]\n"
    )


# --- on-error --------------------------------------------------------------------------------------


def test_stop_all_fails_the_run_and_stops_the_other_branch(dags_folder: Path) -> None:
    outcome = run_pipeline(dags_folder, f"{PREFIX}-stopall", branches())
    states = outcome.states
    assert outcome.state == "failed", states
    assert states["bad"] == "failed" and states["next"] == "upstream_failed", states
    assert states["after-side"] == "skipped", states  # the other branch did not go on


def test_stop_next_blocks_only_dependents(dags_folder: Path) -> None:
    outcome = run_pipeline(dags_folder, f"{PREFIX}-stopnext", branches("on-error: stop-next"))
    states = outcome.states
    assert states["bad"] == "failed" and states["next"] == "upstream_failed", states
    assert states["side"] == "success" and states["after-side"] == "success", states
    assert outcome.state == "failed"


def test_continue_runs_dependents_with_what_succeeded(dags_folder: Path) -> None:
    yaml = STEPS + textwrap.dedent(
        """\
        - pipeline:
            name: p
            nodes:
              - name: bad
                type: execution
                step: boom
                on-error: continue
              - name: good
                type: execution
                step: report
              - name: last
                type: execution
                step: report
            edges:
              - [bad.metadata.loss, last.parameter.loss]
              - [good.output.*, last.input.x]
        """
    )
    outcome = run_pipeline(dags_folder, f"{PREFIX}-continue", yaml)
    states = outcome.states
    assert states["bad"] == "failed" and states["good"] == "success", states
    assert states["last"] == "success", states
    assert outcome.xcom("last")["parameters"]["loss"] == 0.5  # the failed edge brought nothing: the default
    assert outcome.state == "success"


def test_continue_does_not_unblock_a_failed_stop_next_upstream(dags_folder: Path) -> None:
    yaml = STEPS + textwrap.dedent(
        """\
        - pipeline:
            name: p
            nodes:
              - name: tolerated
                type: execution
                step: boom
                on-error: continue
              - name: blocking
                type: execution
                step: boom
                on-error: stop-next
              - name: last
                type: execution
                step: ok
            edges:
              - [tolerated.output.*, last.input.x]
              - [blocking.output.*, last.input.y]
        """
    )
    outcome = run_pipeline(dags_folder, f"{PREFIX}-mixed", yaml)
    states = outcome.states
    assert states["last"] == "failed", states  # blocked by `blocking`, with a message; never ran
    assert outcome.xcom("last") is None
    assert outcome.state == "failed"


def test_retry_uses_the_sidecar_count(dags_folder: Path) -> None:
    sidecar = """\
        on_error_retry:
          retries: 2
          delay_seconds: 0
          backoff: fixed
        """
    outcome = run_pipeline(dags_folder, f"{PREFIX}-retry", branches("on-error: retry"), sidecar=sidecar)
    states = outcome.states
    assert states["bad"] == "failed", states
    assert outcome.ti("bad").try_number == 3  # the first try and two retries
    assert states["next"] == "upstream_failed", states  # out of retries: its dependents are blocked
    assert outcome.state == "failed"


# --- actions -------------------------------------------------------------------------------------


def chain(actions: str, first_step: str = "report") -> str:
    """first → second, first carrying `actions`."""
    body = textwrap.indent(textwrap.dedent(actions).strip("\n"), " " * 8)
    return (
        STEPS
        + "- pipeline:\n    name: p\n    nodes:\n"
        + f"      - name: first\n        type: execution\n        step: {first_step}\n"
        + body
        + "\n      - name: second\n        type: execution\n        step: ok\n"
        + "    edges:\n      - [first.output.*, second.input.x]\n"
    )


STOP_WHEN_GOOD = """\
    actions:
      - when: node-complete
        if: metadata.loss < 0.4
        then: stop-pipeline
    """


@pytest.mark.parametrize(("loss", "stops"), [(0.2, True), (0.7, False)])
def test_stop_pipeline_on_node_complete_condition(dags_folder: Path, loss: float, stops: bool) -> None:
    outcome = run_pipeline(
        dags_folder, f"{PREFIX}-stop{int(stops)}", chain(STOP_WHEN_GOOD), conf={"first.parameter.loss": loss}
    )
    states = outcome.states
    assert outcome.state == "success", states
    assert states["first"] == "success"
    assert outcome.xcom("first")["metadata"]["loss"] == loss  # its result is still published
    if stops:
        assert states["second"] == "skipped", states
        control = outcome.xcom("first", "valohai_control")
        assert control["action"] == "stop-pipeline" and "metadata.loss < 0.4" in control["reason"], control
    else:
        assert states["second"] == "success", states


def test_error_pipeline_fails_the_run(dags_folder: Path) -> None:
    actions = """\
        actions:
          - when: node-complete
            if: [parameter.loss > 0.1, metadata.loss >= 0.5]
            then: error-pipeline
        """
    outcome = run_pipeline(dags_folder, f"{PREFIX}-error", chain(actions))
    states = outcome.states
    assert states["first"] == "failed" and states["second"] == "upstream_failed", states
    assert outcome.state == "failed"
    assert outcome.xcom("first", "valohai_control")["action"] == "error-pipeline"


def test_stop_pipeline_on_node_error_ends_without_error(dags_folder: Path) -> None:
    actions = """\
        actions:
          - when: node-error
            then: stop-pipeline
        """
    outcome = run_pipeline(dags_folder, f"{PREFIX}-onerr", chain(actions, first_step="boom"))
    states = outcome.states
    assert states["first"] == "skipped" and states["second"] == "skipped", states
    assert outcome.state == "success"
    assert "node-error" in outcome.xcom("first", "valohai_control")["reason"]


def test_stop_pipeline_on_node_starting_runs_no_container(dags_folder: Path) -> None:
    actions = """\
        actions:
          - when: node-starting
            if: parameter.loss == 0.5
            then: stop-pipeline
          - when: node-starting
            then: noop
        """
    outcome = run_pipeline(dags_folder, f"{PREFIX}-onstart", chain(actions))
    states = outcome.states
    assert states["first"] == "skipped" and states["second"] == "skipped", states
    assert outcome.xcom("first") is None  # never ran
    assert outcome.state == "success"


def test_noop_changes_nothing(dags_folder: Path) -> None:
    actions = """\
        actions:
          - when: [node-starting, node-complete]
            then: noop
        """
    outcome = run_pipeline(dags_folder, f"{PREFIX}-noop", chain(actions))
    assert outcome.states == {"first": "success", "second": "success"}
    assert outcome.state == "success"


# --- require-approval ----------------------------------------------------------------------------

APPROVAL = """\
    actions:
      - when: node-starting
        then: require-approval
    """


def answer(option: str, deadline: float = 90) -> Callable[[str], None]:
    """A person answering through Airflow's HITL REST API once the approval is waiting."""

    def respond(dag_id: str) -> None:
        from airflow.api_fastapi.app import create_app
        from airflow.configuration import conf
        from fastapi.testclient import TestClient

        before = conf.get("core", "simple_auth_manager_all_admins", fallback="False")
        conf.set("core", "simple_auth_manager_all_admins", "True")  # for this client only: put back below
        try:
            client = TestClient(create_app(apps="core"))
            stop = time.monotonic() + deadline
            while time.monotonic() < stop:
                listed = client.get(f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails")
                details = listed.json().get("hitl_details", []) if listed.status_code == 200 else []
                if details:
                    ti = details[0]["task_instance"]
                    response = client.patch(
                        f"/api/v2/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/-1/hitlDetails",
                        json={"chosen_options": [option], "params_input": {}},
                    )
                    assert response.status_code == 200, response.text
                    return
                time.sleep(0.5)
        finally:
            conf.set("core", "simple_auth_manager_all_admins", before)

    return respond


def scheduler_timeout_sweep(dag_id: str) -> None:
    """What a running scheduler does for awaiting-input tasks whose response timeout passed."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    runner = SchedulerJobRunner(job=Job())
    stop = time.monotonic() + 90
    while time.monotonic() < stop:
        runner.check_awaiting_input_timeouts()
        time.sleep(0.5)


def approval_pipeline(
    dags_folder: Path, name: str, helper: Callable[[str], None], sidecar: str | None = None
) -> Outcome:
    return run_pipeline(dags_folder, name, chain(APPROVAL, first_step="ok"), helper=helper, sidecar=sidecar)


def test_approval_approved_through_the_rest_api(dags_folder: Path) -> None:
    outcome = approval_pipeline(dags_folder, f"{PREFIX}-approve", answer("Approve"))
    states = outcome.states
    assert states == {"first__approval": "success", "first": "success", "second": "success"}, states
    assert outcome.state == "success"


def test_approval_rejected_stops_the_pipeline(dags_folder: Path) -> None:
    outcome = approval_pipeline(dags_folder, f"{PREFIX}-reject", answer("Reject"))
    states = outcome.states
    assert states["first__approval"] == "success", states
    assert states["first"] == "skipped" and states["second"] == "skipped", states
    assert outcome.state == "success"
    assert "rejected" in outcome.xcom("first__approval", "valohai_control")["reason"]


def test_unanswered_approval_times_out_from_the_sidecar(dags_folder: Path) -> None:
    sidecar = """\
        approval:
          timeout_seconds: 2
        """
    outcome = approval_pipeline(dags_folder, f"{PREFIX}-timeout", scheduler_timeout_sweep, sidecar=sidecar)
    states = outcome.states
    assert states["first__approval"] == "failed" and states["first"] == "upstream_failed", states
    assert outcome.state == "failed"
    assert outcome.seconds < WATCHDOG_SECONDS  # ended by the timeout, not by the test's watchdog


CONDITIONAL_APPROVAL = (
    STEPS
    + """\
- pipeline:
    name: p
    parameters:
      - name: loss
        default: 0.5
        targets: [first.parameter.loss]
    nodes:
      - name: first
        type: execution
        step: report
        actions:
          - when: node-starting
            if: parameter.loss > 0.8
            then: require-approval
    edges: []
"""
)


def test_an_approval_if_sees_the_pipeline_parameter_value(dags_folder: Path) -> None:
    """The pipeline parameter sets the node's `loss` to 0.9: the `if` holds, somebody is asked (and
    rejects); with the default 0.5 it does not hold and nobody is asked. (The gate once read only
    the node's own form field, saw 0.5 and let the node start unasked.)"""
    asked = run_pipeline(
        dags_folder, f"{PREFIX}-ifpipe", CONDITIONAL_APPROVAL, conf={"loss": 0.9}, helper=answer("Reject")
    )
    assert asked.states == {"first__approval": "success", "first": "skipped"}, asked.states
    assert "rejected" in asked.xcom("first__approval", "valohai_control")["reason"]
    unasked = run_pipeline(dags_folder, f"{PREFIX}-ifdefault", CONDITIONAL_APPROVAL)
    assert unasked.states == {"first__approval": "success", "first": "success"}, unasked.states
    assert unasked.xcom("first__approval")["approval"] == "not needed"


def test_an_action_on_a_missing_metadata_key_says_so_in_the_task_log(dags_folder: Path) -> None:
    """The step prints `loss` but the condition asks for `accuracy`: the action does not fire, and
    the node's log says the key is missing and what was decided (not a silent skip)."""
    import structlog

    actions = """\
        actions:
          - when: node-complete
            if: metadata.accuracy < 0.4
            then: stop-pipeline
        """
    with structlog.testing.capture_logs() as logs:
        outcome = run_pipeline(dags_folder, f"{PREFIX}-missing", chain(actions))
    assert outcome.states == {"first": "success", "second": "success"}
    lines = [(entry.get("log_level"), str(entry.get("event"))) for entry in logs]
    assert (
        "warning",
        "node 'first': action on node-complete: metadata.accuracy is missing (the step never printed it), "
        "so `metadata.accuracy < 0.4` does not hold: stop-pipeline not taken",
    ) in lines
