//! RFC 6902 and RFC 7386 patches as kubectl sends them.

use patch::{PatchError, json_patch, merge_patch};
use serde_json::json;

#[test]
fn rollout_undo_json_patch() {
    // `kubectl rollout undo` sends replace operations on /spec/template and /metadata/annotations.
    let live = json!({"metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "v2"}]}}}});
    let p = json!([
        {"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "a", "image": "v1"}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
    ]);
    let out = json_patch(&live, &p).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "v1"
    );
    assert_eq!(
        out["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn json_patch_errors_name_the_operation_and_path() {
    let live = json!({"spec": {"replicas": 1}});
    // RFC 6902 §4.6: a failing test aborts the whole patch.
    let err = json_patch(
        &live,
        &json!([{"op": "replace", "path": "/spec/replicas", "value": 2},
                                        {"op": "test", "path": "/spec/replicas", "value": 9}]),
    )
    .unwrap_err();
    match &err {
        PatchError::JsonPatchOp {
            index, op, path, ..
        } => {
            assert_eq!(
                (*index, op.as_str(), path.as_str()),
                (1, "test", "/spec/replicas")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // RFC 6902 §4.2: removing a missing member is an error.
    let err = json_patch(&live, &json!([{"op": "remove", "path": "/spec/missing"}])).unwrap_err();
    assert!(
        err.to_string()
            .contains("operation 0 (remove) failed at path '/spec/missing'"),
        "{err}"
    );
    // Not an operation list.
    assert!(matches!(
        json_patch(&live, &json!({"op": "add"})),
        Err(PatchError::InvalidJsonPatch(_))
    ));
    assert!(matches!(
        json_patch(&live, &json!([{"op": "frobnicate", "path": "/a"}])),
        Err(PatchError::InvalidJsonPatch(_))
    ));
}

#[test]
fn merge_patch_rfc7386_cases() {
    // `kubectl scale` on /scale: {"spec":{"replicas":5}}.
    let scale = json!({"kind": "Scale", "spec": {"replicas": 2}, "status": {"replicas": 2}});
    assert_eq!(
        merge_patch(&scale, &json!({"spec": {"replicas": 5}})).unwrap()["spec"]["replicas"],
        5
    );
    // RFC 7386 appendix A examples.
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, p, want) in cases {
        assert_eq!(merge_patch(&doc, &p).unwrap(), want, "{doc} + {p}");
    }
    assert!(matches!(
        merge_patch(&json!({}), &json!(["x"])),
        Err(PatchError::NotAnObject { found: "array", .. })
    ));
}

#[test]
fn merge_patch_keeps_key_order() {
    let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2", "c": "3"}});
    let out = merge_patch(&doc, &json!({"data": {"a": null}, "kind": "ConfigMap"})).unwrap();
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["apiVersion", "kind", "metadata", "data"]
    );
    assert_eq!(
        out["data"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["b", "c"]
    );
}
