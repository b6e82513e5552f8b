#!/usr/bin/env bash
# Installs harness with its test (and cluster) dependencies, and the Debian packages of the
# servers the tests start: chromium (the HTML report test; with chromium-driver, the live
# page test), redis-server (a target that never echoes, and with memcached the
# request/response targets of tests/test_resp.py), nginx-light (the HTTP/1.1 and TLS target
# of tests/test_http.py and tests/test_tls.py) and memcached; nodejs and npm, and socket.io 4.x
# from the npm registry into tests/node (the Node chat room of tests/test_sio.py).
set -euo pipefail
cd "$(dirname "$0")/.."

# need COMMAND PACKAGE: install PACKAGE from Debian when COMMAND is missing (as root only);
# a failure is one line, and the tests that need it skip or fail saying so.
need() {
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null) \
      || echo "tests/setup.sh: could not install $2; the tests that need it will say so" >&2
  fi
}

need chromium chromium
need chromedriver chromium-driver  # selenium drives the live page (tests/test_live_browser.py)
need redis-server redis-server
need nginx nginx-light
need memcached memcached
need mosquitto mosquitto  # the MQTT broker of tests/test_mqtt.py (with and without TLS)
need node nodejs  # with npm: the socket.io 4.x chat room of tests/test_sio.py
need npm npm
# The npm install runs beside pip's (they share nothing).
# (Artillery, the peer of tests/bench/artillery_sio.py, is not here: that bench installs it
# on its first run, about 40 s the suite does not need.)
# socket.io 4.x (npm) for tests/node/sio_chat.js, into tests/node/node_modules (not committed)
if command -v npm >/dev/null 2>&1; then
  ( (cd tests/node && npm install --no-audit --no-fund --silent) \
    || echo "tests/setup.sh: npm install in tests/node failed; tests/test_sio.py's Node tests will skip saying so" >&2 ) &
fi
python -m pip install -q -e '.[test,cluster]'
wait  # the npm install (it reports its own failure and never fails the script)
