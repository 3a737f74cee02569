#!/usr/bin/env bash
# Sourced by test.sh and bench.sh: starts a throwaway etcd on free loopback ports,
# exports SKIFF_TEST_ETCD_ENDPOINTS, and stops it (and removes its data) on exit.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_etcd() {
  local client_port peer_port
  client_port=$(free_port)
  peer_port=$(free_port)
  ETCD_DIR=$(mktemp -d -t skiff-etcd.XXXXXX)
  etcd --name skiff-test --data-dir "$ETCD_DIR/data" \
    --listen-client-urls "http://127.0.0.1:$client_port" \
    --advertise-client-urls "http://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "skiff-test=http://127.0.0.1:$peer_port" \
    >"$ETCD_DIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  trap stop_etcd EXIT
  export SKIFF_TEST_ETCD_ENDPOINTS="http://127.0.0.1:$client_port"
  for _ in $(seq 1 100); do
    if curl -fsS "$SKIFF_TEST_ETCD_ENDPOINTS/health" 2>/dev/null | grep -q '"health":"true"'; then
      echo "etcd: up at $SKIFF_TEST_ETCD_ENDPOINTS (pid $ETCD_PID)"
      return 0
    fi
    if ! kill -0 "$ETCD_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "etcd: failed to start; its log:" >&2
  cat "$ETCD_DIR/etcd.log" >&2
  return 1
}

stop_etcd() {
  if [ -n "${ETCD_PID:-}" ]; then
    kill "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
  fi
  [ -n "${ETCD_DIR:-}" ] && rm -rf "$ETCD_DIR"
}
