"""The Executions page of a DAG on the plugin's app (/valohai/executions/<dag>): its node executions
across its newest runs, sortable and filterable by any column, and a compare view of the selected
ones with their metadata series charted.

Bounded reads: one page covers RUNS_PER_PAGE runs (older runs on the next pages) and at most
MAX_ROWS task instances, whose manifests are read in one XCom query for exactly those rows; a
`task` filter narrows it to one node. Sorting and filtering are query parameters handled here, so
the page needs no script (the plugin's pages forbid them). The same auth as the node pages: a user
who may read the DAG's XComs.

Airflow 3.3's trigger form cannot be prefilled from a URL (its UI has no trigger route and reads no
conf parameter), so "copy" shows an execution's run conf as JSON to paste into the form's
Advanced options -> Configuration JSON.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any

from airflow.api_fastapi.common.db.common import SessionDep
from fastapi import HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from valohai_airflow.airflow import executions
from valohai_airflow.airflow.executions import ExecutionRef, ExecutionRow
from valohai_airflow.airflow.links import executions_path, node_page_path, ui_path
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.airflow.web import (
    MAX_SERIES_ROWS,
    PAGE_HEADERS,
    READABLE,
    TEMPLATES,
    NodeTry,
    app,
    xcom_manifest,
)
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.manifest import Manifest, stored_manifest
from valohai_airflow.store import StoreError

RUNS_PER_PAGE = 10
MAX_ROWS = 200
MAX_COMPARE = 8
#: The operators whose tasks are node executions (`TaskInstance.operator` holds the class name).
NODE_OPERATORS = ("ValohaiExecutionOperator", "ValohaiStepOperator")
FILTER_PREFIX = "f."


def _rows(session: Any, dag_id: str, task: str | None, page: int) -> tuple[list[ExecutionRow], bool, bool]:
    """The rows of one page of runs (newest first), every try of every node execution; whether older
    runs exist; whether MAX_ROWS cut it."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from sqlalchemy import select, tuple_

    run_ids = list(
        session.scalars(
            select(DagRun.run_id)
            .where(DagRun.dag_id == dag_id)
            .order_by(DagRun.id.desc())
            .offset(page * RUNS_PER_PAGE)
            .limit(RUNS_PER_PAGE + 1)
        )
    )
    older = len(run_ids) > RUNS_PER_PAGE
    run_ids = run_ids[:RUNS_PER_PAGE]
    if not run_ids:
        return [], older, False
    tis: list[Any] = []
    for model in (TaskInstance, TaskInstanceHistory):  # the latest try, then the earlier ones
        query = select(model).where(
            model.dag_id == dag_id, model.run_id.in_(run_ids), model.operator.in_(NODE_OPERATORS)
        )
        if task:
            query = query.where(model.task_id == task)
        tis += session.scalars(query.limit(MAX_ROWS + 1 - len(tis)))
        if len(tis) > MAX_ROWS:
            break
    cut = len(tis) > MAX_ROWS
    tis = tis[:MAX_ROWS]
    keys = list({(ti.run_id, ti.task_id, ti.map_index) for ti in tis})
    latest: dict[tuple[str, str, int], Manifest | None] = {}
    if keys:
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.key == "return_value",
                tuple_(XComModel.run_id, XComModel.task_id, XComModel.map_index).in_(keys),
            )
        )
        latest = {(x.run_id, x.task_id, x.map_index): xcom_manifest(x.value) for x in xcoms}
    stores = valohai_settings().stores

    def manifest(ref: ExecutionRef) -> Manifest | None:
        """The try's XCom when it is this try's, else what its finished stage-out stored."""
        key = ExecutionKey(dag_id, ref.run_id, ref.task_id, ref.map_index, ref.try_number)
        found = latest.get((ref.run_id, ref.task_id, ref.map_index))
        if found is not None and (found.execution_id == key.execution_id or found.reused_from):
            return found
        try:
            value = stored_manifest(stores.store, key)
            return Manifest.model_validate(value) if value is not None else None
        except (StoreError, ValueError):
            return None

    order = {run_id: i for i, run_id in enumerate(run_ids)}
    tis.sort(key=lambda ti: (order[ti.run_id], ti.task_id, ti.map_index, ti.try_number))
    rows = []
    for ti in tis:
        ref = ExecutionRef(ti.run_id, ti.task_id, ti.map_index, ti.try_number)
        rows.append(
            executions.row(
                ref,
                str(ti.state) if ti.state else None,
                ti.start_date,
                ti.end_date,
                manifest(ref),
                ti.rendered_map_index if ti.map_index >= 0 else None,
            )
        )
    return rows, older, cut


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if column == "duration":
        return f"{value:.1f} s"
    if column == "started":
        return str(value)[:19].replace("T", " ")
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _query(request: Request, **changes: Any) -> str:
    """This page's query string with `changes` (None drops a parameter)."""
    params = dict(request.query_params)
    params.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        params.pop(k, None)
    return "?" + urllib.parse.urlencode(params)


@app.get("/executions/{dag_id}", response_class=HTMLResponse, dependencies=READABLE)
def executions_page(
    dag_id: str,
    request: Request,
    session: SessionDep,
    task: str | None = None,
    page: Annotated[int, Query(ge=0)] = 0,
    sort: str = "",
    desc: bool = False,
) -> HTMLResponse:
    rows, older, cut = _rows(session, dag_id, task or None, page)
    all_columns = executions.columns(rows)
    conditions = {
        key[len(FILTER_PREFIX) :]: value
        for key, value in request.query_params.items()
        if key.startswith(FILTER_PREFIX) and value.strip()
    }
    shown = executions.filter_rows(rows, conditions)
    if sort in all_columns:
        shown = executions.sort_rows(shown, sort, desc)
    base = ui_path(executions_path(dag_id))
    html = TEMPLATES.get_template("executions_page.html").render(
        dag_id=dag_id,
        task=task or "",
        base=base,
        dag_page=ui_path(f"/dags/{urllib.parse.quote(dag_id, safe='')}"),
        items=[
            (
                r,
                [_cell(r.value(c), c) for c in all_columns],
                ui_path(
                    node_page_path(dag_id, r.ref.run_id, r.ref.task_id, r.ref.map_index, r.ref.try_number)
                ),
            )
            for r in shown
        ],
        total=len(rows),
        columns=all_columns,
        sort=sort,
        desc=desc,
        sort_links={
            c: _query(request, sort=c, desc="true" if c == sort and not desc else None) for c in all_columns
        },
        filters={c: request.query_params.get(FILTER_PREFIX + c, "") for c in all_columns},
        filter_prefix=FILTER_PREFIX,
        page=page,
        older=_query(request, page=str(page + 1)) if older else "",
        newer=_query(request, page=str(page - 1)) if page > 0 else "",
        runs_per_page=RUNS_PER_PAGE,
        cut=cut,
        max_rows=MAX_ROWS,
        max_compare=MAX_COMPARE,
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


def _offered_conf_keys(session: Any, dag_id: str) -> set[str]:
    """The run-conf keys the DAG's trigger form offers (its Params), from the serialized DAG."""
    from airflow.models.dagbag import DBDagBag

    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    return set(dag.params.keys()) if dag is not None else set()


@app.get("/executions/{dag_id}/compare", response_class=HTMLResponse, dependencies=READABLE)
def compare_page(
    dag_id: str, session: SessionDep, e: Annotated[list[str] | None, Query()] = None
) -> HTMLResponse:
    """The selected executions (`e`: their checkbox values) side by side, their series charted."""
    if not e:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "select at least one execution to compare")
    if len(e) > MAX_COMPARE:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{len(e)} executions selected; compare at most {MAX_COMPARE}"
        )
    try:
        refs = [ExecutionRef.parse(token) for token in e]
    except ValueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from error
    offered = _offered_conf_keys(session, dag_id)
    compared = []
    for ref in refs:
        t = NodeTry(session, dag_id, ref.run_id, ref.task_id, ref.map_index, ref.try_number)
        m = t.manifest
        r = executions.row(ref, None, None, None, m)
        name = f"{r.node}" + (f" [{r.label}]" if r.label else "") + f" · {ref.run_id}"
        compared.append((r, name, t.series()[:MAX_SERIES_ROWS]))
    parameters = list(dict.fromkeys(k for r, _, _ in compared for k in r.parameters))
    metadata = list(dict.fromkeys(k for r, _, _ in compared for k in r.metadata))
    html = TEMPLATES.get_template("executions_compare.html").render(
        dag_id=dag_id,
        back=ui_path(executions_path(dag_id)),
        compared=[(r, name) for r, name, _ in compared],
        node_pages=[
            ui_path(node_page_path(dag_id, r.ref.run_id, r.ref.task_id, r.ref.map_index, r.ref.try_number))
            for r, _, _ in compared
        ],
        confs=[json.dumps(r.trigger_conf(offered), indent=2) for r, _, _ in compared],
        parameters=parameters,
        metadata=metadata,
        charts=executions.charts([(name, series) for _, name, series in compared]),
        cell=_cell,
        dag_page=ui_path(f"/dags/{urllib.parse.quote(dag_id, safe='')}"),
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)
