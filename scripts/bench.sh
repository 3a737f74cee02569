#!/usr/bin/env bash
# `make bench`: release-mode benchmarks. Each prints a table; targets are in the
# table's header. Benchmarks, not tests, check speed: this machine is shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench store
cargo bench --bench apiserver
cargo bench --bench scheduler
