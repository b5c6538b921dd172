#!/usr/bin/env bash
# Build the container images the tests and the demo use, because no registry may be reachable.
# Each image carries a label with the hash of its recipe; it is rebuilt only when missing or when
# the recipe (this file, or the versions below) changed.
#   valohai-airflow/busybox:1     busybox-static in an empty root file system (shell-only steps)
#   valohai-airflow/python:3.11   Debian minbase + python3, numpy and valohai-utils (the example project)
set -euo pipefail
cd "$(dirname "$0")/.."
BUSYBOX_TAG=valohai-airflow/busybox:1
PYTHON_TAG=valohai-airflow/python:3.11
PY_PACKAGES="numpy==2.2.6 valohai-utils==0.8.0"
SUITE=bookworm
recipe=$( (cat "$0"; echo "$PY_PACKAGES $SUITE") | sha256sum | cut -c1-16)

current() { docker image inspect -f '{{ index .Config.Labels "valohai-airflow.recipe" }}' "$1" 2>/dev/null || true; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt() {  # need_apt COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq && as_root apt-get install -y -qq "$2" >/dev/null
}

debian_mirror() {  # the mirror apt already uses on this machine
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | head -1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//'
}

build_busybox() {
  need_apt busybox busybox-static
  local root; root=$(mktemp -d)
  mkdir -p "$root"/{bin,tmp,etc,valohai}
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import --change "LABEL valohai-airflow.recipe=$recipe" \
    --change 'ENV PATH=/bin' - "$BUSYBOX_TAG" >/dev/null
  rm -rf "$root"
}

build_python() {
  need_apt debootstrap debootstrap
  local root; root=$(mktemp -d)
  echo "images: debootstrap $SUITE (minbase + python3) from $(debian_mirror)"
  as_root debootstrap --variant=minbase --include=python3,python-is-python3,ca-certificates "$SUITE" "$root" "$(debian_mirror)" \
    >/tmp/valohai-airflow-debootstrap.log 2>&1 || { tail -20 /tmp/valohai-airflow-debootstrap.log >&2; exit 1; }
  local pyver; pyver=$(as_root chroot "$root" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  local site="$root/usr/local/lib/python$pyver/dist-packages"
  echo "images: installing $PY_PACKAGES for python $pyver"
  .venv/bin/uv pip install --quiet --target "$site" --python-version "$pyver" \
    --python-platform x86_64-manylinux_2_28 --only-binary :all: $PY_PACKAGES
  as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  as_root tar -C "$root" -c . | docker import --change "LABEL valohai-airflow.recipe=$recipe" \
    --change 'ENV PYTHONUNBUFFERED=1' --change 'CMD ["python3"]' - "$PYTHON_TAG" >/dev/null
  as_root rm -rf "$root"
}

if [ "$(current "$BUSYBOX_TAG")" != "$recipe" ]; then
  echo "images: building $BUSYBOX_TAG"
  build_busybox
fi
if [ "$(current "$PYTHON_TAG")" != "$recipe" ]; then
  echo "images: building $PYTHON_TAG (about 2 minutes)"
  build_python
fi
