#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks to build Lockstep:
# clang and libclang (RocksDB's bindings are generated with bindgen, its C++ built with cc).
set -euo pipefail
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
# libclang itself, not libclang-cpp (which LLVM installs alone and bindgen cannot use).
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
  /usr/lib/x86_64-linux-gnu/libclang.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
command -v g++ >/dev/null 2>&1 || need+=(g++)
# The benchmark chart's font.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
  echo "installing: ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
