#!/usr/bin/env bash
# `make demo`: a local Skiff control plane with the demo manifests applied, driven by
# the real kubectl. Runs until Ctrl-C. (Grows with the project: nodes and a serving
# app come with the runtime and controllers.)
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${SKIFF_DEMO_DIR:-.skiff/demo}
LISTEN=${SKIFF_DEMO_LISTEN:-127.0.0.1:6443}
mkdir -p "$DATA"
./target/debug/skiff server --data-dir "$DATA" --listen "$LISTEN" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM

DATA=$(cd "$DATA" && pwd)
export KUBECONFIG="$DATA/kubeconfig.yaml"
for _ in $(seq 1 100); do
  [ -f "$DATA/tls/ca.crt" ] && curl -fsS --cacert "$DATA/tls/ca.crt" "https://$LISTEN/healthz" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "demo: skiff server exited" >&2; exit 1; }
  sleep 0.1
done

run() { echo "\$ $*"; "$@"; echo; }
run kubectl get namespaces
run kubectl apply -f manifests/demo/namespace.yaml
run kubectl apply -f manifests/demo/
run kubectl -n demo get deployments,services,configmaps
run ./target/debug/skiff get all -n demo
run kubectl -n demo get deployment hello -o jsonpath='{.spec.template.spec.containers[0].image}{"\n"}'

echo "Skiff is running at https://$LISTEN  (export KUBECONFIG=$KUBECONFIG). Ctrl-C stops it."
wait $SERVER
