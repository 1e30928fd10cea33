use super::*;
use serde_json::json;

fn t(s: &str) -> Time {
    util::parse_time(&json!(s)).unwrap()
}

const GRACE: Duration = Duration::from_secs(20);
const WINDOW: Duration = Duration::from_secs(30);

fn node(ready: &str) -> Value {
    json!({
        "metadata": {"name": "n1", "uid": "nu", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {},
        "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": "2024-01-01T00:00:50Z", "lastTransitionTime": "2024-01-01T00:00:00Z"},
            {"type": "Ready", "status": ready, "reason": "KubeletReady",
             "lastHeartbeatTime": "2024-01-01T00:00:50Z", "lastTransitionTime": "2024-01-01T00:00:00Z"},
        ]}
    })
}

fn lease(renew: &str) -> Value {
    json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"},
           "spec": {"holderIdentity": "n1", "renewTime": renew}})
}

fn pod(name: &str, tolerations: Value) -> Arc<Value> {
    Arc::new(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}")},
        "spec": {"nodeName": "n1", "tolerations": tolerations},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    }))
}

fn keys(taints: &[Value]) -> Vec<String> {
    taints
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_node_first_seen_gets_a_full_grace_period() {
    // Kubernetes starts probeTimestamp at the controller's first observation, so a
    // controller restart never marks every node Unknown at once.
    let mut tr = HealthTracker::default();
    let n = node("True");
    let seen = tr.observe(
        &n,
        Some(&lease("2023-12-31T00:00:00.000000Z")),
        t("2024-01-01T00:01:00Z"),
    );
    assert_eq!(seen, t("2024-01-01T00:01:00Z"));
    let p = plan_node(&n, seen, t("2024-01-01T00:01:19Z"), GRACE);
    assert_eq!(p.conditions, None);
    assert_eq!(p.taints, None);
    assert_eq!(p.readiness, Readiness::Ready);
    // Requeued for when the grace period ends (1 s left, plus a little slack).
    let r = p.requeue_after.unwrap();
    assert!(
        r >= Duration::from_secs(1) && r < Duration::from_secs(2),
        "{r:?}"
    );
}

#[test]
fn lease_renewals_keep_a_node_alive_and_silence_does_not() {
    let mut tr = HealthTracker::default();
    let n = node("True");
    tr.observe(&n, Some(&lease("r1")), t("2024-01-01T00:00:00Z"));
    // Same renewTime later: no sign of life.
    assert_eq!(
        tr.observe(&n, Some(&lease("r1")), t("2024-01-01T00:00:10Z")),
        t("2024-01-01T00:00:00Z")
    );
    // A renewal counts at the time we see it.
    assert_eq!(
        tr.observe(&n, Some(&lease("r2")), t("2024-01-01T00:00:15Z")),
        t("2024-01-01T00:00:15Z")
    );
    // A changed Ready heartbeat also counts (nodes without a Lease).
    let mut n2 = n.clone();
    n2["status"]["conditions"][1]["lastHeartbeatTime"] = json!("2024-01-01T00:00:59Z");
    assert_eq!(
        tr.observe(&n2, Some(&lease("r2")), t("2024-01-01T00:00:30Z")),
        t("2024-01-01T00:00:30Z")
    );
    tr.forget("n1");
    assert_eq!(
        tr.observe(&n2, Some(&lease("r2")), t("2024-01-01T00:05:00Z")),
        t("2024-01-01T00:05:00Z")
    );
}

#[test]
fn a_silent_node_goes_unknown_and_gets_unreachable_taints() {
    let n = node("True");
    let now = t("2024-01-01T00:00:21Z");
    let p = plan_node(&n, t("2024-01-01T00:00:00Z"), now, GRACE);
    assert_eq!(p.readiness, Readiness::Unknown);
    let cs = p.conditions.unwrap();
    let ready = cs.iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "Unknown");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    assert_eq!(ready["lastTransitionTime"], "2024-01-01T00:00:21Z");
    // The last heartbeat is kept: it tells when the node was last heard from.
    assert_eq!(ready["lastHeartbeatTime"], "2024-01-01T00:00:50Z");
    let mem = cs.iter().find(|c| c["type"] == "MemoryPressure").unwrap();
    assert_eq!(mem["status"], "Unknown");
    // Conditions the kubelet never posted are added as NodeStatusNeverUpdated.
    let disk = cs.iter().find(|c| c["type"] == "DiskPressure").unwrap();
    assert_eq!(disk["reason"], "NodeStatusNeverUpdated");
    let taints = p.taints.unwrap();
    assert_eq!(
        keys(&taints),
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    // Only the NoExecute taint carries timeAdded (eviction counts from it).
    assert_eq!(taints[1]["timeAdded"], "2024-01-01T00:00:21Z");
    assert!(taints[0].get("timeAdded").is_none());
    assert_eq!(p.requeue_after, None);
}

#[test]
fn an_unknown_node_is_not_rewritten_and_keeps_its_taint_time() {
    let mut n = node("Unknown");
    n["status"]["conditions"][0]["status"] = json!("Unknown");
    n["status"]["conditions"].as_array_mut().unwrap().extend([
        json!({"type": "DiskPressure", "status": "Unknown"}),
        json!({"type": "PIDPressure", "status": "Unknown"}),
    ]);
    n["spec"]["taints"] = json!([
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:21Z"},
    ]);
    let p = plan_node(
        &n,
        t("2024-01-01T00:00:00Z"),
        t("2024-01-01T00:05:00Z"),
        GRACE,
    );
    assert_eq!(p.conditions, None);
    assert_eq!(p.taints, None, "an unchanged taint set must not be written");
}

#[test]
fn not_ready_nodes_get_not_ready_taints_swapped_for_unreachable() {
    // The agent reports Ready=False: not-ready taints (it is still heard from).
    let mut n = node("False");
    n["spec"]["taints"] = json!([
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:00Z"},
    ]);
    let now = t("2024-01-01T00:00:05Z");
    let p = plan_node(&n, now, now, GRACE);
    assert_eq!(p.readiness, Readiness::NotReady);
    let taints = p.taints.unwrap();
    assert_eq!(
        keys(&taints),
        [
            "node.kubernetes.io/not-ready:NoSchedule",
            "node.kubernetes.io/not-ready:NoExecute"
        ]
    );
    assert_eq!(taints[1]["timeAdded"], "2024-01-01T00:00:05Z");
}

#[test]
fn a_recovered_node_loses_only_the_controller_taints() {
    let mut n = node("True");
    n["spec"]["taints"] = json!([
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:21Z"},
    ]);
    let now = t("2024-01-01T00:01:00Z");
    let p = plan_node(&n, now, now, GRACE);
    assert_eq!(p.readiness, Readiness::Ready);
    assert_eq!(keys(&p.taints.unwrap()), ["dedicated:NoSchedule"]);
}

#[test]
fn a_cordoned_node_gets_the_unschedulable_taint() {
    let mut n = node("True");
    n["spec"]["unschedulable"] = json!(true);
    let now = t("2024-01-01T00:01:00Z");
    let p = plan_node(&n, now, now, GRACE);
    assert_eq!(
        keys(&p.taints.unwrap()),
        ["node.kubernetes.io/unschedulable:NoSchedule"]
    );
}

#[test]
fn toleration_matching_follows_kubernetes() {
    let taint = json!({"key": "k", "value": "v", "effect": "NoExecute"});
    assert!(tolerates(
        &json!({"key": "k", "operator": "Equal", "value": "v"}),
        &taint
    ));
    assert!(tolerates(
        &json!({"key": "k", "value": "v", "effect": "NoExecute"}),
        &taint
    ));
    assert!(!tolerates(&json!({"key": "k", "value": "w"}), &taint));
    assert!(!tolerates(
        &json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
        &taint
    ));
    assert!(tolerates(
        &json!({"key": "k", "operator": "Exists"}),
        &taint
    ));
    // An empty key with Exists tolerates everything.
    assert!(tolerates(&json!({"operator": "Exists"}), &taint));
    // An empty key with Equal tolerates nothing.
    assert!(!tolerates(
        &json!({"operator": "Equal", "value": "v"}),
        &taint
    ));
}

fn unreachable_taints(added: &str) -> Vec<Value> {
    vec![
        json!({"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}),
        json!({"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": added}),
    ]
}

#[test]
fn eviction_times_follow_toleration_seconds() {
    let taints = unreachable_taints("2024-01-01T00:00:00Z");
    let now = t("2024-01-01T00:00:10Z");
    // No matching toleration: evicted at once.
    assert_eq!(
        eviction(&pod("a", json!([])), &taints, now, WINDOW),
        Eviction::Now
    );
    // Tolerated forever.
    let forever = json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
    assert_eq!(
        eviction(&pod("b", forever), &taints, now, WINDOW),
        Eviction::Never
    );
    // tolerationSeconds counts from the taint's timeAdded.
    let sixty = json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]);
    assert_eq!(
        eviction(&pod("c", sixty.clone()), &taints, now, WINDOW),
        Eviction::At(t("2024-01-01T00:01:00Z"))
    );
    assert_eq!(
        eviction(&pod("c", sixty), &taints, t("2024-01-01T00:01:00Z"), WINDOW),
        Eviction::Now
    );
    // Several matching tolerations: the smallest tolerationSeconds wins.
    let both = json!([
        {"operator": "Exists"},
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]);
    assert_eq!(
        eviction(&pod("d", both), &taints, now, WINDOW),
        Eviction::Now
    );
    // NoSchedule taints alone never evict.
    assert_eq!(
        eviction(&pod("e", json!([])), &taints[..1], now, WINDOW),
        Eviction::Never
    );
}

#[test]
fn the_admission_default_toleration_uses_the_configured_window() {
    // DefaultTolerationSeconds admission gives every pod 300 s; Drover evicts after
    // the controller's pod_eviction_timeout instead (30 s by default).
    let taints = unreachable_taints("2024-01-01T00:00:00Z");
    let default = json!([
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    assert_eq!(
        eviction(
            &pod("a", default),
            &taints,
            t("2024-01-01T00:00:10Z"),
            WINDOW
        ),
        Eviction::At(t("2024-01-01T00:00:30Z"))
    );
    // A user's own (different) value is honoured.
    let mine = json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 301}]);
    assert_eq!(
        eviction(&pod("b", mine), &taints, t("2024-01-01T00:00:10Z"), WINDOW),
        Eviction::At(t("2024-01-01T00:05:01Z"))
    );
}

#[test]
fn daemon_set_pods_are_never_evicted() {
    let taints = unreachable_taints("2024-01-01T00:00:00Z");
    let mut p = (*pod("ds", json!([]))).clone();
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "x", "controller": true}]);
    assert_eq!(
        eviction(&p, &taints, t("2024-01-01T01:00:00Z"), WINDOW),
        Eviction::Never
    );
}

#[test]
fn pods_on_an_unreachable_node_are_marked_not_ready_and_evicted_in_time() {
    let taints = unreachable_taints("2024-01-01T00:00:00Z");
    let default = json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    let mut going = (*pod("going", json!([]))).clone();
    going["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:01Z");
    let pods = vec![
        pod("naked", json!([])),
        pod("tolerant", default),
        Arc::new(going),
    ];
    let now = t("2024-01-01T00:00:10Z");
    let p = plan_pods(Readiness::Unknown, &taints, &pods, now, WINDOW);
    let evicted: Vec<&str> = p.evict.iter().map(|p| util::name(p)).collect();
    assert_eq!(evicted, ["naked"]);
    let marked: Vec<&str> = p
        .mark_not_ready
        .iter()
        .map(|(p, _)| util::name(p))
        .collect();
    assert_eq!(marked, ["tolerant"]);
    let conds = &p.mark_not_ready[0].1;
    assert_eq!(conds[0]["type"], "Ready");
    assert_eq!(conds[0]["status"], "False");
    assert_eq!(conds[0]["lastTransitionTime"], "2024-01-01T00:00:10Z");
    // Next look: when the tolerant pod's 30 s run out (20 s from now).
    let r = p.requeue_after.unwrap();
    assert!(
        r >= Duration::from_secs(20) && r < Duration::from_secs(21),
        "{r:?}"
    );
    // Once the window has passed it goes too.
    let p = plan_pods(
        Readiness::Unknown,
        &taints,
        &pods,
        t("2024-01-01T00:00:30Z"),
        WINDOW,
    );
    assert_eq!(p.evict.len(), 2);
}

#[test]
fn pods_on_a_ready_node_are_left_alone() {
    let p = plan_pods(
        Readiness::Ready,
        &[],
        &[pod("a", json!([]))],
        t("2024-01-01T00:00:10Z"),
        WINDOW,
    );
    assert!(p.evict.is_empty() && p.mark_not_ready.is_empty());
    assert_eq!(p.requeue_after, None);
}

#[test]
fn already_not_ready_or_terminal_pods_are_not_marked_again() {
    let now = t("2024-01-01T00:00:10Z");
    let mut p = (*pod("a", json!([]))).clone();
    p["status"]["conditions"][0]["status"] = json!("False");
    assert_eq!(not_ready_conditions(&p, now), None);
    let mut done = (*pod("b", json!([]))).clone();
    done["status"]["phase"] = json!("Succeeded");
    assert_eq!(not_ready_conditions(&done, now), None);
}
