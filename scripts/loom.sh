#!/usr/bin/env bash
# Model-checks the queue protocol (claiming positions, the flush barrier, parking the worker,
# closing) with loom. The crate is built with `--cfg kakashi_loom` in a target directory of its
# own, so that the flag does not force the main build to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg kakashi_loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release --lib loom_
