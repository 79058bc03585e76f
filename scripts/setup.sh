#!/usr/bin/env bash
# Installs what Vigil needs on Debian, idempotently.
#   scripts/setup.sh run    build and run: the wasm32 target, npm's binaryen (wasm-opt) and uPlot, Prometheus
#   scripts/setup.sh test   the above, plus Chromium, ChromeDriver and PostgreSQL for the tests, and
#                           the log clients of backend/tests/clients in ~/.cache/vigil/venv
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-test}"

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing. Install Rust with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

packages=(prometheus)
if [ "$profile" = test ]; then
  packages+=(chromium chromium-driver postgresql prometheus-alertmanager python3-aiosmtpd buildbot buildbot-worker webhook)
fi
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
fi

# From npm: wasm-opt (binaryen; Debian's is too old and breaks the bundle) and uPlot, the
# chart library the site serves.
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -f node_modules/uplot/dist/uPlot.iife.min.js ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# The real client libraries the tests send logs with (OpenTelemetry SDK, Elasticsearch client,
# a Loki client), from PyPI into a virtualenv kept between runs; reinstalled when the pinned
# list changes.
if [ "$profile" = test ]; then
  venv="${VIGIL_TEST_VENV:-$HOME/.cache/vigil/venv}"
  requirements=backend/tests/clients/requirements.txt
  stamp="$venv/.requirements.sha256"
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing the test clients into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      # Debian's python3 needs its venv package.
      rm -rf "$venv"
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo=sudo
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      /usr/bin/python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
  fi
fi
