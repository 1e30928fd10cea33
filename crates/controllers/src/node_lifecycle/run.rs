//! The node lifecycle controller's I/O: caches of Nodes, their Leases in
//! `kube-node-lease` and pods (indexed by node), one queue of node names, and a monitor
//! tick that re-checks every node so a silent one is noticed without any event.

use super::{HealthTracker, Readiness, plan_node, plan_pods};
use crate::events::{self, Recorder};
use crate::{Error, Options, util};
use client::{
    Client, DeleteParams, Informers, ObjectKey, Patch, PatchParams, Resource, SharedEvents, Store,
    WorkQueue,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;

/// Where node heartbeat Leases live.
const LEASE_NAMESPACE: &str = "kube-node-lease";
const NODE_INDEX: &str = "node";
/// `source.component` of node lifecycle events, as in Kubernetes.
const COMPONENT: &str = "node-controller";
/// The taint eviction controller's component name.
const EVICTION_COMPONENT: &str = "taint-eviction-controller";

struct Ctx {
    client: Client,
    nodes: Store,
    leases: Store,
    pods: Store,
    queue: WorkQueue<ObjectKey>,
    tracker: Mutex<HealthTracker>,
    /// The readiness each node had at its last sync, to report transitions once.
    observed: Mutex<HashMap<String, Readiness>>,
    recorder: Recorder,
    eviction_recorder: Recorder,
    grace: Duration,
    eviction_timeout: Duration,
}

fn now() -> util::Time {
    time::OffsetDateTime::now_utc()
}

fn node_key(name: &str) -> ObjectKey {
    ObjectKey::new(None, name)
}

/// Runs the node lifecycle controller until the future is dropped.
pub async fn run(client: Client, options: Options, informers: Arc<Informers>) {
    let (nodes, node_events) = informers.informer(&Resource::NODES, None);
    let (leases, lease_events) = informers.informer(&Resource::LEASES, Some(LEASE_NAMESPACE));
    let (pods, pod_events) = informers.informer(&Resource::PODS, None);
    pods.add_index(NODE_INDEX, |p| {
        p["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(|n| vec![n.to_string()])
            .unwrap_or_default()
    });
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), COMPONENT),
        eviction_recorder: Recorder::new(client.clone(), EVICTION_COMPONENT),
        client,
        nodes,
        leases,
        pods,
        queue: WorkQueue::new(),
        tracker: Mutex::default(),
        observed: Mutex::default(),
        grace: options.node_monitor_grace,
        eviction_timeout: options.pod_eviction_timeout,
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(drive(node_events, ctx.clone(), |c, o| {
        c.queue.add(node_key(util::name(o)))
    }));
    // A lease is named after its node.
    tasks.spawn(drive(lease_events, ctx.clone(), |c, o| {
        c.queue.add(node_key(util::name(o)))
    }));
    tasks.spawn(drive(pod_events, ctx.clone(), |c, p| {
        if let Some(n) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            c.queue.add(node_key(n));
        }
    }));
    {
        // Kubernetes' --node-monitor-period: every node is looked at regularly, so a
        // node that simply stops talking (no event at all) is noticed.
        let ctx = ctx.clone();
        let every = (options.node_monitor_grace / 4)
            .clamp(Duration::from_millis(500), Duration::from_secs(5));
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for k in ctx.nodes.keys() {
                    ctx.queue.add(k);
                }
            }
        });
    }
    ctx.nodes.wait_until_ready().await;
    ctx.leases.wait_until_ready().await;
    ctx.pods.wait_until_ready().await;
    for _ in 0..options.workers.max(1) {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            while let Some(lease) = ctx.queue.get().await {
                let key = lease.key().clone();
                match sync(&ctx, &key).await {
                    Ok(after) => {
                        ctx.queue.forget(&key);
                        if let Some(d) = after {
                            ctx.queue.add_after(key, d);
                        }
                    }
                    Err(e) => {
                        tracing::info!(node = %key, error = %e, "node sync failed; retrying");
                        ctx.queue.add_rate_limited(key);
                    }
                }
                drop(lease);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn drive(
    events: SharedEvents,
    ctx: Arc<Ctx>,
    handle: impl Fn(&Ctx, &Value) + Send + 'static,
) {
    client::informer::for_each_object(events, |o| handle(&ctx, o)).await;
}

/// One sync of one node: conditions, taints, then its pods.
async fn sync(ctx: &Ctx, key: &ObjectKey) -> Result<Option<Duration>, Error> {
    let name = key.name.as_str();
    let Some(cached) = ctx.nodes.get(key) else {
        ctx.tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget(name);
        ctx.observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        return Ok(None);
    };
    let lease = ctx.leases.get(&ObjectKey::new(Some(LEASE_NAMESPACE), name));
    let t = now();
    let seen = ctx
        .tracker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .observe(&cached, lease.as_deref(), t);
    let plan = plan_node(&cached, seen, t, ctx.grace);
    // Leases renew every 10 s per node: the cached copy is read, not cloned.
    let mut node: Arc<Value> = cached;
    if let Some(conditions) = &plan.conditions {
        let patch = Patch::Merge(json!({"status": {"conditions": conditions}}));
        node = Arc::new(
            ctx.client
                .patch_status(
                    &Resource::NODES,
                    None,
                    name,
                    &patch,
                    &PatchParams::default(),
                )
                .await?,
        );
    }
    let before = ctx
        .observed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_string(), plan.readiness);
    if let Some(before) = before {
        node_event(ctx, &node, before, plan.readiness).await;
    }
    let taints = match &plan.taints {
        Some(taints) => {
            // Guarded by resourceVersion: a concurrent `kubectl taint` is never lost.
            let ops = json!([
                {"op": "test", "path": "/metadata/resourceVersion",
                 "value": api::meta::resource_version(&node).unwrap_or_default()},
                {"op": "add", "path": "/spec/taints", "value": taints},
            ]);
            ctx.client
                .patch(
                    &Resource::NODES,
                    None,
                    name,
                    &Patch::Json(ops),
                    &PatchParams::default(),
                )
                .await?;
            taints.clone()
        }
        None => node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    // A Ready node without NoExecute taints leaves its pods alone.
    if plan.readiness == Readiness::Ready && !taints.iter().any(|t| t["effect"] == "NoExecute") {
        return Ok(plan.requeue_after);
    }
    let pods = ctx.pods.by_index(NODE_INDEX, name);
    let pod_plan = plan_pods(plan.readiness, &taints, &pods, t, ctx.eviction_timeout);
    for (pod, conditions) in &pod_plan.mark_not_ready {
        let ns = api::meta::namespace(pod);
        let patch = Patch::Merge(json!({"status": {"conditions": conditions}}));
        match ctx
            .client
            .patch_status(
                &Resource::PODS,
                ns,
                util::name(pod),
                &patch,
                &PatchParams::default(),
            )
            .await
        {
            Ok(_) => {
                ctx.recorder
                    .record(
                        &events::typed(pod, "v1", "Pod"),
                        events::WARNING,
                        "NodeNotReady",
                        "Node is not ready",
                    )
                    .await
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for pod in &pod_plan.evict {
        let ns = api::meta::namespace(pod);
        let dp = DeleteParams {
            precondition_uid: Some(util::uid(pod).to_string()),
            ..Default::default()
        };
        match ctx
            .client
            .delete(&Resource::PODS, ns, util::name(pod), &dp)
            .await
        {
            Ok(_) => {
                let msg = format!(
                    "Marking for deletion Pod {}/{}",
                    ns.unwrap_or_default(),
                    util::name(pod)
                );
                ctx.eviction_recorder
                    .record(
                        &events::typed(pod, "v1", "Pod"),
                        events::NORMAL,
                        "TaintManagerEviction",
                        &msg,
                    )
                    .await;
            }
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for pod in &pod_plan.force_delete {
        let dp = DeleteParams {
            precondition_uid: Some(util::uid(pod).to_string()),
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match ctx
            .client
            .delete(
                &Resource::PODS,
                api::meta::namespace(pod),
                util::name(pod),
                &dp,
            )
            .await
        {
            Ok(_) => tracing::info!(
                "pod {}/{}: its node {name} is not ready and its grace period is over; deleted",
                api::meta::namespace(pod).unwrap_or_default(),
                util::name(pod)
            ),
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match (plan.requeue_after, pod_plan.requeue_after) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// `RecordNodeStatusChange`: "Node X status is now: NodeNotReady" (or NodeReady).
async fn node_event(ctx: &Ctx, node: &Value, before: Readiness, after: Readiness) {
    let status = match (before, after) {
        (Readiness::Ready, Readiness::NotReady | Readiness::Unknown) => "NodeNotReady",
        (Readiness::NotReady | Readiness::Unknown, Readiness::Ready) => "NodeReady",
        _ => return,
    };
    let msg = format!("Node {} status is now: {status}", util::name(node));
    ctx.recorder
        .record(
            &events::typed(node, "v1", "Node"),
            events::NORMAL,
            status,
            &msg,
        )
        .await;
}
