#!/usr/bin/env bash
# Installs what the browser tests need: Debian's chromium and playwright-core (from npm,
# pinned by tests/browser/package-lock.json). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-browser: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  echo "setup-browser: installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "setup-browser: installing playwright-core"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
