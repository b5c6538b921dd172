"""Errors and warnings that point at a place in a file, so a user can act on them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec.pickling import pickled_by_fields

# A value from the file is echoed in a message up to this many characters (a 9 MB scalar is not).
ECHO_LIMIT = 200
# Any message or hint is cut to this length, whatever it echoes.
MESSAGE_LIMIT = 1000


def shown(value: Any) -> str:
    """`repr(value)` for a message, cut after ECHO_LIMIT characters with the full length said."""
    text = repr(value)
    if len(text) <= ECHO_LIMIT:
        return text
    if isinstance(value, list | tuple | dict):
        size = f"{len(value):,} {'keys' if isinstance(value, dict) else 'items'}"
    else:
        size = f"{len(value) if isinstance(value, str) else len(text):,} characters"
    return f"{text[:ECHO_LIMIT]}… ({size})"


def _cut(text: str) -> str:
    if len(text) <= MESSAGE_LIMIT:
        return text
    suffix = f"… ({len(text):,} characters)"
    return text[: MESSAGE_LIMIT - len(suffix)] + suffix


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@pickled_by_fields
@dataclass(slots=True, unsafe_hash=True)
class Location:
    """A place in a file; line and column count from 1 like editors do (0 means unknown).

    Immutable by convention, not `frozen`: the YAML loader makes one per value it reads, and a
    frozen dataclass's `__init__` (an `object.__setattr__` per field) took three times as long."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    location: Location
    hint: str | None = None

    def __post_init__(self) -> None:
        """Messages that echo a long value anywhere are cut (the error DAG and logs show them)."""
        if len(self.message) > MESSAGE_LIMIT:
            object.__setattr__(self, "message", _cut(self.message))
        if self.hint is not None and len(self.hint) > MESSAGE_LIMIT:
            object.__setattr__(self, "hint", _cut(self.hint))

    def __str__(self) -> str:
        text = f"{self.location}: {self.severity.value}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "message": self.message,
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "hint": self.hint,
        }


@dataclass
class Diagnostics:
    """Collects everything found in one pass instead of stopping at the first problem."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, location: Location, hint: str | None = None) -> None:
        self.items.append(Diagnostic(Severity.ERROR, message, location, hint))

    def warning(self, message: str, location: Location, hint: str | None = None) -> None:
        self.items.append(Diagnostic(Severity.WARNING, message, location, hint))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValohaiSpecError(self.errors)


class ValohaiSpecError(ValohaiAirflowError):
    """A valohai.yaml (or its sidecar) that cannot be compiled; carries every error found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))
