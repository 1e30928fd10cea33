//! A pod watch that survives the server closing the stream, and what a pod's status says.

use crate::BenchError;
use client::{Client, ListParams, Resource, WatchEvent};
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::time::{Duration, Instant};

type Events = Pin<Box<dyn Stream<Item = Result<WatchEvent, client::Error>> + Send>>;

/// Pods of one namespace (and label selector) as they change, from the moment it starts.
pub(crate) struct PodWatch {
    client: Client,
    ns: String,
    params: ListParams,
    rv: String,
    events: Option<Events>,
}

impl PodWatch {
    /// Starts watching from the current revision (earlier pods are not reported).
    pub(crate) async fn start(
        client: &Client,
        ns: &str,
        labels: Option<&str>,
    ) -> Result<PodWatch, BenchError> {
        let mut params = ListParams::default();
        if let Some(l) = labels {
            params = params.labels(l);
        }
        let rv = client
            .list(&Resource::PODS, Some(ns), &params.clone().limit(1))
            .await?
            .resource_version;
        let mut w = PodWatch {
            client: client.clone(),
            ns: ns.to_string(),
            params,
            rv,
            events: None,
        };
        w.connect().await?;
        Ok(w)
    }

    async fn connect(&mut self) -> Result<(), BenchError> {
        let s = self
            .client
            .watch(&Resource::PODS, Some(&self.ns), &self.params, &self.rv)
            .await?;
        self.events = Some(Box::pin(s));
        Ok(())
    }

    /// The next added or changed pod, waiting until `deadline`; `what` names the wait in
    /// the timeout error.
    pub(crate) async fn next(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> Result<Value, BenchError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BenchError::Timeout(what.to_string()));
            }
            if self.events.is_none() {
                self.connect().await?;
            }
            let Some(events) = self.events.as_mut() else {
                continue;
            };
            let ev = match tokio::time::timeout(left, events.next()).await {
                Err(_) => return Err(BenchError::Timeout(what.to_string())),
                Ok(ev) => ev,
            };
            match ev {
                Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                    self.saw(&o);
                    return Ok(o);
                }
                Some(Ok(WatchEvent::Deleted(o) | WatchEvent::Bookmark(o))) => self.saw(&o),
                Some(Ok(WatchEvent::Error(status))) => {
                    return Err(BenchError::Watch(format!(
                        "the pod watch failed: {status:?}"
                    )));
                }
                Some(Err(e)) if e.is_transient() => {
                    self.events = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(Err(e)) => return Err(e.into()),
                // The server closed the stream (its timeout): resume where it stopped.
                None => self.events = None,
            }
        }
    }

    fn saw(&mut self, o: &Value) {
        if let Some(rv) = o["metadata"]["resourceVersion"].as_str() {
            self.rv = rv.to_string();
        }
    }
}

/// The pod's name.
pub(crate) fn name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or_default()
}

/// True once the pod's phase is Running.
pub(crate) fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
}

/// Why the pod will not reach Running on its own, if its status says so.
pub(crate) fn failure(pod: &Value) -> Option<String> {
    const FATAL: [&str; 7] = [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
        "CrashLoopBackOff",
    ];
    if pod["status"]["phase"] == "Failed" {
        return Some(format!(
            "pod {} failed: {}",
            name(pod),
            pod["status"]["message"].as_str().unwrap_or_default()
        ));
    }
    let statuses = pod["status"]["containerStatuses"].as_array()?;
    statuses.iter().find_map(|s| {
        let w = &s["state"]["waiting"];
        let reason = w["reason"].as_str()?;
        FATAL.contains(&reason).then(|| {
            format!(
                "pod {} cannot start: {reason}: {}",
                name(pod),
                w["message"].as_str().unwrap_or_default()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_that_cannot_start_is_reported_not_waited_for() {
        let pending = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
            "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert!(failure(&pending).is_none());
        assert!(!is_running(&pending));
        let broken = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
            "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}]}});
        assert!(
            failure(&broken)
                .is_some_and(|m| m.contains("ErrImagePull") && m.contains("no such image"))
        );
        let running = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        assert!(is_running(&running) && failure(&running).is_none());
    }
}
