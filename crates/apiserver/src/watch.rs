//! Watch: a chunked stream of `{"type": ..., "object": ...}` lines, one per event.
//!
//! resourceVersion unset or "0" first sends the current objects as ADDED (kubectl's
//! single-object watch drops that first event, expecting it); otherwise every event after
//! the given revision. A selector turns an update that stops matching into DELETED and
//! one that starts matching into ADDED. A compacted revision ends in an ERROR event with
//! a 410 Status, after which clients re-list.

use crate::http::{Body, Want};
use crate::printing;
use crate::read::{Selectors, list_objects};
use crate::route::Target;
use crate::state::State;
use ::http::{HeaderValue, Response, header};
use api::{ApiError, meta};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use store::EventKind;
use tokio::sync::mpsc;

/// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Recent watch lines kept for other watchers of the same event.
const LINE_CACHE: usize = 4096;

/// A watch line (`{"type":...,"object":...}`) depends only on the event and its type
/// when the watcher has no selector and wants JSON: the first such watcher of an event
/// parses and encodes it, the others send the same bytes. The controllers, the
/// scheduler and every agent watch pods; without this each pod write was parsed and
/// serialized once per watcher.
#[derive(Default)]
pub struct LineCache {
    inner: std::sync::Mutex<LineCacheInner>,
}

type LineKey = (i64, &'static str, String);

#[derive(Default)]
struct LineCacheInner {
    lines: HashMap<LineKey, Bytes>,
    order: std::collections::VecDeque<LineKey>,
}

impl LineCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, LineCacheInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The line of the event (revision, type, key), encoded by `encode` if no watcher
    /// has done it yet; None when `encode` cannot (the stored object does not parse).
    fn get_or_encode(
        &self,
        rev: i64,
        kind: &'static str,
        key: &str,
        encode: impl FnOnce() -> Option<Bytes>,
    ) -> Option<Bytes> {
        let id = (rev, kind, key.to_string());
        if let Some(b) = self.lock().lines.get(&id) {
            return Some(b.clone());
        }
        // Encoded outside the lock: two watchers may both encode one event, never wait.
        let line = encode()?;
        let mut c = self.lock();
        if !c.lines.contains_key(&id) {
            c.lines.insert(id.clone(), line.clone());
            c.order.push_back(id);
            while c.order.len() > LINE_CACHE {
                if let Some(old) = c.order.pop_front() {
                    c.lines.remove(&old);
                }
            }
        }
        Some(line)
    }
}

struct Encoder {
    state: Arc<State>,
    t: Target,
    want: Want,
    include: Option<String>,
    sent_columns: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, obj: Value) -> Bytes {
        let object = if self.want == Want::Table && kind != "BOOKMARK" && kind != "ERROR" {
            let rv = meta::resource_version(&obj).unwrap_or("").to_string();
            let with_columns = !self.sent_columns;
            self.sent_columns = true;
            printing::table(
                &self.state,
                &self.t.info,
                vec![obj],
                &rv,
                self.include.as_deref(),
                with_columns,
            )
        } else {
            obj
        };
        let mut b =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    }
}

fn parse_rv(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// Starts a watch and returns the streaming response.
pub async fn watch(
    state: Arc<State>,
    t: Target,
    want: Want,
    q: HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::from_query(&q, &t.info)?;
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let prefix = t.info.namespace_prefix(t.namespace.as_deref());

    // Initial state, when asked for (RV unset/0, or sendInitialEvents=true).
    let mut initial = Vec::new();
    let from = if rv.is_empty() || rv == "0" || send_initial == Some(true) {
        let mut lq = q.clone();
        lq.remove("limit");
        lq.remove("continue");
        let (items, rev, _) = list_objects(&state, &t, &lq).await?;
        initial = items;
        rev
    } else {
        parse_rv(&rv)?
    };
    let initial_end_bookmark = send_initial == Some(true);

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut enc = Encoder {
        state: state.clone(),
        t: t.clone(),
        want,
        include: q.get("includeObject").cloned(),
        sent_columns: false,
    };
    let stream = state.store.watch(&prefix, from);
    let plain = want != Want::Table && sel.labels.is_empty() && sel.fields.is_empty();
    tokio::spawn(async move {
        let mut last_rev = from;
        for obj in initial {
            if tx.send(enc.line("ADDED", obj)).await.is_err() {
                return;
            }
        }
        let bookmark = |rev: i64, end: bool| {
            let mut m = json!({"resourceVersion": rev.to_string()});
            if end {
                m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            json!({"kind": t.info.kind, "apiVersion": t.info.api_version(), "metadata": m})
        };
        if initial_end_bookmark
            && tx
                .send(enc.line("BOOKMARK", bookmark(from, true)))
                .await
                .is_err()
        {
            return;
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                let err = crate::state::store_error(e);
                let _ = tx.send(enc.line("ERROR", err.to_status())).await;
                return;
            }
        };
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, stream.next()).await.ok(),
                    None => Some(stream.next().await),
                }
            };
            let ev = tokio::select! {
                ev = next => ev,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(enc.line("BOOKMARK", bookmark(last_rev, false))).await.is_err() { return; }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let Some(ev) = ev else { return }; // timeout reached
            let ev = match ev {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    let err = crate::state::store_error(e);
                    let _ = tx.send(enc.line("ERROR", err.to_status())).await;
                    return;
                }
                None => return,
            };
            last_rev = ev.kv.mod_revision;
            if plain {
                // Without selectors every version matches: the type follows from the
                // event alone, and the line is the same for every such watcher.
                let kind = match (ev.kind, ev.prev.is_some()) {
                    (EventKind::Delete, _) => "DELETED",
                    (EventKind::Put, true) => "MODIFIED",
                    (EventKind::Put, false) => "ADDED",
                };
                let line =
                    state
                        .watch_lines
                        .get_or_encode(ev.kv.mod_revision, kind, &ev.kv.key, || {
                            let mut obj = serde_json::from_slice::<Value>(&ev.kv.value).ok()?;
                            meta::set(
                                &mut obj,
                                "resourceVersion",
                                json!(ev.kv.mod_revision.to_string()),
                            );
                            Some(enc.line(kind, obj))
                        });
                if let Some(line) = line
                    && tx.send(line).await.is_err()
                {
                    return;
                }
                continue;
            }
            let Ok(mut obj) = serde_json::from_slice::<Value>(&ev.kv.value) else {
                continue;
            };
            meta::set(
                &mut obj,
                "resourceVersion",
                json!(ev.kv.mod_revision.to_string()),
            );
            let now_matches = sel.matches(&t.info, &obj);
            // Without selectors every version matches: the previous one need not be parsed.
            let prev_matches = if sel.labels.is_empty() && sel.fields.is_empty() {
                ev.prev.as_ref().map(|_| true)
            } else {
                ev.prev
                    .as_ref()
                    .and_then(|p| serde_json::from_slice::<Value>(&p.value).ok())
                    .map(|p| sel.matches(&t.info, &p))
            };
            let kind = match (ev.kind, prev_matches, now_matches) {
                (EventKind::Delete, Some(true), _) | (EventKind::Delete, None, true) => "DELETED",
                (EventKind::Delete, _, _) => continue,
                (EventKind::Put, None, true) => "ADDED",
                (EventKind::Put, Some(false), true) => "ADDED",
                (EventKind::Put, Some(true), true) => "MODIFIED",
                (EventKind::Put, Some(true), false) => "DELETED",
                (EventKind::Put, _, false) => continue,
            };
            if tx.send(enc.line(kind, obj)).await.is_err() {
                return;
            }
        }
    });
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    }));
    let mut resp = Response::new(http_body_util::BodyExt::boxed(body));
    let ct = if want == Want::Table {
        crate::http::TABLE_CONTENT_TYPE
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_encoded_once_per_event_and_type() {
        let cache = LineCache::default();
        let mut calls = 0;
        for _ in 0..3 {
            let line = cache.get_or_encode(7, "MODIFIED", "/pods/ns/a", || {
                calls += 1;
                Some(Bytes::from_static(b"line-7"))
            });
            assert_eq!(line.as_deref(), Some(&b"line-7"[..]));
        }
        assert_eq!(calls, 1);
        // Another key, type or revision is another line.
        let other =
            cache.get_or_encode(7, "ADDED", "/pods/ns/a", || Some(Bytes::from_static(b"x")));
        assert_eq!(other.as_deref(), Some(&b"x"[..]));
        // An object that does not parse is skipped and not remembered.
        assert!(
            cache
                .get_or_encode(8, "ADDED", "/pods/ns/b", || None)
                .is_none()
        );
        assert!(
            !cache
                .lock()
                .lines
                .contains_key(&(8, "ADDED", "/pods/ns/b".to_string()))
        );
    }

    #[test]
    fn old_lines_are_forgotten() {
        let cache = LineCache::default();
        for rev in 0..(LINE_CACHE as i64 + 10) {
            cache.get_or_encode(rev, "ADDED", "/k", || Some(Bytes::new()));
        }
        let c = cache.lock();
        assert_eq!(c.lines.len(), LINE_CACHE);
        assert!(!c.lines.contains_key(&(0, "ADDED", "/k".to_string())));
        assert!(
            c.lines
                .contains_key(&(LINE_CACHE as i64 + 9, "ADDED", "/k".to_string()))
        );
    }
}
