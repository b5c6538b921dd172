"""The data catalogue as Airflow Assets: nodes emit catalogue changes as Asset events, and data
triggers (`after:` in valohai-airflow.yaml) schedule DAGs on them.

A node cannot know before it runs which aliases, dataset versions or model versions its step will
publish (the step writes them as output properties), so every execution node of a project declares
one AssetAlias, `valohai:<project>`, in its outlets; after stage-out each published record becomes an
event of its `valohai://` Asset (`asset_uris.py`) through that alias. The alias is per project, not
per node: one row however many nodes there are, and each event names its producing task anyway.

A run started by data triggers gets, before each task reads its params, the trigger's `parameters`
with `{event.version}`, `{event.reference}`, `{event.name}` and `{event.uri}` replaced by the newest
triggering event's values, in Python (never Jinja); an explicit run conf value still wins.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, AssetAny

from valohai_airflow.asset_uris import Published, asset_uri, catalogue_events, pipeline_uri
from valohai_airflow.spec.data_triggers import fill_placeholders
from valohai_airflow.spec.sidecar import Trigger

log = logging.getLogger(__name__)


def catalogue_alias(project_name: str) -> AssetAlias:
    """The AssetAlias every execution node of a project declares: what it may publish."""
    return AssetAlias(name=f"valohai:{project_name}", group="valohai")


def with_catalogue_alias(outlets: Any, project_name: str) -> list[Any]:
    """A node's outlets with the project's alias: what it may publish. Also for a task node's mapped
    executions, whose `partial()` fills `outlets` (empty) before the operator sees it."""
    alias = catalogue_alias(project_name)
    given = list(outlets or [])
    return given if alias in given else [*given, alias]


def trigger_assets(trigger: Trigger, project_name: str) -> list[Asset]:
    """The Assets of a data trigger's conditions (`pipeline:` names a pipeline of `project_name`)."""
    assets = []
    for condition in trigger.after:
        kind, name = condition.asset
        uri = pipeline_uri(project_name, name) if kind == "pipeline" else asset_uri(kind, name)  # type: ignore[arg-type]
        assets.append(Asset(uri))
    return assets


def data_schedule(triggers: Sequence[Trigger], project_name: str) -> Asset | AssetAny | None:
    """The Asset condition of a DAG's data triggers: any of their Assets starts a run."""
    assets = list({a.uri: a for t in triggers for a in trigger_assets(t, project_name)}.values())
    if not assets:
        return None
    return assets[0] if len(assets) == 1 else AssetAny(*assets)


def emit(context: Mapping[str, Any], project_name: str, published: Sequence[Published]) -> None:
    """Attach one Asset event per published record to the task's alias (Airflow stores them when
    the task succeeds)."""
    if not published:
        return
    accessor = context["outlet_events"][catalogue_alias(project_name)]
    for event in catalogue_events(published):
        accessor.add(Asset(event.uri), extra=event.extra)
        log.info("Asset event %s: %s", event.uri, event.extra["reference"])


def apply_event_parameters(context: Any, triggers: Sequence[Trigger], project_name: str) -> None:
    """pre_execute, in a run started by Asset events: the parameters of the data triggers whose
    Assets fired, filled from the newest event of each."""
    newest = _newest_events(context.get("triggering_asset_events") or {})
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    params = context["params"]
    applied: dict[str, Any] = {}
    for trigger in triggers:
        fired = [(a.uri, newest[a.uri]) for a in trigger_assets(trigger, project_name) if a.uri in newest]
        if not fired:
            continue
        uri, event = max(fired, key=lambda pair: pair[1].timestamp)
        fields = {**(event.extra or {}), "uri": uri}
        for key, value in trigger.parameters.items():
            if key not in conf:
                params[key] = applied[key] = fill_placeholders(value, fields)
        what = fields.get("reference") or fields.get("run_id")
        log.info("Started by %s (%s) for trigger %r", uri, what, trigger.title)
    log.info("Parameters from data triggers: %s", applied or "none")


def _newest_events(events: Any) -> dict[str, Any]:
    """Asset URI → the newest of its triggering events (`triggering_asset_events` of the context)."""
    newest: dict[str, Any] = {}
    for asset in events:
        for event in events[asset]:
            uri = event.asset.uri
            if uri not in newest or event.timestamp > newest[uri].timestamp:
                newest[uri] = event
    return newest
