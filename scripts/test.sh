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
# The TypeScript SDK (sdk/typescript): type-check (sources, tests, and the README's examples)
# and unit tests against the Rust side's vectors (client/src/sdk_fixtures.rs keeps those in
# step). Seconds; `npm ci` first when node_modules is missing or older than the lock file
# (node and npm: scripts/deps.sh). Its live suite runs in tests/tests/sdk_typescript.rs.
(
  cd sdk/typescript
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
  npm test
)
# The explorer's browser test (explorer/test: playwright-core driving Debian's chromium) needs
# its one package; tests/tests/explorer.rs runs it against a live network.
(
  cd explorer/test
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
)
# The monitoring an operator deploys: the Prometheus config and alert rules are valid, and
# each rule fires, and stays quiet, where its unit tests say (deploy/prometheus/alerts_test.yml).
# Seconds; promtool comes with Debian's prometheus package (scripts/deps.sh).
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
export RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export CLIPPY_ARGS="-Dwarnings"
# Bins and tests in one build: built apart, the test build's dev-dependencies change features
# of the build scripts' dependencies (bindgen's), and RocksDB would be compiled twice.
# `lockstep-node/byzantine` adds `lockstep-byzantine`, the node with Byzantine behaviours the
# fault runner's byz-* scenarios start (the `lockstep` binary built with it misbehaves only if
# its config has a [byzantine] section; a release build, scripts/up.sh's, never has the
# feature). Every cargo command below names it, so nothing is compiled twice.
FEATURES=(--features lockstep-node/byzantine)
cargo build --workspace --bins --tests "${FEATURES[@]}"
# Fast tests, in parallel.
cargo test --workspace --exclude lockstep-tests "${FEATURES[@]}"
# Multi-process tests, one network at a time: every integration-test target, which only
# tests/ (lockstep-tests) has. Chosen by target, not with `-p lockstep-tests`: selecting one
# package resolves features for it alone, and RocksDB and libp2p would be compiled again.
cargo test --workspace --test '*' "${FEATURES[@]}" -- --test-threads=1
