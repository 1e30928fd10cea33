//! Shared informers: one list+watch and one cache per resource for every control loop of
//! a process, as client-go's `SharedInformerFactory`.
//!
//! Without sharing, each controller that looks at pods holds its own watch and its own
//! copy of every pod: the server parses and sends each pod event once per controller,
//! and the process keeps N copies of the cluster. With [`Informers`], the first caller
//! of [`Informers::informer`] for a resource starts one watcher task that fills one
//! [`Store`]; every caller gets that store and its own stream of the events applied to
//! it. Handlers only enqueue keys, so a stream that falls behind loses nothing that
//! matters: it gets a synthetic [`Event::Restarted`] with the cache's content and the
//! controller re-syncs everything, as after a re-list.

use crate::{Client, Event, ListParams, Resource, Store, reflect, store, watcher};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Index of every informer's cache: the object's namespace.
pub const NAMESPACE_INDEX: &str = "namespace";
/// Index of every informer's cache: the UID of the object's controller
/// (the ownerReference with `controller: true`).
pub const CONTROLLER_INDEX: &str = "controller-uid";

/// Events a subscriber may fall behind by before it gets a re-sync instead.
const BUFFER: usize = 16_384;

/// The events of one shared informer, each shared by all its subscribers.
pub type SharedEvents = BoxStream<'static, Arc<Event>>;

struct Shared {
    store: Store,
    events: broadcast::Sender<Arc<Event>>,
    task: JoinHandle<()>,
}

/// A set of shared informers on one client. Dropping it stops their watches (streams
/// already handed out then end).
pub struct Informers {
    client: Client,
    shared: Mutex<HashMap<String, Shared>>,
}

impl Informers {
    /// No informer runs until one is asked for.
    pub fn new(client: Client) -> Informers {
        Informers {
            client,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// The cache of `resource` (in `namespace`, or all namespaces) and a stream of the
    /// events applied to it from now on. When the cache already holds a full list, the
    /// stream starts with an [`Event::Restarted`] of its content, so a late subscriber
    /// sees everything an early one did. Caches carry the [`NAMESPACE_INDEX`] and
    /// [`CONTROLLER_INDEX`] indexes; add more with [`Store::add_index`].
    pub fn informer(&self, resource: &Resource, namespace: Option<&str>) -> (Store, SharedEvents) {
        let key = format!(
            "{}/{}/{}/{}",
            resource.group,
            resource.version,
            resource.plural,
            namespace.unwrap_or("")
        );
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let s = shared
            .entry(key)
            .or_insert_with(|| self.start(resource, namespace));
        let rx = s.events.subscribe();
        (s.store.clone(), subscribe(rx, s.store.clone()))
    }

    fn start(&self, resource: &Resource, namespace: Option<&str>) -> Shared {
        let (store, mut writer) = store();
        writer.add_index(NAMESPACE_INDEX, |o| {
            o["metadata"]["namespace"]
                .as_str()
                .map(|n| vec![n.to_string()])
                .unwrap_or_default()
        });
        writer.add_index(CONTROLLER_INDEX, |o| {
            controller_uid(o)
                .map(|u| vec![u.to_string()])
                .unwrap_or_default()
        });
        let (events, _) = broadcast::channel(BUFFER);
        let tx = events.clone();
        let stream = reflect(
            writer,
            watcher(
                self.client.clone(),
                resource.clone(),
                namespace,
                ListParams::default(),
            ),
        );
        let plural = resource.plural.to_string();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    // No subscriber yet is fine: the cache is what they read first.
                    Ok(e) => {
                        let _ = tx.send(Arc::new(e));
                    }
                    Err(e) => {
                        tracing::debug!(resource = %plural, error = %e, "watch failed; the watcher retries")
                    }
                }
            }
        });
        Shared {
            store,
            events,
            task,
        }
    }
}

impl Drop for Informers {
    fn drop(&mut self) {
        let shared = self
            .shared
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for s in shared.values() {
            s.task.abort();
        }
    }
}

/// The UID of the owner that controls `o`.
fn controller_uid(o: &Value) -> Option<&str> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))?["uid"]
        .as_str()
}

/// The content of `store` as one re-list event.
fn snapshot(store: &Store) -> Arc<Event> {
    Arc::new(Event::Restarted(
        store.list().into_iter().map(|o| (*o).clone()).collect(),
    ))
}

fn subscribe(rx: broadcast::Receiver<Arc<Event>>, store: Store) -> SharedEvents {
    // Subscribed before the snapshot is taken: an event in between shows up twice, which
    // level-triggered handlers do not mind; none is lost.
    let first = store.is_ready().then(|| snapshot(&store));
    let head = futures::stream::iter(first);
    let tail = futures::stream::unfold((rx, store), |(mut rx, store)| async move {
        let e = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(
                    missed = n,
                    "a shared informer's subscriber fell behind; re-syncing it"
                );
                snapshot(&store)
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((e, (rx, store)))
    });
    head.chain(tail).boxed()
}

/// Calls `handle` with each object an event names (every object of a re-list) until
/// the stream ends: for handlers that enqueue keys derived from objects.
pub async fn for_each_object(mut events: SharedEvents, mut handle: impl FnMut(&Value)) {
    while let Some(ev) = events.next().await {
        match &*ev {
            Event::Restarted(list) => list.iter().for_each(&mut handle),
            Event::Applied(o) | Event::Deleted(o) => handle(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_lagging_subscriber_gets_the_cache_as_a_re_list() {
        let (s, mut w) = store();
        w.apply(&Event::Restarted(vec![
            json!({"metadata": {"name": "a", "namespace": "ns"}}),
        ]));
        let (tx, rx) = broadcast::channel(2);
        let mut events = subscribe(rx, s.clone());
        // The cache was ready: a late subscriber starts from its content.
        match &*events.next().await.unwrap() {
            Event::Restarted(l) => assert_eq!(l.len(), 1),
            other => panic!("expected the snapshot first, got {other:?}"),
        }
        for n in ["b", "c", "d"] {
            let o = json!({"metadata": {"name": n, "namespace": "ns"}});
            w.apply(&Event::Applied(o.clone()));
            tx.send(Arc::new(Event::Applied(o))).unwrap();
        }
        // Three events into a buffer of two: the subscriber is re-synced from the cache.
        match &*events.next().await.unwrap() {
            Event::Restarted(l) => assert_eq!(l.len(), 4),
            other => panic!("expected a re-sync, got {other:?}"),
        }
        drop(tx);
        // What was still buffered comes, then the stream ends.
        let rest: Vec<_> = events.collect().await;
        assert!(rest.len() <= 2);
    }

    #[test]
    fn the_controller_index_takes_the_controlling_owner() {
        let o = json!({"metadata": {"ownerReferences": [
            {"uid": "x", "controller": false}, {"uid": "y", "controller": true}]}});
        assert_eq!(controller_uid(&o), Some("y"));
        assert_eq!(controller_uid(&json!({"metadata": {}})), None);
    }
}
