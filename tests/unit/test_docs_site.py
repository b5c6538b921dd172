"""The manual (docs/, mkdocs.yml): its generated reference tables match their sources, and the site
builds with `mkdocs build --strict` (every link and anchor resolves, every page is in the nav)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.docs_reference import PAGES, render
from valohai_airflow.provider import VALOHAI_OPTIONS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_reference_is_current(name: str) -> None:
    """Regenerate with `python scripts/docs_reference.py` when this fails."""
    page = PAGES[name].read_text(encoding="utf-8")
    assert render(name, page) == page, f"{PAGES[name].relative_to(ROOT)} is stale"


def test_configuration_page_lists_every_declared_option_once() -> None:
    page = PAGES["configuration"].read_text(encoding="utf-8")
    for option in VALOHAI_OPTIONS:
        assert page.count(f"| `{option}` |") == 1, option


def test_a_changed_declaration_makes_the_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    page = PAGES["configuration"].read_text(encoding="utf-8")
    monkeypatch.setitem(
        VALOHAI_OPTIONS, "work_dir", {**VALOHAI_OPTIONS["work_dir"], "description": "Somewhere else."}
    )
    rendered = render("configuration", page)
    assert rendered != page and "| `work_dir` | string | empty | Somewhere else. |  |" in rendered


def test_the_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("*.html")}
    for page in sorted((ROOT / "docs").glob("*.md")):
        expected = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert expected in built, page.name
    assert (tmp_path / "site" / "screenshots" / "trigger-form.png").is_file()
