//! The conformance suite every [`Store`](crate::Store) backend must pass.
//!
//! Backends call these from their own tests with a fresh, empty store, so that SQLite and
//! etcd are held to the same etcd v3 semantics.

use crate::{EventKind, SharedStore, StoreError};
use futures::StreamExt;
use std::time::Duration;

async fn next_event(w: &mut crate::WatchStream) -> crate::Event {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

/// Create, get, update with compare, delete with compare, and their errors.
pub async fn crud_with_compare(store: SharedStore) {
    let r1 = store.create("/t/a", b"1".to_vec()).await.unwrap();
    assert!(matches!(
        store.create("/t/a", b"x".to_vec()).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let kv = store.get("/t/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision, kv.create_revision),
        (&b"1"[..], r1, r1)
    );
    let r2 = store.update("/t/a", b"2".to_vec(), r1).await.unwrap();
    assert!(r2 > r1);
    match store.update("/t/a", b"3".to_vec(), r1).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (r1, r2)),
        other => panic!("stale update must conflict, got {other:?}"),
    }
    assert!(matches!(
        store.delete("/t/a", Some(r1)).await,
        Err(StoreError::Conflict { .. })
    ));
    let deleted = store.delete("/t/a", Some(r2)).await.unwrap();
    assert_eq!(deleted.value, b"2");
    assert!(deleted.mod_revision > r2);
    assert!(store.get("/t/a").await.unwrap().is_none());
    assert!(matches!(
        store.delete("/t/a", None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update("/t/a", b"4".to_vec(), r2).await,
        Err(StoreError::NotFound { .. })
    ));
    // Re-creating resets the create revision.
    let r3 = store.create("/t/a", b"5".to_vec()).await.unwrap();
    assert_eq!(
        store.get("/t/a").await.unwrap().unwrap().create_revision,
        r3
    );
    assert_eq!(store.current_revision(), r3);
}

/// Lists by prefix with limit and continuation, and at a past revision.
pub async fn list_pages_and_past_revisions(store: SharedStore) {
    for i in 0..25 {
        store
            .create(&format!("/p/ns/{i:02}"), vec![i])
            .await
            .unwrap();
    }
    store.create("/p/other", b"x".to_vec()).await.unwrap();
    store.create("/q/ns/00", b"x".to_vec()).await.unwrap();
    let before = store.current_revision();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list("/p/ns/", after.as_deref(), Some(before), 10)
            .await
            .unwrap();
        assert_eq!(page.revision, before);
        seen.extend(page.items.iter().map(|kv| kv.value[0]));
        after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, (0..25).collect::<Vec<u8>>());
    // Changes after `before` are invisible at `before` and visible now.
    let kv = store.get("/p/ns/03").await.unwrap().unwrap();
    store
        .update("/p/ns/03", vec![99], kv.mod_revision)
        .await
        .unwrap();
    store.delete("/p/ns/04", None).await.unwrap();
    let old = store.list("/p/ns/", None, Some(before), 0).await.unwrap();
    assert_eq!(old.items.len(), 25);
    assert_eq!(old.items[3].value, vec![3]);
    let now = store.list("/p/ns/", None, None, 0).await.unwrap();
    assert_eq!(now.items.len(), 24);
    assert_eq!(now.items[3].value, vec![99]);
    assert_eq!(store.count("/p/ns/").await.unwrap(), 24);
    assert!(matches!(
        store
            .list("/p/", None, Some(store.current_revision() + 100), 0)
            .await,
        Err(StoreError::FutureRevision { .. })
    ));
}

/// Many tasks increment one counter with compare-and-swap: no update is lost.
pub async fn concurrent_compare_and_swap(store: SharedStore) {
    store.create("/cas/counter", b"0".to_vec()).await.unwrap();
    let tasks = 16;
    let per_task = 25;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..per_task {
                loop {
                    let kv = store.get("/cas/counter").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    match store
                        .update(
                            "/cas/counter",
                            (n + 1).to_string().into_bytes(),
                            kv.mod_revision,
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let kv = store.get("/cas/counter").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(kv.value).unwrap(),
        (tasks * per_task).to_string()
    );
}

/// A watch from a revision sees every later event under its prefix, in order, then live ones.
pub async fn watch_delivers_every_event_in_order(store: SharedStore) {
    let start = store.current_revision();
    let mut expected = Vec::new();
    for i in 0..50u8 {
        let key = format!("/w/k{}", i % 5);
        let rev = match store.get(&key).await.unwrap() {
            Some(kv) => store.update(&key, vec![i], kv.mod_revision).await.unwrap(),
            None => store.create(&key, vec![i]).await.unwrap(),
        };
        expected.push((key, rev, EventKind::Put));
        store
            .create(&format!("/elsewhere/{i}"), vec![i])
            .await
            .unwrap();
    }
    let mut w = store.watch("/w/", start).unwrap();
    for (key, rev, kind) in &expected {
        let ev = next_event(&mut w).await;
        assert_eq!(
            (&ev.kv.key, ev.kv.mod_revision, ev.kind),
            (key, *rev, *kind)
        );
    }
    // Live events after the history, including a delete with the last value and prev.
    let deleted = store.delete("/w/k1", None).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kind, EventKind::Delete);
    assert_eq!(ev.kv.mod_revision, deleted.mod_revision);
    assert_eq!(ev.prev.map(|p| p.value), Some(deleted.value));
    // Concurrent writers: the watch still sees strictly increasing revisions, none missing.
    let from = store.current_revision();
    let mut w = store.watch("/c/", from).unwrap();
    let mut handles = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..20 {
                store.create(&format!("/c/{t}/{i}"), vec![1]).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut last = from;
    for _ in 0..160 {
        let ev = next_event(&mut w).await;
        assert!(ev.kv.mod_revision > last, "revisions must increase");
        last = ev.kv.mod_revision;
    }
    assert_eq!(last, store.current_revision());
}

/// After compaction, reads and watches before the compaction point fail; later ones work.
pub async fn compaction(store: SharedStore) {
    let r1 = store.create("/cmp/a", b"1".to_vec()).await.unwrap();
    let r2 = store.update("/cmp/a", b"2".to_vec(), r1).await.unwrap();
    store.create("/cmp/b", b"1".to_vec()).await.unwrap();
    store.delete("/cmp/b", None).await.unwrap();
    let r3 = store.update("/cmp/a", b"3".to_vec(), r2).await.unwrap();
    store.compact(r3).await.unwrap();
    assert_eq!(store.compacted_revision(), r3);
    assert!(matches!(
        store.watch("/cmp/", r1),
        Err(StoreError::Compacted { .. })
    ));
    assert!(matches!(
        store.list("/cmp/", None, Some(r2), 0).await,
        Err(StoreError::Compacted { .. })
    ));
    let page = store.list("/cmp/", None, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].value, b"3");
    // Watching from the compaction point still works.
    let mut w = store.watch("/cmp/", r3).unwrap();
    let r4 = store.update("/cmp/a", b"4".to_vec(), r3).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.mod_revision, r4);
    // Revisions never go back, even when the newest row was compacted away.
    assert!(store.current_revision() >= r4);
}
