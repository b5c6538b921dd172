#!/usr/bin/env bash
# Make sure a Compose implementation is there for the compose file's test
# (tests/integration/test_compose.py runs its `config` command; the stack itself is never started).
# Quick when `docker compose` (the plugin) or `docker-compose` answers. On Debian as root it installs
# Debian's docker-compose (1.29, which knows profiles and service_completed_successfully); anywhere
# else it prints what to install and that check is skipped (the structural checks still run).
set -euo pipefail
if docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ]; then
  echo "compose: installing Debian's docker-compose for the compose file's test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  exit 0
fi
echo "compose: 'docker compose config' is skipped without docker compose or docker-compose (Debian: apt-get install docker-compose)"
