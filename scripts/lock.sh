#!/usr/bin/env bash
# Regenerate constraints.txt (the pins CI installs) from pyproject.toml. Run after changing dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/venv.sh >/dev/null 2>&1 || true
.venv/bin/uv pip compile --quiet --python-version 3.11 --extra dev --no-emit-package valohai-airflow \
  pyproject.toml -o constraints.txt
