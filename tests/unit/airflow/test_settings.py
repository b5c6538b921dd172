"""The `[valohai]` defaults have one source: provider.py's declaration, which settings.py reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.configuration import conf

from valohai_airflow import provider
from valohai_airflow.airflow.settings import valohai_settings


def test_declared_defaults_apply_through_airflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What an untouched airflow.cfg gives: the declared defaults, empty paths under $AIRFLOW_HOME/valohai."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    settings = valohai_settings()
    assert (settings.clean_work_dirs, settings.strict_loading) == (True, False)
    assert provider.option_default("clean_work_dirs") == "True"
    assert provider.option_default("strict_loading") == "False"
    assert settings.store_url == str(tmp_path / "valohai" / "store")
    assert settings.work_dir == tmp_path / "valohai" / "work"
    assert settings.input_cache_dir == tmp_path / "valohai" / "cache"
    assert (settings.docker_url, settings.input_roots, settings.input_private_networks) == (None, "", "")


def test_settings_follow_the_declaration_without_repeating_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Airflow's provider config out of the way, every default settings.py uses is the declared one:
    change the declaration and the settings follow (they used to hard-code True/False and "")."""
    changed = {
        "clean_work_dirs": "False",
        "strict_loading": "True",
        "docker_url": "unix:///declared.sock",
        "input_roots": "/declared/data",
        "input_private_networks": "10.9.0.0/16",
        "store_url": "/declared/store",
    }
    for name, default in changed.items():
        monkeypatch.setitem(
            provider.VALOHAI_OPTIONS, name, {**provider.VALOHAI_OPTIONS[name], "default": default}
        )
    with conf.make_sure_configuration_loaded(with_providers=False):
        assert conf.get("valohai", "clean_work_dirs", fallback=None) is None  # the fallback is what counts
        settings = valohai_settings()
    assert (settings.clean_work_dirs, settings.strict_loading) == (False, True)
    assert settings.docker_url == "unix:///declared.sock"
    assert (settings.input_roots, settings.input_private_networks) == ("/declared/data", "10.9.0.0/16")
    assert settings.store_url == "/declared/store"


def test_every_option_settings_reads_is_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """settings.py asks for defaults by name; a name provider.py does not declare is a KeyError, so an
    option read without a declaration cannot pass this."""
    asked: list[str] = []
    declared = provider.option_default

    def recording(name: str) -> str:
        asked.append(name)
        return declared(name)

    monkeypatch.setattr("valohai_airflow.airflow.settings.option_default", recording)
    valohai_settings()
    assert sorted(set(asked)) == sorted(provider.VALOHAI_OPTIONS)
