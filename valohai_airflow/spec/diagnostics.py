"""Errors and warnings that point at a place in a file, so a user can act on them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from valohai_airflow.spec.pickling import pickled_by_fields


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


class ValohaiAirflowError(Exception):
    """The project's own error type: everything a user can act on derives from it."""


class ValohaiSpecError(ValohaiAirflowError):
    """A valohai.yaml (or its sidecar) that cannot be compiled; carries every error found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))
