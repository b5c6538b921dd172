"""Regenerate the reference tables of the docs from their one source each.

- docs/configuration.md: the `[valohai]` options as provider.py declares them (get_provider_info's config);
- docs/sidecar.md: the keys of valohai-airflow.yaml as the shipped JSON Schema states them.

Each table sits between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->`; the prose around it
is written by hand. Run `python scripts/docs_reference.py` after changing either source;
tests/unit/test_docs_site.py fails while a page is stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from valohai_airflow.provider import get_provider_info

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "valohai_airflow" / "schemas" / "valohai-airflow.schema.json"
PAGES = {"configuration": ROOT / "docs" / "configuration.md", "sidecar": ROOT / "docs" / "sidecar.md"}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def configuration_table() -> str:
    """One row per `[valohai]` option, in the order provider.py declares them."""
    options = get_provider_info()["config"]["valohai"]["options"]
    rows = [
        "| option | type | default | meaning | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, option in options.items():
        default = f"`{option['default']}`" if option["default"] else "empty"
        example = f"`{option['example']}`" if option.get("example") else ""
        rows.append(
            f"| `{name}` | {option['type']} | {default} | {_cell(option['description'])} | {example} |"
        )
    return "\n".join(rows)


def _type(prop: dict[str, Any]) -> str:
    """A JSON Schema property's type, as a reader of YAML would say it."""
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " or ".join(f"`{value}`" for value in prop["enum"])
    kind = str(prop.get("type", "any"))
    if kind == "array" and "items" in prop:
        return f"list of {_type(prop['items'])}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"mapping of name → {_type(prop['additionalProperties'])}"
    if prop.get("format"):
        return f"{kind} ({prop['format']})"
    return kind


def _bounds(prop: dict[str, Any]) -> str:
    """Limits and patterns of a property and of the alternatives it allows."""
    parts = []
    for alternative in [prop, *prop.get("anyOf", [])]:
        for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
            if key in alternative:
                parts.append(f"{sign} {alternative[key]}")
        if "pattern" in alternative:
            parts.append(f"matches {_html_code(alternative['pattern'])}")
    return ", ".join(parts)


def _html_code(text: str) -> str:
    """Code that survives a table cell in both renderers: `|` would split the cell on GitHub, and
    Python-Markdown reads `\\.`, `*` and `[` inside inline HTML as markdown; so every punctuation
    character is an entity inside a literal <code> element."""
    escaped = "".join(c if c.isalnum() else f"&#{ord(c)};" for c in text)
    return f"<code>{escaped}</code>"


def _properties_table(definition: dict[str, Any]) -> list[str]:
    required = set(definition.get("required", []))
    rows = ["| key | type | required | default | bounds |", "| --- | --- | --- | --- | --- |"]
    for name, prop in definition["properties"].items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        rows.append(
            f"| `{name}` | {_cell(_type(prop))} | {'yes' if name in required else ''} | "
            f"{_cell(default)} | {_bounds(prop)} |"
        )
    return rows


def sidecar_reference() -> str:
    """The top-level keys of valohai-airflow.yaml, then each kind of entry, from the JSON Schema."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    lines = [_cell(schema["description"]), "", *_properties_table(schema)]
    for name, definition in schema["$defs"].items():
        lines += ["", f"### {name}", "", _cell(definition.get("description", "")), ""]
        lines += _properties_table(definition)
    return "\n".join(lines)


GENERATORS = {"configuration": configuration_table, "sidecar": sidecar_reference}


def render(name: str, page: str) -> str:
    """The page with its generated region replaced by what the source says now."""
    pattern = re.compile(
        rf"(<!-- generated: {name} -->\n).*?(<!-- end generated: {name} -->)", flags=re.DOTALL
    )
    if not pattern.search(page):
        raise ValueError(f"no '<!-- generated: {name} -->' region in the page")
    return pattern.sub(lambda match: match[1] + GENERATORS[name]() + "\n" + match[2], page)


if __name__ == "__main__":
    for name, path in PAGES.items():
        path.write_text(render(name, path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
