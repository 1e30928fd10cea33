//! Events about pods, from the kubelet's point of view (`source.component: kubelet`),
//! with repeats folded into one Event whose count grows, as Kubernetes' recorder does,
//! so a crash loop does not flood the store.

use client::{Client, Patch, PatchParams, PostParams, Resource};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// (object uid, reason, message) → (event namespace, event name, count).
type Seen = HashMap<(String, String, String), (String, String, u64)>;

/// Records events for one node.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node: String,
    seen: Arc<Mutex<Seen>>,
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Recorder {
    /// A recorder for `node`.
    pub fn new(client: Client, node: &str) -> Recorder {
        Recorder {
            client,
            node: node.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records (or counts again) an event about `pod`; `field_path` names the
    /// container (`spec.containers{web}`) when it is about one. Failures are logged.
    pub async fn pod(
        &self,
        pod: &Value,
        field_path: Option<&str>,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let known = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some((ens, name, count)) = known {
            let patch = Patch::Merge(json!({"count": count + 1, "lastTimestamp": now()}));
            if self
                .client
                .patch(
                    &Resource::EVENTS,
                    Some(&ens),
                    &name,
                    &patch,
                    &PatchParams::default(),
                )
                .await
                .is_ok()
            {
                self.seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, (ens, name, count + 1));
                return;
            }
        }
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "name": pod_name, "namespace": ns, "uid": uid,
            "resourceVersion": pod["metadata"]["resourceVersion"],
        });
        if let Some(fp) = field_path {
            involved["fieldPath"] = json!(fp);
        }
        let ts = now();
        let suffix = format!("{:x}", rand::random::<u64>());
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": format!("{pod_name}.{suffix}"), "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "eventTime": null,
            "count": 1,
        });
        match self
            .client
            .create(&Resource::EVENTS, Some(&ns), &event, &PostParams::default())
            .await
        {
            Ok(created) => {
                if let Some(name) = created["metadata"]["name"].as_str() {
                    let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                    if seen.len() > 4096 {
                        seen.clear();
                    }
                    seen.insert(key, (ns, name.to_string(), 1));
                }
            }
            Err(e) => tracing::debug!("event {reason} for {ns}/{pod_name}: {e}"),
        }
    }

    /// Forgets a pod's events (it is gone).
    pub fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| k.0 != uid);
    }
}
