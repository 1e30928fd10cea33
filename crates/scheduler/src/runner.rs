//! The scheduler as an API client: watches nodes and pods, keeps a [`Snapshot`] up to
//! date one event at a time, takes pending pods from a [`SchedulingQueue`], runs the
//! pure core on each and binds through `pods/binding`.
//!
//! ```text
//!  node watch ─┐                         ┌─▶ bind (concurrent) ─▶ Scheduled event
//!  pod watch ──┼─▶ Snapshot + pending ──▶ queue ─▶ schedule() ─┤
//!              │   (one lock, no I/O)                           └─▶ PodScheduled=False,
//!              └─ cluster changes move unschedulable pods back       FailedScheduling event,
//!                                                                    preemption
//! ```
//!
//! As in Kubernetes, scheduling is one pod at a time against the snapshot and binding
//! runs beside it: right after a decision the pod is *assumed* on its node (its
//! requests count at once), and the assumption is dropped if the binding fails. A 409
//! on binding means another scheduler bound the pod first: the watch brings its real
//! placement. The loop waits for both watches' first lists before it schedules, so it
//! never places pods on a cluster it has only half seen.

mod events;
mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use client::{DeleteParams, Event, ListParams, Patch, PatchParams, Resource};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use queue::{QueueConfig, SchedulingQueue};

use crate::{Config, Snapshot, schedule, try_preempt};
use events::{Recorder, now_rfc3339};

/// The scheduler name pods ask for by default (`spec.schedulerName`).
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// How the loop runs, beside the scheduling [`Config`].
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Pods whose `spec.schedulerName` is this (or empty) are ours.
    pub scheduler_name: String,
    /// Who we are in Events' `reportingInstance` (several schedulers may run).
    pub instance: String,
    /// Back-off of unschedulable pods.
    pub queue: QueueConfig,
    /// Bindings in flight at once (the next pods are scheduled meanwhile).
    pub bind_concurrency: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            instance: format!("{DEFAULT_SCHEDULER_NAME}-{}", std::process::id()),
            queue: QueueConfig::default(),
            bind_concurrency: 256,
        }
    }
}

/// Runs the default scheduler against the API behind `client` until the future is
/// dropped (abort its task to stop it). API errors are logged and retried: it never
/// returns on its own.
pub async fn run(client: client::Client, config: Config) {
    run_with(client, config, RunnerOptions::default()).await;
}

/// [`run`] with explicit [`RunnerOptions`].
pub async fn run_with(client: client::Client, config: Config, opts: RunnerOptions) {
    let queue = Arc::new(SchedulingQueue::new(opts.queue.clone()));
    let state = Arc::new(Shared::default());
    let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(0u8);
    let synced_tx = Arc::new(synced_tx);

    let nodes = tokio::spawn(watch_nodes(
        client.clone(),
        state.clone(),
        queue.clone(),
        synced_tx.clone(),
    ));
    let pods = tokio::spawn(watch_pods(
        client.clone(),
        state.clone(),
        queue.clone(),
        opts.scheduler_name.clone(),
        synced_tx,
    ));
    // Aborts the watch tasks when this future is dropped.
    let _guard = AbortOnDrop(vec![nodes, pods]);

    if synced_rx.wait_for(|n| *n >= 2).await.is_err() {
        return;
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(client, &opts.scheduler_name, &opts.instance),
        queue: queue.clone(),
        state,
        config,
        binds: Arc::new(Semaphore::new(opts.bind_concurrency.max(1))),
    });
    while let Some(key) = queue.pop().await {
        schedule_one(&ctx, key).await;
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Everything the watches maintain, under one lock that is never held across I/O.
#[derive(Default)]
struct Shared {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    snapshot: Snapshot,
    /// Unbound pods that are ours to place, latest version.
    pending: HashMap<String, Arc<Value>>,
    /// Pods placed in the snapshot by our decision, binding not yet seen by the watch.
    assumed: HashSet<String>,
    /// Bound pods known from the watch.
    bound: HashSet<String>,
    /// What of each node matters to placement, to ignore heartbeat-only updates.
    node_views: HashMap<String, Value>,
    synced_nodes: bool,
    synced_pods: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `namespace/name`.
fn pod_key(pod: &Value) -> Option<String> {
    let name = pod["metadata"]["name"].as_str()?;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    Some(format!("{ns}/{name}"))
}

fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("default", key))
}

fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// The parts of a node that placement depends on (Kubernetes' nodeSchedulingPropertiesChange):
/// a heartbeat that only moves timestamps changes none of them.
fn node_view(node: &Value) -> Value {
    let conditions: Vec<Value> = node["status"]["conditions"]
        .as_array()
        .map(|cs| cs.iter().map(|c| json!([c["type"], c["status"]])).collect())
        .unwrap_or_default();
    json!({
        "labels": node["metadata"]["labels"],
        "spec": node["spec"],
        "allocatable": node["status"]["allocatable"],
        "conditions": conditions,
    })
}

/// The parts of a pending pod whose change may change the decision (Kubernetes'
/// isPodUpdated ignores status and bookkeeping metadata): our own status writes do not
/// trigger a retry.
fn pod_view(pod: &Value) -> Value {
    json!({
        "labels": pod["metadata"]["labels"],
        "annotations": pod["metadata"]["annotations"],
        "spec": pod["spec"],
    })
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// What a pod event asks of the queue.
#[derive(Debug, Default, PartialEq, Eq)]
struct Effect {
    /// Unschedulable pods may fit now.
    move_all: bool,
}

impl State {
    /// Applies a node's new state; whether placement-relevant fields changed.
    fn apply_node(&mut self, node: &Value) -> bool {
        let Some(name) = node["metadata"]["name"].as_str() else {
            return false;
        };
        let view = node_view(node);
        if self.node_views.get(name) == Some(&view) {
            return false;
        }
        if let Err(e) = self.snapshot.upsert_node(node) {
            tracing::warn!(error = %e, "ignoring node {name}");
            return false;
        }
        self.node_views.insert(name.to_string(), view);
        true
    }

    fn delete_node(&mut self, name: &str) {
        self.node_views.remove(name);
        self.snapshot.remove_node(name);
    }

    /// Applies a pod's new state (added or changed) to the snapshot, the pending set
    /// and the queue.
    fn apply_pod(&mut self, pod: &Value, queue: &SchedulingQueue, scheduler: &str) -> Effect {
        let Some(key) = pod_key(pod) else {
            return Effect::default();
        };
        if is_terminal(pod) {
            return self.forget_pod(&key, queue);
        }
        if node_name(pod).is_some() {
            let was_ours = self.assumed.remove(&key);
            let was_known = self.bound.contains(&key);
            self.pending.remove(&key);
            queue.delete(&key);
            if let Err(e) = self.snapshot.add_pod(pod) {
                tracing::warn!(error = %e, "ignoring pod {key}");
                return Effect::default();
            }
            self.bound.insert(key);
            // A pod placed by someone else may satisfy a pending pod's affinity.
            return Effect {
                move_all: !was_ours && !was_known,
            };
        }
        let mine = matches!(pod["spec"]["schedulerName"].as_str(), None | Some(""))
            || pod["spec"]["schedulerName"].as_str() == Some(scheduler);
        let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
        if !mine || deleting {
            self.pending.remove(&key);
            queue.delete(&key);
            return Effect::default();
        }
        if self.assumed.contains(&key) {
            // An update from before our binding landed: the decision stands.
            self.pending.insert(key, Arc::new(pod.clone()));
            return Effect::default();
        }
        let changed = self
            .pending
            .get(&key)
            .is_none_or(|old| pod_view(old) != pod_view(pod));
        self.pending.insert(key.clone(), Arc::new(pod.clone()));
        if changed {
            queue.add(&key, pod["spec"]["priority"].as_i64().unwrap_or(0));
        }
        Effect::default()
    }

    /// A pod is gone (deleted or finished): it frees its node.
    fn forget_pod(&mut self, key: &str, queue: &SchedulingQueue) -> Effect {
        queue.delete(key);
        self.pending.remove(key);
        self.assumed.remove(key);
        self.bound.remove(key);
        Effect {
            move_all: self.snapshot.remove_pod(key),
        }
    }

    /// A full re-list: anything not in it is gone.
    fn replace_pods(&mut self, pods: &[Value], queue: &SchedulingQueue, scheduler: &str) {
        let keys: HashSet<String> = pods.iter().filter_map(pod_key).collect();
        let stale: Vec<String> = self
            .bound
            .iter()
            .chain(self.pending.keys())
            .chain(self.assumed.iter())
            .filter(|k| !keys.contains(*k))
            .cloned()
            .collect();
        for k in stale {
            self.forget_pod(&k, queue);
        }
        for p in pods {
            self.apply_pod(p, queue, scheduler);
        }
    }

    /// Drops our assumption of `key` if the watch has not confirmed a binding since.
    fn unassume(&mut self, key: &str) {
        if self.assumed.remove(key) {
            self.snapshot.remove_pod(key);
        }
    }
}

async fn watch_nodes(
    client: client::Client,
    state: Arc<Shared>,
    queue: Arc<SchedulingQueue>,
    synced: Arc<tokio::sync::watch::Sender<u8>>,
) {
    let mut events = std::pin::pin!(client::watcher(
        client,
        Resource::NODES,
        None,
        ListParams::default()
    ));
    while let Some(ev) = events.next().await {
        let moved = {
            let mut st = state.lock();
            match ev {
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: node watch");
                    false
                }
                Ok(Event::Applied(n)) => st.apply_node(&n),
                Ok(Event::Deleted(n)) => {
                    if let Some(name) = n["metadata"]["name"].as_str() {
                        st.delete_node(name);
                    }
                    false
                }
                Ok(Event::Restarted(list)) => {
                    let names: HashSet<&str> = list
                        .iter()
                        .filter_map(|n| n["metadata"]["name"].as_str())
                        .collect();
                    let gone: Vec<String> = st
                        .node_views
                        .keys()
                        .filter(|k| !names.contains(k.as_str()))
                        .cloned()
                        .collect();
                    for g in gone {
                        st.delete_node(&g);
                    }
                    for n in &list {
                        st.apply_node(n);
                    }
                    if !st.synced_nodes {
                        st.synced_nodes = true;
                        synced.send_modify(|n| *n += 1);
                    }
                    true
                }
            }
        };
        if moved {
            queue.move_all();
        }
    }
}

async fn watch_pods(
    client: client::Client,
    state: Arc<Shared>,
    queue: Arc<SchedulingQueue>,
    scheduler: String,
    synced: Arc<tokio::sync::watch::Sender<u8>>,
) {
    let mut events = std::pin::pin!(client::watcher(
        client,
        Resource::PODS,
        None,
        ListParams::default()
    ));
    while let Some(ev) = events.next().await {
        let effect = {
            let mut st = state.lock();
            match ev {
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: pod watch");
                    Effect::default()
                }
                Ok(Event::Applied(p)) => st.apply_pod(&p, &queue, &scheduler),
                Ok(Event::Deleted(p)) => match pod_key(&p) {
                    Some(k) => st.forget_pod(&k, &queue),
                    None => Effect::default(),
                },
                Ok(Event::Restarted(list)) => {
                    st.replace_pods(&list, &queue, &scheduler);
                    if !st.synced_pods {
                        st.synced_pods = true;
                        synced.send_modify(|n| *n += 1);
                    }
                    Effect { move_all: true }
                }
            }
        };
        if effect.move_all {
            queue.move_all();
        }
    }
}

struct Ctx {
    client: client::Client,
    recorder: Recorder,
    queue: Arc<SchedulingQueue>,
    state: Arc<Shared>,
    config: Config,
    binds: Arc<Semaphore>,
}

/// The result of one scheduling cycle, decided under the lock.
enum Decision {
    Bind(String),
    Unschedulable {
        message: String,
        nominate: Option<crate::Preemption>,
    },
    Error(String),
}

async fn schedule_one(ctx: &Arc<Ctx>, key: String) {
    let (pod, decision) = {
        let mut st = ctx.state.lock();
        let Some(pod) = st.pending.get(&key).cloned() else {
            drop(st);
            ctx.queue.done(&key);
            return;
        };
        let decision = match schedule(&st.snapshot, &pod, &ctx.config) {
            Ok(node) => match st.snapshot.assume_pod(&pod, &node) {
                Ok(()) => {
                    st.assumed.insert(key.clone());
                    Decision::Bind(node)
                }
                Err(e) => Decision::Error(e.to_string()),
            },
            Err(mut u) => {
                let mut nominate = None;
                if ctx.config.preemption && u.preemption_might_help() {
                    match try_preempt(&st.snapshot, &pod, &ctx.config) {
                        Ok(p) => nominate = Some(p),
                        Err(msg) => u.set_preemption_message(msg),
                    }
                }
                Decision::Unschedulable {
                    message: u.to_string(),
                    nominate,
                }
            }
        };
        (pod, decision)
    };
    match decision {
        Decision::Error(e) => {
            tracing::warn!("scheduler: {key}: {e}");
            ctx.queue.error(&key);
        }
        Decision::Bind(node) => {
            let Ok(permit) = ctx.binds.clone().acquire_owned().await else {
                return;
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                bind(&ctx, &key, &pod, &node).await;
                drop(permit);
            });
        }
        Decision::Unschedulable { message, nominate } => {
            ctx.queue.unschedulable(&key);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Some(p) = &nominate {
                    preempt(&ctx, &pod, p).await;
                }
                report_unschedulable(
                    &ctx,
                    &pod,
                    &message,
                    nominate.as_ref().map(|p| p.node.as_str()),
                )
                .await;
            });
        }
    }
}

async fn bind(ctx: &Arc<Ctx>, key: &str, pod: &Value, node: &str) {
    let (ns, name) = split_key(key);
    match ctx.client.bind(ns, name, node).await {
        Ok(_) => {
            ctx.queue.done(key);
            // The event is written off the binding path, so it never holds a slot.
            let (ctx, pod) = (ctx.clone(), pod.clone());
            let message = format!("Successfully assigned {key} to {node}");
            tokio::spawn(async move {
                ctx.recorder
                    .pod_event(&pod, "Normal", "Scheduled", &message)
                    .await;
            });
        }
        Err(e) if e.is_conflict() || e.is_not_found() => {
            // Bound by another scheduler, or deleted: the watch tells the rest.
            tracing::debug!("scheduler: {key} not bound to {node}: {e}");
            ctx.state.lock().unassume(key);
            ctx.queue.done(key);
        }
        Err(e) => {
            tracing::warn!("scheduler: binding {key} to {node}: {e}");
            ctx.state.lock().unassume(key);
            ctx.queue.error(key);
        }
    }
}

/// Kubernetes' DefaultPreemption side effects: delete the victims (with a Preempted
/// event on each); the preemptor is nominated to the node by the status write.
async fn preempt(ctx: &Ctx, pod: &Value, p: &crate::Preemption) {
    let preemptor = pod_key(pod).unwrap_or_default();
    for victim in &p.victims {
        let (ns, name) = split_key(victim);
        let obj = ctx.state.lock().snapshot_pod_stub(victim);
        match ctx
            .client
            .delete(&Resource::PODS, Some(ns), name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                ctx.recorder
                    .pod_event(
                        &obj,
                        "Normal",
                        "Preempted",
                        &format!("Preempted by {preemptor} on node {}", p.node),
                    )
                    .await;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!("scheduler: preempting {victim}: {e}"),
        }
    }
}

impl State {
    /// A minimal object naming a pod, for an Event about it.
    fn snapshot_pod_stub(&self, key: &str) -> Value {
        let (ns, name) = split_key(key);
        json!({"metadata": {"namespace": ns, "name": name}})
    }
}

/// Writes PodScheduled=False (reason Unschedulable, the FitError message) and the
/// nominated node, then a FailedScheduling event. The status write is skipped when it
/// would change nothing, so a pod retried in an unchanged cluster costs no write.
async fn report_unschedulable(ctx: &Ctx, pod: &Value, message: &str, nominated: Option<&str>) {
    let Some(key) = pod_key(pod) else {
        return;
    };
    let (ns, name) = split_key(&key);
    let current = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message
    }) && nominated.is_none_or(|n| pod["status"]["nominatedNodeName"] == n);
    if !same {
        let since = current
            .filter(|c| c["status"] == "False")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map_or_else(now_rfc3339, str::to_string);
        let mut status = json!({"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": since,
        }]});
        if let Some(n) = nominated {
            status["nominatedNodeName"] = json!(n);
        }
        let patch = Patch::Strategic(json!({ "status": status }));
        if let Err(e) = ctx
            .client
            .patch_status(
                &Resource::PODS,
                Some(ns),
                name,
                &patch,
                &PatchParams::default(),
            )
            .await
            && !e.is_not_found()
        {
            tracing::warn!("scheduler: status of {key}: {e}");
        }
    }
    ctx.recorder
        .pod_event(pod, "Warning", "FailedScheduling", message)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
               "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                          "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-01T00:00:00Z"}]}})
    }

    fn pod(name: &str, node: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "ns", "uid": name},
                           "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        p
    }

    #[test]
    fn heartbeat_only_node_updates_are_not_changes() {
        // Kubernetes' scheduler ignores node updates that change no scheduling property.
        let mut st = State::default();
        assert!(st.apply_node(&node("n1", "4")));
        let mut beat = node("n1", "4");
        beat["status"]["conditions"][0]["lastHeartbeatTime"] = json!("2024-01-01T00:00:10Z");
        assert!(!st.apply_node(&beat));
        let mut cordoned = node("n1", "4");
        cordoned["spec"] = json!({"unschedulable": true});
        assert!(st.apply_node(&cordoned));
    }

    #[tokio::test(start_paused = true)]
    async fn status_only_pod_updates_do_not_requeue() {
        let q = SchedulingQueue::new(QueueConfig::default());
        let mut st = State::default();
        st.apply_pod(&pod("a", None), &q, DEFAULT_SCHEDULER_NAME);
        let k = q.pop().await.unwrap();
        q.unschedulable(&k);
        let mut p = pod("a", None);
        p["status"] = json!({"conditions": [{"type": "PodScheduled", "status": "False"}]});
        st.apply_pod(&p, &q, DEFAULT_SCHEDULER_NAME);
        assert_eq!(q.num_unschedulable(), 1);
        // A label change may change the decision: retried.
        p["metadata"]["labels"] = json!({"app": "x"});
        st.apply_pod(&p, &q, DEFAULT_SCHEDULER_NAME);
        assert_eq!(q.num_unschedulable(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn other_schedulers_pods_are_not_ours() {
        let q = SchedulingQueue::new(QueueConfig::default());
        let mut st = State::default();
        let mut p = pod("a", None);
        p["spec"]["schedulerName"] = json!("my-scheduler");
        st.apply_pod(&p, &q, DEFAULT_SCHEDULER_NAME);
        assert!(q.is_empty());
        p["spec"]["schedulerName"] = json!(DEFAULT_SCHEDULER_NAME);
        st.apply_pod(&p, &q, DEFAULT_SCHEDULER_NAME);
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn binding_seen_by_watch_replaces_the_assumption() {
        let q = SchedulingQueue::new(QueueConfig::default());
        let mut st = State::default();
        st.apply_node(&node("n1", "4"));
        st.apply_node(&node("n2", "4"));
        st.apply_pod(&pod("a", None), &q, DEFAULT_SCHEDULER_NAME);
        st.snapshot.assume_pod(&pod("a", None), "n1").unwrap();
        st.assumed.insert("ns/a".into());
        // Another scheduler won the race and bound it to n2.
        let effect = st.apply_pod(&pod("a", Some("n2")), &q, DEFAULT_SCHEDULER_NAME);
        assert!(!effect.move_all);
        st.unassume("ns/a");
        assert_eq!(st.snapshot.node_of("ns/a"), Some("n2"));
        assert_eq!(st.snapshot.requested("n1").map_or(0, |r| r.milli_cpu), 0);
        assert!(st.pending.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn deleting_a_bound_pod_frees_room_and_moves() {
        let q = SchedulingQueue::new(QueueConfig::default());
        let mut st = State::default();
        st.apply_node(&node("n1", "4"));
        let e = st.apply_pod(&pod("a", Some("n1")), &q, DEFAULT_SCHEDULER_NAME);
        assert!(
            e.move_all,
            "a pod bound by someone else is a cluster change"
        );
        assert!(st.forget_pod("ns/a", &q).move_all);
        assert!(!st.forget_pod("ns/a", &q).move_all);
        // A relist without the pod forgets it too.
        st.apply_pod(&pod("b", Some("n1")), &q, DEFAULT_SCHEDULER_NAME);
        st.replace_pods(&[], &q, DEFAULT_SCHEDULER_NAME);
        assert_eq!(st.snapshot.pod_count(), 0);
    }
}
