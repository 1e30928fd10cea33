//! A revisioned key-value store with etcd v3 semantics.
//!
//! Every write gets the next value of one global revision; reads can be served at a
//! past revision until it is compacted; updates and deletes compare the key's
//! modification revision (compare-and-swap); a watch from a revision delivers every
//! later event in order, or [`StoreError::Compacted`] when that history is gone.
//! The API server is the only user: it maps `metadata.resourceVersion` onto revisions.
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "conformance"))]
#[allow(clippy::unwrap_used, clippy::panic)]
pub mod conformance;
mod etcd;
mod sqlite;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::sync::Arc;

pub use etcd::{DEFAULT_PREFIX, EtcdStore};
pub use sqlite::SqliteStore;

/// A global store revision (etcd's `revision`, Kubernetes' `resourceVersion`).
pub type Revision = i64;

/// One key with its value and the revisions that created and last modified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/apps/deployments/default/web`.
    pub key: String,
    /// The stored bytes (JSON for the API server).
    pub value: Vec<u8>,
    /// Revision of the write that created the key (reset by delete + create).
    pub create_revision: Revision,
    /// Revision of the last write to the key; for a delete event, the delete's revision.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted; the event's value is the last value the key had.
    Delete,
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or Delete.
    pub kind: EventKind,
    /// The new value (for Delete: the last value, with `mod_revision` = the delete's revision).
    pub kv: KeyValue,
    /// The value before this change, when it is still known: watchers with selectors need it
    /// to turn an update that stops matching into a deletion.
    pub prev: Option<KeyValue>,
}

/// A page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// The items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (use it to continue or to start a watch).
    pub revision: Revision,
    /// True when more items follow the last one.
    pub more: bool,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// Update or delete of a key that does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The compared modification revision is not the current one.
    #[error("key {key} was modified: expected revision {expected}, current {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller compared against.
        expected: Revision,
        /// The key's current modification revision.
        actual: Revision,
    },
    /// The requested revision is older than the compacted history.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction point.
        compacted: Revision,
    },
    /// The revision asked for is newer than the store's.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The store has shut down (its writer stopped).
    #[error("the store is closed")]
    Closed,
    /// The database failed; the write was not acknowledged.
    #[error("database error: {0}")]
    Database(String),
}

/// A result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A watch: events in revision order, then an error if the watch cannot go on.
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// The operations of an etcd-like store, shared by the SQLite and etcd backends.
///
/// Callers must treat every `Ok` of a write as durable: backends acknowledge only after
/// the write reached stable storage.
pub trait Store: Send + Sync + 'static {
    /// The latest committed revision.
    fn current_revision(&self) -> Revision;
    /// The oldest revision that can still be read or watched from.
    fn compacted_revision(&self) -> Revision;
    /// Reads one key at the latest revision.
    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<KeyValue>>>;
    /// Lists keys under `prefix`, strictly after `start_after` if given, as of `revision`
    /// (latest if None), at most `limit` items (0 = no limit).
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Option<Revision>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ListPage>>;
    /// Counts keys under `prefix` at the latest revision.
    fn count(&self, prefix: &str) -> BoxFuture<'_, Result<u64>>;
    /// Creates a key that must not exist; returns the new revision.
    fn create(&self, key: &str, value: Vec<u8>) -> BoxFuture<'_, Result<Revision>>;
    /// Replaces a key whose modification revision must equal `expected`; returns the new revision.
    fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'_, Result<Revision>>;
    /// Deletes a key, comparing its modification revision when `expected` is given;
    /// returns the deleted value with `mod_revision` set to the delete's revision.
    fn delete(&self, key: &str, expected: Option<Revision>) -> BoxFuture<'_, Result<KeyValue>>;
    /// Watches keys under `prefix` for every event with a revision greater than `after`.
    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;
    /// Forgets history at and before `revision` (the latest value of each live key stays).
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>>;
}

/// A shared handle to any store.
pub type SharedStore = Arc<dyn Store>;

/// The exclusive upper bound of a prefix scan: the prefix with its last byte incremented.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).unwrap_or_else(|_| "\u{10ffff}".into());
        }
    }
    "\u{10ffff}".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/core/pods/"), "/core/pods0");
        assert_eq!(prefix_end("a"), "b");
    }
}
