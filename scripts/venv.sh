#!/usr/bin/env bash
# Create or refresh .venv with the package and its pinned dependencies (constraints.txt).
# Reinstalls only when pyproject.toml or constraints.txt changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
UV_VERSION=0.13.9
stamp=.venv/.installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/airflow ]; then
  exit 0
fi
echo "venv: installing valohai-airflow and its pinned dependencies into .venv"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q "uv==$UV_VERSION"
VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install -q -c constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
