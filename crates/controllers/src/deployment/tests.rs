use super::*;
use serde_json::json;

fn now() -> Time {
    util::parse_time(&json!("2024-01-01T01:00:00Z")).unwrap()
}

fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": image}]}})
}

fn deploy(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(image),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}

fn with_strategy(mut d: Value, surge: Value, unavailable: Value) -> Value {
    d["spec"]["strategy"]["rollingUpdate"] =
        json!({"maxSurge": surge, "maxUnavailable": unavailable});
    d
}

/// An owned ReplicaSet of `image` with `replicas` (spec and status) of which `available`.
fn rs(image: &str, replicas: i64, available: i64, revision: i64, minute: u32) -> Value {
    let hash = util::template_hash(&template(image), None);
    let mut t = template(image);
    t["metadata"]["labels"][HASH_LABEL] = json!(hash);
    json!({
        "metadata": {
            "name": format!("web-{hash}"), "namespace": "ns", "uid": format!("uid-{image}"),
            "generation": 1,
            "creationTimestamp": format!("2024-01-01T00:{minute:02}:00Z"),
            "labels": {"app": "web", HASH_LABEL: hash},
            "annotations": {REVISION: revision.to_string(), DESIRED_REPLICAS: "3", MAX_REPLICAS: "4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true}]
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: hash}}, "template": t},
        "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available, "observedGeneration": 1}
    })
}

fn arcs(v: Vec<Value>) -> Vec<Arc<Value>> {
    v.into_iter().map(Arc::new).collect()
}

/// (name, replicas) of every created or updated ReplicaSet.
fn sizes(p: &Plan) -> Vec<(String, i64)> {
    p.writes
        .iter()
        .filter_map(|w| match w {
            RsWrite::Create(o) | RsWrite::Update(o) => {
                Some((util::name(o).to_string(), int(&o["spec"]["replicas"])))
            }
            RsWrite::Delete { .. } => None,
        })
        .collect()
}

fn condition<'a>(p: &'a Plan, ty: &str) -> &'a Value {
    p.status.as_ref().unwrap()["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == ty)
        .unwrap()
}

fn name_of(image: &str) -> String {
    format!("web-{}", util::template_hash(&template(image), None))
}

#[test]
fn a_new_deployment_creates_its_replica_set_at_full_size() {
    let p = plan(&deploy(3, "a"), &[], &[], now());
    let [RsWrite::Create(rs)] = p.writes.as_slice() else {
        panic!("{:?}", p.writes)
    };
    let hash = util::template_hash(&template("a"), None);
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(rs["spec"]["replicas"], 3);
    // The hash label goes on the RS, its selector and its pod template.
    assert_eq!(rs["metadata"]["labels"][HASH_LABEL], hash.as_str());
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"],
        json!({"app": "web", HASH_LABEL: hash})
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
        hash.as_str()
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    let a = &rs["metadata"]["annotations"];
    assert_eq!(a[REVISION], "1");
    assert_eq!(a[DESIRED_REPLICAS], "3");
    // maxSurge 25% of 3 rounds up to 1.
    assert_eq!(a[MAX_REPLICAS], "4");
    assert_eq!(p.annotations.as_ref().unwrap()[REVISION], "1");
    assert_eq!(
        condition(&p, "Progressing")["reason"],
        "NewReplicaSetCreated"
    );
    assert_eq!(condition(&p, "Available")["status"], "False");
}

#[test]
fn deployment_annotations_are_copied_but_not_kubectls_last_applied() {
    let mut d = deploy(1, "a");
    d["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": "v1",
        "kubectl.kubernetes.io/last-applied-configuration": "{}"});
    let p = plan(&d, &[], &[], now());
    let [RsWrite::Create(rs)] = p.writes.as_slice() else {
        panic!()
    };
    assert_eq!(
        rs["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "v1"
    );
    assert!(
        rs["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none()
    );
}

#[test]
fn rolling_update_surges_without_unavailability_when_max_unavailable_is_zero() {
    let d = with_strategy(deploy(4, "b"), json!(1), json!(0));
    let mut old = rs("a", 4, 4, 1, 0);
    old["metadata"]["annotations"][DESIRED_REPLICAS] = json!("4");
    let p = plan(&d, &arcs(vec![old]), &[], now());
    // One extra pod (maxSurge 1); nothing removed until it is available.
    assert_eq!(sizes(&p), [(name_of("b"), 1)]);
    // Once the new pod is available, one old pod goes.
    let mut new = rs("b", 1, 1, 2, 5);
    new["metadata"]["annotations"][DESIRED_REPLICAS] = json!("4");
    let mut old = rs("a", 4, 4, 1, 0);
    old["metadata"]["annotations"][DESIRED_REPLICAS] = json!("4");
    let p = plan(&d, &arcs(vec![old, new]), &[], now());
    assert_eq!(sizes(&p), [(name_of("a"), 3)]);
}

#[test]
fn rolling_update_uses_both_fenceposts_with_kubernetes_rounding() {
    // 10 replicas, 25%/25%: surge 3 (up), unavailable 2 (down).
    let mut old = rs("a", 10, 10, 1, 0);
    old["metadata"]["annotations"][DESIRED_REPLICAS] = json!("10");
    let p = plan(&deploy(10, "b"), &arcs(vec![old]), &[], now());
    assert_eq!(sizes(&p), [(name_of("b"), 3), (name_of("a"), 8)]);
}

#[test]
fn unhealthy_old_replicas_are_removed_before_healthy_ones() {
    let d = with_strategy(deploy(5, "b"), json!(1), json!(2));
    let mut new = rs("b", 1, 0, 2, 5);
    new["metadata"]["annotations"][DESIRED_REPLICAS] = json!("5");
    let mut old = rs("a", 5, 3, 1, 0);
    old["metadata"]["annotations"][DESIRED_REPLICAS] = json!("5");
    let p = plan(&d, &arcs(vec![old, new]), &[], now());
    // Two unavailable old pods go; the three available ones stay (minAvailable 3).
    assert_eq!(sizes(&p), [(name_of("a"), 3)]);
}

#[test]
fn a_completed_rollout_reports_success_and_trims_history() {
    let mut d = deploy(3, "d");
    d["spec"]["revisionHistoryLimit"] = json!(1);
    d["metadata"]["generation"] = json!(4);
    let rss = arcs(vec![
        rs("a", 0, 0, 1, 0),
        rs("b", 0, 0, 2, 1),
        rs("c", 0, 0, 3, 2),
        rs("d", 3, 3, 4, 3),
    ]);
    let p = plan(&d, &rss, &[], now());
    let deleted: Vec<&str> = p
        .writes
        .iter()
        .filter_map(|w| match w {
            RsWrite::Delete { uid, .. } => Some(uid.as_str()),
            _ => None,
        })
        .collect();
    // The oldest revisions go; revisionHistoryLimit of them are kept.
    assert_eq!(deleted, ["uid-a", "uid-b"]);
    let s = p.status.as_ref().unwrap();
    assert_eq!(s["replicas"], 3);
    assert_eq!(s["updatedReplicas"], 3);
    assert_eq!(s["availableReplicas"], 3);
    assert_eq!(s["unavailableReplicas"], 0);
    assert_eq!(s["observedGeneration"], 4);
    assert_eq!(
        condition(&p, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(condition(&p, "Available")["status"], "True");
    assert_eq!(p.requeue_after, None);
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let mut d = deploy(3, "b");
    let cond = json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
        "lastUpdateTime": "2024-01-01T00:49:00Z", "lastTransitionTime": "2024-01-01T00:40:00Z"});
    d["status"] = json!({"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "readyReplicas": 3,
                         "conditions": [cond]});
    let mut new = rs("b", 1, 0, 2, 5);
    new["metadata"]["annotations"][DESIRED_REPLICAS] = json!("3");
    let rss = arcs(vec![rs("a", 3, 3, 1, 0), new]);
    // 11 minutes without progress > 600 s.
    let p = plan(&d, &rss, &[], now());
    let c = condition(&p, "Progressing");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ProgressDeadlineExceeded");
    // 9 minutes: not yet; wake up when the deadline passes (1 minute, +1 s).
    d["status"]["conditions"][0]["lastUpdateTime"] = json!("2024-01-01T00:51:00Z");
    let p = plan(&d, &rss, &[], now());
    assert!(p.status.is_none() || condition(&p, "Progressing")["reason"] == "ReplicaSetUpdated");
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(61)));
}

#[test]
fn progress_refreshes_the_deadline_but_keeps_the_transition_time() {
    let mut d = deploy(3, "b");
    d["status"] = json!({"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "readyReplicas": 3,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
            "lastUpdateTime": "2024-01-01T00:49:00Z", "lastTransitionTime": "2024-01-01T00:40:00Z"}]});
    let mut new = rs("b", 2, 1, 2, 5);
    new["metadata"]["annotations"][DESIRED_REPLICAS] = json!("3");
    let p = plan(&d, &arcs(vec![rs("a", 2, 2, 1, 0), new]), &[], now());
    let c = condition(&p, "Progressing");
    assert_eq!(c["reason"], "ReplicaSetUpdated");
    assert_eq!(c["lastUpdateTime"], "2024-01-01T01:00:00Z");
    assert_eq!(c["lastTransitionTime"], "2024-01-01T00:40:00Z");
}

#[test]
fn recreate_scales_old_down_waits_for_pods_then_creates_new() {
    let mut d = deploy(3, "b");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    let p = plan(&d, &arcs(vec![rs("a", 3, 3, 1, 0)]), &[], now());
    assert_eq!(sizes(&p), [(name_of("a"), 0)]);
    // Scaled down, but the old pods still run: nothing is created.
    let mut old = rs("a", 0, 0, 1, 0);
    let pod = json!({"metadata": {"name": "p", "namespace": "ns", "ownerReferences": [
        {"kind": "ReplicaSet", "name": "x", "uid": "uid-a", "controller": true}]},
        "status": {"phase": "Running"}});
    let p = plan(
        &d,
        &arcs(vec![old.clone()]),
        &arcs(vec![pod.clone()]),
        now(),
    );
    assert!(p.writes.is_empty(), "{:?}", p.writes);
    // A reported replica also means "still running".
    old["status"]["replicas"] = json!(1);
    assert!(
        plan(&d, &arcs(vec![old.clone()]), &[], now())
            .writes
            .is_empty()
    );
    // Gone (or terminal): the new ReplicaSet starts at full size at once.
    old["status"]["replicas"] = json!(0);
    let mut done = pod;
    done["status"]["phase"] = json!("Succeeded");
    let p = plan(&d, &arcs(vec![old]), &arcs(vec![done]), now());
    assert_eq!(sizes(&p), [(name_of("b"), 3)]);
}

#[test]
fn a_paused_deployment_does_not_roll_out_but_scales() {
    let mut d = deploy(3, "b");
    d["spec"]["paused"] = json!(true);
    let p = plan(&d, &arcs(vec![rs("a", 3, 3, 1, 0)]), &[], now());
    assert!(p.writes.is_empty());
    let c = condition(&p, "Progressing");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("Unknown"), Some("DeploymentPaused"))
    );
    d["spec"]["replicas"] = json!(5);
    let p = plan(&d, &arcs(vec![rs("a", 3, 3, 1, 0)]), &[], now());
    assert_eq!(sizes(&p), [(name_of("a"), 5)]);
    // Resumed: reported as such, then the rollout proceeds.
    let mut resumed = deploy(3, "b");
    resumed["status"]["conditions"] = p.status.as_ref().unwrap()["conditions"].clone();
    let p = plan(&resumed, &arcs(vec![rs("a", 3, 3, 1, 0)]), &[], now());
    assert!(sizes(&p).iter().any(|(n, _)| *n == name_of("b")));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // 10 → 15 replicas while 8 old and 5 new run (sized for 10 + surge 3 = 13).
    let mut d = deploy(15, "b");
    d["status"]["replicas"] = json!(13);
    let mut old = rs("a", 8, 8, 1, 0);
    let mut new = rs("b", 5, 0, 2, 5);
    for r in [&mut old, &mut new] {
        r["metadata"]["annotations"][DESIRED_REPLICAS] = json!("10");
        r["metadata"]["annotations"][MAX_REPLICAS] = json!("13");
    }
    let p = plan(&d, &arcs(vec![old, new]), &[], now());
    // 15 + surge 4 = 19 allowed: 6 more, split 8:5 → +4 and +2.
    let mut s = sizes(&p);
    s.sort();
    let mut want = vec![(name_of("a"), 12), (name_of("b"), 7)];
    want.sort();
    assert_eq!(s, want);
    for w in &p.writes {
        if let RsWrite::Update(o) = w {
            assert_eq!(o["metadata"]["annotations"][DESIRED_REPLICAS], "15");
            assert_eq!(o["metadata"]["annotations"][MAX_REPLICAS], "19");
        }
    }
}

#[test]
fn undo_reuses_the_old_replica_set_with_a_new_revision() {
    // kubectl rollout undo copied revision 1's template back.
    let mut a = rs("a", 0, 0, 1, 0);
    a["metadata"]["annotations"][DESIRED_REPLICAS] = json!("3");
    let b = rs("b", 3, 3, 2, 5);
    let p = plan(&deploy(3, "a"), &arcs(vec![a, b]), &[], now());
    let updated_a = p
        .writes
        .iter()
        .find_map(|w| match w {
            RsWrite::Update(o) if util::uid(o) == "uid-a" => Some(o),
            _ => None,
        })
        .unwrap();
    assert_eq!(updated_a["metadata"]["annotations"][REVISION], "3");
    assert_eq!(updated_a["metadata"]["annotations"][REVISION_HISTORY], "1");
    assert_eq!(p.annotations.as_ref().unwrap()[REVISION], "3");
    assert!(!p.writes.iter().any(|w| matches!(w, RsWrite::Create(_))));
}

#[test]
fn orphans_are_adopted_and_non_matching_replica_sets_released() {
    let mut orphan = rs("a", 3, 3, 1, 0);
    orphan["metadata"]["ownerReferences"] = json!([]);
    let mut strayed = rs("x", 0, 0, 0, 1);
    strayed["metadata"]["labels"] = json!({"app": "other"});
    let mut foreign = rs("y", 1, 1, 0, 2);
    foreign["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
    let p = plan(
        &deploy(3, "a"),
        &arcs(vec![orphan, strayed, foreign]),
        &[],
        now(),
    );
    assert_eq!(p.adopt.len(), 1);
    assert_eq!(util::uid(&p.adopt[0]), "uid-a");
    assert_eq!(p.release.len(), 1);
    assert_eq!(util::uid(&p.release[0]), "uid-x");
    // The adopted RS matches the template: no new one is created.
    assert!(!p.writes.iter().any(|w| matches!(w, RsWrite::Create(_))));
}

#[test]
fn a_name_collision_raises_the_collision_count() {
    let mut squatter = rs("a", 1, 1, 0, 0);
    squatter["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
    squatter["metadata"]["labels"] = json!({"app": "other"});
    let p = plan(&deploy(3, "a"), &arcs(vec![squatter]), &[], now());
    assert!(p.writes.is_empty());
    assert_eq!(p.status.as_ref().unwrap()["collisionCount"], 1);
    // With the count the hash (and so the name) changes.
    let mut d = deploy(3, "a");
    d["status"]["collisionCount"] = json!(1);
    assert_ne!(
        util::template_hash(&template("a"), Some(1)),
        util::template_hash(&template("a"), None)
    );
}

#[test]
fn a_selector_matching_everything_is_refused() {
    let mut d = deploy(3, "a");
    d["spec"]["selector"] = json!({});
    assert_eq!(plan(&d, &[], &[], now()), Plan::default());
}

#[test]
fn scaling_to_zero_and_max_unavailable_never_exceeds_replicas() {
    let mut old = rs("a", 3, 3, 1, 0);
    old["metadata"]["annotations"][DESIRED_REPLICAS] = json!("3");
    let p = plan(&deploy(0, "a"), &arcs(vec![old]), &[], now());
    assert_eq!(sizes(&p), [(name_of("a"), 0)]);
    let d = with_strategy(deploy(2, "a"), json!(0), json!("100%"));
    assert_eq!(Deploy { d: &d }.max_unavailable(), 2);
    let d = with_strategy(deploy(2, "a"), json!(0), json!(0));
    // Both zero: Kubernetes forces maxUnavailable to 1.
    assert_eq!(Deploy { d: &d }.fenceposts(), (0, 1));
}

#[test]
fn templates_compare_ignoring_the_hash_label_and_empty_fields() {
    let mut t = template("a");
    t["metadata"]["labels"][HASH_LABEL] = json!("abc");
    t["metadata"]["creationTimestamp"] = Value::Null;
    assert!(equal_ignore_hash(&t, &template("a")));
    assert!(!equal_ignore_hash(&t, &template("b")));
}
