"""The root error type: every error class of the project derives from it, and it shows where and what
to do the way a diagnostic does."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import valohai_airflow
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec.diagnostics import Location

AIRFLOW_FREE = ("spec", "plan", "loading", "runtime", "store")


def test_location_and_hint_are_shown_with_the_message() -> None:
    error = ValohaiAirflowError("bad rule", location=Location("valohai.yaml", 3, 7), hint="write a number")
    assert str(error) == "valohai.yaml:3:7: bad rule (write a number)"
    assert str(ValohaiAirflowError("bad rule")) == "bad rule"
    assert error.message == "bad rule"


def test_every_error_class_of_the_airflow_free_layers_derives_from_the_root() -> None:
    found = set()
    for layer in AIRFLOW_FREE:
        package = importlib.import_module(f"valohai_airflow.{layer}")
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            for _, cls in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
                if issubclass(cls, Exception) and cls.__module__.startswith(valohai_airflow.__name__):
                    found.add(cls)
    assert len(found) >= 10
    assert [cls for cls in found if not issubclass(cls, ValohaiAirflowError)] == []
