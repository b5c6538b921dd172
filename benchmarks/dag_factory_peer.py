"""The loader benchmark's peer: dag-factory 1.1 (YAML config → DAGs) building the loader's DAGs.

A YAML file per case, generated from the loader's own DAGs: the same operator classes with the
same arguments (handwritten.py's choice), the same dependencies and the same Params. Plan objects
are written with dag-factory's typed-object syntax (`__type__` and `__args__`, built by its
`cast_with_type` when the file is loaded). What a dag-factory user writes once per DAG goes to
its `default_args` (the pipeline, its project): Airflow hands those to every operator whose
signature takes them. A mapped task gets them in its `partial:` (`partial()` takes only
BaseOperator's own arguments from `default_args`); dag-factory builds each mention anew. Params
are the DAG's `params:`, which dag-factory passes to `DAG(params=...)`, as its users write them.
dag-factory passes every task its YAML key as `task_id`; the two classes that name their task after
their node (variants and deployment tasks) get a subclass here that takes it and leaves it unused.
"""

from __future__ import annotations

import datetime
import enum
from pathlib import Path, PurePath
from typing import Any

import yaml

from benchmarks.handwritten import _arguments, _fed_by, _fields
from valohai_airflow.airflow.deployment import ValohaiDeploymentOperator
from valohai_airflow.airflow.variants import ValohaiVariantsOperator


class VariantsTask(ValohaiVariantsOperator):
    def __init__(self, *, task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class DeploymentTask(ValohaiDeploymentOperator):
    def __init__(self, *, task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)


NAMED_BY_NODE: dict[type, type] = {
    ValohaiVariantsOperator: VariantsTask,
    ValohaiDeploymentOperator: DeploymentTask,
}
SHARED = ("pipeline", "project_name", "project_root", "dag_key", "docker_url")
# dag-factory reads these at import time; no usage data leaves the benchmark
ENVIRONMENT = {
    "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "1",
}


def _typed(value: Any, seen: dict[int, Any]) -> Any:
    """`value` in dag-factory's YAML object syntax; a plan object met again is the same dict (a YAML
    alias in the file, as one writes a step once and refers to it)."""
    if isinstance(value, enum.Enum):  # before str: a StrEnum member is a str
        return {"__type__": _path(type(value)), "__args__": [value.value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime.timedelta):
        return {"__type__": "datetime.timedelta", "seconds": value.total_seconds()}
    if isinstance(value, datetime.datetime):  # a YAML timestamp in a parameter's value
        fields = [
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        ]
        offset = value.utcoffset()
        zone = (
            {"tzinfo": {"__type__": "datetime.timezone", "__args__": [_typed(offset, seen)]}}
            if offset is not None
            else {}
        )
        return {"__type__": "datetime.datetime", "__args__": fields, **zone}
    if isinstance(value, datetime.date):
        return {"__type__": "datetime.date", "__args__": [value.year, value.month, value.day]}
    if isinstance(value, PurePath):
        return {"__type__": "pathlib.Path", "__args__": [str(value)]}
    if isinstance(value, (tuple, frozenset)):
        kind = "builtins.tuple" if isinstance(value, tuple) else "builtins.frozenset"
        return {"__type__": kind, "__args__": [[_typed(v, seen) for v in value]]}
    if isinstance(value, list):
        return [_typed(v, seen) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _typed(v, seen) for k, v in value.items()}
        return {
            "__type__": "builtins.dict",
            "__args__": [[[_typed(k, seen), _typed(v, seen)] for k, v in value.items()]],
        }
    fields = _fields(value)
    if fields is None:
        raise TypeError(f"no dag-factory form for {type(value).__qualname__}")
    if id(value) not in seen:
        typed = {"__type__": _path(type(value))}
        typed.update({name: _typed(getattr(value, name), seen) for name in fields})
        seen[id(value)] = typed
    return seen[id(value)]


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def dag_factory_config(dags: dict[str, Any]) -> dict[str, Any]:
    """The dag-factory configuration that builds `dags`."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    config: dict[str, Any] = {}
    seen: dict[int, Any] = {}
    for dag_id, dag in dags.items():
        shared: dict[str, Any] = {}
        tasks: dict[str, Any] = {}
        for task in dag.tasks:
            arguments = _arguments(task)
            if task.trigger_rule != "all_success":
                arguments["trigger_rule"] = str(task.trigger_rule)
            for key in SHARED:
                if key in arguments and key not in shared:
                    shared[key] = _typed(arguments[key], seen)
            operator = task.operator_class if isinstance(task, MappedOperator) else type(task)
            entry: dict[str, Any] = {"operator": _path(NAMED_BY_NODE.get(operator, operator))}
            own = {k: _typed(v, seen) for k, v in arguments.items() if k != "task_id"}
            if isinstance(task, MappedOperator):
                ((key, _),) = task.expand_input.value.items()
                entry["partial"] = {k: shared.get(k, v) for k, v in own.items()}
                entry["expand"] = {key: f"{next(iter(_fed_by(task)))}.output"}
            else:
                entry.update({k: v for k, v in own.items() if k not in SHARED})
            upstreams = sorted(task.upstream_task_ids)  # with the one `expand` reads: dag-factory's order
            if upstreams:
                entry["dependencies"] = upstreams
            tasks[task.task_id] = entry
        config[dag_id] = {
            "dag_display_name": dag.dag_display_name,
            "description": dag.description,
            "schedule": None,
            "catchup": False,
            "start_date": datetime.datetime.fromisoformat(dag.start_date.isoformat()),
            "doc_md": dag.doc_md,
            "tags": sorted(dag.tags),
            "default_args": shared,
            "params": {
                key: {
                    "__type__": "airflow.sdk.Param",
                    "__args__": [_typed(p.value if p.has_value else None, seen)],
                }
                | {k: _typed(v, seen) for k, v in p.schema.items()}
                for key, p in dag.params.items()
            },
            "tasks": tasks,
        }
    return config


def write_peer(dags: dict[str, Any], dag_file: Path) -> None:
    """The YAML config beside `dag_file`, and `dag_file`: dag-factory's loader call for it."""
    config_path = dag_file.with_suffix(".yml")
    config_path.write_text(yaml.dump(dag_factory_config(dags), sort_keys=False, width=1_000_000))
    dag_file.write_text(
        "# Airflow DAGs from the dag-factory config beside this file\n"
        "from dagfactory import load_yaml_dags\n\n"
        f"load_yaml_dags(globals_dict=globals(), config_filepath={str(config_path)!r})\n"
    )


__all__ = ["ENVIRONMENT", "dag_factory_config", "write_peer"]
