//! Server-side apply and managedFields, checked against structured-merge-diff's behaviour in the
//! Kubernetes API server.

use patch::{ApplyError, ApplyRequest, Conflict, record_update, server_side_apply};
use serde_json::{Value, json};

const T1: &str = "2025-01-01T00:00:00Z";
const T2: &str = "2025-01-01T00:01:00Z";
const T3: &str = "2025-01-01T00:02:00Z";

fn config(replicas: Option<i64>, labels: Value, containers: Value) -> Value {
    let mut spec = json!({"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}});
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default", "labels": labels}, "spec": spec})
}

fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    server_side_apply(&ApplyRequest {
        live,
        applied,
        manager,
        force,
        api_version: "apps/v1",
        kind: "Deployment",
        now,
    })
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

/// A stored object as the store would hold it after the create.
fn stored(mut v: Value) -> Value {
    v["metadata"]["uid"] = json!("u-1");
    v["metadata"]["resourceVersion"] = json!("5");
    v
}

#[test]
fn create_records_apply_ownership_like_kubernetes() {
    let cfg = config(
        Some(3),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]),
    );
    let out = apply(None, &cfg, "kubectl", false, T1).unwrap();
    assert_eq!(out["spec"], cfg["spec"]);
    assert_eq!(
        out["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    // LabelSelector is structType=atomic: owned as a whole.
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            // ports are keyed by containerPort+protocol; protocol defaults to TCP.
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            }
        }])
    );
}

#[test]
fn reapply_without_a_field_removes_it() {
    let cfg = config(
        Some(3),
        json!({"app": "web", "tier": "fe"}),
        json!([{"name": "nginx", "image": "nginx", "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "busybox"}]),
    );
    let live = stored(apply(None, &cfg, "kubectl", false, T1).unwrap());
    let cfg2 = config(
        Some(3),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let out = apply(Some(&live), &cfg2, "kubectl", false, T2).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "nginx", "image": "nginx"}])
    );
    // Identity metadata is untouched.
    assert_eq!(out["metadata"]["uid"], "u-1");
    assert_eq!(out["metadata"]["resourceVersion"], "5");
    let e = entry(&out, "kubectl").unwrap();
    assert_eq!(e["time"], T2);
    assert!(
        e["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:tier")
            .is_none()
    );
    // Removing the only label empties the map, which is pruned.
    let cfg3 = config(
        Some(3),
        json!({}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let mut cfg3 = cfg3;
    cfg3["metadata"].as_object_mut().unwrap().remove("labels");
    let out = apply(Some(&out), &cfg3, "kubectl", false, T3).unwrap();
    assert!(
        out["metadata"].get("labels").is_none(),
        "{}",
        out["metadata"]
    );
}

#[test]
fn scale_then_apply_conflicts_on_replicas_and_force_moves_ownership() {
    let cfg = config(
        Some(3),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = stored(apply(None, &cfg, "kubectl", false, T1).unwrap());

    // `kubectl scale --replicas=5`: merge patch on /scale, recorded as an Update.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(
        Some(&live),
        &mut scaled,
        "kubectl-scale",
        Some("scale"),
        "apps/v1",
        T2,
    );
    let scale_entry = entry(&scaled, "kubectl-scale").unwrap();
    assert_eq!(scale_entry["operation"], "Update");
    assert_eq!(scale_entry["subresource"], "scale");
    assert_eq!(
        scale_entry["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // Updates are forced: the applier lost .spec.replicas.
    assert!(
        entry(&scaled, "kubectl").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );

    // Re-applying replicas: 3 conflicts with kubectl-scale.
    let err = apply(Some(&scaled), &cfg, "kubectl", false, T3).unwrap_err();
    assert_eq!(
        err,
        ApplyError::Conflicts(vec![Conflict {
            manager: "kubectl-scale".into(),
            api_version: "apps/v1".into(),
            field: ".spec.replicas".into(),
            operation: "Update".into(),
            subresource: Some("scale".into()),
        }])
    );
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-scale" with subresource "scale" using apps/v1: .spec.replicas"#
    );

    // Applying the same value is not a conflict (shared ownership).
    let same = config(
        Some(5),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let shared = apply(Some(&scaled), &same, "kubectl", false, T3).unwrap();
    assert!(entry(&shared, "kubectl-scale").is_some());
    assert_eq!(
        entry(&shared, "kubectl").unwrap()["fieldsV1"]["f:spec"]["f:replicas"],
        json!({})
    );

    // Omitting replicas: no conflict, and the scaled value stays (kubectl no longer owns it).
    let without = config(
        None,
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let out = apply(Some(&scaled), &without, "kubectl", false, T3).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);

    // force=true takes ownership: value applied, kubectl-scale's only field is gone with its entry.
    let out = apply(Some(&scaled), &cfg, "kubectl", true, T3).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(entry(&out, "kubectl-scale").is_none());
    assert_eq!(
        entry(&out, "kubectl").unwrap()["fieldsV1"]["f:spec"]["f:replicas"],
        json!({})
    );
}

#[test]
fn update_on_main_resource_conflict_message_has_no_subresource() {
    let cfg = config(
        Some(3),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = stored(apply(None, &cfg, "kubectl", false, T1).unwrap());
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(4);
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:edited");
    record_update(
        Some(&live),
        &mut edited,
        "kubectl-edit",
        None,
        "apps/v1",
        T2,
    );
    let err = apply(Some(&edited), &cfg, "kubectl", false, T3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn conflict_between_two_appliers_and_plural_message_groups_by_manager() {
    let a = config(
        Some(2),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx:a"}]),
    );
    let live = stored(apply(None, &a, "mgr-a", false, T1).unwrap());
    let b = config(
        Some(2),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx:b"}]),
    );
    let err = apply(Some(&live), &b, "mgr-b", false, T2).unwrap_err();
    // Apply managers are printed without an apiVersion.
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "mgr-a": .spec.template.spec.containers[name="nginx"].image"#
    );

    let many = ApplyError::Conflicts(vec![
        Conflict {
            manager: "z".into(),
            api_version: "v1".into(),
            field: ".a".into(),
            operation: "Update".into(),
            subresource: None,
        },
        Conflict {
            manager: "b".into(),
            api_version: String::new(),
            field: ".b".into(),
            operation: "Apply".into(),
            subresource: None,
        },
        Conflict {
            manager: "z".into(),
            api_version: "v1".into(),
            field: ".c".into(),
            operation: "Update".into(),
            subresource: None,
        },
    ]);
    assert_eq!(
        many.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"b\":\n- .b\nconflicts with \"z\" using v1:\n- .a\n- .c"
    );
}

#[test]
fn shared_field_survives_when_one_owner_stops_applying() {
    let both = config(
        Some(2),
        json!({"app": "web", "team": "x"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    let live = stored(apply(None, &both, "mgr-a", false, T1).unwrap());
    let live = apply(Some(&live), &both, "mgr-b", false, T2).unwrap();
    assert!(
        entry(&live, "mgr-b").unwrap()["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:team")
            .is_some()
    );
    let mut less = both.clone();
    less["metadata"]["labels"] = json!({"app": "web"});
    let out = apply(Some(&live), &less, "mgr-a", false, T3).unwrap();
    // mgr-b still owns metadata.labels.team, so it stays.
    assert_eq!(out["metadata"]["labels"]["team"], "x");
    assert!(
        entry(&out, "mgr-a").unwrap()["fieldsV1"]["f:metadata"]["f:labels"]
            .get("f:team")
            .is_none()
    );
}

#[test]
fn list_map_items_merge_by_key_across_managers() {
    let a = config(
        None,
        json!({"app": "web"}),
        json!([{"name": "app", "image": "app"}]),
    );
    let live = stored(apply(None, &a, "mgr-a", false, T1).unwrap());
    let mut b = config(
        None,
        json!({"app": "web"}),
        json!([{"name": "sidecar", "image": "proxy"}]),
    );
    b["spec"].as_object_mut().unwrap().remove("selector");
    let out = apply(Some(&live), &b, "mgr-b", false, T2).unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["app", "sidecar"]);
    let fb = &entry(&out, "mgr-b").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(fb.get("k:{\"name\":\"sidecar\"}").is_some());
    assert!(fb.get("k:{\"name\":\"app\"}").is_none());
    // mgr-b dropping its container removes only that one.
    let mut b2 = b.clone();
    b2["spec"]["template"]["spec"]["containers"] = json!([]);
    let out = apply(Some(&out), &b2, "mgr-b", false, T3).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app"}])
    );
}

#[test]
fn atomic_lists_are_replaced_and_sets_merge() {
    let mut a = config(
        None,
        json!({"app": "web"}),
        json!([{"name": "app", "image": "app", "args": ["--x", "--y"]}]),
    );
    a["metadata"]["finalizers"] = json!(["f1"]);
    let live = stored(apply(None, &a, "mgr-a", false, T1).unwrap());
    let args = &entry(&live, "mgr-a").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"app\"}"]["f:args"];
    assert_eq!(args, &json!({}));
    assert_eq!(
        entry(&live, "mgr-a").unwrap()["fieldsV1"]["f:metadata"]["f:finalizers"],
        json!({"v:\"f1\"": {}})
    );
    a["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--z"]);
    a["metadata"]["finalizers"] = json!(["f2"]);
    let out = apply(Some(&live), &a, "mgr-a", false, T2).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--z"])
    );
    // f1 was applied before and no longer is, so it is removed; f2 added.
    assert_eq!(out["metadata"]["finalizers"], json!(["f2"]));
}

#[test]
fn invalid_applied_configurations() {
    let good = config(Some(1), json!({}), json!([]));
    let mut with_mf = good.clone();
    with_mf["metadata"]["managedFields"] = json!([]);
    let mut wrong_kind = good.clone();
    wrong_kind["kind"] = json!("StatefulSet");
    let missing_key = config(Some(1), json!({}), json!([{"image": "x"}]));
    let cases = [
        (json!([1]), "must be a JSON object"),
        (with_mf, "metadata.managedFields must be nil"),
        (wrong_kind, "kind \"StatefulSet\""),
        (missing_key, "omits key field \"name\""),
    ];
    for (cfg, want) in cases {
        match apply(None, &cfg, "kubectl", false, T1) {
            Err(ApplyError::Invalid(msg)) => {
                assert!(msg.contains(want), "{msg} should contain {want}")
            }
            other => panic!("expected Invalid for {cfg}, got {other:?}"),
        }
    }
}

#[test]
fn status_is_not_managed_on_the_main_resource() {
    let mut cfg = config(Some(1), json!({"app": "web"}), json!([]));
    cfg["status"] = json!({"replicas": 9});
    let out = apply(None, &cfg, "kubectl", false, T1).unwrap();
    assert!(out.get("status").is_none());
    assert!(
        entry(&out, "kubectl").unwrap()["fieldsV1"]
            .get("f:status")
            .is_none()
    );
}

#[test]
fn record_update_on_create_and_update() {
    // kubectl create: an Update entry for everything, with "." on maps and list items.
    let mut obj = config(
        Some(1),
        json!({"app": "web"}),
        json!([{"name": "nginx", "image": "nginx"}]),
    );
    record_update(None, &mut obj, "kubectl-create", None, "apps/v1", T1);
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {}, "f:selector": {},
                    "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
                }
            }
        }])
    );
    // An edit that changes the image: same manager entry grows, others lose the field.
    let old = obj.clone();
    let mut new = obj.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    new["metadata"]["labels"]["extra"] = json!("1");
    record_update(Some(&old), &mut new, "kubectl-edit", None, "apps/v1", T2);
    let edit = entry(&new, "kubectl-edit").unwrap();
    assert_eq!(
        edit["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:extra": {}}},
               "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
    );
    let create = entry(&new, "kubectl-create").unwrap();
    assert!(create["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"].get("f:image").is_none());
    // A write that changes nothing leaves managedFields alone.
    let before = new.clone();
    let mut again = new.clone();
    record_update(
        Some(&before),
        &mut again,
        "kubectl-edit",
        None,
        "apps/v1",
        T3,
    );
    assert_eq!(again, before);
}
