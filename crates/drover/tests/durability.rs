//! A crash at any moment loses no acknowledged write.

mod common;
use common::Server;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_stream_of_creates_loses_no_acknowledged_object() {
    let mut s = Server::start();
    let client = s.kube_client().await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("cm-{t}-{i}");
                let cm: ConfigMap = serde_json::from_value(
                    serde_json::json!({"metadata": {"name": name}, "data": {"i": i.to_string()}}),
                )
                .unwrap();
                match cms.create(&PostParams::default(), &cm).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(name);
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // Kill the server in the middle of the stream, once a good number of writes were acknowledged.
    common::wait_for(
        "200 acknowledged creates",
        std::time::Duration::from_secs(60),
        || (acked.lock().unwrap().len() >= 200).then_some(()),
    );
    s.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    s.restart();
    let client = s.kube_client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let stored: BTreeSet<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged objects were lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // Revisions keep increasing after the restart.
    let before: i64 = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "after"}})).unwrap(),
        )
        .await
        .unwrap();
    let after: i64 = created.metadata.resource_version.unwrap().parse().unwrap();
    assert!(after > before);
}
