"""The root error type shows where and what to do the way a diagnostic does."""

from __future__ import annotations

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec.diagnostics import Location


def test_location_and_hint_are_shown_with_the_message() -> None:
    error = ValohaiAirflowError("bad rule", location=Location("valohai.yaml", 3, 7), hint="write a number")
    assert str(error) == "valohai.yaml:3:7: bad rule (write a number)"
    assert str(ValohaiAirflowError("bad rule")) == "bad rule"
    assert error.message == "bad rule"
