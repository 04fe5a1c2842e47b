#!/usr/bin/env bash
# Checks the Rust toolchain and installs what a fresh Debian machine lacks to build Lockstep:
# clang and libclang (RocksDB's bindings are generated with bindgen, its C++ built with cc),
# g++, the benchmark chart's font, the fault tests' iproute2, nftables and faketime, and
# prometheus (promtool and the server) for the monitoring in deploy/, Node.js and npm for the
# TypeScript SDK, and chromium for the explorer's browser test.
# Installing needs root, or sudo; without either it names the packages and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain: at least the workspace's rust-version, with clippy and rustfmt (the test
# script runs both).
want=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
have=$(rustc --version 2>/dev/null | awk '{print $2}') || true
if [ -z "${have:-}" ]; then
  echo "deps: rustc not found; install Rust ${want} or newer (https://rustup.rs)" >&2
  exit 1
fi
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
  echo "deps: rustc ${have} is older than the workspace's rust-version ${want}; update Rust" >&2
  exit 1
fi
for pair in clippy:clippy fmt:rustfmt; do
  if ! cargo "${pair%%:*}" --version >/dev/null 2>&1; then
    echo "deps: cargo ${pair%%:*} is missing; install it with: rustup component add ${pair#*:}" >&2
    exit 1
  fi
done

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
# libclang itself, not libclang-cpp (which LLVM installs alone and bindgen cannot use).
# (Any one pattern matching is enough: `ls` of them all fails when one does not match.)
libclang=no
for pattern in '/usr/lib/llvm-*/lib/libclang.so*' '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' \
  '/usr/lib/x86_64-linux-gnu/libclang.so*' '/usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*'; do
  compgen -G "$pattern" >/dev/null && libclang=yes
done
[ "$libclang" = yes ] || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
# The benchmark chart's font.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# The fault tests' network lab (testnet/src/net: namespaces, veths, a bridge, nftables rules)
# and their clock skew (libfaketime). `ip` and `nft` live in sbin, which a non-root PATH lacks.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have ip || need+=(iproute2)
have nft || need+=(nftables)
have faketime || need+=(faketime)
# The monitoring (deploy/prometheus): promtool checks and unit-tests the alert rules, and
# `lockstep-testnet up --monitor` and its test run the prometheus server. One package has both.
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || need+=(prometheus)
# The TypeScript SDK (sdk/typescript): its type-check and tests run on Node.js with npm.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The explorer's browser test (tests/tests/explorer.rs, explorer/test): Debian's Chromium,
# driven by playwright-core (no browser download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps: not root and no sudo; as root, run: apt-get install ${need[*]}" >&2
    exit 1
  fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The SDK's packages (vitest, @noble/*) need Node.js 20.19 or newer; Debian 12's own nodejs
# is 18, so an older one is named rather than used.
node_have=$(node --version 2>/dev/null | sed 's/^v//') || true
if [ "$(printf '%s\n%s\n' 20.19.0 "${node_have:-0}" | sort -V | head -1)" != 20.19.0 ]; then
  echo "deps: Node.js ${node_have:-missing} is older than 20.19, which sdk/typescript needs; install Node.js 20.19+ (with npm)" >&2
  exit 1
fi
