use super::*;
use serde_json::json;

fn now() -> Time {
    util::parse_time(&json!("2024-01-01T00:10:00Z")).unwrap()
}

fn rs(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 3},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    })
}

fn pod(name: &str, owner: Option<&str>) -> Value {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                     "labels": {"app": "web", "tier": "fe"},
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {}, "status": {"phase": "Pending"}
    });
    if let Some(o) = owner {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": o, "controller": true}]);
    }
    p
}

fn ready(mut p: Value, since: &str) -> Value {
    p["status"] = json!({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": since}]});
    p
}

fn arcs(v: Vec<Value>) -> Vec<Arc<Value>> {
    v.into_iter().map(Arc::new).collect()
}

fn names(v: &[Arc<Value>]) -> Vec<&str> {
    v.iter().map(|p| util::name(p)).collect()
}

#[test]
fn creates_missing_replicas() {
    let p = plan(
        ReplicaKind::ReplicaSet,
        &rs(3),
        &arcs(vec![pod("a", Some("rs-uid"))]),
        &[],
        true,
    );
    assert_eq!(p.create, 2);
    assert!(p.delete.is_empty() && p.adopt.is_empty() && p.release.is_empty());
}

#[test]
fn unsatisfied_expectations_block_creates_but_not_claims() {
    // A slow cache: the controller must not create again until it sees its creations.
    let pods = arcs(vec![pod("orphan", None)]);
    let p = plan(ReplicaKind::ReplicaSet, &rs(3), &pods, &[], false);
    assert_eq!(p.create, 0);
    assert_eq!(names(&p.adopt), ["orphan"]);
}

#[test]
fn adopts_matching_orphans_and_ignores_other_controllers_pods() {
    let mut other_labels = pod("nomatch", None);
    other_labels["metadata"]["labels"] = json!({"app": "db"});
    let pods = arcs(vec![
        pod("orphan", None),
        pod("theirs", Some("other")),
        other_labels,
    ]);
    let p = plan(ReplicaKind::ReplicaSet, &rs(2), &pods, &[], true);
    assert_eq!(names(&p.adopt), ["orphan"]);
    assert_eq!(names(&p.claimed), ["orphan"]);
    assert_eq!(p.create, 1);
}

#[test]
fn releases_pods_whose_labels_stop_matching_and_replaces_them() {
    // `kubectl label pod X app-`: X leaves the set, keeps running, a replacement is made.
    let mut quarantined = pod("b", Some("rs-uid"));
    quarantined["metadata"]["labels"] = json!({"tier": "fe"});
    let pods = arcs(vec![pod("a", Some("rs-uid")), quarantined]);
    let p = plan(ReplicaKind::ReplicaSet, &rs(2), &pods, &[], true);
    assert_eq!(names(&p.release), ["b"]);
    assert_eq!(p.create, 1);
    assert!(p.delete.is_empty());
}

#[test]
fn a_deleting_owner_neither_adopts_nor_releases_nor_manages() {
    let mut owner = rs(5);
    owner["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let mut moved = pod("b", Some("rs-uid"));
    moved["metadata"]["labels"] = json!({});
    let p = plan(
        ReplicaKind::ReplicaSet,
        &owner,
        &arcs(vec![pod("o", None), moved]),
        &[],
        true,
    );
    assert!(p.adopt.is_empty() && p.release.is_empty());
    assert_eq!(p.create, 0);
}

#[test]
fn terminal_and_terminating_pods_do_not_count() {
    let mut failed = pod("f", Some("rs-uid"));
    failed["status"]["phase"] = json!("Failed");
    let mut done = pod("s", Some("rs-uid"));
    done["status"]["phase"] = json!("Succeeded");
    let mut going = pod("d", Some("rs-uid"));
    going["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let mut orphan_failed = pod("of", None);
    orphan_failed["status"]["phase"] = json!("Failed");
    let p = plan(
        ReplicaKind::ReplicaSet,
        &rs(2),
        &arcs(vec![failed, done, going, orphan_failed]),
        &[],
        true,
    );
    assert_eq!(p.create, 2);
    assert!(p.claimed.is_empty() && p.adopt.is_empty());
}

#[test]
fn scale_down_deletes_least_useful_pods_first() {
    let mut assigned_running = ready(pod("run-old", Some("rs-uid")), "2024-01-01T00:01:00Z");
    assigned_running["spec"]["nodeName"] = json!("n1");
    let mut assigned_running_new = ready(pod("run-new", Some("rs-uid")), "2024-01-01T00:05:00Z");
    assigned_running_new["spec"]["nodeName"] = json!("n2");
    let mut assigned_pending = pod("pending", Some("rs-uid"));
    assigned_pending["spec"]["nodeName"] = json!("n3");
    let unassigned = pod("unscheduled", Some("rs-uid"));
    let mut not_ready = pod("notready", Some("rs-uid"));
    not_ready["spec"]["nodeName"] = json!("n4");
    not_ready["status"]["phase"] = json!("Running");
    let pods = arcs(vec![
        assigned_running,
        assigned_running_new,
        assigned_pending,
        unassigned,
        not_ready,
    ]);
    let order = |n: usize| {
        let p = plan(ReplicaKind::ReplicaSet, &rs(5 - n as i64), &pods, &[], true);
        names(&p.delete)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Unscheduled, then pending, then running-but-not-ready, then the pod ready for the
    // shortest time; the longest-ready pod survives.
    assert_eq!(order(4), ["unscheduled", "pending", "notready", "run-new"]);
    assert_eq!(order(1), ["unscheduled"]);
}

#[test]
fn scale_down_prefers_newer_pods_and_crowded_nodes() {
    let mut old = ready(pod("old", Some("rs-uid")), "2024-01-01T00:01:00Z");
    old["spec"]["nodeName"] = json!("n1");
    let mut newer = old.clone();
    newer["metadata"]["name"] = json!("newer");
    newer["metadata"]["uid"] = json!("uid-newer");
    newer["metadata"]["creationTimestamp"] = json!("2024-01-01T00:02:00Z");
    newer["spec"]["nodeName"] = json!("n2");
    let p = plan(
        ReplicaKind::ReplicaSet,
        &rs(1),
        &arcs(vec![old.clone(), newer.clone()]),
        &[],
        true,
    );
    assert_eq!(names(&p.delete), ["newer"]);
    // A sibling's pod on n1 makes n1 crowded: its pod goes first despite being older.
    let mut sibling = old.clone();
    sibling["metadata"]["uid"] = json!("uid-sib");
    let p = plan(
        ReplicaKind::ReplicaSet,
        &rs(1),
        &arcs(vec![old, newer]),
        &arcs(vec![sibling]),
        true,
    );
    assert_eq!(names(&p.delete), ["old"]);
}

#[test]
fn pod_deletion_cost_is_honoured() {
    let mut cheap = ready(pod("cheap", Some("rs-uid")), "2024-01-01T00:01:00Z");
    cheap["metadata"]["annotations"] = json!({"controller.kubernetes.io/pod-deletion-cost": "-10"});
    let newer = ready(pod("newer", Some("rs-uid")), "2024-01-01T00:05:00Z");
    let p = plan(
        ReplicaKind::ReplicaSet,
        &rs(1),
        &arcs(vec![newer, cheap]),
        &[],
        true,
    );
    assert_eq!(names(&p.delete), ["cheap"]);
}

#[test]
fn bursts_are_capped() {
    let p = plan(ReplicaKind::ReplicaSet, &rs(10_000), &[], &[], true);
    assert_eq!(p.create, BURST_REPLICAS);
}

#[test]
fn new_pods_come_from_the_template_with_a_controller_reference() {
    let p = pod_from_template(ReplicaKind::ReplicaSet, &rs(1));
    assert_eq!(p["metadata"]["generateName"], "web-");
    assert_eq!(p["metadata"]["namespace"], "ns");
    assert_eq!(p["metadata"]["labels"], json!({"app": "web", "tier": "fe"}));
    assert_eq!(p["spec"]["containers"][0]["image"], "busybox");
    let r = &p["metadata"]["ownerReferences"][0];
    assert_eq!(r["kind"], "ReplicaSet");
    assert_eq!(r["uid"], "rs-uid");
    assert_eq!(r["controller"], true);
    assert_eq!(r["blockOwnerDeletion"], true);
}

#[test]
fn status_counts_ready_available_and_fully_labeled() {
    let mut owner = rs(3);
    owner["spec"]["minReadySeconds"] = json!(60);
    let long_ready = ready(pod("a", Some("rs-uid")), "2024-01-01T00:00:00Z");
    let just_ready = ready(pod("b", Some("rs-uid")), "2024-01-01T00:09:30Z");
    let mut partial = pod("c", Some("rs-uid"));
    partial["metadata"]["labels"] = json!({"app": "web"});
    let claimed = arcs(vec![long_ready, just_ready, partial]);
    let s = status(&owner, &claimed, None, now());
    assert_eq!(s["replicas"], 3);
    assert_eq!(s["fullyLabeledReplicas"], 2);
    assert_eq!(s["readyReplicas"], 2);
    assert_eq!(s["availableReplicas"], 1);
    assert_eq!(s["observedGeneration"], 3);
    assert!(status_differs(&owner, &s));
    owner["status"] = s.clone();
    assert!(!status_differs(&owner, &s));
    // b becomes available 60 s after it turned ready: at 00:10:30, i.e. in 30 s (+1 s slack).
    assert_eq!(
        requeue_for_availability(&owner, &claimed, now()),
        Some(std::time::Duration::from_secs(31))
    );
}

#[test]
fn failed_creations_surface_as_replica_failure() {
    let s = status(
        &rs(1),
        &[],
        Some("pods \"web-\" is forbidden: quota"),
        now(),
    );
    assert_eq!(s["conditions"][0]["type"], "ReplicaFailure");
    assert_eq!(s["conditions"][0]["reason"], "FailedCreate");
    let mut owner = rs(1);
    owner["status"] = s;
    let s = status(&owner, &[], None, now());
    assert!(s.get("conditions").is_none());
}

#[test]
fn replication_controllers_use_map_selectors() {
    let rc = json!({"metadata": {"name": "rc", "namespace": "ns", "uid": "rc-uid"},
        "spec": {"replicas": 1, "selector": {"app": "web"},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}});
    let p = plan(
        ReplicaKind::ReplicationController,
        &rc,
        &arcs(vec![pod("o", None)]),
        &[],
        true,
    );
    assert_eq!(names(&p.adopt), ["o"]);
    assert_eq!(p.create, 0);
    let np = pod_from_template(ReplicaKind::ReplicationController, &rc);
    assert_eq!(np["metadata"]["ownerReferences"][0]["apiVersion"], "v1");
    // An empty selector selects nothing rather than every pod in the namespace.
    let mut bad = rc.clone();
    bad["spec"]["selector"] = json!({});
    let p = plan(
        ReplicaKind::ReplicationController,
        &bad,
        &arcs(vec![pod("o", None)]),
        &[],
        true,
    );
    assert!(p.adopt.is_empty());
}
