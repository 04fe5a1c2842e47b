#!/usr/bin/env bash
# Builds Lockstep (release) and runs a local network in the foreground; Ctrl-C stops it.
# Arguments go to `lockstep-testnet up` (default: --validators 4 --dir testnet-data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bins
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/lockstep-testnet" up "$@"
