//! kube-rs, a second real client: typed CRUD, list, and the kube-runtime watcher.

mod common;
use common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use std::time::Duration;

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn kube_rs_lists_writes_and_watches() {
    let s = Server::start();
    let client = s.kube_client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_string()), "{names:?}");

    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut events = watcher(deploys.clone(), watcher::Config::default()).boxed();
    // The watcher's initial list completes first.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::InitDone) => break,
            Some(_) => {}
            None => panic!("watch ended"),
        }
    }
    let created = deploys
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
    assert_eq!(patched.metadata.generation, Some(2));

    // The watcher sees the create and then the patch, in order.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::Apply(d)) => seen.push(d.spec.unwrap().replicas.unwrap()),
            Some(_) => {}
            None => panic!("watch ended"),
        }
    }
    assert_eq!(seen, vec![2, 5]);

    // A stale resourceVersion is a 409 Conflict.
    let mut stale = created.clone();
    stale.spec.as_mut().unwrap().replicas = Some(1);
    match deploys.replace("web", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Server-side apply through kube-rs.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let applied = cms
        .patch("cfg", &PatchParams::apply("kube-test"), &Patch::Apply(&cm))
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["a"], "1");
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kube-test".to_string()), "{managers:?}");

    deploys
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::Delete(d)) => {
                assert_eq!(d.metadata.name.as_deref(), Some("web"));
                break;
            }
            Some(_) => {}
            None => panic!("watch ended"),
        }
    }
    match deploys.get("web").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn paginated_list_returns_every_object_once() {
    let s = Server::start();
    let client = s.kube_client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..25 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": format!("c{i:02}"), "labels": {"even": (i % 2 == 0).to_string()}}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(7);
    loop {
        let page = cms.list(&lp).await.unwrap();
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(
        names,
        (0..25).map(|i| format!("c{i:02}")).collect::<Vec<_>>()
    );
    let even = cms
        .list(&ListParams::default().labels("even=true").limit(5))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 5);
    assert!(even.metadata.continue_.is_some_and(|c| !c.is_empty()));
}
