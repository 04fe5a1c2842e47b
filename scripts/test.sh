#!/usr/bin/env bash
# The whole test suite: unit and property tests, then end-to-end tests over real processes.
# Installs build dependencies when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# The rules tools hold (clippy.toml, [workspace.lints]). Formatting first, as it takes a
# second. Lints: clippy-driver compiles the workspace's own crates in the one build below,
# with every warning an error (CLIPPY_ARGS is how `cargo clippy` passes its flags to the
# driver). `cargo clippy` itself would check instead of build, and a check build runs
# RocksDB's build script again (another ~10 minutes of C++ on 2 cores).
cargo fmt --all --check
export RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export CLIPPY_ARGS="-Dwarnings"
# Bins and tests in one build: built apart, the test build's dev-dependencies change features
# of the build scripts' dependencies (bindgen's), and RocksDB would be compiled twice.
cargo build --workspace --bins --tests
# Fast tests, in parallel.
cargo test --workspace --exclude lockstep-tests
# Multi-process tests, one network at a time: every integration-test target, which only
# tests/ (lockstep-tests) has. Chosen by target, not with `-p lockstep-tests`: selecting one
# package resolves features for it alone, and RocksDB and libp2p would be compiled again.
cargo test --workspace --test '*' -- --test-threads=1
