//! End to end with a real node agent: `kubectl autoscale` scales a Deployment on the
//! CPU its containers really use (cgroup figures → metrics.k8s.io → autoscaler).

mod common;

use common::node::BUSYBOX;
use common::{Server, wait_for};
use std::time::Duration;

#[test]
fn autoscale_follows_real_cpu_use() {
    let s = Server::start_with_node(&[]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: burn}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: burn}}}}
  template:
    metadata: {{labels: {{app: burn}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: cpu
        image: {BUSYBOX}
        command: ["sh", "-c", "while :; do :; done"]
        resources: {{requests: {{cpu: 20m}}, limits: {{cpu: 60m}}}}
"#
        ),
    );
    s.kubectl(&["rollout", "status", "deploy/burn", "--timeout=120s"]);
    s.kubectl(&[
        "autoscale",
        "deploy/burn",
        "--min=1",
        "--max=3",
        "--cpu-percent=50",
    ]);
    // Each pod burns its whole 60m limit: 300% of its request against a 50% target.
    wait_for(
        "the autoscaler to reach its maximum",
        Duration::from_secs(120),
        || {
            let r = s.kubectl(&["get", "deploy", "burn", "-o", "jsonpath={.spec.replicas}"]);
            (r == "3").then_some(())
        },
    );
    let hpa = s.kubectl(&[
        "get",
        "hpa",
        "burn",
        "-o",
        "jsonpath={.status.currentMetrics[0].resource.current.averageUtilization}",
    ]);
    let util: i64 = hpa.parse().unwrap_or(0);
    assert!(util > 50, "reported utilization {hpa}");
    s.kubectl(&["rollout", "status", "deploy/burn", "--timeout=120s"]);
}
