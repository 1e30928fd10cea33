//! core/v1 Events, the way client-go's recorder writes them: one Event object per
//! (object, reason, message), whose `count` and `lastTimestamp` grow when the same
//! thing happens again, so `kubectl describe` shows `x12 over 3m` instead of a flood.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use client::{Client, Patch, PatchParams, PostParams, Resource};
use serde_json::{Value, json};

/// Kubernetes' metav1.Time text (RFC 3339, whole seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Beyond this many remembered events the correlation map is cleared (memory bound).
const MAX_REMEMBERED: usize = 4096;

/// (namespace, involved uid or name, reason, message): what makes two events "the same".
type EventId = (String, String, String, String);

/// Writes Events for one component (`source.component`, `reportingComponent`).
#[derive(Debug)]
pub(crate) struct Recorder {
    client: Client,
    component: String,
    instance: String,
    /// (namespace, involved uid or name, reason, message) → (event name, count).
    seen: Mutex<HashMap<EventId, (String, i64)>>,
}

impl Recorder {
    pub(crate) fn new(client: Client, component: &str, instance: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
            instance: instance.to_string(),
            seen: Mutex::default(),
        }
    }

    /// Records an event about `obj` (a Pod); failures are logged, never returned: an
    /// event is a courtesy to humans, not part of the decision.
    pub(crate) async fn pod_event(&self, obj: &Value, type_: &str, reason: &str, message: &str) {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let id = (
            ns.clone(),
            if uid.is_empty() { name } else { uid }.to_string(),
            reason.to_string(),
            message.to_string(),
        );
        let now = now_rfc3339();
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some((event_name, count)) = previous {
            let patch = Patch::Merge(json!({"count": count + 1, "lastTimestamp": now}));
            let r = self
                .client
                .patch(
                    &Resource::EVENTS,
                    Some(&ns),
                    &event_name,
                    &patch,
                    &PatchParams::default(),
                )
                .await;
            if r.is_ok() {
                self.remember(id, event_name, count + 1);
                return;
            }
        }
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let event_name = format!("{name}.{nanos:x}");
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": ns,
                "name": name,
                "uid": uid,
                "resourceVersion": obj["metadata"]["resourceVersion"].clone(),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        });
        match self
            .client
            .create(&Resource::EVENTS, Some(&ns), &event, &PostParams::default())
            .await
        {
            Ok(_) => self.remember(id, event_name, 1),
            Err(e) => {
                tracing::debug!(error = %e, "could not record event {reason} for {ns}/{name}")
            }
        }
    }

    fn remember(&self, id: EventId, name: String, count: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(id, (name, count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_seconds_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
        assert!(
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok()
        );
    }
}
