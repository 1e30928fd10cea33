//! Drover's workload controllers: ReplicaSet, ReplicationController and Deployment.
//!
//! Each is a Kubernetes-style control loop: reflector caches fill from watches, event
//! handlers enqueue `namespace/name` keys, workers re-read the cache, run a pure planner
//! ([`replicaset::plan`], [`deployment::plan`]) and apply its writes through the API.
//! Controllers are API clients only; every sync is idempotent and a periodic resync
//! makes a missed event harmless.
#![forbid(unsafe_code)]

pub mod deployment;
pub mod expectations;
pub mod replicaset;
mod runtime;
pub mod util;

use std::time::Duration;

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent reconciles per controller (each key is still handled by one at a time).
    pub workers: usize,
    /// Every object is reconciled again after this long, so a missed event is harmless.
    pub resync: Duration,
}

impl Default for Options {
    /// Kubernetes' kube-controller-manager defaults: 5 workers, resync well under a minute.
    fn default() -> Self {
        Options {
            workers: 5,
            resync: Duration::from_secs(30),
        }
    }
}

/// Why one sync failed (the key is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed (conflict, server error, ...).
    #[error(transparent)]
    Api(#[from] client::Error),
    /// Creating or deleting pods failed; the status records it as ReplicaFailure.
    #[error("managing pods failed: {0}")]
    Manage(String),
}

/// Runs every controller of this crate until the future is dropped. Controllers are API
/// clients only.
pub async fn run(client: client::Client, options: Options) {
    runtime::run(client, options).await
}
