"""Keys of valohai.yaml that are read but have no effect here: each is a warning at its own line
saying what happens instead, so nothing in the file is silently ignored (docs/mapping.md lists
every key and what it does).

Walks the located YAML of an item that validated, so each warning points at the key itself. Keys
whose fate depends on valohai-airflow.yaml (`mounts`: plan/mounts.py, `environment`:
plan/machines.py) and `commit:` of a node (plan/nodes.py) are warned about where that is known.
A `description` is a note in the file (on Valohai it only shows in the UI): shown in the task docs
where Airflow has a place for it, never a warning.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from valohai_airflow.spec.diagnostics import Diagnostics, shown
from valohai_airflow.spec.yaml_loader import YamlMap

_PRESET = (
    "Valohai's runtime config presets live on its platform; the container gets what its "
    "`environment` maps to in valohai-airflow.yaml"
)
_AUTORESTART = (
    "there are no spot instances to restart after; a failed node follows its `on-error` (`retry` retries it)"
)
_KUBERNETES = (
    "Kubernetes scheduling of Valohai's endpoint servers; a served endpoint here is a local Docker container"
)

STEP: dict[str, str] = {
    "cache-volumes": (
        "Kubernetes cache volumes are not mounted; the container gets none (a host folder can be "
        "mounted with `mounts` where `mounts.allow` of valohai-airflow.yaml allows it)"
    ),
    "upload-store": "outputs go to the project's artefact store (`[valohai] store`), not to a named Valohai store",
    "runtime-config-preset": _PRESET,
    "autorestart": _AUTORESTART,
    "icon": "only Valohai's UI shows it; Airflow has no step icon",
    "category": "only Valohai's UI groups steps by it; Airflow does not",
}
RESOURCES: dict[str, str] = {
    "devices": "GPUs come from `gpus` of the step's environment in valohai-airflow.yaml; this device request is not used",
}
PARAMETER: dict[str, str] = {
    "widget": "only Valohai's UI uses it; the trigger form shows the field of the parameter's type",
    "category": "only Valohai's UI groups parameters by it; the trigger form groups them by node",
}
TASK: dict[str, str] = {
    "execution-batch-size": "Airflow queues the executions; `maximum-queued-executions` caps how many run at once",
    "optimization-target-metric": "Valohai's optimiser is not here: `bayesian_tpe` explores at random",
    "optimization-target-value": "Valohai's optimiser is not here: `bayesian_tpe` explores at random",
    "engine": "Valohai's optimiser is not here: `bayesian_tpe` explores at random",
    "reuse-children": "executions are not reused between tasks; `reuse-executions: true` of the pipeline reuses whole nodes",
}
RULES: dict[str, str] = {
    "numberify": "the values are used as the style gives them",
}
ENDPOINT: dict[str, str] = {
    "node-selector": _KUBERNETES,
    "tolerations": _KUBERNETES,
    "shared-volumes": _KUBERNETES,
    "workspace-volume": _KUBERNETES,
    "resources": "the serving container gets no CPU or memory limit",
}
OVERRIDE: dict[str, str] = {"runtime-config-preset": _PRESET, "autorestart": _AUTORESTART}
PIPELINE_PARAMETER: dict[str, str] = {
    "category": "only Valohai's UI groups parameters by it; the trigger form shows pipeline parameters first",
}
EDGE: dict[str, str] = {
    "configuration": "edge configuration is not read; the edge passes its files or value as it is"
}
ON_DEMAND = (
    "`download: on-demand` is not applied: the input is fetched before the command starts, like "
    "`download: always` (inputs.json still marks its files on-demand, so valohai-utils finds them in place)"
)
DEPLOYMENT = (
    "Valohai's deployment defaults (the target cluster) have no meaning here: deployment nodes publish to "
    "the artefact store, and valohai-airflow.yaml's `deployments:` says what is served"
)


def warn_unapplied(kind: str, data: Any, diagnostics: Diagnostics) -> None:
    """A warning for each key of a validated top-level item (`kind`: step, task, …) that has no effect."""
    if not isinstance(data, YamlMap):
        return
    label = f"{kind} {shown(data.get('name'))}"
    if kind == "step":
        _step(data, label, diagnostics)
    elif kind == "task":
        _keys(data, label, TASK, diagnostics)
        for parameter in _items(data, "parameters"):
            rules = parameter.get("rules")
            if isinstance(rules, YamlMap):
                _keys(rules, f"{label}, variant parameter {shown(parameter.get('name'))}", RULES, diagnostics)
    elif kind == "endpoint":
        _keys(data, label, ENDPOINT, diagnostics)
    elif kind in ("pipeline", "blueprint"):
        _pipeline(data, label, diagnostics)
    elif kind == "deployment":
        diagnostics.warning(f"{label}: {DEPLOYMENT}", data.location)


def _step(data: YamlMap, label: str, diagnostics: Diagnostics) -> None:
    _keys(data, label, STEP, diagnostics)
    resources = data.get("resources")
    if isinstance(resources, YamlMap):
        _keys(resources, f"{label}, resources", RESOURCES, diagnostics)
    for parameter in _items(data, "parameters"):
        _keys(parameter, f"{label}, parameter {shown(parameter.get('name'))}", PARAMETER, diagnostics)
    for input_ in _items(data, "inputs"):
        _on_demand(input_, f"{label}, input {shown(input_.get('name'))}", diagnostics)


def _pipeline(data: YamlMap, label: str, diagnostics: Diagnostics) -> None:
    for node in _items(data, "nodes"):
        override = node.get("override")
        if not isinstance(override, YamlMap):
            continue
        where = f"{label}, node {shown(node.get('name'))} override"
        _keys(override, where, OVERRIDE, diagnostics)
        for input_ in _items(override, "inputs"):
            _on_demand(input_, f"{where}, input {shown(input_.get('name'))}", diagnostics)
    for edge in _items(data, "edges"):
        if edge.get("configuration"):
            _keys(edge, f"{label}, edge", EDGE, diagnostics)
    for parameter in _items(data, "parameters"):
        _keys(
            parameter, f"{label}, parameter {shown(parameter.get('name'))}", PIPELINE_PARAMETER, diagnostics
        )


def _on_demand(input_: YamlMap, label: str, diagnostics: Diagnostics) -> None:
    download = input_.get("download")
    if isinstance(download, str) and download.lower() == "on-demand":
        diagnostics.warning(f"{label}: {ON_DEMAND}", input_.key_locations.get("download", input_.location))


def _keys(data: YamlMap, label: str, table: Mapping[str, str], diagnostics: Diagnostics) -> None:
    for key in data:
        if key in table and data[key] is not None:
            diagnostics.warning(
                f"{label}: `{key}` is not applied: {table[key]}", data.key_locations.get(key, data.location)
            )


def _items(data: YamlMap, key: str) -> Iterator[YamlMap]:
    value = data.get(key)
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, YamlMap))
