#!/usr/bin/env bash
# `make ui`: the Airflow web UI on http://127.0.0.1:${PORT:-8080} with this repository's dags/
# folder (the loader file and the example project) on the embedded default: SQLite and the local
# store under .demo/ui, LocalExecutor, the local Docker engine. What `airflow standalone` starts
# (api-server, scheduler, dag-processor, triggerer) without its log servers, which would listen on
# every interface: everything here listens on 127.0.0.1 only. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
export PATH="$PWD/.venv/bin:$PATH"  # Airflow starts `airflow` through PATH
export AIRFLOW_HOME="$PWD/.demo/ui"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${REFRESH_INTERVAL:-30}
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
mkdir -p "$AIRFLOW_HOME"
echo "ui: airflow db migrate (SQLite in $AIRFLOW_HOME)"
airflow db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/migrate.log"; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  echo "ui: stopping"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
for component in "api-server" "scheduler --skip-serve-logs" "dag-processor" "triggerer --skip-serve-logs"; do
  name=${component%% *}
  # shellcheck disable=SC2086  # the component's flags are separate words
  airflow $component >"$AIRFLOW_HOME/$name.log" 2>&1 &
  pids+=("$!")
done
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 1 120); do
  if [ -f "$passwords" ] && curl -fsS "http://127.0.0.1:$PORT/api/v2/version" >/dev/null 2>&1; then
    break
  fi
  sleep 1
done
if [ ! -f "$passwords" ]; then
  echo "ui: the API server did not come up; see $AIRFLOW_HOME/api-server.log" >&2
  exit 1
fi
echo "ui: http://127.0.0.1:$PORT  user admin, password $(sed -E 's/.*"admin": *"([^"]*)".*/\1/' "$passwords")"
echo "ui: logs in $AIRFLOW_HOME/*.log; the example's DAGs appear within a minute; Ctrl-C stops"
wait -n "${pids[@]}"
echo "ui: a component stopped; see $AIRFLOW_HOME/*.log" >&2
exit 1
