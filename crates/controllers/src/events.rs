//! core/v1 Events for the controllers, written the way client-go's `EventRecorder`
//! writes them: one Event per (involved object, type, reason, message) whose `count`
//! and `lastTimestamp` grow when the same thing happens again, so `kubectl describe`
//! shows `(x4 over 2m)` instead of a flood.
//!
//! The pure part ([`new_event`], [`involved_object`], [`event_namespace`]) builds the
//! objects; [`Recorder`] owns the aggregation memory and does the I/O. Recording never
//! fails a sync: an Event explains a decision, it is not part of it.

use crate::util::{self, Time};
use client::{Client, Patch, PatchParams, PostParams, Resource};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// `type: Normal`: an expected decision (a pod created, a replica set scaled).
pub const NORMAL: &str = "Normal";
/// `type: Warning`: something went wrong or needs attention.
pub const WARNING: &str = "Warning";

/// Beyond this many remembered events the aggregation map is cleared (memory bound,
/// like client-go's LRU of 4096 entries).
const MAX_REMEMBERED: usize = 4096;

/// The `involvedObject` reference of an event about `obj`: what `kubectl describe`
/// searches for (kind, namespace, name and uid).
pub fn involved_object(obj: &Value) -> Value {
    let mut r = json!({
        "apiVersion": obj["apiVersion"].as_str().unwrap_or("v1"),
        "kind": obj["kind"].as_str().unwrap_or_default(),
        "name": util::name(obj),
        "uid": util::uid(obj),
    });
    if let Some(ns) = api::meta::namespace(obj) {
        r["namespace"] = json!(ns);
    }
    if let Some(rv) = api::meta::resource_version(obj) {
        r["resourceVersion"] = json!(rv);
    }
    r
}

/// `obj` with `apiVersion` and `kind` set: objects from a list or watch of one
/// resource may lack them, and an event's `involvedObject` needs them.
pub fn typed(obj: &Value, api_version: &str, kind: &str) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(api_version);
    o["kind"] = json!(kind);
    o
}

/// Where an event about `obj` lives: its namespace, or `default` for cluster-scoped
/// objects such as Nodes (client-go's `metav1.NamespaceDefault` fallback).
pub fn event_namespace(obj: &Value) -> &str {
    api::meta::namespace(obj)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// A new core/v1 Event about `obj` at `now`, named `<name>.<unique hex>` as client-go
/// names them, with `count: 1` and both timestamps at `now`.
pub fn new_event(
    obj: &Value,
    component: &str,
    type_: &str,
    reason: &str,
    message: &str,
    now: Time,
    unique: u128,
) -> Value {
    let t = util::format_time(now);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{unique:x}", util::name(obj)),
            "namespace": event_namespace(obj),
        },
        "involvedObject": involved_object(obj),
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "firstTimestamp": t,
        "lastTimestamp": t,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": component,
    })
}

/// The Deployment controller's ScalingReplicaSet message for a replica set resized
/// from `old` to `new` replicas ("Scaled up replica set web-abc from 0 to 3", the
/// wording of Kubernetes 1.27+), or None when the size does not change.
pub fn scaling_message(rs_name: &str, old: i64, new: i64) -> Option<String> {
    let dir = match new.cmp(&old) {
        std::cmp::Ordering::Greater => "up",
        std::cmp::Ordering::Less => "down",
        std::cmp::Ordering::Equal => return None,
    };
    Some(format!(
        "Scaled {dir} replica set {rs_name} from {old} to {new}"
    ))
}

/// An event a pure planner asks for: the I/O side records it about the object the plan
/// is for, once the decision it explains has been acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// [`NORMAL`] or [`WARNING`].
    pub type_: &'static str,
    /// The machine-readable reason (`SuccessfulCreate`, `BackoffLimitExceeded`, ...).
    pub reason: &'static str,
    /// What `kubectl describe` shows.
    pub message: String,
}

impl Note {
    /// A `Normal` event: an expected decision.
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            type_: NORMAL,
            reason,
            message: message.into(),
        }
    }

    /// A `Warning` event: something failed or needs attention.
    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            type_: WARNING,
            reason,
            message: message.into(),
        }
    }
}

/// `RealPodControl`'s event for a pod a controller created ("Created pod: web-x").
pub fn pod_created(pod_name: &str) -> Note {
    Note::normal("SuccessfulCreate", format!("Created pod: {pod_name}"))
}

/// `RealPodControl`'s event for a pod creation the API refused.
pub fn pod_create_failed(error: &dyn std::fmt::Display) -> Note {
    Note::warning("FailedCreate", format!("Error creating: {error}"))
}

/// `RealPodControl`'s event for a pod a controller deleted ("Deleted pod: web-x").
pub fn pod_deleted(pod_name: &str) -> Note {
    Note::normal("SuccessfulDelete", format!("Deleted pod: {pod_name}"))
}

/// `RealPodControl`'s event for a pod deletion the API refused.
pub fn pod_delete_failed(error: &dyn std::fmt::Display) -> Note {
    Note::warning("FailedDelete", format!("Error deleting: {error}"))
}

/// `t` as Go's `time.RFC1123Z` in UTC ("Mon, 01 Jan 2024 00:05:00 +0000"), the form
/// some Kubernetes event messages print times in.
pub fn rfc1123z(t: Time) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let weekday = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        weekday.get(..3).unwrap_or_default(),
        t.day(),
        month.get(..3).unwrap_or_default(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// (namespace, involved uid or kind/name, type, reason, message): what makes two
/// events "the same" for aggregation.
pub type EventId = (String, String, String, String, String);

pub fn event_id(obj: &Value, type_: &str, reason: &str, message: &str) -> EventId {
    let who = match util::uid(obj) {
        "" => format!(
            "{}/{}",
            obj["kind"].as_str().unwrap_or_default(),
            util::name(obj)
        ),
        uid => uid.to_string(),
    };
    (
        event_namespace(obj).to_string(),
        who,
        type_.to_string(),
        reason.to_string(),
        message.to_string(),
    )
}

/// After this many different messages for one (object, type, reason) within
/// [`AGGREGATE_INTERVAL`], they share one Event (client-go's EventAggregator).
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// The window of [`AGGREGATE_MAX_EVENTS`].
pub const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// The message prefix of an Event that stands for many similar ones.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";
/// Events one component may write about one object (and type) at once; one more is
/// allowed every [`SPAM_REFILL`] (client-go's EventSourceObjectSpamFilter: 25, 5 min).
pub const SPAM_BURST: f64 = 25.0;
/// How long it takes to earn back one event of [`SPAM_BURST`].
pub const SPAM_REFILL: Duration = Duration::from_secs(300);

/// When an aggregation window started, and the messages seen in it.
type Window = (Instant, HashSet<String>);

/// client-go's EventCorrelator, without I/O: it decides whether an event is written
/// and with which message, so a controller creating 10,000 pods writes a few dozen
/// Events about its ReplicaSet instead of 10,000 (which would double the API load of a
/// scale-up).
#[derive(Debug, Default)]
pub struct Correlator {
    /// (namespace, object, type, reason) → start of the window, messages seen in it.
    similar: HashMap<(String, String, String, String), Window>,
    /// (namespace, object, type) → tokens left, when they were last counted.
    buckets: HashMap<(String, String, String), (f64, Instant)>,
}

impl Correlator {
    /// What to write for the event `id` at `now`: the identity and message the Event is
    /// written (or counted) under, or None when the spam filter drops it.
    pub fn correlate(&mut self, id: &EventId, now: Instant) -> Option<(EventId, String)> {
        let (ns, who, type_, reason, message) = id;
        if self.buckets.len() >= MAX_REMEMBERED {
            self.buckets.clear();
        }
        let bucket = self
            .buckets
            .entry((ns.clone(), who.clone(), type_.clone()))
            .or_insert((SPAM_BURST, now));
        let earned = now.duration_since(bucket.1).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        bucket.0 = (bucket.0 + earned).min(SPAM_BURST);
        bucket.1 = now;
        if bucket.0 < 1.0 {
            return None;
        }
        bucket.0 -= 1.0;
        if self.similar.len() >= MAX_REMEMBERED {
            self.similar.clear();
        }
        let window = self
            .similar
            .entry((ns.clone(), who.clone(), type_.clone(), reason.clone()))
            .or_insert_with(|| (now, HashSet::new()));
        if now.duration_since(window.0) > AGGREGATE_INTERVAL {
            *window = (now, HashSet::new());
        }
        window.1.insert(message.clone());
        if window.1.len() < AGGREGATE_MAX_EVENTS {
            return Some((id.clone(), message.clone()));
        }
        let combined = (
            ns.clone(),
            who.clone(),
            type_.clone(),
            reason.clone(),
            COMBINED_PREFIX.to_string(),
        );
        Some((combined, format!("{COMBINED_PREFIX}{message}")))
    }
}

/// Writes Events for one component (`source.component`, `reportingComponent`), e.g.
/// `replicaset-controller`, aggregating repeats into one Event with a growing count.
#[derive(Debug)]
pub struct Recorder {
    client: Client,
    component: String,
    /// Event identity → (event name, count) of the Event already written.
    seen: Mutex<HashMap<EventId, (String, i64)>>,
    correlator: Mutex<Correlator>,
}

impl Recorder {
    /// A recorder writing as `component` through `client`.
    pub fn new(client: Client, component: &str) -> Recorder {
        Recorder {
            client,
            component: component.to_string(),
            seen: Mutex::default(),
            correlator: Mutex::default(),
        }
    }

    /// Records an event about `obj` (which must carry `kind` and, for aggregation,
    /// `metadata.uid`). Failures are logged, never returned.
    pub async fn record(&self, obj: &Value, type_: &str, reason: &str, message: &str) {
        let id = event_id(obj, type_, reason, message);
        let decided = self
            .correlator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .correlate(&id, Instant::now());
        let Some((id, message)) = decided else {
            tracing::debug!(reason, message, "event dropped by the spam filter");
            return;
        };
        let message = message.as_str();
        let ns = id.0.clone();
        let now = time::OffsetDateTime::now_utc();
        let previous = self.lock().get(&id).cloned();
        if let Some((name, count)) = previous {
            let patch = Patch::Merge(json!({
                "count": count + 1,
                "lastTimestamp": util::format_time(now),
                "message": message,
            }));
            if self
                .client
                .patch(
                    &Resource::EVENTS,
                    Some(&ns),
                    &name,
                    &patch,
                    &PatchParams::default(),
                )
                .await
                .is_ok()
            {
                self.remember(id, name, count + 1);
                return;
            }
        }
        let unique = u128::try_from(now.unix_timestamp_nanos()).unwrap_or_default();
        let ev = new_event(obj, &self.component, type_, reason, message, now, unique);
        let name = util::name(&ev).to_string();
        match self
            .client
            .create(&Resource::EVENTS, Some(&ns), &ev, &PostParams::default())
            .await
        {
            Ok(_) => self.remember(id, name, 1),
            Err(e) => tracing::debug!(error = %e, reason, "could not record an event"),
        }
    }

    /// Records `notes` about `obj` one after the other, so their timestamps (and
    /// `kubectl describe`'s order) follow the order of the list.
    pub async fn record_notes(&self, obj: &Value, notes: &[Note]) {
        for n in notes {
            self.record(obj, n.type_, n.reason, &n.message).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EventId, (String, i64)>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, id: EventId, name: String, count: i64) {
        let mut seen = self.lock();
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(id, (name, count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        util::parse_time(&json!("2024-05-01T10:00:00Z")).unwrap()
    }

    #[test]
    fn events_reference_the_object_as_kubectl_describe_searches_it() {
        // kubectl describe lists events with a field selector on involvedObject
        // kind, name, namespace and uid: all four must be set.
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}});
        let e = new_event(
            &rs,
            "replicaset-controller",
            NORMAL,
            "SuccessfulCreate",
            "Created pod: web-abc-x",
            now(),
            0xbeef,
        );
        assert_eq!(e["metadata"]["name"], "web-abc.beef");
        assert_eq!(e["metadata"]["namespace"], "ns");
        assert_eq!(
            e["involvedObject"],
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                   "uid": "u1", "namespace": "ns", "resourceVersion": "7"})
        );
        assert_eq!(e["source"]["component"], "replicaset-controller");
        assert_eq!(e["reportingComponent"], "replicaset-controller");
        assert_eq!(e["count"], 1);
        assert_eq!(e["firstTimestamp"], "2024-05-01T10:00:00Z");
        assert_eq!(e["lastTimestamp"], e["firstTimestamp"]);
        assert_eq!(e["type"], "Normal");
    }

    #[test]
    fn cluster_scoped_objects_get_their_events_in_default() {
        // client-go records events about Nodes in the `default` namespace.
        let node =
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "nu"}});
        assert_eq!(event_namespace(&node), "default");
        let e = new_event(
            &node,
            "node-controller",
            NORMAL,
            "NodeNotReady",
            "m",
            now(),
            1,
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert!(e["involvedObject"].get("namespace").is_none());
    }

    #[test]
    fn scaling_messages_name_direction_and_sizes() {
        assert_eq!(
            scaling_message("web-abc", 0, 3).as_deref(),
            Some("Scaled up replica set web-abc from 0 to 3")
        );
        assert_eq!(
            scaling_message("web-abc", 3, 1).as_deref(),
            Some("Scaled down replica set web-abc from 3 to 1")
        );
        assert_eq!(scaling_message("web-abc", 2, 2), None);
    }

    #[test]
    fn pod_control_notes_use_kubernetes_wording() {
        assert_eq!(
            pod_created("web-x"),
            Note::normal("SuccessfulCreate", "Created pod: web-x")
        );
        assert_eq!(
            pod_deleted("web-x"),
            Note::normal("SuccessfulDelete", "Deleted pod: web-x")
        );
        let e = pod_create_failed(&"quota exceeded");
        assert_eq!((e.type_, e.reason), (WARNING, "FailedCreate"));
        assert_eq!(e.message, "Error creating: quota exceeded");
        let e = pod_delete_failed(&"forbidden");
        assert_eq!((e.type_, e.reason), (WARNING, "FailedDelete"));
        assert_eq!(e.message, "Error deleting: forbidden");
    }

    #[test]
    fn rfc1123z_matches_go() {
        let t = util::parse_time(&json!("2024-01-01T00:05:09Z")).unwrap();
        assert_eq!(rfc1123z(t), "Mon, 01 Jan 2024 00:05:09 +0000");
        let t = util::parse_time(&json!("2023-09-30T23:59:00Z")).unwrap();
        assert_eq!(rfc1123z(t), "Sat, 30 Sep 2023 23:59:00 +0000");
    }

    #[test]
    fn typed_sets_the_kind_a_watched_object_lacks() {
        let o = typed(&json!({"metadata": {"name": "x"}}), "apps/v1", "Deployment");
        assert_eq!(involved_object(&o)["kind"], "Deployment");
        assert_eq!(involved_object(&o)["apiVersion"], "apps/v1");
    }

    #[test]
    fn identical_events_aggregate_but_different_messages_do_not() {
        let rs =
            json!({"kind": "ReplicaSet", "metadata": {"name": "a", "namespace": "ns", "uid": "u"}});
        let a = event_id(&rs, NORMAL, "SuccessfulCreate", "Created pod: a-1");
        assert_eq!(
            a,
            event_id(&rs, NORMAL, "SuccessfulCreate", "Created pod: a-1")
        );
        assert_ne!(
            a,
            event_id(&rs, NORMAL, "SuccessfulCreate", "Created pod: a-2")
        );
        assert_ne!(
            a,
            event_id(&rs, WARNING, "SuccessfulCreate", "Created pod: a-1")
        );
    }

    fn id(who: &str, type_: &str, message: &str) -> EventId {
        let o = json!({"kind": "ReplicaSet", "metadata": {"namespace": "ns", "uid": who}});
        event_id(&o, type_, "SuccessfulCreate", message)
    }

    #[test]
    fn similar_events_are_combined_after_ten_messages() {
        let mut c = Correlator::default();
        let t = Instant::now();
        let mut written = Vec::new();
        for i in 0..12 {
            let (key, msg) = c
                .correlate(&id("rs", NORMAL, &format!("Created pod: p{i}")), t)
                .unwrap();
            written.push((key.4, msg));
        }
        // Nine on their own, then one combined Event counted up.
        assert_eq!(written[8].1, "Created pod: p8");
        assert_eq!(
            written[9].1,
            "(combined from similar events): Created pod: p9"
        );
        assert_eq!(written[9].0, COMBINED_PREFIX);
        assert_eq!(written[11].0, COMBINED_PREFIX);
        // The same message again is not a new one: before the limit it stays itself.
        let mut c = Correlator::default();
        for _ in 0..20 {
            let (_, msg) = c.correlate(&id("rs", NORMAL, "Scaled up"), t).unwrap();
            assert_eq!(msg, "Scaled up");
        }
        // After the window, messages count from zero again.
        let later = t + AGGREGATE_INTERVAL + Duration::from_secs(1);
        let mut c = Correlator::default();
        for i in 0..10 {
            c.correlate(&id("rs", NORMAL, &format!("m{i}")), t);
        }
        assert_eq!(
            c.correlate(&id("rs", NORMAL, "fresh"), later).unwrap().1,
            "fresh"
        );
    }

    #[test]
    fn the_spam_filter_allows_a_burst_per_object_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let t = Instant::now();
        let allowed = (0..40)
            .filter(|i| {
                c.correlate(&id("rs", NORMAL, &format!("m{i}")), t)
                    .is_some()
            })
            .count();
        assert_eq!(allowed, 25);
        // Another object, and warnings about the same object, have their own budget.
        assert!(c.correlate(&id("other", NORMAL, "m"), t).is_some());
        assert!(c.correlate(&id("rs", WARNING, "m"), t).is_some());
        // One more after five minutes, not two.
        let later = t + SPAM_REFILL;
        assert!(c.correlate(&id("rs", NORMAL, "x"), later).is_some());
        assert!(c.correlate(&id("rs", NORMAL, "y"), later).is_none());
    }
}
