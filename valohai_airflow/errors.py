"""The root of this project's exceptions: every error a user can act on is a ValohaiAirflowError, in
every layer, so one `except` catches all of them and nothing else (a bug stays a traceback)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from valohai_airflow.spec.diagnostics import Location


class ValohaiAirflowError(Exception):
    """An error a user can act on. `location` (file:line:column) and `hint` (what to do instead),
    where known, are shown with the message the way a Diagnostic shows them."""

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = self.message if self.location is None else f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text
