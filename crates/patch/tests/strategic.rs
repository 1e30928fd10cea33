//! Strategic merge patch behaviour, checked against how the Kubernetes API server applies it
//! (k8s.io/apimachinery/pkg/util/strategicpatch, MergeParallelList + IgnoreUnmatchedNulls).

use patch::{PatchError, strategic_merge, supports_strategic};
use serde_json::{Value, json};

fn deploy(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}
    })
}

fn smp(original: &Value, patch: Value) -> Value {
    let out = strategic_merge(original, &patch, "apps/v1", "Deployment").unwrap();
    assert_no_directives(&out);
    out
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// The stored object must never contain patch syntax.
fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                assert!(!k.starts_with('$'), "directive {k} leaked into {v}");
                assert_no_directives(c);
            }
        }
        Value::Array(a) => a.iter().for_each(assert_no_directives),
        _ => {}
    }
}

#[test]
fn kubectl_set_image_body_updates_only_the_image() {
    // Exact body of `kubectl set image deploy/web nginx=nginx:1.27` (kubectl-api-map.md §3).
    let live = deploy(json!([
        {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "sidecar", "image": "busybox"}
    ]));
    let out = smp(
        &live,
        json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"},{"name":"sidecar"}],
            "containers":[{"image":"nginx:1.27","name":"nginx"}]}}}}),
    );
    assert_eq!(
        containers(&out),
        &json!([
            {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "sidecar", "image": "busybox"}
        ])
    );
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn client_side_apply_patch_with_last_applied_annotation() {
    // Second `kubectl apply` (client-side): annotation + $setElementOrder + changed image.
    let live = deploy(json!([{"name": "nginx", "image": "nginx:1.25"}]));
    let out = smp(
        &live,
        json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}\n"}},
               "spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],
               "containers":[{"image":"nginx:1.26","name":"nginx"}]}}}}),
    );
    assert_eq!(
        containers(&out),
        &json!([{"name": "nginx", "image": "nginx:1.26"}])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}\n"
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn merge_lists_by_key_table() {
    struct Case {
        name: &'static str,
        live: Value,
        patch: Value,
        want: Vec<&'static str>,
    }
    let c = |n: &str| json!({"name": n, "image": "img"});
    let cases = vec![
        Case {
            // mergeSortedSlice: a new item not in the live list takes the position before
            // server-only items when there is no $setElementOrder.
            name: "new element without order directive goes first",
            live: json!([c("a"), c("b")]),
            patch: json!([{"name": "c", "image": "x"}]),
            want: vec!["c", "a", "b"],
        },
        Case {
            name: "updated element keeps its live position",
            live: json!([c("a"), c("b"), c("c")]),
            patch: json!([{"name": "b", "image": "x"}]),
            want: vec!["a", "b", "c"],
        },
        Case {
            name: "$setElementOrder places the new element",
            live: json!([c("a"), c("b")]),
            patch: json!({"order": [{"name": "a"}, {"name": "c"}, {"name": "b"}], "list": [{"name": "c", "image": "x"}]}),
            want: vec!["a", "c", "b"],
        },
        Case {
            name: "$setElementOrder reorders without content change",
            live: json!([c("a"), c("b")]),
            patch: json!({"order": [{"name": "b"}, {"name": "a"}]}),
            want: vec!["b", "a"],
        },
        Case {
            name: "$patch delete removes by merge key",
            live: json!([c("a"), c("b")]),
            patch: json!([{"name": "a", "$patch": "delete"}]),
            want: vec!["b"],
        },
        Case {
            name: "$patch delete of an absent element is a no-op",
            live: json!([c("a")]),
            patch: json!([{"name": "zz", "$patch": "delete"}]),
            want: vec!["a"],
        },
        Case {
            name: "$patch replace replaces the whole list",
            live: json!([c("a"), c("b")]),
            patch: json!([{"name": "z", "image": "x"}, {"$patch": "replace"}]),
            want: vec!["z"],
        },
    ];
    for case in cases {
        let live = deploy(case.live);
        let spec_patch = match &case.patch {
            Value::Object(m) => {
                let mut p = serde_json::Map::new();
                p.insert("$setElementOrder/containers".into(), m["order"].clone());
                if let Some(l) = m.get("list") {
                    p.insert("containers".into(), l.clone());
                }
                Value::Object(p)
            }
            list => json!({"containers": list}),
        };
        let out = smp(&live, json!({"spec": {"template": {"spec": spec_patch}}}));
        assert_eq!(names(containers(&out)), case.want, "case: {}", case.name);
    }
}

#[test]
fn merged_element_keeps_live_fields_and_nested_lists_merge() {
    let live = deploy(json!([{
        "name": "app", "image": "app:1",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80}, {"containerPort": 443}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "args": ["--a", "--b"]
    }]));
    let out = smp(
        &live,
        json!({"spec":{"template":{"spec":{"containers":[{
            "name": "app",
            "env": [{"name": "B", "value": "20"}, {"name": "A", "$patch": "delete"}],
            "ports": [{"containerPort": 443, "name": "https"}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
            "args": ["--c"]
        }]}}}}),
    );
    let c = &containers(&out)[0];
    assert_eq!(c["image"], "app:1");
    assert_eq!(c["env"], json!([{"name": "B", "value": "20"}]));
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80}, {"containerPort": 443, "name": "https"}])
    );
    // volumeMounts merge by mountPath: the new one is added, the live one kept.
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "cache", "mountPath": "/cache"}, {"name": "data", "mountPath": "/data"}])
    );
    // args has no patch strategy: replaced.
    assert_eq!(c["args"], json!(["--c"]));
}

#[test]
fn maps_directives_and_nulls() {
    let live = deploy(json!([]));
    // null deletes a key; a null for an absent key is not stored (IgnoreUnmatchedNulls).
    let out = smp(
        &live,
        json!({"metadata": {"labels": {"app": null, "tier": "fe", "gone": null}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"tier": "fe"}));
    // $patch: replace on a map replaces it.
    let out = smp(
        &live,
        json!({"metadata": {"labels": {"$patch": "replace", "only": "x"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"only": "x"}));
    // $patch: delete on a map leaves an empty map (handleDirectiveInMergeMap).
    let out = smp(&live, json!({"spec": {"selector": {"$patch": "delete"}}}));
    assert_eq!(out["spec"]["selector"], json!({}));
    // null at the top level deletes the field.
    let out = smp(&live, json!({"spec": {"replicas": null}}));
    assert!(out["spec"].get("replicas").is_none());
}

#[test]
fn new_values_are_cleaned_of_directives() {
    let live = deploy(json!([{"name": "a", "image": "a"}]));
    let out = smp(
        &live,
        json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"a"},{"name":"b"}],
            "containers":[{"name":"b","image":"b","env":[{"name":"X","value":"1"},{"name":"Y","$patch":"delete"}],"resources":{"limits":{"cpu":"1","memory":null}}}],
            "volumes":[{"name":"v","emptyDir":{},"$retainKeys":["name","emptyDir"]}]
        }}}}),
    );
    assert_eq!(names(containers(&out)), vec!["a", "b"]);
    assert_eq!(
        containers(&out)[1]["env"],
        json!([{"name": "X", "value": "1"}])
    );
    assert_eq!(
        containers(&out)[1]["resources"],
        json!({"limits": {"cpu": "1"}})
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}])
    );
}

#[test]
fn retain_keys_clears_other_union_members() {
    // kubectl apply switching a Deployment to Recreate sends $retainKeys for spec.strategy
    // (patchStrategy:"retainKeys"), which must drop the old rollingUpdate block.
    let mut live = deploy(json!([]));
    live["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
    let out = smp(
        &live,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

    // Volumes are "merge,retainKeys": switching a volume source.
    let mut live = deploy(json!([]));
    live["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}]);
    let out = smp(
        &live,
        json!({"spec":{"template":{"spec":{"volumes":[{"name":"v","emptyDir":{},"$retainKeys":["emptyDir","name"]}]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}])
    );

    // A patch key missing from $retainKeys is an error.
    let err = strategic_merge(
        &live,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        "apps/v1",
        "Deployment",
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::BadDirective { ref directive, .. } if directive == "$retainKeys"),
        "{err}"
    );
    assert!(err.to_string().contains("rollingUpdate"), "{err}");
}

#[test]
fn finalizers_merge_as_a_set() {
    let mut live = deploy(json!([]));
    live["metadata"]["finalizers"] = json!(["a", "b"]);
    // New values are merged in (ahead of server-only ones, as mergeSortedSlice orders them);
    // duplicates are dropped.
    let out = smp(&live, json!({"metadata": {"finalizers": ["c", "a"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    // $deleteFromPrimitiveList removes values.
    let out = smp(
        &live,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    // What kubectl sends for [a,b] -> [b,c]: order list + additions + deletion list.
    let out = smp(
        &live,
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
    // A deletion list for a field the object does not have does not create it.
    let out = smp(
        &deploy(json!([])),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert!(out["metadata"].get("finalizers").is_none());
}

#[test]
fn owner_references_merge_by_uid() {
    let mut live = deploy(json!([]));
    live["metadata"]["ownerReferences"] =
        json!([{"uid": "1", "name": "a", "kind": "X", "apiVersion": "v1"}]);
    let out = smp(
        &live,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b", "kind": "X", "apiVersion": "v1"}]}}),
    );
    let uids: Vec<&str> = out["metadata"]["ownerReferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, vec!["2", "1"]);
}

#[test]
fn other_kinds_use_their_own_merge_keys() {
    // Service ports merge by port.
    let svc = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
        "spec":{"ports":[{"port":80,"targetPort":8080},{"port":443}],"selector":{"app":"a"}}});
    let out = strategic_merge(
        &svc,
        &json!({"spec":{"ports":[{"port":80,"targetPort":9090}]}}),
        "v1",
        "Service",
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port":80,"targetPort":9090},{"port":443}])
    );

    // Node taints have no patch strategy: replaced; node conditions merge by type.
    let node = json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"n"},
        "spec":{"taints":[{"key":"a","effect":"NoSchedule"}]},
        "status":{"conditions":[{"type":"Ready","status":"False"},{"type":"DiskPressure","status":"False"}]}});
    let out = strategic_merge(
        &node,
        &json!({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]},
        "status":{"conditions":[{"type":"Ready","status":"True"}]}}),
        "v1",
        "Node",
    )
    .unwrap();
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key":"b","effect":"NoExecute"}])
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type":"Ready","status":"True"},{"type":"DiskPressure","status":"False"}])
    );

    // Pod: containers directly under spec, tolerations replaced, podIPs keyed by ip.
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
        "spec":{"containers":[{"name":"a","image":"a"}],"tolerations":[{"key":"x"}]}});
    let out = strategic_merge(
        &pod,
        &json!({"spec":{"containers":[{"name":"a","image":"b"}],"tolerations":[{"key":"y"}]}}),
        "v1",
        "Pod",
    )
    .unwrap();
    assert_eq!(out["spec"]["containers"], json!([{"name":"a","image":"b"}]));
    assert_eq!(out["spec"]["tolerations"], json!([{"key":"y"}]));

    // CronJob: the pod template is three levels down.
    let cj = json!({"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},
        "spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a"},{"name":"b","image":"b"}]}}}}}});
    let out = strategic_merge(&cj, &json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b2"}]}}}}}}), "batch/v1", "CronJob").unwrap();
    assert_eq!(
        out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        json!([{"name":"a","image":"a"},{"name":"b","image":"b2"}])
    );

    // ConfigMap data is a plain map.
    let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1","b":"2"}});
    let out = strategic_merge(&cm, &json!({"data":{"b":null,"c":"3"}}), "v1", "ConfigMap").unwrap();
    assert_eq!(out["data"], json!({"a":"1","c":"3"}));
}

#[test]
fn errors_are_precise() {
    let live = deploy(json!([{"name": "a", "image": "a"}]));
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}),
            "does not contain declared merge key: name",
        ),
        (
            json!({"spec":{"template":{"spec":{"containers":[{"name":"a","$patch":"merge"}]}}}}),
            "merging lists cannot yet be specified",
        ),
        (
            json!({"spec":{"template":{"spec":{"containers":[{"name":"a","$patch":"explode"}]}}}}),
            "unknown patch type: explode",
        ),
        (
            json!({"metadata":{"labels":{"$patch":"merge"}}}),
            "unknown patch type: merge at .metadata.labels",
        ),
        (
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"}],"containers":[{"name":"a","image":"y"}]}}}}),
            "$setElementOrder/containers",
        ),
        (
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":{"name":"a"}}}}}),
            "must be a list",
        ),
        (
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}),
            "must be a list",
        ),
        (
            json!({"spec":{"template":{"spec":{"containers":[{"name":"b","image":"b"}, 3]}}}}),
            "list element types are not identical",
        ),
    ];
    for (p, want) in cases {
        let err = strategic_merge(&live, &p, "apps/v1", "Deployment").unwrap_err();
        assert!(
            err.to_string().contains(want),
            "patch {p}: got {err:?} / {err}, want {want:?}"
        );
    }
    let err = strategic_merge(&live, &json!([1]), "apps/v1", "Deployment").unwrap_err();
    assert_eq!(
        err,
        PatchError::NotAnObject {
            kind: "strategic merge patch",
            found: "array"
        }
    );
}

#[test]
fn custom_resources_do_not_support_strategic_merge() {
    assert!(supports_strategic("apps/v1", "Deployment"));
    assert!(supports_strategic("v1", "Pod"));
    assert!(supports_strategic("v1", "ConfigMap"));
    assert!(supports_strategic("batch/v1", "CronJob"));
    assert!(supports_strategic(
        "autoscaling/v2",
        "HorizontalPodAutoscaler"
    ));
    assert!(supports_strategic("discovery.k8s.io/v1", "EndpointSlice"));
    assert!(supports_strategic("coordination.k8s.io/v1", "Lease"));
    assert!(!supports_strategic("example.com/v1", "Widget"));
    // A built-in kind name in another group is a CRD.
    assert!(!supports_strategic("example.com/v1", "Deployment"));
    assert!(!supports_strategic("v1", "Deployment"));
    let err = strategic_merge(&json!({}), &json!({}), "example.com/v1", "Widget").unwrap_err();
    assert!(matches!(err, PatchError::StrategicUnsupported { .. }));
}

#[test]
fn type_change_replaces_and_unknown_fields_merge_schemaless() {
    let mut live = deploy(json!([]));
    live["spec"]["x"] = json!({"a": 1});
    live["spec"]["unknownList"] = json!([{"k": 1}]);
    let out = smp(
        &live,
        json!({"spec": {"x": "scalar", "unknownList": [{"k": 2}]}}),
    );
    assert_eq!(out["spec"]["x"], "scalar");
    assert_eq!(out["spec"]["unknownList"], json!([{"k": 2}]));
}

#[test]
fn live_key_order_is_preserved() {
    let live = deploy(json!([]));
    let out = smp(
        &live,
        json!({"metadata": {"labels": {"app": "web2"}}, "apiVersion": "apps/v1"}),
    );
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["apiVersion", "kind", "metadata", "spec"]);
}
