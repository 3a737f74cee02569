#!/usr/bin/env bash
# `make test`: lints, then every test of the workspace with a real etcd running.
# Store conformance tests start their own etcd per test (compaction is global to an
# etcd, so tests must not share one); the shared one started here serves the
# end-to-end tests of `skiff server --etcd-endpoints`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/etcd.sh

export RUST_BACKTRACE=1
export RUST_LIB_BACKTRACE=0

make --no-print-directory lint
start_etcd
cargo test --workspace
