//! End to end with a real node agent: `kubectl drain` evicts through the eviction
//! subresource and respects PodDisruptionBudgets; `uncordon` lets pods back.

mod common;

use common::Server;
use common::node::BUSYBOX;

#[test]
fn drain_evicts_but_never_below_a_disruption_budget() {
    let s = Server::start_with_node(&[]);
    s.kubectl(&[
        "create",
        "deployment",
        "guarded",
        &format!("--image={BUSYBOX}"),
        "--replicas=2",
        "--",
        "sleep",
        "3600",
    ]);
    s.kubectl(&[
        "create",
        "deployment",
        "free",
        &format!("--image={BUSYBOX}"),
        "--",
        "sleep",
        "3600",
    ]);
    s.kubectl(&[
        "create",
        "pdb",
        "guarded",
        "--selector=app=guarded",
        "--min-available=2",
    ]);
    s.kubectl(&["rollout", "status", "deploy/guarded", "--timeout=120s"]);
    s.kubectl(&["rollout", "status", "deploy/free", "--timeout=120s"]);
    let node = s.node_name().to_string();
    // The budget allows no disruption: drain cordons, evicts the free pod, and gives up on the guarded ones.
    let out = s.kubectl_output(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--timeout=8s",
        "--grace-period=1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "drain should fail against the budget"
    );
    assert!(err.contains("disruption budget"), "{err}");
    let unschedulable = s.kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(unschedulable, "true");
    let guarded = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=guarded",
        "-o",
        "jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{end}",
    ]);
    assert_eq!(guarded, "||", "no guarded pod was evicted: {guarded}");
    // With a budget that allows it, drain finishes.
    s.kubectl(&["delete", "pdb", "guarded"]);
    s.kubectl(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--timeout=60s",
        "--grace-period=1",
    ]);
    let left = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=guarded",
        "-o",
        "jsonpath={range .items[*]}{.status.phase}/{.spec.nodeName} {end}",
    ]);
    assert!(
        !left.contains("Running"),
        "drained pods cannot run on a cordoned node: {left}"
    );
    s.kubectl(&["uncordon", &node]);
    s.kubectl(&["rollout", "status", "deploy/guarded", "--timeout=120s"]);
}
