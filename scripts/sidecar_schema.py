"""Regenerate valohai_airflow/schemas/valohai-airflow.schema.json from the sidecar models.

Run after changing spec/sidecar.py; tests/unit/spec/test_sidecar.py fails while the shipped file is stale.
"""

from __future__ import annotations

from pathlib import Path

from valohai_airflow.spec.sidecar import sidecar_json_schema_text

TARGET = (
    Path(__file__).resolve().parent.parent / "valohai_airflow" / "schemas" / "valohai-airflow.schema.json"
)

if __name__ == "__main__":
    TARGET.write_text(sidecar_json_schema_text(), encoding="utf-8")
    print(f"wrote {TARGET}")
