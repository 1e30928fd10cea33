//! The embedded SQLite backend.
//!
//! Layout (as kine does it): one append-only `log` table holds every revision of every
//! key; the latest row of a key is its current value, a row with `deleted = 1` is a
//! tombstone. Reads at revision R take, per key, the newest row with `rev <= R`.
//!
//! Writes go through one writer thread that owns the only write connection. It takes
//! every request waiting in its queue, applies them in one transaction and commits once
//! (WAL mode, `synchronous = FULL`, so the commit is fsync'ed): group commit, so that
//! throughput does not fall to one fsync per write. Only after the commit are callers
//! answered and watchers told.

use crate::{
    Event, EventKind, KeyValue, ListPage, Result, Revision, Store, StoreError, WatchStream,
    prefix_end,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot};

/// How many writes one commit may carry at most.
const MAX_BATCH: usize = 512;
/// How many events a slow watcher may fall behind before it re-reads from the database.
const WATCH_BUFFER: usize = 8192;
/// How many history rows one catch-up query reads.
const HISTORY_PAGE: i64 = 2000;

enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

enum Reply {
    Rev(Result<Revision>),
    Deleted(Result<KeyValue>),
    Unit(Result<()>),
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Reply>,
}

struct Shared {
    path: PathBuf,
    revision: AtomicI64,
    compacted: AtomicI64,
    readers: Mutex<Vec<Connection>>,
    events: broadcast::Sender<Arc<Event>>,
}

/// The SQLite store. Cheap to clone through `Arc`; dropping every handle stops the writer.
pub struct SqliteStore {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Request>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_err)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path` and starts the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = open_connection(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS log (
                 rev INTEGER PRIMARY KEY,
                 key TEXT NOT NULL,
                 value BLOB NOT NULL,
                 create_rev INTEGER NOT NULL,
                 prev_rev INTEGER NOT NULL,
                 deleted INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(db_err)?;
        let max_rev: i64 = conn
            .query_row("SELECT COALESCE(MAX(rev), 0) FROM log", [], |r| r.get(0))
            .map_err(db_err)?;
        let compacted: i64 = conn
            .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_err)?
            .unwrap_or(0);
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let shared = Arc::new(Shared {
            path: path.clone(),
            revision: AtomicI64::new(max_rev.max(compacted)),
            compacted: AtomicI64::new(compacted),
            readers: Mutex::new(Vec::new()),
            events,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_shared))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore { shared, writer: tx })
    }

    async fn send(&self, op: Op) -> Result<Reply> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Request { op, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Runs a read on a pooled connection on the blocking pool.
    async fn read<T: Send + 'static>(
        shared: Arc<Shared>,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(move || {
            let conn = match shared.readers.lock().ok().and_then(|mut p| p.pop()) {
                Some(c) => c,
                None => open_connection(&shared.path)?,
            };
            let out = f(&conn);
            if let Ok(mut pool) = shared.readers.lock()
                && pool.len() < 16
            {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Database(format!("read task failed: {e}")))?
    }
}

/// The newest row of a key: (rev, create_rev, deleted, value).
type LatestRow = (i64, i64, bool, Vec<u8>);

/// The newest row of `key` (live or tombstone).
fn latest_row(conn: &Connection, key: &str) -> rusqlite::Result<Option<LatestRow>> {
    conn.prepare_cached(
        "SELECT rev, create_rev, deleted, value FROM log WHERE key = ?1 ORDER BY rev DESC LIMIT 1",
    )?
    .query_row(params![key], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?))
    })
    .optional()
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Request>,
    shared: Arc<Shared>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let base = shared.revision.load(Ordering::SeqCst);
        match apply_batch(&mut conn, &batch, base, &shared) {
            Ok((replies, events, new_rev)) => {
                shared.revision.store(new_rev, Ordering::SeqCst);
                for ev in events {
                    // No receivers is fine: nobody watches.
                    let _ = shared.events.send(Arc::new(ev));
                }
                for (req, reply) in batch.into_iter().zip(replies) {
                    let _ = req.reply.send(reply);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; the batch was not written");
                for req in batch {
                    let reply = match req.op {
                        Op::Create { .. } | Op::Update { .. } => {
                            Reply::Rev(Err(StoreError::Database(e.to_string())))
                        }
                        Op::Delete { .. } => {
                            Reply::Deleted(Err(StoreError::Database(e.to_string())))
                        }
                        Op::Compact { .. } => Reply::Unit(Err(StoreError::Database(e.to_string()))),
                    };
                    let _ = req.reply.send(reply);
                }
            }
        }
    }
}

type BatchOutcome = (Vec<Reply>, Vec<Event>, Revision);

fn apply_batch(
    conn: &mut Connection,
    batch: &[Request],
    base: Revision,
    shared: &Shared,
) -> rusqlite::Result<BatchOutcome> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut rev = base;
    let mut replies = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    let mut compact_to = None;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO log (rev, key, value, create_rev, prev_rev, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for req in batch {
            match &req.op {
                Op::Create { key, value } => {
                    let latest = latest_row(&tx, key)?;
                    let (prev_rev, prev) = match latest {
                        Some((r, _, false, _)) => {
                            let _ = r;
                            replies.push(Reply::Rev(Err(StoreError::AlreadyExists {
                                key: key.clone(),
                            })));
                            continue;
                        }
                        Some((r, _, true, _)) => (r, None),
                        None => (0, None),
                    };
                    rev += 1;
                    insert.execute(params![rev, key, value, rev, prev_rev, 0])?;
                    events.push(Event {
                        kind: EventKind::Put,
                        kv: KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: rev,
                            mod_revision: rev,
                        },
                        prev,
                    });
                    replies.push(Reply::Rev(Ok(rev)));
                }
                Op::Update {
                    key,
                    value,
                    expected,
                } => match latest_row(&tx, key)? {
                    Some((r, create, false, old)) => {
                        if r != *expected {
                            replies.push(Reply::Rev(Err(StoreError::Conflict {
                                key: key.clone(),
                                expected: *expected,
                                actual: r,
                            })));
                            continue;
                        }
                        rev += 1;
                        insert.execute(params![rev, key, value, create, r, 0])?;
                        events.push(Event {
                            kind: EventKind::Put,
                            kv: KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_revision: create,
                                mod_revision: rev,
                            },
                            prev: Some(KeyValue {
                                key: key.clone(),
                                value: old,
                                create_revision: create,
                                mod_revision: r,
                            }),
                        });
                        replies.push(Reply::Rev(Ok(rev)));
                    }
                    _ => replies.push(Reply::Rev(Err(StoreError::NotFound { key: key.clone() }))),
                },
                Op::Delete { key, expected } => match latest_row(&tx, key)? {
                    Some((r, create, false, old)) => {
                        if let Some(e) = expected
                            && r != *e
                        {
                            replies.push(Reply::Deleted(Err(StoreError::Conflict {
                                key: key.clone(),
                                expected: *e,
                                actual: r,
                            })));
                            continue;
                        }
                        rev += 1;
                        insert.execute(params![rev, key, &old, create, r, 1])?;
                        let kv = KeyValue {
                            key: key.clone(),
                            value: old.clone(),
                            create_revision: create,
                            mod_revision: rev,
                        };
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: kv.clone(),
                            prev: Some(KeyValue {
                                key: key.clone(),
                                value: old,
                                create_revision: create,
                                mod_revision: r,
                            }),
                        });
                        replies.push(Reply::Deleted(Ok(kv)));
                    }
                    _ => replies.push(Reply::Deleted(Err(StoreError::NotFound {
                        key: key.clone(),
                    }))),
                },
                Op::Compact { revision } => {
                    let current_compacted = shared.compacted.load(Ordering::SeqCst);
                    let target = (*revision).min(rev);
                    if target > current_compacted {
                        compact_to = Some(target);
                    }
                    replies.push(Reply::Unit(Ok(())));
                }
            }
        }
    }
    if let Some(c) = compact_to {
        tx.execute(
            "DELETE FROM log WHERE rev <= ?1 AND (deleted = 1 OR rev < (SELECT MAX(l2.rev) FROM log l2 WHERE l2.key = log.key AND l2.rev <= ?1))",
            params![c],
        )?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('compacted', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![c],
        )?;
    }
    tx.commit()?;
    if let Some(c) = compact_to {
        shared.compacted.store(c, Ordering::SeqCst);
    }
    Ok((replies, events, rev))
}

fn check_revision(shared: &Shared, revision: Revision) -> Result<()> {
    let compacted = shared.compacted.load(Ordering::SeqCst);
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    let current = shared.revision.load(Ordering::SeqCst);
    if revision > current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current,
        });
    }
    Ok(())
}

/// Reads the events after `after` (up to `until`) under the prefix, oldest first.
fn read_history(
    conn: &Connection,
    prefix: &str,
    after: Revision,
    until: Revision,
) -> rusqlite::Result<Vec<Event>> {
    let end = prefix_end(prefix);
    let mut stmt = conn.prepare_cached(
        "SELECT l.rev, l.key, l.value, l.create_rev, l.deleted, p.value, p.rev, p.create_rev, p.deleted
         FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
         WHERE l.rev > ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4
         ORDER BY l.rev LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![after, until, prefix, end, HISTORY_PAGE], |r| {
        let rev: i64 = r.get(0)?;
        let key: String = r.get(1)?;
        let deleted = r.get::<_, i64>(4)? != 0;
        let prev_value: Option<Vec<u8>> = r.get(5)?;
        let prev_deleted: Option<i64> = r.get(8)?;
        let prev = match (prev_value, prev_deleted) {
            (Some(v), Some(0)) => Some(KeyValue {
                key: key.clone(),
                value: v,
                mod_revision: r.get(6)?,
                create_revision: r.get(7)?,
            }),
            _ => None,
        };
        Ok(Event {
            kind: if deleted {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv: KeyValue {
                key,
                value: r.get(2)?,
                create_revision: r.get(3)?,
                mod_revision: rev,
            },
            prev,
        })
    })?;
    rows.collect()
}

impl Store for SqliteStore {
    fn current_revision(&self) -> Revision {
        self.shared.revision.load(Ordering::SeqCst)
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::SeqCst)
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<KeyValue>>> {
        let key = key.to_string();
        let shared = self.shared.clone();
        Box::pin(async move {
            Self::read(shared, move |conn| {
                Ok(latest_row(conn, &key).map_err(db_err)?.and_then(
                    |(rev, create, deleted, value)| {
                        (!deleted).then_some(KeyValue {
                            key,
                            value,
                            create_revision: create,
                            mod_revision: rev,
                        })
                    },
                ))
            })
            .await
        })
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Option<Revision>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ListPage>> {
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        let shared = self.shared.clone();
        Box::pin(async move {
            let at = match revision {
                Some(r) => {
                    check_revision(&shared, r)?;
                    r
                }
                None => shared.revision.load(Ordering::SeqCst),
            };
            let out = Self::read(shared.clone(), move |conn| {
                let end = prefix_end(&prefix);
                let lower = start_after.unwrap_or_default();
                let lower = if lower.as_str() < prefix.as_str() {
                    prefix.clone()
                } else {
                    lower
                };
                let strict = lower != prefix;
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT l.key, l.value, l.create_rev, l.rev FROM log l
                         JOIN (SELECT key, MAX(rev) AS mr FROM log
                               WHERE key >= ?1 AND key < ?2 AND rev <= ?3 AND (?4 = 0 OR key > ?1)
                               GROUP BY key) m ON l.key = m.key AND l.rev = m.mr
                         WHERE l.deleted = 0 ORDER BY l.key LIMIT ?5",
                    )
                    .map_err(db_err)?;
                let fetch = if limit == 0 { -1 } else { limit as i64 + 1 };
                let mut items: Vec<KeyValue> = stmt
                    .query_map(params![lower, end, at, strict as i64, fetch], |r| {
                        Ok(KeyValue {
                            key: r.get(0)?,
                            value: r.get(1)?,
                            create_revision: r.get(2)?,
                            mod_revision: r.get(3)?,
                        })
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(db_err)?;
                let more = limit != 0 && items.len() > limit;
                items.truncate(if limit == 0 { items.len() } else { limit });
                Ok(ListPage {
                    items,
                    revision: at,
                    more,
                })
            })
            .await?;
            // A compaction may have raced the read; the page would then be incomplete.
            if revision.is_some() {
                check_revision(&shared, at)?;
            }
            Ok(out)
        })
    }

    fn count(&self, prefix: &str) -> BoxFuture<'_, Result<u64>> {
        let prefix = prefix.to_string();
        let shared = self.shared.clone();
        Box::pin(async move {
            let at = shared.revision.load(Ordering::SeqCst);
            Self::read(shared, move |conn| {
                let end = prefix_end(&prefix);
                conn.query_row(
                    "SELECT COUNT(*) FROM log l JOIN (SELECT key, MAX(rev) AS mr FROM log
                       WHERE key >= ?1 AND key < ?2 AND rev <= ?3 GROUP BY key) m
                     ON l.key = m.key AND l.rev = m.mr WHERE l.deleted = 0",
                    params![prefix, end, at],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(db_err)
            })
            .await
        })
    }

    fn create(&self, key: &str, value: Vec<u8>) -> BoxFuture<'_, Result<Revision>> {
        let op = Op::Create {
            key: key.to_string(),
            value,
        };
        Box::pin(async move {
            match self.send(op).await? {
                Reply::Rev(r) => r,
                _ => Err(StoreError::Database("unexpected reply".into())),
            }
        })
    }

    fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'_, Result<Revision>> {
        let op = Op::Update {
            key: key.to_string(),
            value,
            expected,
        };
        Box::pin(async move {
            match self.send(op).await? {
                Reply::Rev(r) => r,
                _ => Err(StoreError::Database("unexpected reply".into())),
            }
        })
    }

    fn delete(&self, key: &str, expected: Option<Revision>) -> BoxFuture<'_, Result<KeyValue>> {
        let op = Op::Delete {
            key: key.to_string(),
            expected,
        };
        Box::pin(async move {
            match self.send(op).await? {
                Reply::Deleted(r) => r,
                _ => Err(StoreError::Database("unexpected reply".into())),
            }
        })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // Subscribe before reading history so that nothing falls between the two.
        let mut live = self.shared.events.subscribe();
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let shared = self.shared.clone();
        let prefix = prefix.to_string();
        let stream = async_stream(move |tx: mpsc::Sender<Result<Event>>| async move {
            let mut last = after;
            // Catch up from the database, then follow the live feed; fall back to the
            // database whenever the live feed overflows.
            'outer: loop {
                loop {
                    let until = shared.revision.load(Ordering::SeqCst);
                    if last >= until {
                        break;
                    }
                    let (p, l) = (prefix.clone(), last);
                    let history = SqliteStore::read(shared.clone(), move |conn| {
                        read_history(conn, &p, l, until).map_err(db_err)
                    })
                    .await;
                    let history = match history {
                        Ok(h) => h,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    let compacted = shared.compacted.load(Ordering::SeqCst);
                    if last < compacted {
                        let _ = tx
                            .send(Err(StoreError::Compacted {
                                requested: last,
                                compacted,
                            }))
                            .await;
                        return;
                    }
                    let full = history.len() as i64 >= HISTORY_PAGE;
                    for ev in history {
                        last = ev.kv.mod_revision;
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    if !full {
                        last = last.max(until);
                        break;
                    }
                }
                loop {
                    let received = tokio::select! {
                        r = live.recv() => r,
                        _ = tx.closed() => return,
                    };
                    match received {
                        Ok(ev) => {
                            if ev.kv.mod_revision <= last {
                                continue;
                            }
                            last = ev.kv.mod_revision;
                            if ev.kv.key.starts_with(&prefix)
                                && tx.send(Ok((*ev).clone())).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue 'outer,
                        Err(broadcast::error::RecvError::Closed) => {
                            let _ = tx.send(Err(StoreError::Closed)).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(stream)
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.send(Op::Compact { revision }).await? {
                Reply::Unit(r) => r,
                _ => Err(StoreError::Database("unexpected reply".into())),
            }
        })
    }
}

/// Runs a producer task that feeds a bounded channel, and returns the channel as a stream.
/// The task stops when the stream is dropped (its next send fails).
fn async_stream<F, Fut>(producer: F) -> WatchStream
where
    F: FnOnce(mpsc::Sender<Result<Event>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(producer(tx));
    tokio_stream_from(rx).boxed()
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Event>>,
) -> impl futures::Stream<Item = Result<Event>> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SharedStore, conformance};

    fn fresh() -> (tempfile::TempDir, SharedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("db.sqlite")).unwrap();
        (dir, Arc::new(store))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn crud_with_compare() {
        let (_d, s) = fresh();
        conformance::crud_with_compare(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn list_pages_and_past_revisions() {
        let (_d, s) = fresh();
        conformance::list_pages_and_past_revisions(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_compare_and_swap() {
        let (_d, s) = fresh();
        conformance::concurrent_compare_and_swap(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn watch_delivers_every_event_in_order() {
        let (_d, s) = fresh();
        conformance::watch_delivers_every_event_in_order(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn compaction() {
        let (_d, s) = fresh();
        conformance::compaction(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reopening_keeps_every_acknowledged_write_and_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (rev, compacted) = {
            let s = SqliteStore::open(&path).unwrap();
            for i in 0..100 {
                s.create(&format!("/d/{i:03}"), vec![1]).await.unwrap();
            }
            let last = s.delete("/d/099", None).await.unwrap().mod_revision;
            s.compact(last).await.unwrap();
            (s.current_revision(), s.compacted_revision())
        };
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.current_revision(),
            rev,
            "revisions must never go back after a restart"
        );
        assert_eq!(s.compacted_revision(), compacted);
        assert_eq!(s.list("/d/", None, None, 0).await.unwrap().items.len(), 99);
        assert!(s.create("/d/new", vec![1]).await.unwrap() > rev);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lagging_watcher_catches_up_from_the_database() {
        let (_d, s) = fresh();
        let mut w = s.watch("/lag/", 0).unwrap();
        // More events than the live buffer holds, written while the watcher does not read.
        let n = WATCH_BUFFER + 500;
        let mut handles = Vec::new();
        for t in 0..8 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..n / 8 {
                    s.create(&format!("/lag/{t}/{i}"), vec![1]).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let mut last = 0;
        for _ in 0..(n / 8) * 8 {
            let ev = w.next().await.unwrap().unwrap();
            assert_eq!(ev.kv.mod_revision, last + 1, "no event may be skipped");
            last = ev.kv.mod_revision;
        }
    }
}
