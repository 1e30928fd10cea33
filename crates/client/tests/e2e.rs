//! End-to-end: the client against the real `drover server`.

mod common;

use client::{
    DeleteParams, Event, ListParams, Patch, PatchParams, PostParams, Resource, WatchEvent,
};
use common::{Server, eventually};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "default";

fn cm(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": NS, "labels": labels}, "data": data})
}

fn rv(o: &Value) -> String {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_patch_and_kubernetes_errors() {
    let server = Server::start();
    let c = server.client();
    let r = &Resource::CONFIGMAPS;
    let pp = PostParams::default();

    let created = c
        .create(
            r,
            Some(NS),
            &cm("a", json!({"app": "web"}), json!({"k": "1"})),
            &pp,
        )
        .await
        .unwrap();
    assert!(!rv(&created).is_empty());
    assert!(created["metadata"]["uid"].is_string());
    let got = c.get(r, Some(NS), "a").await.unwrap();
    assert_eq!(got["data"]["k"], "1");

    // Same name again: 409 AlreadyExists (not a Conflict).
    let err = c
        .create(r, Some(NS), &cm("a", json!({}), json!({})), &pp)
        .await
        .unwrap_err();
    assert!(err.is_already_exists() && !err.is_conflict(), "{err}");

    // A missing object: 404 NotFound, with the server's message.
    let err = c.get(r, Some(NS), "nope").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.status().unwrap().reason, "NotFound");
    assert!(err.status().unwrap().message.contains("\"nope\" not found"));

    // Replace with the current resourceVersion succeeds; with the stale one, 409 Conflict
    // (optimistic concurrency).
    let mut next = got.clone();
    next["data"]["k"] = json!("2");
    let replaced = c.replace(r, Some(NS), "a", &next, &pp).await.unwrap();
    assert_eq!(replaced["data"]["k"], "2");
    assert_ne!(rv(&replaced), rv(&got));
    let err = c.replace(r, Some(NS), "a", &next, &pp).await.unwrap_err();
    assert!(err.is_conflict() && !err.is_already_exists(), "{err}");
    assert_eq!(err.code(), Some(409));

    // The four patch types.
    let pp0 = PatchParams::default();
    let o = c
        .patch(
            r,
            Some(NS),
            "a",
            &Patch::Merge(json!({"data": {"m": "x"}})),
            &pp0,
        )
        .await
        .unwrap();
    assert_eq!(o["data"], json!({"k": "2", "m": "x"}));
    let o = c
        .patch(
            r,
            Some(NS),
            "a",
            &Patch::Json(json!([{"op": "remove", "path": "/data/m"}])),
            &pp0,
        )
        .await
        .unwrap();
    assert_eq!(o["data"], json!({"k": "2"}));
    let o = c
        .patch(
            r,
            Some(NS),
            "a",
            &Patch::Strategic(json!({"metadata": {"labels": {"tier": "front"}}})),
            &pp0,
        )
        .await
        .unwrap();
    assert_eq!(
        o["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    let applied = c
        .patch(
            r,
            Some(NS),
            "b",
            &Patch::Apply(cm("b", json!({"app": "web"}), json!({"x": "y"}))),
            &PatchParams::apply("e2e"),
        )
        .await
        .unwrap();
    assert_eq!(applied["data"]["x"], "y");
    // Apply without a field manager is refused by the server (422 in Kubernetes).
    let err = c
        .patch(
            r,
            Some(NS),
            "b",
            &Patch::Apply(cm("b", json!({}), json!({}))),
            &pp0,
        )
        .await
        .unwrap_err();
    assert!(matches!(err.code(), Some(400..=499)), "{err}");

    // Lists: selectors, and pages followed to the end.
    c.create(r, Some(NS), &cm("c", json!({"app": "db"}), json!({})), &pp)
        .await
        .unwrap();
    let web = c
        .list(r, Some(NS), &ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let mut names: Vec<_> = web
        .items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let first = c
        .list_page(r, Some(NS), &ListParams::default().limit(1), None)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert!(
        first.continue_token.is_some(),
        "3 objects, limit 1: more pages"
    );
    let all = c
        .list(r, Some(NS), &ListParams::default().limit(1))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert!(all.continue_token.is_none());
    assert!(!all.resource_version.is_empty());

    // Delete, then it is gone; deleting again is 404.
    c.delete(r, Some(NS), "a", &DeleteParams::default())
        .await
        .unwrap();
    assert!(c.get(r, Some(NS), "a").await.unwrap_err().is_not_found());
    let err = c
        .delete(r, Some(NS), "a", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    // A stale uid precondition: 409, and the object stays.
    let err = c
        .delete(
            r,
            Some(NS),
            "b",
            &DeleteParams {
                precondition_uid: Some("not-the-uid".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(409), "{err}");
    c.get(r, Some(NS), "b").await.unwrap();

    // Cluster-scoped: a node, and /version through the raw request.
    c.create(
        &Resource::NODES,
        None,
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        &pp,
    )
    .await
    .unwrap();
    let n = c.get(&Resource::NODES, None, "n1").await.unwrap();
    assert!(n["metadata"].get("namespace").is_none());
    let v = c
        .request(http::Method::GET, "/version", None)
        .await
        .unwrap();
    assert!(v["gitVersion"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_status_subresource() {
    let server = Server::start();
    let c = server.client();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    // No namespace given: the object has none either, so the kubeconfig's is used.
    let created = c
        .create(&Resource::PODS, None, &pod, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(created["metadata"]["namespace"], NS);

    c.bind(NS, "p", "node-1").await.unwrap();
    let p = c.get(&Resource::PODS, Some(NS), "p").await.unwrap();
    assert_eq!(p["spec"]["nodeName"], "node-1");
    // A pod is bound once: a second binding is a 409 Conflict.
    let err = c.bind(NS, "p", "node-2").await.unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // The status subresource changes status only.
    let o = c
        .patch_status(
            &Resource::PODS,
            Some(NS),
            "p",
            &Patch::Merge(json!({"status": {"phase": "Running"},
                                  "metadata": {"labels": {"ignored": "yes"}}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(o["status"]["phase"], "Running");
    assert!(o["metadata"]["labels"].get("ignored").is_none());
    let mut s = o.clone();
    s["status"]["phase"] = json!("Succeeded");
    let o = c
        .replace_status(&Resource::PODS, Some(NS), "p", &s, &PostParams::default())
        .await
        .unwrap();
    assert_eq!(o["status"]["phase"], "Succeeded");
    let err = c
        .replace_status(&Resource::PODS, Some(NS), "p", &s, &PostParams::default())
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "stale resourceVersion on status: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_create_update_delete_in_order() {
    let server = Server::start();
    let c = server.client();
    let r = &Resource::CONFIGMAPS;
    let list = c.list(r, Some(NS), &ListParams::default()).await.unwrap();
    let mut w = Box::pin(
        c.watch(r, Some(NS), &ListParams::default(), &list.resource_version)
            .await
            .unwrap(),
    );
    let pp = PostParams::default();
    c.create(r, Some(NS), &cm("w", json!({}), json!({"v": "1"})), &pp)
        .await
        .unwrap();
    c.patch(
        r,
        Some(NS),
        "w",
        &Patch::Merge(json!({"data": {"v": "2"}})),
        &PatchParams::default(),
    )
    .await
    .unwrap();
    c.delete(r, Some(NS), "w", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch event in time")
            .expect("watch open")
            .unwrap();
        match ev {
            WatchEvent::Added(o) => seen.push(("ADDED", o["data"]["v"].clone())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o["data"]["v"].clone())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o["data"]["v"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(s) => panic!("watch error {s}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", json!("1")),
            ("MODIFIED", json!("2")),
            ("DELETED", json!("2")),
        ]
    );
}

async fn next<S>(w: &mut S) -> Result<Event, client::Error>
where
    S: futures::Stream<Item = Result<Event, client::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(30), w.next())
        .await
        .expect("watcher event in time")
        .expect("watcher never ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_recovers_after_the_server_restarts() {
    let mut server = Server::start();
    let c = server.client();
    let r = Resource::CONFIGMAPS;
    let pp = PostParams::default();
    c.create(&r, Some(NS), &cm("before", json!({}), json!({})), &pp)
        .await
        .unwrap();
    let mut w = Box::pin(client::watcher(
        c.clone(),
        r.clone(),
        Some(NS),
        ListParams::default(),
    ));
    let names = |objs: &[Value]| {
        let mut v: Vec<String> = objs
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    match next(&mut w).await.unwrap() {
        Event::Restarted(objs) => assert_eq!(names(&objs), ["before"]),
        other => panic!("expected the initial list, got {other:?}"),
    }
    c.create(&r, Some(NS), &cm("live", json!({}), json!({})), &pp)
        .await
        .unwrap();
    match next(&mut w).await.unwrap() {
        Event::Applied(o) => assert_eq!(o["metadata"]["name"], "live"),
        other => panic!("expected live, got {other:?}"),
    }

    server.restart();
    // The same client (its pooled connection died with the server) writes again.
    let c2 = c.clone();
    eventually("a write after the restart", Duration::from_secs(30), || {
        let c2 = c2.clone();
        let r = r.clone();
        async move {
            match c2
                .create(
                    &r,
                    Some(NS),
                    &cm("after", json!({}), json!({})),
                    &PostParams::default(),
                )
                .await
            {
                Ok(_) => Some(()),
                Err(e) if e.is_already_exists() => Some(()),
                Err(_) => None,
            }
        }
    })
    .await;

    // The watcher reports the break (maybe), re-lists and converges to all three.
    let mut errors = 0;
    loop {
        match next(&mut w).await {
            Err(_) => {
                errors += 1;
                assert!(errors < 20, "the watcher does not recover");
            }
            Ok(Event::Restarted(objs)) => {
                let n = names(&objs);
                if n.contains(&"after".to_string()) {
                    assert_eq!(n, ["after", "before", "live"]);
                    break;
                }
                assert_eq!(n, ["before", "live"]);
            }
            Ok(Event::Applied(o)) if o["metadata"]["name"] == "after" => break,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    // And keeps watching on the new server.
    c.delete(&r, Some(NS), "before", &DeleteParams::default())
        .await
        .unwrap();
    loop {
        match next(&mut w).await.unwrap() {
            Event::Deleted(o) => {
                assert_eq!(o["metadata"]["name"], "before");
                break;
            }
            // "after" may be seen both in the re-list and as an event.
            Event::Applied(o) if o["metadata"]["name"] == "after" => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_cache_converges_and_indexes() {
    let server = Server::start();
    let c = server.client();
    let r = Resource::CONFIGMAPS;
    let pp = PostParams::default();
    // Objects that exist before the reflector starts arrive through the list.
    for i in 0..3 {
        c.create(
            &r,
            Some(NS),
            &cm(&format!("pre{i}"), json!({"app": "web"}), json!({})),
            &pp,
        )
        .await
        .unwrap();
    }
    c.create(
        &r,
        Some(NS),
        &cm("other", json!({"app": "db"}), json!({})),
        &pp,
    )
    .await
    .unwrap();

    let (reader, mut writer) = client::store();
    writer.add_index("tier", |o| {
        o["metadata"]["labels"]["tier"]
            .as_str()
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    });
    let events = client::reflect(
        writer,
        client::watcher(
            c.clone(),
            r.clone(),
            Some(NS),
            ListParams::default().labels("app=web"),
        ),
    );
    let driver = tokio::spawn(events.for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap();
    assert!(reader.is_ready());
    assert_eq!(reader.len(), 3, "the selector keeps `other` out");

    for i in 0..3 {
        c.create(
            &r,
            Some(NS),
            &cm(&format!("new{i}"), json!({"app": "web"}), json!({})),
            &pp,
        )
        .await
        .unwrap();
    }
    c.delete(&r, Some(NS), "pre0", &DeleteParams::default())
        .await
        .unwrap();
    c.patch(
        &r,
        Some(NS),
        "pre1",
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}, "data": {"x": "1"}})),
        &PatchParams::default(),
    )
    .await
    .unwrap();
    // Leaving the selector is a deletion for the cache.
    c.patch(
        &r,
        Some(NS),
        "new2",
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
        &PatchParams::default(),
    )
    .await
    .unwrap();

    let reader2 = reader.clone();
    eventually("the cache to converge", Duration::from_secs(10), || {
        let r = reader2.clone();
        async move {
            let mut keys: Vec<String> = r.keys().iter().map(|k| k.to_string()).collect();
            keys.sort();
            let pre1 = r.get_by(Some(NS), "pre1")?;
            (keys
                == [
                    "default/new0",
                    "default/new1",
                    "default/pre1",
                    "default/pre2",
                ]
                && pre1["data"]["x"] == "1")
                .then_some(())
        }
    })
    .await;
    let front = reader.by_index("tier", "front");
    assert_eq!(front.len(), 1);
    assert_eq!(front[0]["metadata"]["name"], "pre1");
    assert!(reader.by_index("tier", "back").is_empty());
    driver.abort();
}
