"""valohai.yaml text → Config plus diagnostics that point at file:line:column.

Never raises for problems in the file: everything becomes a Diagnostic, so a caller can show
all of them at once. Unknown keys are errors where Valohai's JSON schema forbids them and
warnings where valohai-yaml only warns (top-level items without a parser, override fields).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from valohai_airflow.spec._base import SpecModel, UnknownKey, error_text, to_plain
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.deployment_defaults import Deployment
from valohai_airflow.spec.diagnostics import Diagnostics, Location, Severity, ValohaiSpecError, shown
from valohai_airflow.spec.endpoint import Endpoint
from valohai_airflow.spec.hints import closest
from valohai_airflow.spec.parameter import ParameterValueError, coerce_parameter_value
from valohai_airflow.spec.pipeline import Pipeline
from valohai_airflow.spec.source import read_source
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.task import Task
from valohai_airflow.spec.unapplied import warn_unapplied
from valohai_airflow.spec.yaml_loader import YamlList, YamlMap, load_yaml, locate

# Same order as valohai-yaml's Config.get_top_level_parsers: the first matching key wins.
PARSERS: dict[str, tuple[str, type[SpecModel]]] = {
    "step": ("steps", Step),
    "task": ("tasks", Task),
    "endpoint": ("endpoints", Endpoint),
    "pipeline": ("pipelines", Pipeline),
    "blueprint": ("pipelines", Pipeline),
    "deployment": ("deployments", Deployment),
}

_SINGULAR = {
    "parameters": "parameter",
    "inputs": "input",
    "outputs": "output",
    "nodes": "node",
    "edges": "edge",
    "actions": "action",
    "mounts": "mount",
    "environment-variables": "environment variable",
    "files": "file",
    "tolerations": "toleration",
    "shared-volumes": "shared volume",
    "parameter-sets": "parameter set",
}


@dataclass(frozen=True)
class ParseResult:
    """The parsed config (None when there are errors) and every diagnostic found."""

    config: Config | None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.diagnostics.errors

    def raise_if_errors(self) -> Config:
        """The config, or ValohaiSpecError carrying all errors."""
        self.diagnostics.raise_if_errors()
        assert self.config is not None
        return self.config


def parse_file(path: str | os.PathLike[str]) -> ParseResult:
    """Read and parse a valohai.yaml; unreadable, oversized or non-regular files become diagnostics."""
    try:
        data = read_source(path)
    except ValohaiSpecError as exc:
        return ParseResult(None, Diagnostics(list(exc.diagnostics)))
    return parse_text(data, str(path))


def parse_text(text: str | bytes, filename: str) -> ParseResult:
    """Parse valohai.yaml content; ``filename`` is only used in diagnostics."""
    if not isinstance(text, str | bytes):
        raise TypeError(f"parse_text needs str or bytes, got {type(text).__name__}")
    diagnostics = Diagnostics()
    try:
        loaded = load_yaml(text, filename)
    except ValohaiSpecError as exc:
        diagnostics.items.extend(exc.diagnostics)
        return ParseResult(None, diagnostics)
    data = loaded.data
    top = Location(filename, 1, 1)
    if not isinstance(data, list):
        diagnostics.error(_not_a_list(data), data.location if isinstance(data, YamlMap) else top)
        return ParseResult(None, diagnostics)
    return _parse_items(data, filename, diagnostics)


def _not_a_list(data: Any) -> str:
    if isinstance(data, dict):
        keys = {str(k).lower() for k in data}
        if "jobs" in keys and ("on" in keys or True in data):
            return "this looks like a GitHub Actions workflow, not a valohai.yaml (which is a list of '- step:' / '- pipeline:' items)"
        if "services" in keys:
            return "this looks like a docker-compose file, not a valohai.yaml (which is a list of '- step:' / '- pipeline:' items)"
        if "apiversion" in keys and "kind" in keys:
            return "this looks like a Kubernetes manifest, not a valohai.yaml (which is a list of '- step:' / '- pipeline:' items)"
        if "stages" in keys or "script" in keys:
            return "this looks like a CI configuration, not a valohai.yaml (which is a list of '- step:' / '- pipeline:' items)"
        if keys & set(PARSERS):
            return "the top level must be a list: write '- step:' (with a dash), not 'step:'"
        return "this does not look like a valohai.yaml: the top level is a mapping, but it must be a list of '- step:' / '- pipeline:' items"
    return f"this does not look like a valohai.yaml: the top level is a {_type_name(data)}, but it must be a list of '- step:' / '- pipeline:' items"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _parse_items(data: YamlList | list[Any], filename: str, diagnostics: Diagnostics) -> ParseResult:
    parsed: dict[str, dict[str, Any]] = {attr: {} for attr, _ in PARSERS.values()}
    first_seen: dict[tuple[str, str], Location] = {}
    unparsed = 0
    for index, item in enumerate(data):
        item_location = data.item_locations[index] if isinstance(data, YamlList) else Location(filename)
        if not isinstance(item, dict):
            diagnostics.error(
                f"top-level item #{index + 1} is a {_type_name(item)}, but it must be a mapping like 'step: {{...}}'",
                item_location,
            )
            continue
        kind = next((k for k in PARSERS if k in item), None)
        if kind is None:
            unparsed += 1
            _no_parser(item, item_location, diagnostics)
            continue
        for extra in item:
            if extra != kind:
                where = (
                    item.key_locations.get(extra, item_location)
                    if isinstance(item, YamlMap)
                    else item_location
                )
                diagnostics.warning(f"key {shown(extra)} next to {kind!r} in the same item is ignored", where)
        model = _validate_item(data, index, kind, diagnostics)
        if model is None:
            continue
        attr = PARSERS[kind][0]
        name = model.name  # type: ignore[attr-defined]
        key = (attr, name)
        model_location = model.location
        if key in first_seen:
            first = first_seen[key]
            diagnostics.error(
                f"duplicate {kind} name {shown(name)} (first defined at line {first.line}); {kind} names must be unique",
                model_location,
            )
            continue
        first_seen[key] = model_location
        parsed[attr][name] = model
        warn_unapplied(kind, item[kind], diagnostics)
        if isinstance(model, Step):
            _warn_bad_defaults(model, diagnostics)
    if unparsed and unparsed == len(data):
        diagnostics.error(
            "this does not look like a valohai.yaml: no item is a step, pipeline, endpoint, task or deployment",
            data.location if isinstance(data, YamlList) else Location(filename, 1, 1),
        )
    elif not data:
        diagnostics.warning("the file defines nothing (an empty list)", Location(filename, 1, 1))
    if diagnostics.errors:
        return ParseResult(None, diagnostics)
    return ParseResult(Config(**parsed, source=filename), diagnostics)


def _warn_bad_defaults(step: Step, diagnostics: Diagnostics) -> None:
    """valohai-yaml's lint warnings for defaults its own validation would refuse."""
    for param in step.parameters:
        if not param.default or param.type == "flag":
            continue
        atoms = param.default if isinstance(param.default, list) else [param.default]
        problems: list[str] = []
        for atom in atoms:
            if param.type == "string" and not isinstance(atom, str):
                problems.append(f"default {shown(atom)} is not a string")
                continue
            try:
                coerce_parameter_value(param.model_copy(update={"multiple": None}), atom)
            except ParameterValueError as exc:
                problems.extend(f"default {p}" for p in exc.problems)
        for problem in problems:
            diagnostics.warning(
                f"step {shown(step.name)}, parameter {shown(param.name)}: {problem}", param.location
            )


def _no_parser(item: dict[Any, Any], location: Location, diagnostics: Diagnostics) -> None:
    keys = [k for k in item if isinstance(k, str)]
    guess = next((g for g in (closest(k, list(PARSERS)) for k in keys) if g), None)
    hint = f"did you mean '{guess}'?" if guess else None
    diagnostics.warning(f"No parser for {shown(to_plain(item))}; the item is ignored", location, hint)


def _validate_item(data: list[Any], index: int, kind: str, diagnostics: Diagnostics) -> SpecModel | None:
    item = data[index]
    value = item[kind]
    location = locate(data, (index, kind), Location("?"))
    model_cls = PARSERS[kind][1]
    if value is None:
        diagnostics.error(
            f"{kind} is empty; is its body indented under '{kind}:'?",
            location,
            hint="valid YAML, but the keys of this item may not be indented enough",
        )
        return None
    sink: list[UnknownKey] = []
    try:
        model = model_cls.model_validate(value, context={"unknown_keys": sink})
    except ValidationError as exc:
        _report_validation(exc, data, index, kind, diagnostics)
        model = None
    for unknown in sink:
        _report_unknown(unknown, diagnostics)
    if any(u.severity is Severity.ERROR for u in sink):
        return None
    return model


def _report_unknown(unknown: UnknownKey, diagnostics: Diagnostics) -> None:
    owner = f"{unknown.kind} {shown(unknown.owner)}" if unknown.owner else unknown.kind
    message = f"{owner}: unknown key {shown(unknown.key)}"
    if unknown.hint:
        message += f"; {unknown.hint}"
    guess = closest(unknown.key, unknown.valid)
    if guess:
        message += f" (did you mean {guess!r}?)"
    hint = f"valid keys: {', '.join(unknown.valid)}"
    if unknown.severity is Severity.ERROR:
        diagnostics.error(message, unknown.location, hint)
    else:
        diagnostics.warning(message, unknown.location, hint)


def _report_validation(
    exc: ValidationError, data: list[Any], index: int, kind: str, diagnostics: Diagnostics
) -> None:
    seen: set[tuple[Any, ...]] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path, label, fields = _describe(data[index][kind], kind, loc)
        if (path, tuple(fields)) in seen:
            continue
        seen.add((path, tuple(fields)))
        location = locate(data, (index, kind, *path), Location("?"))
        text = error_text(error, fields)
        diagnostics.error(f"{label}: {text}", location)


def _describe(value: Any, kind: str, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], str, list[str]]:
    """Follow pydantic's loc through the raw data: the real path, a 'step 'x', parameter 'y'' label, key names."""
    name = value.get("name") if isinstance(value, dict) else None
    label = f"{kind} {shown(name)}" if isinstance(name, str) else kind
    path: list[Any] = []
    fields: list[str] = []
    current = value
    previous: Any = None
    for part in loc:
        is_union_tag = isinstance(previous, int) and isinstance(current, dict) and current.get("type") == part
        previous = part
        if is_union_tag:
            continue
        if isinstance(current, dict) and part in current:
            path.append(part)
            fields.append(str(part))
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
            owner = fields[-1] if fields else ""
            singular = _SINGULAR.get(owner, "item")
            item_name = current.get("name") if isinstance(current, dict) else None
            label += (
                f", {singular} {shown(item_name)}"
                if isinstance(item_name, str)
                else f", {singular} #{part + 1}"
            )
            fields = []
        elif (
            isinstance(part, str)
            and isinstance(current, dict)
            and part not in current
            and part.replace("_", "-") in current
        ):
            path.append(part.replace("_", "-"))
            fields.append(part.replace("_", "-"))
            current = current[path[-1]]
        elif isinstance(current, dict) and isinstance(part, str) and part == loc[-1]:
            fields.append(part)
    return tuple(path), label, fields
