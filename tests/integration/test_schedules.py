"""Triggers of valohai-airflow.yaml as Airflow schedules, in a real DagBag, computed by Airflow's own
timetables, and scheduled runs of real containers that get their trigger's parameters."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUSYBOX, add_project, dag_bag

pytestmark = pytest.mark.usefixtures("airflow_db")

TINY = f"""\
- step:
    name: report
    image: {BUSYBOX}
    command: echo {{parameters}}
    parameters:
      - {{name: epochs, type: integer, default: 5}}
      - {{name: mode, type: string, default: full}}
- pipeline:
    name: tiny
    nodes:
      - {{name: report, type: execution, step: report}}
    edges: []
"""

TWO_TRIGGERS = """\
pipelines:
  tiny: {tags: [nightly], max_active_runs: 2, retries: 1, retry_delay_seconds: 5}
triggers:
  - title: Monday morning
    pipeline: tiny
    cron: "0 9 * * 1"
    timezone: Europe/Helsinki
    parameters: {report.parameter.epochs: 7}
  - title: Friday evening
    pipeline: tiny
    cron: "30 18 * * 5"
    timezone: Europe/Helsinki
    parameters: {report.parameter.epochs: 9, report.parameter.mode: quick}
"""


def scheduler_view(dag: Any) -> Any:
    """The DAG as the scheduler sees it (serialized, with the core timetable)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


def fire_times(dag: Any, start: datetime, count: int) -> list[datetime]:
    """What Airflow's timetable schedules after `start`, run after run, as the scheduler asks it."""
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = scheduler_view(dag).timetable
    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    last: DataInterval | None = None
    times = []
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        times.append(info.run_after)
        last = info.data_interval
    return times


def test_example_project_retrains_on_mondays_at_nine_utc(dags_folder: Path) -> None:
    from airflow.timetables.trigger import CronTriggerTimetable

    shutil.copytree(REPO_ROOT / "dags" / "example", dags_folder / "example")
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = bag.dags["example__three-trainings"]
    assert dag.catchup is False
    assert "retraining" in dag.tags and dag.max_active_runs == 1
    timetable = scheduler_view(dag).timetable
    assert isinstance(timetable, CronTriggerTimetable)
    assert timetable.summary == "0 9 * * 1" and timetable.serialize()["timezone"] == "UTC"
    # from a Wednesday: the next two Mondays at 09:00 UTC
    assert fire_times(dag, datetime(2026, 11, 18, 12, tzinfo=UTC), 2) == [
        datetime(2026, 11, 23, 9, tzinfo=UTC),
        datetime(2026, 11, 30, 9, tzinfo=UTC),
    ]
    # catchup off: the scheduler's next run is the first Monday 09:00 from now, not one from 2024
    from airflow.timetables.base import TimeRestriction

    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=False),
    )
    now = datetime.now(UTC)
    assert info.run_after.weekday() == 0 and (info.run_after.hour, info.run_after.minute) == (9, 0)
    assert now - timedelta(days=7) < info.run_after <= now + timedelta(days=7)


def test_two_triggers_on_one_pipeline_both_fire(dags_folder: Path) -> None:
    from airflow.timetables.trigger import MultipleCronTriggerTimetable

    project = add_project(dags_folder, "sched", TINY)
    (project / "valohai-airflow.yaml").write_text(TWO_TRIGGERS)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = bag.dags["sched__tiny"]
    assert isinstance(scheduler_view(dag).timetable, MultipleCronTriggerTimetable)
    assert dag.catchup is False and dag.max_active_runs == 2 and "nightly" in dag.tags
    assert dag.default_args["retries"] == 1 and dag.default_args["retry_delay"] == timedelta(seconds=5)
    assert dag.task_dict["report"].retries == 1
    # Helsinki is UTC+2 in winter, UTC+3 in summer: Airflow keeps the wall clock
    assert fire_times(dag, datetime(2026, 11, 22, tzinfo=UTC), 4) == [
        datetime(2026, 11, 23, 7, tzinfo=UTC),
        datetime(2026, 11, 27, 16, 30, tzinfo=UTC),
        datetime(2026, 11, 30, 7, tzinfo=UTC),
        datetime(2026, 12, 4, 16, 30, tzinfo=UTC),
    ]
    assert fire_times(dag, datetime(2026, 6, 1, 5, tzinfo=UTC), 1) == [datetime(2026, 6, 1, 6, tzinfo=UTC)]


@contextlib.contextmanager
def runs_created_like_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """dag.test() always creates a MANUAL run; the scheduler creates SCHEDULED ones (run id from the
    timetable, triggered by the timetable, no conf). There is no scheduler process in these tests, so
    only the creation of the DagRun row is swapped for the scheduler's way; dag.test() then runs the
    real tasks in real containers."""
    import airflow.models.dagrun as dagrun_module
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    def create(
        *, dag: Any, logical_date: datetime, data_interval: Any, run_after: datetime, session: Any, **_: Any
    ) -> Any:
        old = session.scalar(
            select(dagrun_module.DagRun).where(
                dagrun_module.DagRun.dag_id == dag.dag_id, dagrun_module.DagRun.logical_date == logical_date
            )
        )
        if old:
            session.delete(old)
            session.commit()
        return dag.create_dagrun(
            run_id=dag.timetable.generate_run_id(
                run_type=DagRunType.SCHEDULED, run_after=run_after, data_interval=data_interval
            ),
            logical_date=logical_date,
            data_interval=data_interval,
            run_after=run_after,
            conf=None,
            run_type=DagRunType.SCHEDULED,
            state=DagRunState.RUNNING,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            triggering_user_name=None,
            start_date=logical_date,
            session=session,
        )

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create)
    yield


def manifest_parameters(run: Any) -> dict[str, Any]:
    (ti,) = [t for t in run.get_task_instances() if t.task_id == "report"]
    assert ti.state == "success", ti.state
    manifest = ti.xcom_pull(task_ids="report")
    return manifest["parameters"]


@pytest.mark.usefixtures("docker_engine")
def test_scheduled_runs_get_their_triggers_parameters(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = add_project(dags_folder, "sched", TINY)
    (project / "valohai-airflow.yaml").write_text(TWO_TRIGGERS)
    dag = dag_bag(dags_folder).dags["sched__tiny"]
    monday = datetime(2026, 11, 23, 7, tzinfo=UTC)  # 09:00 in Helsinki
    friday = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # 18:30 in Helsinki

    manual = dag.test(logical_date=monday, run_after=monday)
    assert manual.run_type == "manual"
    assert manifest_parameters(manual) == {"epochs": 5, "mode": "full"}  # a manual run keeps the defaults

    with runs_created_like_the_scheduler(monkeypatch):
        on_monday = dag.test(logical_date=monday, run_after=monday)
        on_friday = dag.test(logical_date=friday, run_after=friday)
    assert on_monday.run_type == "scheduled" and on_monday.run_id.startswith("scheduled__")
    assert manifest_parameters(on_monday) == {"epochs": 7, "mode": "full"}
    assert manifest_parameters(on_friday) == {"epochs": 9, "mode": "quick"}


def test_required_parameter_without_default_makes_only_that_pipeline_an_error_dag(dags_folder: Path) -> None:
    valohai = TINY.replace("{name: mode, type: string, default: full}", "{name: mode, type: string}") + (
        "- pipeline:\n    name: manual-only\n    nodes:\n"
        "      - {name: report, type: execution, step: report}\n    edges: []\n"
    )
    project = add_project(dags_folder, "sched", valohai)
    (project / "valohai-airflow.yaml").write_text(
        "triggers:\n  - {title: Daily, pipeline: tiny, cron: '@daily'}\n"
    )
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    broken = bag.dags["sched__tiny"]
    assert not scheduler_view(broken).timetable.can_be_scheduled
    assert "valohai-error" in broken.tags
    (task,) = broken.tasks
    assert "'report.parameter.mode' have no usable default" in task.message
    assert "trigger(s) 'Daily'" in task.message and "valohai-airflow.yaml" in task.message
    assert "valohai-error" not in bag.dags["sched__manual-only"].tags  # the sibling pipeline still loads


def test_on_error_retry_takes_count_delay_and_backoff_from_the_sidecar(dags_folder: Path) -> None:
    valohai = TINY.replace(
        "{name: report, type: execution, step: report}",
        "{name: report, type: execution, step: report, on-error: retry}",
    )
    project = add_project(dags_folder, "retry", valohai)
    dag = dag_bag(dags_folder).dags["retry__tiny"]
    task = dag.task_dict["report"]
    assert (task.retries, task.retry_delay, task.retry_exponential_backoff) == (3, timedelta(seconds=60), 2.0)
    assert task.max_retry_delay == timedelta(hours=1)
    (project / "valohai-airflow.yaml").write_text(
        "on_error_retry: {retries: 1, delay_seconds: 0, backoff: fixed, max_delay_seconds: null}\n"
    )
    task = dag_bag(dags_folder).dags["retry__tiny"].task_dict["report"]
    assert (task.retries, task.retry_delay, task.retry_exponential_backoff) == (1, timedelta(0), 0)


def test_broken_sidecar_is_the_projects_error_dag_with_lines(dags_folder: Path) -> None:
    project = add_project(dags_folder, "sched", TINY)
    (project / "valohai-airflow.yaml").write_text(
        "triggers:\n  - title: Weekly\n    pipeline: tiny\n    cron: '0 9 * * 8'\n    timezone: Mars/Olympus\n"
    )
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    assert "sched__tiny" not in bag.dags
    (task,) = bag.dags["valohai_error__sched"].tasks
    sidecar = project / "valohai-airflow.yaml"
    assert (
        f"{sidecar}:4:11: error: trigger 'Weekly': 'cron': '0 9 * * 8' is not a valid cron expression"
        in task.message
    )
    assert (
        f"{sidecar}:5:15: error: trigger 'Weekly': 'timezone': unknown time zone 'Mars/Olympus'"
        in task.message
    )
