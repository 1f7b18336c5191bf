#!/usr/bin/env bash
# Installs the SOAP client the tests use (zeep, pinned in tests/soap/requirements.txt)
# into tests/soap/.venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../tests/soap"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import zeep" 2>/dev/null; then
  echo "setup-soap: installing zeep"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
fi
