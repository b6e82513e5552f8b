#!/usr/bin/env bash
# Installs harness with its test dependencies, and Debian's chromium for the HTML report test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "tests/setup.sh: could not install chromium; the browser test will fail under CI" >&2
  fi
fi
python -m pip install -q -e '.[test]'
