#!/usr/bin/env bash
# The whole test suite: unit and property tests, then end-to-end tests over real processes.
# Installs build dependencies when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# The rules tools hold (clippy.toml, [workspace.lints]): formatting and lints first, so a
# rule broken fails in a minute, not after the end-to-end tests.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Bins and tests in one build: built apart, the test build's dev-dependencies change features
# of the build scripts' dependencies (bindgen's), and RocksDB would be compiled twice.
cargo build --workspace --bins --tests
# Fast tests, in parallel.
cargo test --workspace --exclude lockstep-tests
# Multi-process tests, one network at a time: every integration-test target, which only
# tests/ (lockstep-tests) has. Chosen by target, not with `-p lockstep-tests`: selecting one
# package resolves features for it alone, and RocksDB and libp2p would be compiled again.
cargo test --workspace --test '*' -- --test-threads=1
