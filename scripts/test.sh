#!/usr/bin/env bash
# Runs every check and test of Vigil: formatting, clippy (server and browser builds), then the
# unit, integration, PostgreSQL, Prometheus and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
# A failing test's message, not pages of stack frames, is what the end of the output shows.
export RUST_BACKTRACE=0
cargo fmt --all -- --check
cargo xtask layers
cargo xtask clippy
cargo xtask test
