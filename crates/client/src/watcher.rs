//! List-then-watch as an explicit state machine (kube-runtime's watcher design).
//!
//! ```text
//!            list page (more)        last page: emit Restarted(all)
//!   Empty ──────────────────▶ InitPage ───────────────────────────▶ InitListed
//!     │  last page: emit Restarted(all)                                │ watch(rv)
//!     └───────────────────────────────────────────────────────────────▶│
//!     ▲                                                                ▼
//!     └──── 410 Gone, any ERROR event, a broken stream, stream end ── Watching
//!                                                     (events: Applied / Deleted)
//! ```
//!
//! Every way out of `Watching` goes back to `Empty`, i.e. a full re-list, which the
//! consumer sees as `Restarted`: that is how deletions missed while disconnected (a
//! server restart, a compaction) reach a cache. Errors are yielded to the consumer (to
//! log) and followed by an exponential back-off, so a dead server is not hammered.

use crate::{Client, Error, ListParams, ObjectList, Resource, WatchEvent};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

/// What a watcher reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An object was created or changed: its new state.
    Applied(Value),
    /// An object was deleted: its last state.
    Deleted(Value),
    /// A full (re-)list: the complete current set of objects. Anything not in it is gone.
    Restarted(Vec<Value>),
}

/// The two calls a watcher makes. [`ResourceClient`] implements it over HTTPS; tests use a
/// scripted fake.
pub trait ListWatch: Send + Sync + 'static {
    /// One list page (`continue_token` None for the first).
    fn list_page(
        &self,
        params: &ListParams,
        continue_token: Option<&str>,
    ) -> impl Future<Output = Result<ObjectList, Error>> + Send;

    /// A watch from `resource_version`.
    fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<WatchEvent, Error>>, Error>> + Send;
}

/// A [`Client`] bound to one resource and namespace (None: all namespaces).
#[derive(Clone, Debug)]
pub struct ResourceClient {
    /// The client.
    pub client: Client,
    /// The resource.
    pub resource: Resource,
    /// The namespace, or None for all namespaces / cluster-scoped resources.
    pub namespace: Option<String>,
}

impl ListWatch for ResourceClient {
    async fn list_page(
        &self,
        params: &ListParams,
        continue_token: Option<&str>,
    ) -> Result<ObjectList, Error> {
        self.client
            .list_page(
                &self.resource,
                self.namespace.as_deref(),
                params,
                continue_token,
            )
            .await
    }

    async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent, Error>>, Error> {
        let s = self
            .client
            .watch(
                &self.resource,
                self.namespace.as_deref(),
                params,
                resource_version,
            )
            .await?;
        Ok(s.boxed())
    }
}

/// Tuning of a watcher.
#[derive(Clone, Debug, PartialEq)]
pub struct WatcherConfig {
    /// Page size of the initial list (`limit`), so a huge collection is not one response.
    pub page_size: Option<u32>,
    /// Wait after the first error in a row; doubles with each further error.
    pub initial_backoff: Duration,
    /// Cap of that wait.
    pub max_backoff: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            page_size: Some(500),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Where the watcher is.
enum State {
    /// Nothing listed yet, or the previous list/watch was abandoned: the next step lists
    /// from scratch.
    Empty,
    /// Listing page by page: the objects so far and the token of the next page. An
    /// expired token (410) goes back to `Empty`.
    InitPage {
        continue_token: String,
        objects: Vec<Value>,
    },
    /// The whole list was emitted as `Restarted`; the next step starts a watch at its
    /// revision, so no change after the snapshot is missed. A failed start stays here
    /// (retried after back-off) unless it is 410, which re-lists.
    InitListed { resource_version: String },
    /// Watching; `resource_version` follows the events (and bookmarks).
    Watching {
        resource_version: String,
        stream: BoxStream<'static, Result<WatchEvent, Error>>,
    },
}

/// One transition: what to emit (if anything) and the next state.
async fn step<L: ListWatch>(
    api: &L,
    params: &ListParams,
    state: State,
) -> (Option<Result<Event, Error>>, State) {
    match state {
        State::Empty => list_step(api, params, None, Vec::new()).await,
        State::InitPage {
            continue_token,
            objects,
        } => list_step(api, params, Some(&continue_token), objects).await,
        State::InitListed { resource_version } => {
            match api.watch(params, &resource_version).await {
                Ok(stream) => (
                    None,
                    State::Watching {
                        resource_version,
                        stream,
                    },
                ),
                Err(e) if e.is_gone() => (None, State::Empty),
                Err(e) => (Some(Err(e)), State::InitListed { resource_version }),
            }
        }
        State::Watching {
            mut resource_version,
            mut stream,
        } => {
            let mut advance = |obj: &Value| {
                if let Some(rv) = api::meta::resource_version(obj) {
                    resource_version = rv.to_string();
                }
            };
            let out = match stream.next().await {
                Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                    advance(&o);
                    Event::Applied(o)
                }
                Some(Ok(WatchEvent::Deleted(o))) => {
                    advance(&o);
                    Event::Deleted(o)
                }
                Some(Ok(WatchEvent::Bookmark(o))) => {
                    advance(&o);
                    return (
                        None,
                        State::Watching {
                            resource_version,
                            stream,
                        },
                    );
                }
                // Compacted: the expected way to learn that a re-list is needed.
                Some(Ok(WatchEvent::Error(s))) if s.code == 410 => {
                    tracing::debug!("watch expired ({s}); re-listing");
                    return (None, State::Empty);
                }
                Some(Ok(WatchEvent::Error(s))) => {
                    return (Some(Err(Error::Api(Box::new(s)))), State::Empty);
                }
                Some(Err(e)) => return (Some(Err(e)), State::Empty),
                None => {
                    tracing::debug!("watch stream ended; re-listing");
                    return (None, State::Empty);
                }
            };
            (
                Some(Ok(out)),
                State::Watching {
                    resource_version,
                    stream,
                },
            )
        }
    }
}

async fn list_step<L: ListWatch>(
    api: &L,
    params: &ListParams,
    continue_token: Option<&str>,
    mut objects: Vec<Value>,
) -> (Option<Result<Event, Error>>, State) {
    match api.list_page(params, continue_token).await {
        Ok(page) => {
            objects.extend(page.items);
            match page.continue_token {
                Some(continue_token) => (
                    None,
                    State::InitPage {
                        continue_token,
                        objects,
                    },
                ),
                None => (
                    Some(Ok(Event::Restarted(objects))),
                    State::InitListed {
                        resource_version: page.resource_version,
                    },
                ),
            }
        }
        Err(e) => (Some(Err(e)), State::Empty),
    }
}

/// Watches `resource` (in `namespace`, or all) through `client`: see the module docs.
/// The stream never ends by itself; drop it to stop.
pub fn watcher(
    client: Client,
    resource: Resource,
    namespace: Option<&str>,
    params: ListParams,
) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
    let api = ResourceClient {
        client,
        resource,
        namespace: namespace.map(str::to_string),
    };
    watcher_with(api, params, WatcherConfig::default())
}

/// [`watcher`] over any [`ListWatch`], with explicit tuning.
pub fn watcher_with<L: ListWatch>(
    api: L,
    params: ListParams,
    config: WatcherConfig,
) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
    struct Driver<L> {
        api: L,
        list_params: ListParams,
        watch_params: ListParams,
        config: WatcherConfig,
        state: Option<State>,
        /// The current back-off level: None until an error, reset by an event.
        backoff: Option<Duration>,
        /// True right after an error was yielded: wait `backoff` before the next step.
        sleep_next: bool,
    }
    // The page size applies to lists only; a watch has no pages.
    let mut list_params = params.clone();
    if list_params.limit.is_none() {
        list_params.limit = config.page_size;
    }
    let mut watch_params = params;
    watch_params.limit = None;
    let driver = Driver {
        api,
        list_params,
        watch_params,
        config,
        state: Some(State::Empty),
        backoff: None,
        sleep_next: false,
    };
    futures::stream::unfold(driver, |mut d| async move {
        loop {
            if d.sleep_next {
                d.sleep_next = false;
                tokio::time::sleep(d.backoff.unwrap_or(d.config.initial_backoff)).await;
            }
            let state = d.state.take().unwrap_or(State::Empty);
            let params = match state {
                State::Empty | State::InitPage { .. } => &d.list_params,
                _ => &d.watch_params,
            };
            let (out, next) = step(&d.api, params, state).await;
            d.state = Some(next);
            match out {
                Some(Ok(ev)) => {
                    d.backoff = None;
                    return Some((Ok(ev), d));
                }
                Some(Err(e)) => {
                    let next = match d.backoff {
                        None => d.config.initial_backoff,
                        Some(b) => b.saturating_mul(2).min(d.config.max_backoff),
                    };
                    d.backoff = Some(next);
                    d.sleep_next = true;
                    return Some((Err(e), d));
                }
                None => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    type Events = Vec<Result<WatchEvent, Error>>;
    /// A scripted watch: its events, and whether it stays open after them.
    type WatchScript = Result<(Events, bool), Error>;

    /// A scripted API: each list/watch call takes the next scripted answer and records
    /// itself. A watch script ending with `open: true` stays open after its events. When a
    /// script runs out the call never answers.
    #[derive(Default, Clone)]
    struct Fake {
        lists: Arc<Mutex<VecDeque<Result<ObjectList, Error>>>>,
        watches: Arc<Mutex<VecDeque<WatchScript>>>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn list(&self, r: Result<ObjectList, Error>) -> &Self {
            self.lists.lock().unwrap().push_back(r);
            self
        }
        fn watch(&self, r: WatchScript) -> &Self {
            self.watches.lock().unwrap().push_back(r);
            self
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl ListWatch for Fake {
        async fn list_page(
            &self,
            params: &ListParams,
            continue_token: Option<&str>,
        ) -> Result<ObjectList, Error> {
            self.calls.lock().unwrap().push(format!(
                "list limit={:?} continue={continue_token:?}",
                params.limit
            ));
            let next = self.lists.lock().unwrap().pop_front();
            match next {
                Some(r) => r,
                None => std::future::pending().await,
            }
        }

        async fn watch(
            &self,
            params: &ListParams,
            resource_version: &str,
        ) -> Result<BoxStream<'static, Result<WatchEvent, Error>>, Error> {
            self.calls.lock().unwrap().push(format!(
                "watch rv={resource_version} limit={:?}",
                params.limit
            ));
            let next = self.watches.lock().unwrap().pop_front();
            match next {
                Some(Ok((events, open))) => {
                    let s = futures::stream::iter(events);
                    Ok(if open {
                        s.chain(futures::stream::pending()).boxed()
                    } else {
                        s.boxed()
                    })
                }
                Some(Err(e)) => Err(e),
                None => std::future::pending().await,
            }
        }
    }

    fn obj(name: &str, rv: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}})
    }

    fn page(rv: &str, items: Vec<Value>, cont: Option<&str>) -> Result<ObjectList, Error> {
        Ok(ObjectList {
            resource_version: rv.into(),
            items,
            continue_token: cont.map(str::to_string),
        })
    }

    fn status(code: u16, reason: &str) -> Status {
        Status {
            code,
            reason: reason.into(),
            message: "m".into(),
            details: None,
        }
    }

    fn conn_refused() -> Error {
        Error::Http(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    }

    async fn take(
        s: &mut (impl Stream<Item = Result<Event, Error>> + Unpin),
        n: usize,
    ) -> Vec<Result<Event, Error>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let ev = tokio::time::timeout(Duration::from_secs(3600), s.next())
                .await
                .expect("watcher stalled")
                .expect("watcher ended");
            out.push(ev);
        }
        out
    }

    fn ok(evs: Vec<Result<Event, Error>>) -> Vec<Event> {
        evs.into_iter().map(|e| e.unwrap()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn lists_every_page_then_watches_from_the_list_revision() {
        let fake = Fake::default();
        fake.list(page("10", vec![obj("a", "3")], Some("c1")))
            .list(page("10", vec![obj("b", "4")], None))
            .watch(Ok((
                vec![
                    Ok(WatchEvent::Added(obj("c", "11"))),
                    Ok(WatchEvent::Modified(obj("a", "12"))),
                    Ok(WatchEvent::Deleted(obj("b", "13"))),
                ],
                true,
            )));
        let mut w = Box::pin(watcher_with(
            fake.clone(),
            ListParams::default(),
            WatcherConfig::default(),
        ));
        assert_eq!(
            ok(take(&mut w, 4).await),
            vec![
                Event::Restarted(vec![obj("a", "3"), obj("b", "4")]),
                Event::Applied(obj("c", "11")),
                Event::Applied(obj("a", "12")),
                Event::Deleted(obj("b", "13")),
            ]
        );
        // Pages are requested with the page size and the continue token; the watch
        // starts at the list's revision, without a limit.
        assert_eq!(
            fake.calls(),
            vec![
                "list limit=Some(500) continue=None",
                "list limit=Some(500) continue=Some(\"c1\")",
                "watch rv=10 limit=None",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gone_re_lists_without_reporting_an_error() {
        // A 410 ERROR event means the watch revision was compacted: Kubernetes clients
        // re-list (reflector.go: "watch of ... closed with: too old resource version").
        let fake = Fake::default();
        fake.list(page("5", vec![obj("a", "5")], None))
            .watch(Ok((
                vec![Ok(WatchEvent::Error(status(410, "Expired")))],
                false,
            )))
            .list(page("9", vec![obj("x", "9")], None))
            .watch(Ok((vec![], true)));
        let mut w = Box::pin(watcher_with(
            fake.clone(),
            ListParams::default(),
            WatcherConfig::default(),
        ));
        let start = Instant::now();
        assert_eq!(
            ok(take(&mut w, 2).await),
            vec![
                Event::Restarted(vec![obj("a", "5")]),
                Event::Restarted(vec![obj("x", "9")]),
            ]
        );
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "410 is not an error to back off"
        );
        // The stream is lazy: poll it so that it starts the next watch (which stays open).
        assert!(
            tokio::time::timeout(Duration::from_secs(1), w.next())
                .await
                .is_err()
        );
        assert_eq!(fake.calls().last().unwrap(), "watch rv=9 limit=None");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_starting_gone_re_lists() {
        let fake = Fake::default();
        fake.list(page("5", vec![], None))
            .watch(Err(Error::Api(Box::new(status(410, "Gone")))))
            .list(page("6", vec![obj("a", "6")], None));
        let mut w = Box::pin(watcher_with(
            fake.clone(),
            ListParams::default(),
            WatcherConfig::default(),
        ));
        assert_eq!(
            ok(take(&mut w, 2).await),
            vec![
                Event::Restarted(vec![]),
                Event::Restarted(vec![obj("a", "6")])
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stream_end_and_broken_stream_re_list() {
        let fake = Fake::default();
        fake.list(page("1", vec![obj("a", "1")], None))
            // The server closed the watch (restart, timeoutSeconds).
            .watch(Ok((vec![Ok(WatchEvent::Added(obj("b", "2")))], false)))
            .list(page("3", vec![obj("b", "2")], None))
            // The connection broke mid-stream.
            .watch(Ok((vec![Err(conn_refused())], false)))
            .list(page("4", vec![], None));
        let mut w = Box::pin(watcher_with(
            fake.clone(),
            ListParams::default(),
            WatcherConfig::default(),
        ));
        let evs = take(&mut w, 5).await;
        assert_eq!(
            evs[0].as_ref().unwrap(),
            &Event::Restarted(vec![obj("a", "1")])
        );
        assert_eq!(evs[1].as_ref().unwrap(), &Event::Applied(obj("b", "2")));
        assert_eq!(
            evs[2].as_ref().unwrap(),
            &Event::Restarted(vec![obj("b", "2")])
        );
        assert!(matches!(evs[3], Err(Error::Http(_))));
        // The re-list after the break reports that everything is gone now.
        assert_eq!(evs[4].as_ref().unwrap(), &Event::Restarted(vec![]));
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_exponentially_and_reset_after_success() {
        let fake = Fake::default();
        fake.list(Err(conn_refused()))
            .list(Err(conn_refused()))
            .list(Err(conn_refused()))
            .list(page("7", vec![], None))
            .watch(Err(conn_refused()))
            .watch(Ok((vec![Ok(WatchEvent::Added(obj("a", "8")))], true)));
        let config = WatcherConfig {
            page_size: None,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_millis(1500),
        };
        let mut w = Box::pin(watcher_with(fake.clone(), ListParams::default(), config));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            let ev = take(&mut w, 1).await.pop().unwrap();
            at.push((ev.is_ok(), start.elapsed().as_millis()));
        }
        assert_eq!(
            at,
            vec![
                (false, 0),
                (false, 500),  // waited 500ms
                (false, 1500), // waited 1000ms
                (true, 3000),  // waited 1500ms (capped, not 2000)
                (false, 3000), // the success reset the back-off...
                (true, 3500),  // ...so the next wait is 500ms again
            ]
        );
        // A failed watch start is retried at the same revision, without re-listing.
        assert_eq!(
            fake.calls()[4..],
            ["watch rv=7 limit=None", "watch rv=7 limit=None"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_continue_token_restarts_the_list_from_the_first_page() {
        let fake = Fake::default();
        fake.list(page("1", vec![obj("a", "1")], Some("c1")))
            .list(Err(Error::Api(Box::new(status(410, "Expired")))))
            .list(page("2", vec![obj("a", "1"), obj("b", "2")], None));
        let mut w = Box::pin(watcher_with(
            fake.clone(),
            ListParams::default().labels("app=web"),
            WatcherConfig::default(),
        ));
        let evs = take(&mut w, 2).await;
        assert!(evs[0].as_ref().is_err_and(Error::is_gone));
        // The partial first page is not emitted: only a complete list is a Restarted.
        assert_eq!(
            evs[1].as_ref().unwrap(),
            &Event::Restarted(vec![obj("a", "1"), obj("b", "2")])
        );
        assert_eq!(fake.calls()[2], "list limit=Some(500) continue=None");
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_gone_error_event_is_reported_and_re_lists() {
        let fake = Fake::default();
        fake.list(page("1", vec![], None))
            .watch(Ok((
                vec![Ok(WatchEvent::Error(status(500, "InternalError")))],
                false,
            )))
            .list(page("2", vec![], None));
        let mut w = Box::pin(watcher_with(
            fake.clone(),
            ListParams::default(),
            WatcherConfig::default(),
        ));
        let evs = take(&mut w, 3).await;
        assert!(matches!(&evs[1], Err(Error::Api(s)) if s.code == 500));
        assert_eq!(evs[2].as_ref().unwrap(), &Event::Restarted(vec![]));
    }
}
