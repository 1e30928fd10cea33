//! Placing 10,000 pods on 1,000 nodes through the incremental snapshot: every pod is
//! placed, the snapshot follows each placement, and no node is overcommitted.

use scheduler::{Config, Snapshot, schedule};
use serde_json::json;

#[test]
fn ten_thousand_pods_on_a_thousand_nodes() {
    let mut snap = Snapshot::new();
    for i in 0..1000 {
        snap.add_node(&json!({
            "metadata": {"name": format!("node-{i:04}"), "labels": {
                "kubernetes.io/hostname": format!("node-{i:04}"),
                "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
    }
    let config = Config::default();
    for i in 0..10_000 {
        let pod = json!({
            "metadata": {"name": format!("web-{i}"), "namespace": "default",
                "labels": {"app": format!("app-{}", i % 50)},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": format!("rs-{}", i % 50), "controller": true}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "300m", "memory": "1Gi"}}}]}
        });
        let node = schedule(&snap, &pod, &config).unwrap_or_else(|e| panic!("pod {i}: {e}"));
        snap.assume_pod(&pod, &node).unwrap();
        // Some churn: every tenth pod is deleted again, as a scale-down would.
        if i % 10 == 9 {
            assert!(snap.remove_pod(&format!("default/web-{}", i - 5)));
        }
    }
    assert_eq!(snap.pod_count(), 9_000);
    let mut max_on_node = 0;
    for i in 0..1000 {
        let name = format!("node-{i:04}");
        let used = snap.requested(&name).unwrap();
        assert!(used.milli_cpu <= 4000 && used.memory <= 16 << 30);
        max_on_node = max_on_node.max(used.pods);
    }
    // 9,000 pods over 1,000 equal nodes with the spread strategy stay balanced.
    assert!(max_on_node <= 10, "max {max_on_node} pods on one node");
}
