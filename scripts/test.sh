#!/usr/bin/env bash
# The whole test suite: unit and property tests, then end-to-end tests over real processes.
# Installs build dependencies when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --workspace --bins
# Fast tests, in parallel.
cargo test --workspace --exclude lockstep-tests
# Multi-process tests, one network at a time.
cargo test -p lockstep-tests -- --test-threads=1
