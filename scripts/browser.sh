#!/usr/bin/env bash
# Make sure the browser test has a headless Chromium and its driver (Debian's chromium and
# chromium-driver; no browser is ever downloaded). Quick when both are there. On Debian as root it
# installs them; anywhere else it prints what to install and the browser test skips itself.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ]; then
  echo "browser: installing Debian's chromium and chromium-driver for the browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
  exit 0
fi
echo "browser: the browser test is skipped without chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
