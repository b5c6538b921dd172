#!/usr/bin/env bash
# Make sure a Docker engine answers. On a Debian machine where we are root and no engine runs,
# install Debian's docker.io and start dockerd without a default bridge (containers get no network).
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "docker-engine: no Docker engine answers; start Docker (or set DOCKER_HOST) and run this again." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "docker-engine: starting dockerd (no bridge, no iptables) in the background; log in /var/log/valohai-airflow-dockerd.log"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false \
    >/var/log/valohai-airflow-dockerd.log 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s; see /var/log/valohai-airflow-dockerd.log" >&2
exit 1
