#!/usr/bin/env bash
# Installs what building and testing Skiff needs on a fresh Debian machine:
# the wasm32-wasip2 Rust target, etcd (real etcd for the store tests) and protoc
# (etcd-client's build needs it). Idempotent: does nothing when all are present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "deps: adding Rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
