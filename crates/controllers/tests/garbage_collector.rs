//! End-to-end: the garbage collector's sweep against the real `drover server` (built
//! beforehand with `cargo build -p drover`), with the controllers in-process: a pod
//! whose owner is gone is deleted, pods whose owner exists (or cannot be checked) stay.

mod common;

use client::{ListParams, PostParams, Resource};
use common::{Server, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

fn pod(name: &str, owners: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"gc-test": name}, "ownerReferences": owners},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

async fn pod_names(c: &client::Client) -> Vec<String> {
    let list = c
        .list(&Resource::PODS, Some(NS), &ListParams::default())
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_a_missing_owner_are_deleted_and_the_others_stay() {
    let server = Server::start();
    let c = server.client();
    let pp = PostParams::default();
    // A real owner: a ReplicaSet with no replicas (its controller creates nothing).
    let rs = c
        .create(
            &Resource::REPLICASETS,
            Some(NS),
            &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "real"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "real"}},
                         "template": {"metadata": {"labels": {"app": "real"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
            &pp,
        )
        .await
        .unwrap();
    let real_uid = rs["metadata"]["uid"].as_str().unwrap().to_string();
    let of_real = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "real",
                          "uid": real_uid, "controller": false}]);
    // What a server that stopped in the middle of a background deletion leaves: pods of
    // a ReplicaSet that no longer exists (and one named like the real one, whose uid
    // is another incarnation's).
    let of_gone = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone",
                          "uid": "6f0d3d9e-0000-4000-8000-00000000dead", "controller": true}]);
    let of_old_real = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "real",
                              "uid": "6f0d3d9e-0000-4000-8000-00000000beef", "controller": true}]);
    // An owner of a kind the sweep cannot look up: never touched.
    let of_widget = json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w",
                            "uid": "6f0d3d9e-0000-4000-8000-0000000000aa"}]);
    for (name, owners) in [
        ("orphan", of_gone),
        ("old-incarnation", of_old_real),
        ("owned", of_real),
        ("widget", of_widget),
        ("plain", json!([])),
    ] {
        c.create(&Resource::PODS, Some(NS), &pod(name, owners), &pp)
            .await
            .unwrap();
    }

    let controllers = tokio::spawn(controllers::run(
        c.clone(),
        controllers::Options {
            workers: 2,
            resync: Duration::from_secs(1),
            ..Default::default()
        },
    ));
    eventually("the pods of missing owners to be deleted", WAIT, || async {
        let names = pod_names(&c).await;
        (!names.contains(&"orphan".to_string()) && !names.contains(&"old-incarnation".to_string()))
            .then_some(())
    })
    .await;
    // Several sweeps later, the others are all still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pod_names(&c).await, ["owned", "plain", "widget"]);
    controllers.abort();
}
