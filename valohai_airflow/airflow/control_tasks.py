"""`on-error` and node actions → Airflow: trigger rules, skips, failures and approval tasks.

- `stop-next`: Airflow's default `all_success` already blocks only the failed node's dependents.
- `continue`: a node downstream of a continue node gets `all_done`, so it runs when that upstream
  failed; the failed node's edges bring nothing (runtime.edge_resolution). Before its container starts, the
  node checks its *other* upstreams through the execution API (`get_task_states`): one of them not
  successful still blocks it, as `all_success` would have.
- `stop-all` (and `retry` once the retries are used up): the failed node skips every task of the
  run that has not started and is neither upstream nor downstream of it (Airflow's skip of other
  tasks, the call `SkipMixin` makes), so parallel branches stop; its own dependents become
  `upstream_failed`, so the run fails. Airflow's DAG-level `fail_fast` is not used: in 3.3 it
  skips the failed task's dependents too, and a run whose leaves are all skipped ends *successful*.
- actions: `decide` (plan.control) picks what fires; `stop-pipeline` skips the rest of the run
  and ends the run without error, saying why in the task log and in XCom `valohai_control`;
  `error-pipeline` fails the node (and stops parallel branches) so the run fails;
  `require-approval` on node-starting is a standard-provider `ApprovalOperator` inserted before
  the node: Reject stops the pipeline, no answer within `approval.timeout_seconds` fails it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.standard.exceptions import HITLTimeoutError
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import DAG, BaseOperator, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DownstreamTasksSkipped

from valohai_airflow.airflow.task_ids import pipeline_task_ids, sibling_task_id
from valohai_airflow.plan import control as plan_control
from valohai_airflow.plan.control import Decision
from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.plan.naming import APPROVAL_SUFFIX
from valohai_airflow.runtime.parameters import NodeParameterError, resolve_parameters

TaskRef = str | tuple[str, int]
CONTROL_XCOM_KEY = "valohai_control"
SUCCESS_STATES = ("success",)


def apply_control(
    dag: DAG, pipeline: PipelinePlan, tasks: Mapping[str, BaseOperator], approval_timeout: timedelta
) -> None:
    """Trigger rules for `continue` upstreams and an approval task before each gated node."""
    for node in pipeline.nodes:
        task = tasks[node.name]
        if plan_control.continue_upstreams(pipeline, node):
            task.trigger_rule = TriggerRule.ALL_DONE
        actions = plan_control.approval_actions(node)
        if not actions:
            continue
        gate = ApprovalGate(
            task_id=f"{node.task_id}{APPROVAL_SUFFIX}",
            task_display_name=f"approve {node.name}",
            node=node,
            subject=f"Start node {node.name!r} of pipeline {pipeline.name!r}?",
            body=(
                f"valohai.yaml asks for an approval before node **{node.name}** starts "
                f"(step `{node.step.name if node.step else node.deployment}`). Reject stops the pipeline; "
                f"without an answer within {approval_timeout.total_seconds():g} s the run fails."
            ),
            response_timeout=approval_timeout,
            trigger_rule=task.trigger_rule,
            dag=dag,
        )
        for upstream in list(task.upstream_list):
            upstream >> gate
        gate >> task


def others(task: BaseOperator, context: Any) -> list[TaskRef]:
    """Every other task of the run: what stop-pipeline skips (Airflow leaves running and finished
    ones). A task node's executions count one by one, its siblings of this one included."""
    return _instances(context, [t for t in pipeline_task_ids(task) if t != task.task_id], own=task)


def parallel(task: BaseOperator, context: Any, node: NodePlan) -> list[TaskRef]:
    """Tasks neither upstream nor downstream of `task`: what a stop-all failure skips (with the
    siblings of a task node's execution when its on-error or on-child-error stops them). Its own
    dependents are left to become upstream_failed, so the run fails."""
    related = {t.task_id for t in task.get_flat_relatives(upstream=True)}
    related |= {t.task_id for t in task.get_flat_relatives(upstream=False)}
    ids = [t for t in pipeline_task_ids(task) if t != task.task_id and t not in related]
    return _instances(context, ids, own=task if plan_control.stops_siblings(node) else None)


def _instances(context: Any, task_ids: list[str], own: BaseOperator | None) -> list[TaskRef]:
    """What a skip request names: a plain task id means map index -1 (a task, or a task node not
    expanded yet); an expanded task node's executions are named by (task id, map index). `own`:
    also the siblings of the calling execution."""
    ti = context["ti"]
    wanted = [*task_ids, own.task_id] if own is not None and ti.map_index >= 0 else task_ids
    refs: list[TaskRef] = list(task_ids)
    for task_id, by_index in run_states(ti, wanted).items():
        refs += [
            (task_id, i) for i in sorted(by_index) if i >= 0 and (task_id, i) != (ti.task_id, ti.map_index)
        ]
    return refs


def run_states(ti: Any, task_ids: list[str]) -> dict[str, dict[int, str | None]]:
    """Airflow's states of these tasks in this run, by map index (-1: a task, or a task node not
    expanded yet; the execution API names expanded ones `<task id>_<map index>`)."""
    if not task_ids:
        return {}
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]).get(ti.run_id, {})
    found: dict[str, dict[int, str | None]] = {}
    for key, state in states.items():
        task_id, _, index = key.rpartition("_")
        if key in task_ids:
            found.setdefault(key, {})[-1] = state
        elif task_id in task_ids and index.isdigit():
            found.setdefault(task_id, {})[int(index)] = state
    return found


def skip_now(tasks: Iterable[TaskRef]) -> None:
    """Skip tasks of this run while the calling task goes on to its own end state (fail or skip).

    The same execution-API request `SkipMixin.skip` makes, sent directly because `skip` ends the
    calling task as *successful*; the server leaves running and finished tasks alone.
    """
    from airflow.sdk.execution_time.comms import SkipDownstreamTasks
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    refs = list(tasks)
    if refs:
        SUPERVISOR_COMMS.send(SkipDownstreamTasks(tasks=refs))


def _record(task: BaseOperator, context: Any, decision: Decision, outcome: str) -> None:
    task.log.warning("%s: %s", decision.reason, outcome)
    context["ti"].xcom_push(key=CONTROL_XCOM_KEY, value={"action": decision.then, "reason": decision.reason})


def _decide(
    task: BaseOperator, node: NodePlan, when: str, metadata: Mapping[str, Any], parameters: Mapping[str, Any]
) -> list[Decision]:
    """The node's actions at moment `when`: each evaluation in the task log (a warning when a
    condition names a key the node does not have), then what fires."""
    evaluations = plan_control.evaluate(node, when, metadata, parameters)
    for evaluation in evaluations:
        log = task.log.warning if evaluation.missing else task.log.info
        log("%s", evaluation.line(node, when))
    return plan_control.decisions(node, when, evaluations)


def check_upstreams(task: BaseOperator, context: Any, pipeline: PipelinePlan, node: NodePlan) -> None:
    """A node run by `all_done` (it has a continue upstream) is still blocked by any other upstream
    that did not succeed, like `all_success` would block it."""
    if task.trigger_rule != TriggerRule.ALL_DONE:
        return
    tolerated = {
        sibling_task_id(task, pipeline.node(n).task_id)
        for n in plan_control.continue_upstreams(pipeline, node)
    }
    blocking = sorted(set(task.upstream_task_ids) - tolerated)
    if not blocking:
        return
    states = run_states(context["ti"], blocking)
    unfinished: dict[str, str | None] = {}
    for task_id in blocking:  # a task node blocks unless every execution succeeded
        bad = [s for s in states.get(task_id, {-1: None}).values() if s not in SUCCESS_STATES]
        if bad:
            unfinished[task_id] = bad[0]
    if unfinished:
        described = ", ".join(f"{t!r} ({state or 'not run'})" for t, state in unfinished.items())
        raise AirflowFailException(
            f"node {node.name!r} did not start: upstream {described} did not succeed and is not "
            "`on-error: continue`, so this node is blocked"
        )


def before_start(task: BaseOperator, context: Any, node: NodePlan, parameters: Mapping[str, Any]) -> None:
    """node-starting actions, with the node's resolved parameters (no metadata exists yet)."""
    decisions = _decide(task, node, plan_control.NODE_STARTING, {}, parameters)
    stop = plan_control.first(decisions, plan_control.STOP_PIPELINE, plan_control.ERROR_PIPELINE)
    if stop is None:
        return
    if stop.then == plan_control.STOP_PIPELINE:
        _record(task, context, stop, "the pipeline stops here without error; the node does not run")
        skip_now(others(task, context))
        raise AirflowSkipException(stop.reason)
    _record(task, context, stop, "the pipeline fails; the node does not run")
    skip_now(parallel(task, context, node))
    raise AirflowFailException(stop.reason)


def after_success(task: BaseOperator, context: Any, node: NodePlan, manifest: Mapping[str, Any]) -> None:
    """node-complete actions on the manifest's metadata and parameters."""
    decisions = _decide(
        task,
        node,
        plan_control.NODE_COMPLETE,
        manifest.get("metadata") or {},
        manifest.get("parameters") or {},
    )
    stop = plan_control.first(decisions, plan_control.STOP_PIPELINE, plan_control.ERROR_PIPELINE)
    if stop is None:
        return
    if stop.then == plan_control.STOP_PIPELINE:
        _record(task, context, stop, "the pipeline stops here without error; the rest is skipped")
        context["ti"].xcom_push(key="return_value", value=dict(manifest))
        raise DownstreamTasksSkipped(tasks=others(task, context))  # type: ignore[no-untyped-call]
    _record(task, context, stop, "the pipeline fails; the node's result is not passed on")
    skip_now(parallel(task, context, node))
    raise AirflowFailException(stop.reason)


def after_failure(
    task: BaseOperator, context: Any, node: NodePlan, manifest: Mapping[str, Any], message: str
) -> None:
    """On the node's final failure: node-error actions, else its on-error. Returns when the
    operator should raise its own failure; raises when an action decides the node's end."""
    ti = context["ti"]
    if ti.try_number <= ti.max_tries:
        return  # Airflow retries it; only the last try decides
    decisions = _decide(
        task, node, plan_control.NODE_ERROR, manifest.get("metadata") or {}, manifest.get("parameters") or {}
    )
    stop = plan_control.first(decisions, plan_control.STOP_PIPELINE, plan_control.ERROR_PIPELINE)
    if stop is not None and stop.then == plan_control.STOP_PIPELINE:
        _record(task, context, stop, "the pipeline stops here without error; the rest is skipped")
        skip_now(others(task, context))
        raise AirflowSkipException(f"{stop.reason}. The node failed: {message}")
    if stop is not None or plan_control.stops_everything(node):
        reason = stop.reason if stop else f"node {node.name!r} failed (on-error: {node.on_error})"
        task.log.error("%s: stopping the tasks of other branches that have not started", reason)
        skip_now(parallel(task, context, node))
    elif plan_control.stops_siblings(node):  # on-child-error: stop-all-and-error beside another on-error
        task.log.error("node %r: stopping its executions that have not started (on-child-error)", node.name)
        skip_now(_instances(context, [], own=task))


def stop_siblings(task: BaseOperator, context: Any, reason: str) -> None:
    """A task blueprint's stop-condition met by this execution: the task's executions that have not
    started are skipped (running ones run to their end)."""
    task.log.info("%s: the task stops; its executions that have not started are skipped", reason)
    skip_now(_instances(context, [], own=task))


class ApprovalGate(ApprovalOperator):
    """`require-approval` before a node: Airflow's human-in-the-loop Approve/Reject task.

    Reject skips the rest of the run (the pipeline stops, the run ends without error); no answer
    within `response_timeout` fails it with a message naming the sidecar setting. When the
    action's `if` does not hold for the node's parameter values (from the trigger form's node and
    pipeline parameters), nobody is asked.
    """

    ui_color = "#fcd34d"

    def __init__(self, *, node: NodePlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node = node

    def execute(self, context: Any) -> Any:
        parameters = _form_parameters(self.node, context["params"])
        evaluations = [
            plan_control.evaluate_action(a, {}, parameters) for a in plan_control.approval_actions(self.node)
        ]
        for evaluation in evaluations:
            log = self.log.warning if evaluation.missing else self.log.info
            log("%s", evaluation.line(self.node, plan_control.NODE_STARTING))
        if not any(e.holds for e in evaluations):
            self.log.info("node %r: no approval needed (its `if` does not hold)", self.node.name)
            return {"chosen_options": [self.APPROVE], "approval": "not needed"}
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        try:
            result = HITLOperator.execute_complete(self, context=context, event=event)
        except HITLTimeoutError as error:
            timeout = self.response_timeout.total_seconds() if self.response_timeout else 0
            raise AirflowFailException(
                f"node {self.node.name!r}: nobody approved or rejected it within {timeout:g} s "
                "(approval.timeout_seconds in valohai-airflow.yaml); the pipeline does not go on"
            ) from error
        chosen = result["chosen_options"][0]
        who = (result.get("responded_by_user") or {}).get("name", "someone")
        if chosen == self.APPROVE:
            self.log.info("node %r approved by %s", self.node.name, who)
            return result
        decision = Decision(plan_control.STOP_PIPELINE, f"node {self.node.name!r}: rejected by {who}")
        _record(self, context, decision, "the pipeline stops here without error; the rest is skipped")
        context["ti"].xcom_push(key="return_value", value=dict(result))
        raise DownstreamTasksSkipped(tasks=others(self, context))  # type: ignore[no-untyped-call]


def _form_parameters(node: NodePlan, params: Mapping[str, Any]) -> dict[str, Any]:
    """The node's parameter values as the run gives them before its edges (the trigger form's node
    and pipeline parameters, else the defaults), by the node's own rule (runtime/parameters.py)."""
    try:
        return resolve_parameters(node, dict(params))
    except NodeParameterError as error:  # the node could not start with them either
        raise AirflowFailException(f"{error}; nobody was asked to approve it") from error
