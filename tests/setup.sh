#!/usr/bin/env bash
# Installs harness with its test dependencies, Debian's chromium for the HTML report test, and
# redis-server (a target that never echoes, for the no-valid-reply diagnosis test) and
# nginx-light (the HTTP/1.1 target of tests/test_http.py), and memcached (with redis-server, the
# request/response targets of tests/test_resp.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "tests/setup.sh: could not install chromium; the browser test will fail under CI" >&2
  fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
      || echo "tests/setup.sh: could not install redis-server; its test will be skipped" >&2
  fi
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null) \
      || echo "tests/setup.sh: could not install nginx-light; the HTTP tests will be skipped" >&2
  fi
fi
if ! command -v memcached >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached >/dev/null) \
      || echo "tests/setup.sh: could not install memcached; its tests will be skipped" >&2
  fi
fi
python -m pip install -q -e '.[test,cluster]'
