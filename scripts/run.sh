#!/usr/bin/env bash
# Builds Drover, starts a one-node cluster (control plane + a local node agent running
# runc containers) and deploys a demo application built from Debian's busybox-static.
# Stop it with: kill $(cat "$DATA_DIR/server.pid"); clean up with: drover reset --data-dir "$DATA_DIR"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA_DIR=${DATA_DIR:-$PWD/.drover}
LISTEN=${LISTEN:-127.0.0.1:6443}
DROVER=./target/release/drover
echo "run: building drover (release)…" >&2
cargo build --release -p drover
mkdir -p "$DATA_DIR"
echo "run: building the demo image from /usr/bin/busybox and importing it into the node…" >&2
$DROVER image build-busybox --tag drover.local/busybox:1.36 --output "$DATA_DIR/busybox.tar"
$DROVER image import --data-dir "$DATA_DIR" "$DATA_DIR/busybox.tar"
if [ -f "$DATA_DIR/server.pid" ] && kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null; then
  echo "run: a server is already running (pid $(cat "$DATA_DIR/server.pid")); reusing it" >&2
else
  nohup $DROVER server --data-dir "$DATA_DIR" --listen "$LISTEN" --node-name drover-node >"$DATA_DIR/server.log" 2>&1 &
  echo $! >"$DATA_DIR/server.pid"
fi
export KUBECONFIG="$DATA_DIR/kubeconfig"
for _ in $(seq 1 300); do
  curl -ksf "https://$LISTEN/readyz" >/dev/null 2>&1 && [ -f "$KUBECONFIG" ] && break
  sleep 0.1
done
curl -ksf "https://$LISTEN/readyz" >/dev/null || { echo "run: the server did not start; see $DATA_DIR/server.log" >&2; exit 1; }
kubectl wait --for=condition=Ready node/drover-node --timeout=60s
kubectl apply -f examples/demo.yaml
echo "run: waiting for the demo's pods…" >&2
kubectl rollout status deploy/demo --timeout=120s
kubectl get deploy,pods,svc -o wide
IP=$(kubectl get pods -l app=demo -o jsonpath='{.items[0].status.podIP}')
POD=$(kubectl get pods -l app=demo -o jsonpath='{.items[0].metadata.name}')
echo "run: curl http://$IP:8080/ →" >&2
curl -fsS "http://$IP:8080/"
cat <<TXT

Drover is running a one-node cluster: the Kubernetes API on https://$LISTEN
(log: $DATA_DIR/server.log) and the demo's three web servers as runc containers.
  export KUBECONFIG=$KUBECONFIG
  curl http://$IP:8080/                       # a pod, on its own IP
  kubectl logs $POD
  kubectl exec $POD -- ps
  kubectl exec -it $POD -- sh
  kubectl port-forward $POD 18080:8080 &  curl localhost:18080
  kubectl top pod
  kubectl scale deploy/demo --replicas=5
  kubectl delete pod $POD                     # a replacement appears
Stop it with: kill \$(cat $DATA_DIR/server.pid)   (containers keep running, as with a kubelet)
Remove every container and the pod network: $DROVER reset --data-dir $DATA_DIR --node-name drover-node
TXT
