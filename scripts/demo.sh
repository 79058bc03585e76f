#!/usr/bin/env bash
# Sets up, builds and starts Vigil with a demo: the backend (embedded SQLite, on-disk tantivy),
# one agent tailing .vigil-demo/logs/*.log, demo traffic, and a local Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
exec cargo xtask demo
