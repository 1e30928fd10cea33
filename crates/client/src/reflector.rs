//! A read-only cache of one resource, filled by a [`watcher`](crate::watcher()).
//!
//! The [`Writer`] applies watcher events; any number of [`Store`] clones read. Objects are
//! shared as `Arc<Value>` and the lock is held only to insert, remove or swap a map, so a
//! reader never waits for a network call and the writer never waits for a slow reader's
//! processing. Objects from the cache must not be mutated and written back as-is: copy,
//! change, and let optimistic concurrency (resourceVersion) catch races.

use crate::{Client, Error, Event, ListParams, ObjectKey, Resource, watcher};
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An index function: the index values of an object (e.g. its `spec.nodeName`, or its
/// owners' UIDs). Objects with no values are not in the index.
pub type IndexFn = Arc<dyn Fn(&Value) -> Vec<String> + Send + Sync>;

#[derive(Default)]
struct Cache {
    objects: HashMap<ObjectKey, Arc<Value>>,
    indexers: HashMap<String, IndexFn>,
    /// index name → index value → keys.
    indices: HashMap<String, HashMap<String, HashSet<ObjectKey>>>,
}

impl Cache {
    fn index_add(&mut self, key: &ObjectKey, obj: &Value) {
        for (name, f) in &self.indexers {
            let idx = self.indices.entry(name.clone()).or_default();
            for v in f(obj) {
                idx.entry(v).or_default().insert(key.clone());
            }
        }
    }

    fn index_remove(&mut self, key: &ObjectKey, obj: &Value) {
        for (name, f) in &self.indexers {
            let Some(idx) = self.indices.get_mut(name) else {
                continue;
            };
            for v in f(obj) {
                if let Some(set) = idx.get_mut(&v) {
                    set.remove(key);
                    if set.is_empty() {
                        idx.remove(&v);
                    }
                }
            }
        }
    }

    fn upsert(&mut self, key: ObjectKey, obj: Arc<Value>) {
        if let Some(old) = self.objects.remove(&key) {
            self.index_remove(&key, &old);
        }
        self.index_add(&key, &obj);
        self.objects.insert(key, obj);
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.objects.remove(key) {
            self.index_remove(key, &old);
        }
    }

    fn rebuild_indices(&mut self) {
        self.indices.clear();
        let objects: Vec<_> = self
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in objects {
            self.index_add(&k, &v);
        }
    }
}

/// The read side of the cache. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    cache: Arc<RwLock<Cache>>,
    ready: tokio::sync::watch::Receiver<bool>,
}

/// The write side: applies watcher events. One per cache.
pub struct Writer {
    cache: Arc<RwLock<Cache>>,
    ready: tokio::sync::watch::Sender<bool>,
}

/// A new empty cache: its reader and its writer.
pub fn store() -> (Store, Writer) {
    let cache = Arc::new(RwLock::new(Cache::default()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    (
        Store {
            cache: cache.clone(),
            ready: rx,
        },
        Writer { cache, ready: tx },
    )
}

// A panic in an index function while the lock was held leaves at worst a stale index
// entry, which the next re-list rebuilds; poisoning is therefore ignored.
fn read(c: &RwLock<Cache>) -> RwLockReadGuard<'_, Cache> {
    c.read().unwrap_or_else(PoisonError::into_inner)
}
fn write(c: &RwLock<Cache>) -> RwLockWriteGuard<'_, Cache> {
    c.write().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    /// Adds (or replaces) the index `name`, computed by `f` for every object, now and
    /// on every later change.
    pub fn add_index(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&Value) -> Vec<String> + Send + Sync + 'static,
    ) {
        let mut c = write(&self.cache);
        c.indexers.insert(name.into(), Arc::new(f));
        c.rebuild_indices();
    }

    /// Applies one event (objects are cached without managedFields, see [`slim`]).
    /// `Restarted` replaces the whole content (objects missing from
    /// a re-list were deleted meanwhile) and marks the store ready.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Applied(o) => {
                if let Some(k) = ObjectKey::from_object(o) {
                    write(&self.cache).upsert(k, Arc::new(slim(o)));
                }
            }
            Event::Deleted(o) => {
                if let Some(k) = ObjectKey::from_object(o) {
                    write(&self.cache).remove(&k);
                }
            }
            Event::Restarted(list) => {
                // Build the new content without the lock, then swap it in.
                let indexers = read(&self.cache).indexers.clone();
                let mut fresh = Cache {
                    objects: HashMap::with_capacity(list.len()),
                    indexers,
                    indices: HashMap::new(),
                };
                for o in list {
                    if let Some(k) = ObjectKey::from_object(o) {
                        fresh.upsert(k, Arc::new(slim(o)));
                    }
                }
                let mut c = write(&self.cache);
                c.objects = fresh.objects;
                c.indices = fresh.indices;
                drop(c);
                self.ready.send_replace(true);
            }
        }
    }

    /// A reader of this cache.
    pub fn store(&self) -> Store {
        Store {
            cache: self.cache.clone(),
            ready: self.ready.subscribe(),
        }
    }
}

/// A copy of `o` without `metadata.managedFields`, which no controller reads and which
/// is often the largest part of an object: caches of thousands of pods stay small.
/// Writers must therefore not send cached objects back whole with PUT (they do not:
/// controllers patch, or replace status, which leaves managedFields to the server).
pub fn slim(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    o
}

impl Store {
    /// Adds the index `name` (computed by `f`) unless the cache has one by that name:
    /// users of a shared cache each ask for the indexes they read.
    pub fn add_index(&self, name: &str, f: impl Fn(&Value) -> Vec<String> + Send + Sync + 'static) {
        let mut c = write(&self.cache);
        if !c.indexers.contains_key(name) {
            c.indexers.insert(name.to_string(), Arc::new(f));
            c.rebuild_indices();
        }
    }

    /// The cached object with this key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        read(&self.cache).objects.get(key).cloned()
    }

    /// The cached object `namespace/name` (namespace None for cluster-scoped objects).
    pub fn get_by(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.get(&ObjectKey::new(namespace, name))
    }

    /// Every cached object, in no particular order.
    pub fn list(&self) -> Vec<Arc<Value>> {
        read(&self.cache).objects.values().cloned().collect()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        read(&self.cache).objects.keys().cloned().collect()
    }

    /// The objects whose index `index` contains `value` (empty for an unknown index).
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<Value>> {
        let c = read(&self.cache);
        let Some(keys) = c.indices.get(index).and_then(|i| i.get(value)) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| c.objects.get(k).cloned())
            .collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        read(&self.cache).objects.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first full list was applied: before that, absence from the cache
    /// means nothing.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first full list was applied. Returns at once if it was; never
    /// returns if the writer is dropped before.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.clone();
        if rx.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Applies each `Ok` event of `stream` to `writer`, then passes the event on. The cache
/// is only updated while the returned stream is polled.
pub fn reflect<S>(
    mut writer: Writer,
    stream: S,
) -> impl Stream<Item = Result<Event, Error>> + Send + 'static
where
    S: Stream<Item = Result<Event, Error>> + Send + 'static,
{
    stream.map(move |ev| {
        if let Ok(e) = &ev {
            writer.apply(e);
        }
        ev
    })
}

/// A cache of `resource` (in `namespace`, or all) kept current by a watcher: the store,
/// and the stream that must be polled (spawned, or consumed by a controller) for the
/// cache to fill and follow changes.
pub fn reflector(
    client: Client,
    resource: Resource,
    namespace: Option<&str>,
    params: ListParams,
) -> (
    Store,
    impl Stream<Item = Result<Event, Error>> + Send + 'static,
) {
    let (reader, writer) = store();
    let events = watcher(client, resource, namespace, params);
    (reader, reflect(writer, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node}})
    }

    fn by_node(w: &mut Writer) {
        w.add_index("node", |o| {
            o["spec"]["nodeName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(|s| vec![s.to_string()])
                .unwrap_or_default()
        });
    }

    fn names(v: Vec<Arc<Value>>) -> Vec<String> {
        let mut n: Vec<String> = v
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_re_list_drops_objects_deleted_while_disconnected() {
        // client-go's Replace: the store becomes exactly the listed set.
        let (s, mut w) = store();
        assert!(!s.is_ready());
        w.apply(&Event::Restarted(vec![pod("a", "n1"), pod("b", "n1")]));
        assert!(s.is_ready());
        w.apply(&Event::Restarted(vec![pod("b", "n2"), pod("c", "")]));
        assert_eq!(names(s.list()), ["b", "c"]);
        assert!(s.get_by(Some("ns"), "a").is_none());
    }

    #[test]
    fn indexes_follow_updates_and_deletes() {
        let (s, mut w) = store();
        by_node(&mut w);
        w.apply(&Event::Restarted(vec![pod("a", "n1"), pod("b", "n1")]));
        assert_eq!(names(s.by_index("node", "n1")), ["a", "b"]);
        // Rescheduled: the pod leaves the old index value.
        w.apply(&Event::Applied(pod("a", "n2")));
        assert_eq!(names(s.by_index("node", "n1")), ["b"]);
        assert_eq!(names(s.by_index("node", "n2")), ["a"]);
        w.apply(&Event::Deleted(pod("b", "n1")));
        assert!(s.by_index("node", "n1").is_empty());
        assert_eq!(s.len(), 1);
        // A re-list rebuilds the index too.
        w.apply(&Event::Restarted(vec![pod("z", "n1")]));
        assert!(s.by_index("node", "n2").is_empty());
        assert_eq!(names(s.by_index("node", "n1")), ["z"]);
        assert!(s.by_index("nope", "n1").is_empty());
    }

    #[test]
    fn an_index_added_later_covers_existing_objects() {
        let (s, mut w) = store();
        w.apply(&Event::Applied(pod("a", "n1")));
        by_node(&mut w);
        assert_eq!(names(s.by_index("node", "n1")), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_wait_for_the_first_list() {
        let (s, mut w) = store();
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.wait_until_ready().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Events before the first list do not make the store ready.
        w.apply(&Event::Applied(pod("a", "n1")));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        w.apply(&Event::Restarted(vec![]));
        waiter.await.unwrap();
        assert!(s.is_empty());
    }
}
