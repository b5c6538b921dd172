#!/usr/bin/env bash
# Make sure the Celery end-to-end test (tests/e2e/test_celery.py) has Debian's PostgreSQL 15 and
# Redis binaries. Only the binaries: the test runs its own Postgres cluster (initdb/pg_ctl as the
# postgres user in a temp dir) and its own redis-server, each on a free port of 127.0.0.1, never the
# system services (which are stopped again if the package install started them). Quick when both
# are there. On Debian as root it installs them; elsewhere it prints what to install, and the test
# skips itself.
set -euo pipefail
PG_BIN=/usr/lib/postgresql/15/bin
if [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ]; then
  echo "services: installing Debian's postgresql and redis-server for the Celery test"
  export DEBIAN_FRONTEND=noninteractive
  # the packages' postinst would start the system services: forbid that (policy-rc.d), we run our own
  policy=/usr/sbin/policy-rc.d
  created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  trap '[ -n "$created" ] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql-15 redis-server >/dev/null
  exit 0
fi
echo "services: the Celery test is skipped without $PG_BIN/initdb and redis-server (Debian: apt-get install postgresql-15 redis-server)"
