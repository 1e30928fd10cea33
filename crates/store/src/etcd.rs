//! The etcd v3 backend.
//!
//! The [`Store`] trait already has etcd's semantics, so this is a thin mapping: every key
//! lives 1:1 under a prefix (default [`DEFAULT_PREFIX`]); revisions are etcd's own
//! (`mod_revision`, `create_revision`, the header revision); create, update and delete are
//! transactions comparing `create_revision`/`mod_revision` the way the Kubernetes API
//! server's etcd3 storage does; a watch is an etcd watch from `after + 1` with `prev_kv`.
//!
//! `current_revision` and `compacted_revision` are synchronous in the trait, so they are
//! cached in atomics: the current revision from the header of every response, the
//! compaction point from our own compactions and, when etcd reports one we did not know
//! about (another client compacted), by probing etcd for the oldest readable revision.

use crate::{
    Event, EventKind, KeyValue, ListPage, Result, Revision, Store, StoreError, WatchStream,
};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, KvClient, ResponseHeader, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The key prefix Drover's objects live under in a shared etcd, unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "/drover";

/// How long a unary etcd request may take before the operation fails (etcd unreachable or
/// without a leader would otherwise hang the caller forever).
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// How long `connect` waits for etcd's first answer.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// The largest response accepted from etcd: whole lists come back in one message, and
/// the API server accepts objects up to 3 MiB (Kubernetes sets no practical limit either).
const MAX_MESSAGE: usize = 1 << 30;

/// etcd's error text when a revision is older than its compaction point.
const ERR_COMPACTED: &str = "required revision has been compacted";
/// etcd's error text when a revision is newer than its current one.
const ERR_FUTURE: &str = "required revision is a future revision";

struct Inner {
    kv: KvClient,
    watch: WatchClient,
    prefix: String,
    endpoints: String,
    revision: AtomicI64,
    compacted: AtomicI64,
}

/// The etcd store: a cheap handle over one gRPC connection pool to the cluster.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.endpoints)
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("etcd: {e}"))
}

impl Inner {
    fn full_key(&self, key: &str) -> Vec<u8> {
        format!("{}{}", self.prefix, key).into_bytes()
    }

    /// Strips the prefix from a key etcd returned.
    fn user_key(&self, raw: &[u8]) -> Result<String> {
        let rest = raw
            .strip_prefix(self.prefix.as_bytes())
            .ok_or_else(|| db("etcd returned a key outside the store's prefix"))?;
        String::from_utf8(rest.to_vec()).map_err(|_| db("etcd returned a key that is not UTF-8"))
    }

    fn to_kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: self.user_key(kv.key())?,
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// Records the revision of a response header; revisions only move forward.
    fn saw(&self, header: Option<&ResponseHeader>) -> Revision {
        let rev = header.map(|h| h.revision()).unwrap_or(0);
        self.revision.fetch_max(rev, Ordering::SeqCst).max(rev)
    }

    fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    /// The oldest revision etcd can still read: the smallest `r` at which a range at `r`
    /// does not fail with "compacted" (etcd has no call that reports it directly).
    async fn probe_compacted(&self) -> Result<Revision> {
        // The compaction point may be past every revision this client has seen.
        let latest = deadline(self.kv().get(
            self.full_key("\0compaction-probe"),
            Some(GetOptions::new().with_count_only()),
        ))
        .await
        .map_err(db)?;
        self.saw(latest.header());
        let known = self.compacted.load(Ordering::SeqCst).max(1);
        let current = self.revision.load(Ordering::SeqCst).max(known);
        let (mut lo, mut hi) = (known, current);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let probe = deadline(self.kv().get(
                self.full_key("\0compaction-probe"),
                Some(GetOptions::new().with_revision(mid).with_count_only()),
            ))
            .await;
            match probe {
                Ok(resp) => {
                    self.saw(resp.header());
                    hi = mid;
                }
                Err(e) if e.to_string().contains(ERR_COMPACTED) => lo = mid + 1,
                Err(e) => return Err(db(e)),
            }
        }
        // A store that was never compacted reads fine at revision 1: report 0 then, as a
        // fresh SQLite store does.
        let point = if lo <= 1 { 0 } else { lo };
        self.compacted.fetch_max(point, Ordering::SeqCst);
        Ok(self.compacted.load(Ordering::SeqCst))
    }

    /// Maps an etcd error of a read at `requested` onto Compacted / FutureRevision.
    async fn revision_error(&self, e: etcd_client::Error, requested: Revision) -> StoreError {
        let text = e.to_string();
        if text.contains(ERR_COMPACTED) {
            let compacted = match self.probe_compacted().await {
                Ok(c) => c,
                Err(_) => self.compacted.load(Ordering::SeqCst),
            };
            StoreError::Compacted {
                requested,
                compacted,
            }
        } else if text.contains(ERR_FUTURE) {
            StoreError::FutureRevision {
                requested,
                current: self.revision.load(Ordering::SeqCst),
            }
        } else {
            db(e)
        }
    }
}

/// Runs one etcd request with a deadline, so that an unreachable cluster fails the
/// operation instead of hanging it.
async fn deadline<T>(
    fut: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> std::result::Result<T, etcd_client::Error> {
    match tokio::time::timeout(REQUEST_DEADLINE, fut).await {
        Ok(r) => r,
        Err(_) => Err(etcd_client::Error::Internal(format!(
            "no answer within {}s",
            REQUEST_DEADLINE.as_secs()
        ))),
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`host:port` or `http://host:port`) and
    /// keeps Drover's keys under `prefix` (empty for the whole key space). Fails with a
    /// clear error when no endpoint answers, rather than at the first request.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        let listed = endpoints.join(",");
        if endpoints.is_empty() {
            return Err(StoreError::Database("no etcd endpoints given".into()));
        }
        let unreachable = |e: &dyn std::fmt::Display| {
            StoreError::Database(format!("cannot reach etcd at {listed}: {e}"))
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
        let client =
            match tokio::time::timeout(CONNECT_DEADLINE, Client::connect(endpoints, Some(options)))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(unreachable(&e)),
                Err(_) => return Err(unreachable(&"no answer within 10s")),
            };
        let inner = Inner {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            prefix: prefix.trim_end_matches('/').to_string(),
            endpoints: listed.clone(),
            revision: AtomicI64::new(0),
            compacted: AtomicI64::new(0),
        };
        // The first request proves the cluster answers and gives the current revision.
        let first = tokio::time::timeout(
            CONNECT_DEADLINE,
            inner.kv().get(
                inner.full_key("/"),
                Some(GetOptions::new().with_count_only()),
            ),
        )
        .await;
        match first {
            Ok(Ok(resp)) => {
                inner.saw(resp.header());
            }
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => return Err(unreachable(&"no answer within 10s")),
        }
        inner.probe_compacted().await.map_err(|e| unreachable(&e))?;
        tracing::info!(endpoints = %listed, prefix = %inner.prefix, "connected to etcd");
        Ok(EtcdStore {
            inner: Arc::new(inner),
        })
    }

    /// The key prefix this store uses in etcd.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }
}

/// The state of a watch stream between two items.
struct WatchState {
    inner: Arc<Inner>,
    prefix: String,
    after: Revision,
    stream: Option<etcd_client::WatchStream>,
    pending: VecDeque<Event>,
    done: bool,
    /// Consecutive failures to (re)establish the etcd watch.
    retries: u32,
}

/// How many times in a row a broken watch is re-established (from the last delivered
/// revision, so no event is lost or repeated) before the error reaches the watcher: an
/// etcd restart or leader change should not end every watch, as etcd's Go client retries.
const WATCH_RETRIES: u32 = 8;

impl WatchState {
    fn event(&self, ev: &etcd_client::Event) -> Result<Event> {
        let kv = ev
            .kv()
            .ok_or_else(|| db("etcd sent a watch event without a key"))?;
        let prev = ev.prev_kv().map(|p| self.inner.to_kv(p)).transpose()?;
        match ev.event_type() {
            EventType::Put => Ok(Event {
                kind: EventKind::Put,
                kv: self.inner.to_kv(kv)?,
                prev,
            }),
            EventType::Delete => {
                // etcd's delete event carries only the key and the delete's revision;
                // the store's contract is the last value with the delete's revision.
                let key = self.inner.user_key(kv.key())?;
                let (value, create_revision) = prev
                    .as_ref()
                    .map(|p| (p.value.clone(), p.create_revision))
                    .unwrap_or_default();
                Ok(Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key,
                        value,
                        create_revision,
                        mod_revision: kv.mod_revision(),
                    },
                    prev,
                })
            }
        }
    }

    /// The next item of the watch, or None when it has ended.
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.after = ev.kv.mod_revision;
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            let stream = match self.stream.as_mut() {
                Some(s) => s,
                None => {
                    let options = WatchOptions::new()
                        .with_prefix()
                        .with_prev_key()
                        .with_start_revision(self.after.max(0) + 1);
                    let key = self.inner.full_key(&self.prefix);
                    match deadline(self.inner.watch.clone().watch(key, Some(options))).await {
                        Ok(s) => self.stream.insert(s),
                        Err(e) => match self.retry(db(e)).await {
                            Some(e) => return Some(Err(e)),
                            None => continue,
                        },
                    }
                }
            };
            let broken = match stream.message().await {
                Ok(Some(resp)) => Ok(resp),
                Ok(None) => Err(db("the watch stream ended")),
                Err(e) => Err(db(e)),
            };
            let resp = match broken {
                Ok(resp) => {
                    self.retries = 0;
                    resp
                }
                Err(e) => match self.retry(e).await {
                    Some(e) => return Some(Err(e)),
                    None => continue,
                },
            };
            self.inner.saw(resp.header());
            if resp.compact_revision() != 0 {
                let compacted = resp.compact_revision();
                self.inner.compacted.fetch_max(compacted, Ordering::SeqCst);
                let err = StoreError::Compacted {
                    requested: self.after,
                    compacted,
                };
                return Some(Err(self.fail(err)));
            }
            if resp.canceled() {
                let reason = format!("etcd cancelled the watch: {}", resp.cancel_reason());
                return Some(Err(self.fail(db(reason))));
            }
            for ev in resp.events() {
                match self.event(ev) {
                    Ok(ev) => self.pending.push_back(ev),
                    Err(e) => return Some(Err(self.fail(e))),
                }
            }
        }
    }

    /// After a broken stream: waits and lets the loop re-watch from `after + 1`, or gives
    /// up with the error once the retries are spent.
    async fn retry(&mut self, e: StoreError) -> Option<StoreError> {
        self.stream = None;
        if self.retries >= WATCH_RETRIES {
            return Some(self.fail(e));
        }
        self.retries += 1;
        tracing::debug!(error = %e, attempt = self.retries, "re-establishing an etcd watch");
        let backoff = Duration::from_millis(100 << self.retries.min(5));
        tokio::time::sleep(backoff).await;
        None
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        self.done = true;
        self.stream = None;
        e
    }
}

impl Store for EtcdStore {
    fn current_revision(&self) -> Revision {
        self.inner.revision.load(Ordering::SeqCst)
    }

    fn compacted_revision(&self) -> Revision {
        self.inner.compacted.load(Ordering::SeqCst)
    }

    fn get(&self, key: &str) -> BoxFuture<'_, Result<Option<KeyValue>>> {
        let full = self.inner.full_key(key);
        Box::pin(async move {
            let resp = deadline(self.inner.kv().get(full, None))
                .await
                .map_err(db)?;
            self.inner.saw(resp.header());
            resp.kvs()
                .first()
                .map(|kv| self.inner.to_kv(kv))
                .transpose()
        })
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        revision: Option<Revision>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ListPage>> {
        let range_start = self.inner.full_key(prefix);
        let range_end = etcd_prefix_end(&range_start);
        // Strictly after `start_after`: the smallest key greater than it is it + "\0".
        let from = match start_after {
            Some(s) if s > prefix => {
                let mut k = self.inner.full_key(s);
                k.push(0);
                k
            }
            _ => range_start,
        };
        Box::pin(async move {
            if let Some(r) = revision {
                let compacted = self.compacted_revision();
                if r < compacted {
                    return Err(StoreError::Compacted {
                        requested: r,
                        compacted,
                    });
                }
                if r <= 0 {
                    // Nothing existed before the first revision (etcd would read 0 as "latest").
                    return Ok(ListPage {
                        items: Vec::new(),
                        revision: r,
                        more: false,
                    });
                }
            }
            let mut options = GetOptions::new()
                .with_range(range_end)
                .with_limit(limit.try_into().unwrap_or(i64::MAX));
            if let Some(r) = revision {
                options = options.with_revision(r);
            }
            let resp = match deadline(self.inner.kv().get(from, Some(options))).await {
                Ok(r) => r,
                Err(e) => return Err(self.inner.revision_error(e, revision.unwrap_or(0)).await),
            };
            let header_rev = self.inner.saw(resp.header());
            let items = resp
                .kvs()
                .iter()
                .map(|kv| self.inner.to_kv(kv))
                .collect::<Result<Vec<_>>>()?;
            Ok(ListPage {
                items,
                revision: revision.unwrap_or(header_rev),
                more: resp.more(),
            })
        })
    }

    fn count(&self, prefix: &str) -> BoxFuture<'_, Result<u64>> {
        let start = self.inner.full_key(prefix);
        let end = etcd_prefix_end(&start);
        Box::pin(async move {
            let options = GetOptions::new().with_range(end).with_count_only();
            let resp = deadline(self.inner.kv().get(start, Some(options)))
                .await
                .map_err(db)?;
            self.inner.saw(resp.header());
            Ok(resp.count().max(0) as u64)
        })
    }

    fn create(&self, key: &str, value: Vec<u8>) -> BoxFuture<'_, Result<Revision>> {
        let key = key.to_string();
        let full = self.inner.full_key(&key);
        Box::pin(async move {
            // A key that does not exist has create_revision 0 (etcd compares missing keys
            // against a zero KeyValue); this is how Kubernetes' etcd3 store creates.
            let txn = Txn::new()
                .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(full, value, None)]);
            let resp = deadline(self.inner.kv().txn(txn)).await.map_err(db)?;
            let rev = self.inner.saw(resp.header());
            if resp.succeeded() {
                Ok(resp.header().map(|h| h.revision()).unwrap_or(rev))
            } else {
                Err(StoreError::AlreadyExists { key })
            }
        })
    }

    fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> BoxFuture<'_, Result<Revision>> {
        let key = key.to_string();
        let full = self.inner.full_key(&key);
        Box::pin(async move {
            let txn = Txn::new()
                .when(guard(&full, expected))
                .and_then([TxnOp::put(full.clone(), value, None)])
                .or_else([TxnOp::get(full, None)]);
            let resp = deadline(self.inner.kv().txn(txn)).await.map_err(db)?;
            let rev = self.inner.saw(resp.header());
            if resp.succeeded() {
                return Ok(resp.header().map(|h| h.revision()).unwrap_or(rev));
            }
            Err(self.failed_compare(&resp, key, expected))
        })
    }

    fn delete(&self, key: &str, expected: Option<Revision>) -> BoxFuture<'_, Result<KeyValue>> {
        let key = key.to_string();
        let full = self.inner.full_key(&key);
        Box::pin(async move {
            let delete = TxnOp::delete(full.clone(), Some(DeleteOptions::new().with_prev_key()));
            let txn = match expected {
                Some(expected) => Txn::new()
                    .when(guard(&full, expected))
                    .and_then([delete])
                    .or_else([TxnOp::get(full, None)]),
                None => Txn::new().and_then([delete]),
            };
            let resp = deadline(self.inner.kv().txn(txn)).await.map_err(db)?;
            let rev = self.inner.saw(resp.header());
            if !resp.succeeded() {
                return Err(self.failed_compare(&resp, key, expected.unwrap_or(0)));
            }
            let rev = resp.header().map(|h| h.revision()).unwrap_or(rev);
            let prev = resp.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
                _ => None,
            });
            match prev {
                Some(prev) => {
                    let mut kv = self.inner.to_kv(&prev)?;
                    kv.mod_revision = rev;
                    Ok(kv)
                }
                None => Err(StoreError::NotFound { key }),
            }
        })
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.compacted_revision();
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let state = WatchState {
            inner: self.inner.clone(),
            prefix: prefix.to_string(),
            after,
            stream: None,
            pending: VecDeque::new(),
            done: false,
            retries: 0,
        };
        Ok(futures::stream::unfold(state, |mut state| async move {
            state.next().await.map(|item| (item, state))
        })
        .boxed())
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let target = revision.min(self.current_revision());
            if target <= self.compacted_revision() {
                return Ok(());
            }
            // Physical: answer only once etcd has really dropped the history, as the
            // SQLite store does inside its transaction.
            let options = CompactionOptions::new().with_physical();
            match deadline(self.inner.kv().compact(target, Some(options))).await {
                Ok(resp) => {
                    self.inner.saw(resp.header());
                    self.inner.compacted.fetch_max(target, Ordering::SeqCst);
                    Ok(())
                }
                // Someone else compacted at least this far: learn where, and succeed.
                Err(e) if e.to_string().contains(ERR_COMPACTED) => {
                    self.inner.probe_compacted().await.map(|_| ())
                }
                Err(e) => Err(db(e)),
            }
        })
    }
}

impl EtcdStore {
    /// Turns the `else` branch of a failed compare into NotFound or Conflict.
    fn failed_compare(
        &self,
        resp: &etcd_client::TxnResponse,
        key: String,
        expected: Revision,
    ) -> StoreError {
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        match current {
            Some(actual) => StoreError::Conflict {
                key,
                expected,
                actual,
            },
            None => StoreError::NotFound { key },
        }
    }
}

/// The compare of an update or delete: the key exists (a missing key compares as a zero
/// KeyValue in etcd, so `mod_revision == 0` alone would match it) and was last modified
/// at `expected`.
fn guard(full: &[u8], expected: Revision) -> Vec<Compare> {
    vec![
        Compare::create_revision(full.to_vec(), CompareOp::Greater, 0),
        Compare::mod_revision(full.to_vec(), CompareOp::Equal, expected),
    ]
}

/// etcd's range end for a prefix: the prefix with its last byte below 0xff incremented
/// (bytes, unlike [`crate::prefix_end`] which must stay valid UTF-8).
fn etcd_prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_byte_string() {
        assert_eq!(etcd_prefix_end(b"/drover/p/"), b"/drover/p0".to_vec());
        assert_eq!(etcd_prefix_end(b"a\xff"), b"b".to_vec());
        // etcd's "from key" sentinel for a range to the end of the key space.
        assert_eq!(etcd_prefix_end(b""), vec![0]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod conformance_tests;
