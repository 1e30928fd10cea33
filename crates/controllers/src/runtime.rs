//! The I/O side: reflector caches, event handlers that enqueue `namespace/name` keys,
//! workers that run the pure planners and apply their writes.

use crate::deployment::{self, RsWrite};
use crate::events::{self, Recorder};
use crate::expectations::Expectations;
use crate::replicaset::{self, ReplicaKind};
use crate::util::{self, controller_ref};
use crate::{Error, Options, drive};
use client::{
    Client, DeleteParams, Event, Informers, ObjectKey, Patch, PatchParams, PostParams, Resource,
    SharedEvents, Store, WorkQueue,
};
use serde_json::{Value, json};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use client::informer::{CONTROLLER_INDEX as OWNER_INDEX, NAMESPACE_INDEX as NS_INDEX};

/// `v1` replication controllers (not among the client's built-ins).
pub(crate) fn rc_resource() -> Resource {
    Resource::new(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
    )
}

fn now() -> util::Time {
    time::OffsetDateTime::now_utc()
}

/// Everything the workers share.
struct Ctx {
    client: Client,
    pods: Store,
    rss: Store,
    rcs: Store,
    deploys: Store,
    rs_queue: WorkQueue<ObjectKey>,
    rc_queue: WorkQueue<ObjectKey>,
    d_queue: WorkQueue<ObjectKey>,
    rs_exp: Mutex<Expectations>,
    rc_exp: Mutex<Expectations>,
    rs_recorder: Recorder,
    rc_recorder: Recorder,
    d_recorder: Recorder,
    /// Per owner UID: the creation batch the next sync starts with (see `sync_replicas`).
    first_batch: Mutex<HashMap<String, usize>>,
}

impl Ctx {
    fn store(&self, kind: ReplicaKind) -> &Store {
        match kind {
            ReplicaKind::ReplicaSet => &self.rss,
            ReplicaKind::ReplicationController => &self.rcs,
        }
    }
    fn queue(&self, kind: ReplicaKind) -> &WorkQueue<ObjectKey> {
        match kind {
            ReplicaKind::ReplicaSet => &self.rs_queue,
            ReplicaKind::ReplicationController => &self.rc_queue,
        }
    }
    fn exp(&self, kind: ReplicaKind) -> std::sync::MutexGuard<'_, Expectations> {
        match kind {
            ReplicaKind::ReplicaSet => &self.rs_exp,
            ReplicaKind::ReplicationController => &self.rc_exp,
        }
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
    }
    fn recorder(&self, kind: ReplicaKind) -> &Recorder {
        match kind {
            ReplicaKind::ReplicaSet => &self.rs_recorder,
            ReplicaKind::ReplicationController => &self.rc_recorder,
        }
    }
    fn resource(kind: ReplicaKind) -> Resource {
        match kind {
            ReplicaKind::ReplicaSet => Resource::REPLICASETS,
            ReplicaKind::ReplicationController => rc_resource(),
        }
    }
}

/// Pods without a controller, by namespace: the ones a replica controller may adopt.
const ORPHAN_INDEX: &str = "orphan-namespace";

fn indexed(informers: &Informers, resource: Resource) -> (Store, SharedEvents) {
    informers.informer(&resource, None)
}

fn key_of(o: &Value) -> Option<ObjectKey> {
    ObjectKey::from_object(o)
}

/// Runs the ReplicaSet, ReplicationController and Deployment controllers.
pub async fn run(client: Client, options: Options, informers: Arc<Informers>) {
    let (pods, pod_events) = indexed(&informers, Resource::PODS);
    pods.add_index(ORPHAN_INDEX, |p| match controller_ref(p) {
        Some(_) => Vec::new(),
        None => vec![api::meta::namespace(p).unwrap_or_default().to_string()],
    });
    let (rss, rs_events) = indexed(&informers, Resource::REPLICASETS);
    let (rcs, rc_events) = indexed(&informers, rc_resource());
    let (deploys, d_events) = indexed(&informers, Resource::DEPLOYMENTS);
    let ctx = Arc::new(Ctx {
        // Kubernetes' component names, as `kubectl describe` shows them under "From".
        rs_recorder: Recorder::new(client.clone(), "replicaset-controller"),
        rc_recorder: Recorder::new(client.clone(), "replication-controller"),
        d_recorder: Recorder::new(client.clone(), "deployment-controller"),
        client,
        pods,
        rss,
        rcs,
        deploys,
        rs_queue: WorkQueue::new(),
        rc_queue: WorkQueue::new(),
        d_queue: WorkQueue::new(),
        rs_exp: Mutex::default(),
        rc_exp: Mutex::default(),
        first_batch: Mutex::default(),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(drive(pod_events, ctx.clone(), on_pod));
    tasks.spawn(drive(rs_events, ctx.clone(), |c, e| {
        on_owner(c, e, ReplicaKind::ReplicaSet)
    }));
    tasks.spawn(drive(rc_events, ctx.clone(), |c, e| {
        on_owner(c, e, ReplicaKind::ReplicationController)
    }));
    tasks.spawn(drive(d_events, ctx.clone(), on_deployment));
    {
        let ctx = ctx.clone();
        let every = options.resync.max(Duration::from_secs(1));
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for k in ctx.rss.keys() {
                    ctx.rs_queue.add(k);
                }
                for k in ctx.rcs.keys() {
                    ctx.rc_queue.add(k);
                }
                for k in ctx.deploys.keys() {
                    ctx.d_queue.add(k);
                }
            }
        });
    }
    // Workers start once the caches hold a full list: before that, absence means nothing.
    // The ReplicationController cache is not awaited: a server without that resource
    // must not stop the others.
    ctx.pods.wait_until_ready().await;
    ctx.rss.wait_until_ready().await;
    ctx.deploys.wait_until_ready().await;
    for _ in 0..options.workers.max(1) {
        let c = ctx.clone();
        tasks.spawn(work(c.rs_queue.clone(), c, |c, k| {
            sync_replicas(c, k, ReplicaKind::ReplicaSet)
        }));
        let c = ctx.clone();
        tasks.spawn(work(c.rc_queue.clone(), c, |c, k| {
            sync_replicas(c, k, ReplicaKind::ReplicationController)
        }));
        let c = ctx.clone();
        tasks.spawn(work(c.d_queue.clone(), c, sync_deployment));
    }
    // The JoinSet aborts every task when this future is dropped.
    while tasks.join_next().await.is_some() {}
}

/// What a sync asks of the queue afterwards.
#[derive(Clone, Copy, Debug, Default)]
struct Synced {
    /// Sync again after this long (e.g. when a pod becomes available).
    requeue_after: Option<Duration>,
    /// Keep the key out of the queue this long: see [`cooldown`].
    cooldown: Duration,
}

impl From<Option<Duration>> for Synced {
    fn from(requeue_after: Option<Duration>) -> Synced {
        Synced {
            requeue_after,
            cooldown: Duration::ZERO,
        }
    }
}

/// Computing a sync's plan costs O(pods of the owner), and every event of one of them
/// asks for another sync: with 100,000 pods the controller would do nothing else. A sync
/// whose computation took `cost` is therefore not repeated for `3 × cost` (events
/// meanwhile are coalesced into the next sync), so one owner takes at most a quarter of
/// a core. Small owners (the usual case) are never held back.
fn cooldown(cost: Duration) -> Duration {
    if cost < Duration::from_millis(5) {
        Duration::ZERO
    } else {
        (cost * 3).min(Duration::from_secs(5))
    }
}

async fn work<F, Fut, T>(queue: WorkQueue<ObjectKey>, ctx: Arc<Ctx>, sync: F)
where
    F: Fn(Arc<Ctx>, ObjectKey) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send,
    T: Into<Synced>,
{
    while let Some(lease) = queue.get().await {
        let key = lease.key().clone();
        let mut hold = Duration::ZERO;
        match sync(ctx.clone(), key.clone()).await.map(Into::into) {
            Ok(done) => {
                queue.forget(&key);
                if let Some(d) = done.requeue_after {
                    queue.add_after(key, d);
                }
                hold = done.cooldown;
            }
            Err(e) => {
                tracing::info!(key = %key, error = %e, "sync failed; retrying");
                queue.add_rate_limited(key);
            }
        }
        if hold.is_zero() {
            drop(lease);
        } else {
            // The key stays leased (so not re-queued) while this worker goes on.
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                drop(lease);
            });
        }
    }
}

/// Enqueues the owner of a pod, or for an orphan every owner whose selector matches.
fn on_pod(ctx: &Ctx, ev: &Event) {
    let pods = match ev {
        Event::Restarted(_) => {
            for k in ctx.rss.keys() {
                ctx.rs_queue.add(k);
            }
            for k in ctx.rcs.keys() {
                ctx.rc_queue.add(k);
            }
            return;
        }
        Event::Applied(p) | Event::Deleted(p) => p,
    };
    let ns = api::meta::namespace(pods);
    match controller_ref(pods) {
        Some(r) => {
            let kind = match r["kind"].as_str() {
                Some("ReplicaSet") => ReplicaKind::ReplicaSet,
                Some("ReplicationController") => ReplicaKind::ReplicationController,
                _ => return,
            };
            let key = ObjectKey::new(ns, r["name"].as_str().unwrap_or_default());
            if let Event::Deleted(p) = ev {
                ctx.exp(kind)
                    .observe_deleted(&key, util::name(p), util::uid(p));
                // A Recreate rollout waits for old pods to be gone.
                if let Some(rs) = ctx.store(kind).get(&key)
                    && let Some(d) = controller_ref(&rs).filter(|d| d["kind"] == "Deployment")
                {
                    ctx.d_queue
                        .add(ObjectKey::new(ns, d["name"].as_str().unwrap_or_default()));
                }
            }
            ctx.queue(kind).add(key);
        }
        None => {
            let labels = api::meta::labels(pods);
            for kind in [ReplicaKind::ReplicaSet, ReplicaKind::ReplicationController] {
                for o in ctx.store(kind).by_index(NS_INDEX, ns.unwrap_or_default()) {
                    if kind.selector(&o).matches(labels)
                        && let Some(k) = key_of(&o)
                    {
                        ctx.queue(kind).add(k);
                    }
                }
            }
        }
    }
}

/// ReplicaSet / ReplicationController events: the owner itself, and its Deployment.
fn on_owner(ctx: &Ctx, ev: &Event, kind: ReplicaKind) {
    let o = match ev {
        Event::Restarted(list) => {
            for o in list {
                if let Some(k) = key_of(o) {
                    ctx.queue(kind).add(k);
                }
            }
            if kind == ReplicaKind::ReplicaSet {
                for k in ctx.deploys.keys() {
                    ctx.d_queue.add(k);
                }
            }
            return;
        }
        Event::Applied(o) | Event::Deleted(o) => o,
    };
    let Some(key) = key_of(o) else { return };
    if matches!(ev, Event::Deleted(_)) {
        ctx.exp(kind).remove(&key);
        ctx.first_batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(util::uid(o));
    }
    ctx.queue(kind).add(key.clone());
    if kind != ReplicaKind::ReplicaSet {
        return;
    }
    match controller_ref(o) {
        Some(r) if r["kind"] == "Deployment" => ctx.d_queue.add(ObjectKey::new(
            key.ns(),
            r["name"].as_str().unwrap_or_default(),
        )),
        Some(_) => {}
        None => {
            let labels = api::meta::labels(o);
            for d in ctx.deploys.by_index(NS_INDEX, key.ns().unwrap_or_default()) {
                if util::selector(&d["spec"]["selector"]).matches(labels)
                    && let Some(k) = key_of(&d)
                {
                    ctx.d_queue.add(k);
                }
            }
        }
    }
}

fn on_deployment(ctx: &Ctx, ev: &Event) {
    match ev {
        Event::Restarted(list) => {
            for o in list {
                if let Some(k) = key_of(o) {
                    ctx.d_queue.add(k);
                }
            }
        }
        Event::Applied(o) | Event::Deleted(o) => {
            if let Some(k) = key_of(o) {
                ctx.d_queue.add(k);
            }
        }
    }
}

/// Sets (`add`) or removes our controller reference on a dependent, guarded by its UID
/// and resourceVersion so a concurrent change makes the patch fail rather than be lost.
async fn set_owner(
    ctx: &Ctx,
    resource: &Resource,
    obj: &Value,
    owner_ref: Option<Value>,
    owner_uid: &str,
) -> Result<(), Error> {
    let mut refs: Vec<Value> = obj["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
    if let Some(r) = owner_ref {
        refs.push(r);
    }
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/uid", "value": util::uid(obj)}),
        json!({"op": "test", "path": "/metadata/resourceVersion",
               "value": api::meta::resource_version(obj).unwrap_or_default()}),
    ];
    ops.push(if refs.is_empty() {
        json!({"op": "remove", "path": "/metadata/ownerReferences"})
    } else {
        json!({"op": "add", "path": "/metadata/ownerReferences", "value": refs})
    });
    match ctx
        .client
        .patch(
            resource,
            api::meta::namespace(obj),
            util::name(obj),
            &Patch::Json(Value::Array(ops)),
            &PatchParams::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `pods` by one of their string fields.
fn index_by(pods: &[Arc<Value>], f: fn(&Value) -> &str) -> HashMap<&str, &Value> {
    pods.iter().map(|p| (f(p), &**p)).collect()
}

/// One sync of a ReplicaSet or ReplicationController.
async fn sync_replicas(ctx: Arc<Ctx>, key: ObjectKey, kind: ReplicaKind) -> Result<Synced, Error> {
    let Some(owner) = ctx.store(kind).get(&key) else {
        ctx.exp(kind).remove(&key);
        return Ok(Synced::default());
    };
    let started = Instant::now();
    let ns = key.ns().unwrap_or_default();
    // Only our own pods and the namespace's orphans can be claimed; pods other owners
    // control are none of our business (a namespace may hold 100,000 of them).
    let mut pods = ctx.pods.by_index(OWNER_INDEX, util::uid(&owner));
    // Owner references never cross namespaces.
    pods.retain(|p| api::meta::namespace(p) == Some(ns));
    pods.extend(ctx.pods.by_index(ORPHAN_INDEX, ns));
    let related: Vec<Arc<Value>> = match controller_ref(&owner) {
        Some(d) if d["kind"] == "Deployment" => ctx
            .rss
            .by_index(OWNER_INDEX, d["uid"].as_str().unwrap_or_default())
            .iter()
            .filter(|rs| util::uid(rs) != util::uid(&owner))
            .flat_map(|rs| ctx.pods.by_index(OWNER_INDEX, util::uid(rs)))
            .collect(),
        _ => Vec::new(),
    };
    let may_manage = {
        // Built only when a deletion is awaited, and then once.
        let uids = OnceCell::new();
        let cached = |n: &str| ctx.pods.get_by(Some(ns), n).is_some();
        let by_uid = |u: &str| {
            uids.get_or_init(|| index_by(&pods, util::uid))
                .get(u)
                .copied()
        };
        ctx.exp(kind)
            .satisfied(&key, cached, by_uid, Instant::now())
    };
    let plan = replicaset::plan(kind, &owner, &pods, &related, may_manage);
    let mut cost = started.elapsed();
    let my_ref = util::owner_ref(kind.api_version(), kind.kind(), &owner);
    for p in &plan.adopt {
        set_owner(
            &ctx,
            &Resource::PODS,
            p,
            Some(my_ref.clone()),
            util::uid(&owner),
        )
        .await?;
    }
    for p in &plan.release {
        set_owner(&ctx, &Resource::PODS, p, None, util::uid(&owner)).await?;
    }
    let mut manage_error = None;
    if plan.create > 0 {
        let template = replicaset::pod_from_template(kind, &owner);
        let typed_owner = events::typed(&owner, kind.api_version(), kind.kind());
        let pp = PostParams::default();
        // slowStartBatch: 1, 2, 4, ... creations at once, stopping at the first failure,
        // so a quota or admission error costs one request, not hundreds. Unlike
        // Kubernetes the doubling goes on across syncs while every creation succeeds:
        // nine sequential round trips per 500 pods were what limited a 100,000-replica
        // scale-up.
        let mut left = plan.create;
        let mut batch = ctx
            .first_batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(util::uid(&owner))
            .copied()
            .unwrap_or(1);
        while left > 0 && manage_error.is_none() {
            let n = batch.min(left);
            let results = futures::future::join_all(
                (0..n).map(|_| ctx.client.create(&Resource::PODS, Some(ns), &template, &pp)),
            )
            .await;
            let mut names = Vec::new();
            let mut notes = Vec::new();
            for r in results {
                match r {
                    Ok(p) => {
                        names.push(util::name(&p).to_string());
                        notes.push((
                            events::NORMAL,
                            "SuccessfulCreate",
                            format!("Created pod: {}", util::name(&p)),
                        ));
                    }
                    Err(e) => {
                        notes.push((
                            events::WARNING,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        ));
                        manage_error = Some(e.to_string());
                    }
                }
            }
            ctx.exp(kind).expect_creations(&key, names, Instant::now());
            record_all(ctx.recorder(kind), &typed_owner, notes).await;
            left -= n;
            batch = (batch * 2).min(replicaset::BURST_REPLICAS);
        }
        let next = if manage_error.is_some() { 1 } else { batch };
        ctx.first_batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(util::uid(&owner).to_string(), next);
    }
    if !plan.delete.is_empty() {
        ctx.exp(kind).expect_deletions(
            &key,
            plan.delete.iter().map(|p| util::uid(p).to_string()),
            Instant::now(),
        );
        let results = futures::future::join_all(plan.delete.iter().map(|p| {
            let dp = DeleteParams {
                precondition_uid: Some(util::uid(p).to_string()),
                ..Default::default()
            };
            let name = util::name(p).to_string();
            let c = ctx.client.clone();
            async move { c.delete(&Resource::PODS, Some(ns), &name, &dp).await }
        }))
        .await;
        let mut notes = Vec::new();
        for (r, p) in results.into_iter().zip(&plan.delete) {
            match r {
                Ok(_) => notes.push((
                    events::NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", util::name(p)),
                )),
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    notes.push((
                        events::WARNING,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    ));
                    manage_error = Some(e.to_string());
                }
            }
        }
        let typed_owner = events::typed(&owner, kind.api_version(), kind.kind());
        record_all(ctx.recorder(kind), &typed_owner, notes).await;
    }
    let t = now();
    let started = Instant::now();
    let status = replicaset::status(&owner, &plan.claimed, manage_error.as_deref(), t);
    let requeue_after = replicaset::requeue_for_availability(&owner, &plan.claimed, t);
    cost += started.elapsed();
    if replicaset::status_differs(&owner, &status) {
        write_status(&ctx, &Ctx::resource(kind), &owner, status).await?;
    }
    if let Some(e) = manage_error {
        return Err(Error::Manage(e));
    }
    Ok(Synced {
        requeue_after,
        cooldown: cooldown(cost),
    })
}

/// Writes `status` through the status subresource, re-reading once on a conflict.
async fn write_status(ctx: &Ctx, r: &Resource, obj: &Value, status: Value) -> Result<(), Error> {
    let ns = api::meta::namespace(obj);
    let name = util::name(obj);
    let mut o = obj.clone();
    for attempt in 0..2 {
        o["status"] = status.clone();
        match ctx
            .client
            .replace_status(r, ns, name, &o, &PostParams::default())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.is_conflict() && attempt == 0 => {
                o = ctx.client.get(r, ns, name).await?;
                // The spec moved on: let the next sync compute a fresh status.
                if o["metadata"]["generation"] != obj["metadata"]["generation"] {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One sync of a Deployment.
async fn sync_deployment(ctx: Arc<Ctx>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(d) = ctx.deploys.get(&key) else {
        return Ok(None);
    };
    let ns = key.ns().unwrap_or_default();
    let rss = ctx.rss.by_index(NS_INDEX, ns);
    // Only a Recreate rollout looks at pods (whether the old ones are gone): those of
    // this Deployment's replica sets.
    let pods: Vec<Arc<Value>> = if deployment::is_recreate(&d) {
        ctx.rss
            .by_index(OWNER_INDEX, util::uid(&d))
            .iter()
            .flat_map(|rs| ctx.pods.by_index(OWNER_INDEX, util::uid(rs)))
            .collect()
    } else {
        Vec::new()
    };
    let plan = deployment::plan(&d, &rss, &pods, now());
    let my_ref = util::owner_ref("apps/v1", "Deployment", &d);
    for rs in &plan.adopt {
        set_owner(
            &ctx,
            &Resource::REPLICASETS,
            rs,
            Some(my_ref.clone()),
            util::uid(&d),
        )
        .await?;
    }
    for rs in &plan.release {
        set_owner(&ctx, &Resource::REPLICASETS, rs, None, util::uid(&d)).await?;
    }
    let r = &Resource::REPLICASETS;
    let pp = PostParams::default();
    let typed_d = events::typed(&d, "apps/v1", "Deployment");
    for w in &plan.writes {
        let scaled = scaling_event(&ctx, ns, w);
        let res = match w {
            RsWrite::Create(rs) => match ctx.client.create(r, Some(ns), rs, &pp).await {
                Err(e) if e.is_already_exists() => Ok(Value::Null),
                other => other,
            },
            RsWrite::Update(rs) => {
                ctx.client
                    .replace(r, Some(ns), util::name(rs), rs, &pp)
                    .await
            }
            RsWrite::Delete { name, uid } => {
                let dp = DeleteParams {
                    precondition_uid: Some(uid.clone()),
                    ..Default::default()
                };
                match ctx.client.delete(r, Some(ns), name, &dp).await {
                    Err(e) if e.is_not_found() => Ok(Value::Null),
                    other => other,
                }
            }
        };
        // Null: the replica set already existed or was already gone; nothing scaled.
        if res?.is_null() {
            continue;
        }
        if let Some(msg) = scaled {
            ctx.d_recorder
                .record(&typed_d, events::NORMAL, "ScalingReplicaSet", &msg)
                .await;
        }
    }
    let mut current: Value = (*d).clone();
    if let Some(a) = &plan.annotations {
        let patch = json!({"metadata": {"annotations": {
            deployment::REVISION: a.get(deployment::REVISION).cloned().unwrap_or(Value::Null)
        }}});
        current = ctx
            .client
            .patch(
                &Resource::DEPLOYMENTS,
                Some(ns),
                util::name(&d),
                &Patch::Merge(patch),
                &PatchParams::default(),
            )
            .await?;
    }
    if let Some(s) = plan.status {
        write_status(&ctx, &Resource::DEPLOYMENTS, &current, s).await?;
    }
    Ok(plan.requeue_after)
}

/// Records several events about one object at once.
async fn record_all(rec: &Recorder, obj: &Value, notes: Vec<(&str, &str, String)>) {
    futures::future::join_all(
        notes
            .iter()
            .map(|(t, reason, msg)| rec.record(obj, t, reason, msg)),
    )
    .await;
}

/// The ScalingReplicaSet message of a Deployment's write, if it changes a replica set's
/// size ("Scaled up replica set web-abc from 0 to 3", as Kubernetes words it).
fn scaling_event(ctx: &Ctx, ns: &str, w: &RsWrite) -> Option<String> {
    let (rs, old) = match w {
        RsWrite::Create(rs) => (rs, 0),
        RsWrite::Update(rs) => {
            let old = ctx
                .rss
                .get(&ObjectKey::new(Some(ns), util::name(rs)))
                .map_or(0, |o| util::int(&o["spec"]["replicas"]));
            (rs, old)
        }
        RsWrite::Delete { .. } => return None,
    };
    events::scaling_message(util::name(rs), old, util::int(&rs["spec"]["replicas"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_costly_syncs_cool_down_and_never_for_long() {
        assert_eq!(cooldown(Duration::from_millis(1)), Duration::ZERO);
        assert_eq!(
            cooldown(Duration::from_millis(40)),
            Duration::from_millis(120)
        );
        assert_eq!(cooldown(Duration::from_secs(10)), Duration::from_secs(5));
    }
}
