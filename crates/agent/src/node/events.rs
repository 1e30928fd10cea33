//! Events about pods, from the kubelet's point of view (`source.component: kubelet`),
//! with repeats folded into one Event whose count grows, as Kubernetes' recorder does,
//! so a crash loop does not flood the store.
//!
//! Recording never waits for the API server: events go through a queue that one task
//! writes in order (as the kubelet's broadcaster does), so a pod start does not pay a
//! round trip per Pulled/Created/Started event. A full queue drops events, like the
//! kubelet's.

use client::{Client, Patch, PatchParams, PostParams, Resource};
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// (object uid, reason, message) → (event namespace, event name, count).
type Seen = HashMap<(String, String, String), (String, String, u64)>;

/// Events waiting to be written (the kubelet's recorder queues 1000).
const QUEUE: usize = 1000;

enum Msg {
    /// Write (or count again) one event about a pod.
    Event {
        pod: Box<PodRef>,
        field_path: Option<String>,
        type_: String,
        reason: String,
        message: String,
        /// When it happened (RFC 3339), not when the queue got to it.
        at: String,
    },
    /// Forget a pod's events, after the ones queued before.
    Forget(String),
}

/// The part of a pod an event refers to.
struct PodRef {
    uid: String,
    namespace: String,
    name: String,
    resource_version: Value,
}

/// Records events for one node.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
}

/// Writes the queued events, in order, until every [`Recorder`] is dropped.
struct Writer {
    client: Client,
    node: String,
    seen: Seen,
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Recorder {
    /// A recorder for `node`; starts its writer task, so it must be called within a
    /// Tokio runtime.
    pub fn new(client: Client, node: &str) -> Recorder {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let mut writer = Writer {
            client,
            node: node.to_string(),
            seen: Seen::new(),
        };
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Event {
                        pod,
                        field_path,
                        type_,
                        reason,
                        message,
                        at,
                    } => {
                        writer
                            .write(&pod, field_path.as_deref(), &type_, &reason, &message, &at)
                            .await
                    }
                    Msg::Forget(uid) => writer.forget(&uid),
                }
            }
        });
        Recorder { tx }
    }

    fn send(&self, msg: Msg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Msg::Event { reason, pod, .. })) => {
                tracing::warn!(
                    "event queue full ({QUEUE}): dropping event {reason} for pod {}/{}",
                    pod.namespace,
                    pod.name
                );
            }
            Err(_) => {}
        }
    }

    /// Records (or counts again) an event about `pod`; `field_path` names the
    /// container (`spec.containers{web}`) when it is about one. Returns at once: the
    /// event is written in the background, in order; failures are logged.
    pub fn pod(
        &self,
        pod: &Value,
        field_path: Option<&str>,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let meta = &pod["metadata"];
        let pod = PodRef {
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            namespace: meta["namespace"].as_str().unwrap_or("default").to_string(),
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            resource_version: meta["resourceVersion"].clone(),
        };
        self.send(Msg::Event {
            pod: Box::new(pod),
            field_path: field_path.map(str::to_string),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            at: now(),
        });
    }

    /// Forgets a pod's events (it is gone), once those already queued are written.
    pub fn forget(&self, uid: &str) {
        self.send(Msg::Forget(uid.to_string()));
    }
}

impl Writer {
    async fn write(
        &mut self,
        pod: &PodRef,
        field_path: Option<&str>,
        type_: &str,
        reason: &str,
        message: &str,
        at: &str,
    ) {
        let uid = pod.uid.clone();
        let ns = pod.namespace.clone();
        let key = (uid.clone(), reason.to_string(), message.to_string());
        let known = self.seen.get(&key).cloned();
        if let Some((ens, name, count)) = known {
            let patch = Patch::Merge(json!({"count": count + 1, "lastTimestamp": at}));
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
                self.seen.insert(key, (ens, name, count + 1));
                return;
            }
        }
        let pod_name = pod.name.as_str();
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "name": pod_name, "namespace": ns, "uid": uid,
            "resourceVersion": pod.resource_version,
        });
        if let Some(fp) = field_path {
            involved["fieldPath"] = json!(fp);
        }
        let ts = at;
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
                    if self.seen.len() > 4096 {
                        self.seen.clear();
                    }
                    self.seen.insert(key, (ns, name.to_string(), 1));
                }
            }
            Err(e) => tracing::debug!("event {reason} for {ns}/{pod_name}: {e}"),
        }
    }

    fn forget(&mut self, uid: &str) {
        self.seen.retain(|k, _| k.0 != uid);
    }
}
