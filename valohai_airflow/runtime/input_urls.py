"""`{parameter:x}` and `{parameter-value:x}` in input URLs (VALOHAI.md §9.4): replaced by the
parameter's value when the node runs, in defaults, overrides and run-conf URLs alike.

Unlike in a command, `{parameter:x}` gives the bare value here (`s3://b/{parameter:user}/*.csv`),
as Valohai documents; `{parameter-value:x}` is accepted as its synonym. A flag gives `true`/`false`.
An unknown parameter, one without a value, or a list value (a `multiple` parameter) fails the node:
a URL with a hole in it would read the wrong files. Other `{…}` text stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError

_PLACEHOLDER = re.compile(r"\{(parameter|parameter-value):([^{}]+)\}")


class InputUrlError(ValohaiAirflowError):
    """An input URL whose parameter placeholder cannot be filled."""


def interpolate_url(url: str, parameters: Mapping[str, Any]) -> str:
    """`url` with each `{parameter:x}` / `{parameter-value:x}` replaced by the value of `x`."""

    def value(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            raise InputUrlError(f"{url}: {match.group(0)} names no parameter of this step (it has {known})")
        found = parameters[name]
        if found is None:
            raise InputUrlError(f"{url}: parameter {name!r} has no value to put in {match.group(0)}")
        if isinstance(found, list | tuple | dict):
            raise InputUrlError(f"{url}: parameter {name!r} is a list ({found!r}); a URL takes one value")
        if isinstance(found, bool):
            return "true" if found else "false"
        return str(found)

    return _PLACEHOLDER.sub(value, url)
