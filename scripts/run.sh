#!/usr/bin/env bash
# Builds Drover, starts a one-node control plane and deploys a demo application.
# Stop it with: kill $(cat "$DATA_DIR/server.pid")
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA_DIR=${DATA_DIR:-$PWD/.drover}
LISTEN=${LISTEN:-127.0.0.1:6443}
echo "run: building drover (release)…" >&2
cargo build --release -p drover
mkdir -p "$DATA_DIR"
if [ -f "$DATA_DIR/server.pid" ] && kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null; then
  echo "run: a server is already running (pid $(cat "$DATA_DIR/server.pid")); reusing it" >&2
else
  nohup ./target/release/drover server --data-dir "$DATA_DIR" --listen "$LISTEN" >"$DATA_DIR/server.log" 2>&1 &
  echo $! >"$DATA_DIR/server.pid"
fi
export KUBECONFIG="$DATA_DIR/kubeconfig"
for _ in $(seq 1 300); do
  curl -ksf "https://$LISTEN/readyz" >/dev/null 2>&1 && [ -f "$KUBECONFIG" ] && break
  sleep 0.1
done
curl -ksf "https://$LISTEN/readyz" >/dev/null || { echo "run: the server did not start; see $DATA_DIR/server.log" >&2; exit 1; }
kubectl apply -f examples/demo.yaml
kubectl get deploy,svc -o wide
cat <<TXT

Drover is serving the Kubernetes API on https://$LISTEN (log: $DATA_DIR/server.log).
  export KUBECONFIG=$KUBECONFIG
  kubectl get all -A
  kubectl scale deploy/demo --replicas=5
  kubectl get deploy demo -w

No node agent runs containers yet, so the demo's pods wait in Pending ("no nodes available").
To watch the scheduler and controllers place them on simulated (hollow) nodes:
  ./target/release/drover agent --simulate --count 3 --name hollow --server https://$LISTEN \\
      --token \$(cat $DATA_DIR/join-token) --ca-file $DATA_DIR/ca.crt &
Stop it with: kill \$(cat $DATA_DIR/server.pid)
TXT
