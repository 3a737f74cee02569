#!/usr/bin/env bash
# `make demo`: a whole Skiff cluster on this machine (`skiff up`: API, scheduler,
# controllers and one node), the demo app deployed with the real kubectl — a Wasm HTTP
# component, three replicas behind a NodePort Service — and served on
# http://127.0.0.1:30080. Runs until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${SKIFF_DEMO_DIR:-.skiff/demo}
LISTEN=${SKIFF_DEMO_LISTEN:-127.0.0.1:6443}
GUESTS="$PWD/tests/guests/target/wasm32-wasip2/release"
mkdir -p "$DATA"
./target/debug/skiff up --data-dir "$DATA" --listen "$LISTEN" --agent-port 0 2>"$DATA/skiff.log" &
SKIFF=$!
trap 'kill $SKIFF 2>/dev/null; wait $SKIFF 2>/dev/null' EXIT INT TERM

DATA=$(cd "$DATA" && pwd)
export KUBECONFIG="$DATA/kubeconfig.yaml"
for _ in $(seq 1 100); do
  [ -f "$DATA/tls/ca.crt" ] && curl -fsS --cacert "$DATA/tls/ca.crt" "https://$LISTEN/healthz" >/dev/null 2>&1 && break
  kill -0 $SKIFF 2>/dev/null || { echo "demo: skiff up exited" >&2; exit 1; }
  sleep 0.1
done

run() { echo "\$ $*"; "$@"; echo; }
run kubectl get nodes -o wide
run kubectl apply -f manifests/demo/namespace.yaml -f manifests/demo/configmap.yaml -f manifests/demo/service.yaml
echo "\$ kubectl apply -f manifests/demo/deployment.yaml   # image: file://$GUESTS/http_hello.wasm"
sed "s#file:///opt/skiff/demo/#file://$GUESTS/#" manifests/demo/deployment.yaml | kubectl apply -f -
echo
run kubectl -n demo rollout status deployment/hello --timeout=120s
run kubectl -n demo get pods,services,endpoints -o wide
for _ in 1 2 3; do run curl -sS http://127.0.0.1:30080/; done
run kubectl -n demo logs deployment/hello

cat <<EOT
Skiff is running: API at https://$LISTEN, the demo app at http://127.0.0.1:30080 (log: $DATA/skiff.log)
  export KUBECONFIG=$KUBECONFIG
  kubectl -n demo scale deployment/hello --replicas=5
  kubectl -n demo set env deployment/hello GREETING=Howdy && kubectl -n demo rollout status deployment/hello
  kubectl -n demo rollout undo deployment/hello
Ctrl-C stops it.
EOT
wait $SKIFF
