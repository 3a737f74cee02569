#!/usr/bin/env bash
# `make demo`: starts what exists of Skiff. (Grows with the project: the API server,
# then a node, then an example app.)
set -euo pipefail
cd "$(dirname "$0")/.."
./target/debug/skiff version
