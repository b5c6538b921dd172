"""Command interpolation, byte-for-byte like valohai-yaml's Step.build_command and join_command.

Difference on purpose: flag defaults are not ignored. Callers pass ``values`` and every default
(flags included) is filled in first, which is what Valohai's clients send to the platform.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from shlex import quote
from typing import Any

from valohai_airflow.spec.parameter import Parameter
from valohai_airflow.spec.step import Step

_INTERPOLABLE = re.compile(r"{(.+?)}")


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def format_cli(param: Parameter, value: Any) -> list[str] | None:
    """The parameter's CLI tokens for ``value`` (unquoted), or None if it is not passed at all."""
    if param.type == "flag":
        if param.pass_true_as or param.pass_false_as:
            template = (param.pass_true_as if value else param.pass_false_as) or None
        elif not value:
            template = None
        else:
            template = param.pass_as or "--{name}"
    elif value is None:
        template = None
    else:
        template = param.pass_as or "--{name}={value}"
    if not template:
        return None
    bits = template.split()

    def atom(v: Any) -> list[str]:
        env = {"name": param.name, "value": v, "v": v}
        return [bit.format_map(env) for bit in bits]

    if param.multiple == "repeat":
        out: list[str] = []
        for v in _listify(value):
            out.extend(atom(v))
        return out
    if param.multiple == "separate":
        values = _listify(value)
        return atom(param.multiple_separator.join(str(v) for v in values)) if values else None
    return atom(value)


def effective_values(step: Step, values: Mapping[str, Any]) -> dict[str, Any]:
    """All defaults (flags included) overlaid with ``values``."""
    return {**step.parameter_defaults(include_flags=True), **values}


def _tokens(param: Parameter, values: Mapping[str, Any]) -> list[str] | None:
    value = values.get(param.name)
    if value is None:
        return None
    return format_cli(param, value)


def _quote_all(tokens: list[str] | None) -> str:
    return " ".join(quote(t) for t in tokens) if tokens else ""


def build_command(
    step: Step, values: Mapping[str, Any], command: tuple[str, ...] | list[str] | str | None = None
) -> list[str]:
    """Interpolate parameters into each command line; unknown placeholders stay as written."""
    merged = effective_values(step, values)
    special = {"source-path": step.source_path} if step.source_path is not None else {}
    every: list[str] = []  # `{parameters}`, worked out once however often it is written

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner in special:
            return quote(special[inner])
        if inner in ("parameters", "params"):
            if not every:
                tokens: list[str] = []
                for each in step.parameters:
                    tokens.extend(_tokens(each, merged) or [])
                every.append(_quote_all(tokens))
            return every[0]
        if inner.startswith("parameter:"):
            param = step.parameter(inner.split(":", 1)[1])
            if param is not None:
                return _quote_all(_tokens(param, merged))
        if inner.startswith("parameter-value:"):
            name = inner.split(":", 1)[1]
            if name in merged:
                return quote(str(merged[name]))
        return match.group(0)

    lines = _listify(command or step.command)
    out = []
    for line in lines:
        if _INTERPOLABLE.search(line):
            with contextlib.suppress(ValueError, KeyError, IndexError, AttributeError):
                line = _INTERPOLABLE.sub(replace, line)
        out.append(line.strip())
    return out


def join_command(commands: list[str], joiner: str = "\n") -> str:
    """valohai-yaml's join_command: drop blank pieces, keep a leading '#!' line first."""
    shebang = None
    bits = []
    for i, cmd in enumerate(commands):
        if i == 0 and cmd.startswith("#!"):
            shebang, _, cmd = cmd.partition("\n")
        if not cmd.strip():
            continue
        bits.append(cmd)
    joined = joiner.join(bits)
    return f"{shebang}\n{joined}" if shebang else joined


def build_script(
    step: Step, values: Mapping[str, Any], command: tuple[str, ...] | list[str] | str | None = None
) -> str:
    """The step's commands as one shell script (newline-joined)."""
    return join_command(build_command(step, values, command), "\n")
