//! Drover's workload controllers: ReplicaSet, ReplicationController and Deployment.
//!
//! Each is a Kubernetes-style control loop: reflector caches fill from watches, event
//! handlers enqueue `namespace/name` keys, workers re-read the cache, run a pure planner
//! ([`replicaset::plan`], [`deployment::plan`]) and apply its writes through the API.
//! Controllers are API clients only; every sync is idempotent and a periodic resync
//! makes a missed event harmless.
#![forbid(unsafe_code)]

pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod hpa;
pub mod job;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod replicaset;
mod runtime;
pub mod statefulset;
pub mod util;
pub mod workloads;

use std::time::Duration;

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent reconciles per controller (each key is still handled by one at a time).
    pub workers: usize,
    /// Every object is reconciled again after this long, so a missed event is harmless.
    pub resync: Duration,
    /// A node whose Lease was not renewed (nor its status posted) for this long gets
    /// Ready=Unknown and the unreachable taints (Kubernetes: 40 s; Drover: 20 s).
    pub node_monitor_grace: Duration,
    /// How long pods tolerate a not-ready/unreachable node by default before they are
    /// evicted (Kubernetes' DefaultTolerationSeconds: 300 s, too long for small clusters).
    pub pod_eviction_timeout: Duration,
    /// The range nodes' pod CIDRs are cut from (node IPAM); None turns it off.
    pub cluster_cidr: Option<String>,
}

impl Default for Options {
    /// Kubernetes' kube-controller-manager defaults: 5 workers, resync well under a minute.
    fn default() -> Self {
        Options {
            workers: 5,
            resync: Duration::from_secs(30),
            node_monitor_grace: Duration::from_secs(20),
            pod_eviction_timeout: Duration::from_secs(30),
            cluster_cidr: Some("10.244.0.0/16".into()),
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
    // One watch and one cache per resource for all of them (pods are watched once, not
    // by every controller that looks at pods).
    let informers = std::sync::Arc::new(client::Informers::new(client.clone()));
    let (c, o, i) = (&client, &options, &informers);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(runtime::run(c.clone(), o.clone(), i.clone()));
    tasks.spawn(node_lifecycle::run(c.clone(), o.clone(), i.clone()));
    tasks.spawn(node_ipam::run(c.clone(), o.clone()));
    tasks.spawn(hpa::run(c.clone(), o.clone()));
    tasks.spawn(endpoints::run(c.clone(), o.clone(), i.clone()));
    tasks.spawn(gc::run(c.clone(), o.clone(), i.clone()));
    tasks.spawn(workloads::run_daemonsets(c.clone(), o.clone(), i.clone()));
    tasks.spawn(workloads::run_jobs(c.clone(), o.clone(), i.clone()));
    tasks.spawn(workloads::run_cronjobs(c.clone(), o.clone(), i.clone()));
    tasks.spawn(workloads::run_statefulsets(c.clone(), o.clone(), i.clone()));
    // The JoinSet aborts every controller when this future is dropped.
    while tasks.join_next().await.is_some() {}
}

/// Calls `handle` with the loop's shared context for every event of a shared informer,
/// until the stream ends (handlers only enqueue keys).
pub(crate) async fn drive<C>(
    mut events: client::SharedEvents,
    ctx: std::sync::Arc<C>,
    handle: impl Fn(&C, &client::Event) + Send + 'static,
) {
    use futures::StreamExt;
    while let Some(e) = events.next().await {
        handle(&ctx, &e);
    }
}
