#!/usr/bin/env bash
# Runs every test of the project: unit, integration (real files, real loopback HTTP server and
# client, child processes for exit paths) and doc tests with every feature on, then the loom
# model checks of the queue protocol (scripts/loom.sh). Needs only the Rust toolchain from
# rust-toolchain.toml; no external service.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-features "$@"
scripts/loom.sh
