"""Reading the Executions page's table (valohai_airflow/airflow/templates/executions_page.html) in tests."""

from __future__ import annotations

import re


def execution_rows(html: str) -> list[list[str]]:
    """The table's execution rows as cell texts (the checkbox and link cells dropped)."""
    rows = re.findall(r'<tr class="execution">(.*?)</tr>', html, re.S)
    return [re.findall(r"<td>(.*?)</td>", r, re.S)[1:-1] for r in rows]


def column(html: str, name: str) -> list[str]:
    """One column's cells, top to bottom."""
    header = re.search(r"<tr>(<th></th>.*?)</tr>", html, re.S)
    assert header is not None, html[:2000]
    names = re.findall(r'data-column="([^"]*)"', header.group(1))
    index = names.index(name)
    return [cells[index] for cells in execution_rows(html)]
