#!/usr/bin/env bash
# Runs every test of the project: unit, integration (real files, real loopback HTTP server and
# client, child processes for exit paths) and doc tests with every feature on, then the loom
# model checks of the queue protocol (scripts/loom.sh). Real daemons the tests drive
# (logrotate, rsyslogd with RELP) come from Debian's packages: scripts/install-test-deps.sh
# installs what is missing, and each test starts its own instance in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --all-features "$@"
scripts/loom.sh
