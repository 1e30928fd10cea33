//! The I/O side of the DaemonSet, Job, CronJob and StatefulSet controllers: one small
//! loop per controller (reflector caches of the owners and their dependents, handlers
//! that enqueue the owner's `namespace/name`, workers that run the pure planner and
//! apply its writes).

use crate::expectations::Expectations;
use crate::util::{self, controller_ref};
use crate::{Error, Options, cronjob, daemonset, job, statefulset};
use client::{
    Client, DeleteParams, Event, ListParams, ObjectKey, PostParams, PropagationPolicy, Resource,
    Store, WorkQueue,
};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const OWNER_INDEX: &str = "controller-uid";

fn now() -> util::Time {
    time::OffsetDateTime::now_utc()
}

/// What one controller loop shares between its handlers and workers.
struct Ctx {
    client: Client,
    /// The controller's own objects.
    owners: Store,
    /// Dependents by plural (`pods`, `jobs`, `controllerrevisions`).
    deps: HashMap<&'static str, Store>,
    /// Nodes, for the DaemonSet controller.
    nodes: Option<Store>,
    queue: WorkQueue<ObjectKey>,
    exp: Mutex<Expectations>,
}

impl Ctx {
    fn exp(&self) -> MutexGuard<'_, Expectations> {
        self.exp.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dep(&self, plural: &str) -> Store {
        self.deps
            .get(plural)
            .cloned()
            .unwrap_or_else(|| client::store().0)
    }

    /// The dependents of `plural` whose controller is the object with `uid`.
    fn owned(&self, plural: &str, uid: &str) -> Vec<Arc<Value>> {
        self.dep(plural).by_index(OWNER_INDEX, uid)
    }

    fn enqueue_all(&self) {
        for k in self.owners.keys() {
            self.queue.add(k);
        }
    }
}

/// What differs between the four loops.
struct Spec {
    owner: Resource,
    deps: Vec<Resource>,
    watch_nodes: bool,
}

fn watched(
    client: &Client,
    resource: Resource,
) -> (
    Store,
    impl Stream<Item = Result<Event, client::Error>> + Send + 'static,
) {
    let (store, mut writer) = client::store();
    writer.add_index(OWNER_INDEX, |o| {
        controller_ref(o)
            .and_then(|r| r["uid"].as_str())
            .map(|u| vec![u.to_string()])
            .unwrap_or_default()
    });
    let events = client::watcher(client.clone(), resource, None, ListParams::default());
    (store, client::reflect(writer, events))
}

async fn run_loop<F, Fut>(client: Client, options: Options, spec: Spec, sync: F)
where
    F: Fn(Arc<Ctx>, ObjectKey) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Option<Duration>, Error>> + Send,
{
    let mut tasks = JoinSet::new();
    let (owners, owner_events) = watched(&client, spec.owner.clone());
    let mut deps = HashMap::new();
    let mut dep_events = Vec::new();
    for r in &spec.deps {
        let (s, ev) = watched(&client, r.clone());
        deps.insert(plural_of(r), s);
        dep_events.push((kind_of(&spec.owner), ev));
    }
    let (nodes, node_events) = if spec.watch_nodes {
        let (s, ev) = watched(&client, Resource::NODES);
        (Some(s), Some(ev))
    } else {
        (None, None)
    };
    let ctx = Arc::new(Ctx {
        client,
        owners,
        deps,
        nodes,
        queue: WorkQueue::new(),
        exp: Mutex::default(),
    });
    tasks.spawn(drive(owner_events, ctx.clone(), |c, e| match e {
        Event::Restarted(_) => c.enqueue_all(),
        Event::Applied(o) | Event::Deleted(o) => {
            if let Some(k) = ObjectKey::from_object(o) {
                if matches!(e, Event::Deleted(_)) {
                    c.exp().remove(&k);
                }
                c.queue.add(k);
            }
        }
    }));
    for (owner_kind, ev) in dep_events {
        tasks.spawn(drive(ev, ctx.clone(), move |c, e| match e {
            Event::Restarted(_) => c.enqueue_all(),
            Event::Applied(o) | Event::Deleted(o) => {
                let Some(r) = controller_ref(o).filter(|r| r["kind"] == owner_kind) else {
                    return;
                };
                let key = ObjectKey::new(
                    api::meta::namespace(o),
                    r["name"].as_str().unwrap_or_default(),
                );
                if matches!(e, Event::Deleted(_)) {
                    c.exp().observe_deleted(&key, util::name(o), util::uid(o));
                }
                c.queue.add(key);
            }
        }));
    }
    if let Some(ev) = node_events {
        tasks.spawn(drive(ev, ctx.clone(), |c, _| c.enqueue_all()));
    }
    {
        let ctx = ctx.clone();
        let every = options.resync.max(Duration::from_secs(1));
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                ctx.enqueue_all();
            }
        });
    }
    // Workers start once the caches hold a full list: before that, absence means nothing.
    ctx.owners.wait_until_ready().await;
    for s in ctx.deps.values() {
        s.wait_until_ready().await;
    }
    if let Some(n) = &ctx.nodes {
        n.wait_until_ready().await;
    }
    for _ in 0..options.workers.max(1) {
        let (c, sync) = (ctx.clone(), sync.clone());
        tasks.spawn(async move {
            while let Some(lease) = c.queue.get().await {
                let key = lease.key().clone();
                match sync(c.clone(), key.clone()).await {
                    Ok(after) => {
                        c.queue.forget(&key);
                        if let Some(d) = after {
                            c.queue.add_after(key, d);
                        }
                    }
                    Err(e) => {
                        tracing::info!(key = %key, error = %e, "sync failed; retrying");
                        c.queue.add_rate_limited(key);
                    }
                }
                drop(lease);
            }
        });
    }
    // The JoinSet aborts every task when this future is dropped.
    while tasks.join_next().await.is_some() {}
}

fn plural_of(r: &Resource) -> &'static str {
    match &*r.plural {
        "pods" => "pods",
        "jobs" => "jobs",
        "controllerrevisions" => "controllerrevisions",
        "persistentvolumeclaims" => "persistentvolumeclaims",
        _ => "other",
    }
}

fn kind_of(r: &Resource) -> &'static str {
    match &*r.kind {
        "DaemonSet" => "DaemonSet",
        "Job" => "Job",
        "CronJob" => "CronJob",
        "StatefulSet" => "StatefulSet",
        _ => "Other",
    }
}

async fn drive<S>(events: S, ctx: Arc<Ctx>, handle: impl Fn(&Ctx, &Event) + Send + 'static)
where
    S: Stream<Item = Result<Event, client::Error>> + Send + 'static,
{
    let mut events = std::pin::pin!(events);
    while let Some(ev) = events.next().await {
        match ev {
            Ok(e) => handle(&ctx, &e),
            Err(e) => tracing::debug!(error = %e, "watch failed; the watcher retries"),
        }
    }
}

/// Whether earlier creations and deletions of `key` are all visible in `pods`.
fn may_manage(ctx: &Ctx, key: &ObjectKey, pods: &[Arc<Value>]) -> bool {
    let names: HashMap<&str, &Value> = pods.iter().map(|p| (util::name(p), &**p)).collect();
    let uids: HashMap<&str, &Value> = pods.iter().map(|p| (util::uid(p), &**p)).collect();
    ctx.exp().satisfied(
        key,
        |n| names.get(n).copied(),
        |u| uids.get(u).copied(),
        Instant::now(),
    )
}

/// Creates pods, recording the names as expected; returns the first error.
async fn create_pods(
    ctx: &Ctx,
    key: &ObjectKey,
    pods: &[Value],
) -> Result<Vec<Value>, client::Error> {
    let ns = key.ns();
    let pp = PostParams::default();
    let results = futures::future::join_all(
        pods.iter()
            .map(|p| ctx.client.create(&Resource::PODS, ns, p, &pp)),
    )
    .await;
    let mut created = Vec::new();
    let mut err = None;
    for r in results {
        match r {
            Ok(p) => created.push(p),
            Err(e) if e.is_already_exists() => {}
            Err(e) => err = Some(e),
        }
    }
    ctx.exp().expect_creations(
        key,
        created.iter().map(|p| util::name(p).to_string()),
        Instant::now(),
    );
    match err {
        Some(e) => Err(e),
        None => Ok(created),
    }
}

/// Deletes objects by name with a UID precondition (records pod deletions as expected).
async fn delete_all(
    ctx: &Ctx,
    key: &ObjectKey,
    r: &Resource,
    objs: &[Arc<Value>],
    policy: Option<PropagationPolicy>,
) -> Result<(), client::Error> {
    if objs.is_empty() {
        return Ok(());
    }
    if *r == Resource::PODS {
        ctx.exp().expect_deletions(
            key,
            objs.iter().map(|p| util::uid(p).to_string()),
            Instant::now(),
        );
    }
    let results = futures::future::join_all(objs.iter().map(|o| {
        let dp = DeleteParams {
            precondition_uid: Some(util::uid(o).to_string()),
            propagation_policy: policy,
            ..Default::default()
        };
        let name = util::name(o).to_string();
        let c = ctx.client.clone();
        let ns = api::meta::namespace(o).map(str::to_string);
        async move { c.delete(r, ns.as_deref(), &name, &dp).await }
    }))
    .await;
    for res in results {
        if let Err(e) = res
            && !e.is_not_found()
            && !e.is_conflict()
        {
            return Err(e);
        }
    }
    Ok(())
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
                if o["metadata"]["generation"] != obj["metadata"]["generation"]
                    || util::uid(&o) != util::uid(obj)
                {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs the DaemonSet controller until dropped.
pub async fn run_daemonsets(client: Client, options: Options) {
    let spec = Spec {
        owner: Resource::DAEMONSETS,
        deps: vec![Resource::PODS],
        watch_nodes: true,
    };
    run_loop(client, options, spec, sync_daemonset).await
}

async fn sync_daemonset(ctx: Arc<Ctx>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(ds) = ctx.owners.get(&key) else {
        ctx.exp().remove(&key);
        return Ok(None);
    };
    let pods = ctx.owned("pods", util::uid(&ds));
    let nodes = ctx.nodes.as_ref().map(Store::list).unwrap_or_default();
    let manage = may_manage(&ctx, &key, &pods);
    let plan = daemonset::plan(&ds, &nodes, &pods, manage, now());
    let new: Vec<Value> = plan
        .create_on
        .iter()
        .map(|n| daemonset::pod_for_node(&ds, n))
        .collect();
    let created = create_pods(&ctx, &key, &new).await;
    let deleted = delete_all(&ctx, &key, &Resource::PODS, &plan.delete, None).await;
    if crate::replicaset::status_differs(&ds, &plan.status) {
        write_status(&ctx, &Resource::DAEMONSETS, &ds, plan.status).await?;
    }
    created?;
    deleted?;
    Ok(plan.requeue_after)
}

/// Runs the Job controller until dropped.
pub async fn run_jobs(client: Client, options: Options) {
    let spec = Spec {
        owner: Resource::JOBS,
        deps: vec![Resource::PODS],
        watch_nodes: false,
    };
    run_loop(client, options, spec, sync_job).await
}

async fn sync_job(ctx: Arc<Ctx>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(j) = ctx.owners.get(&key) else {
        ctx.exp().remove(&key);
        return Ok(None);
    };
    let pods = ctx.owned("pods", util::uid(&j));
    let manage = may_manage(&ctx, &key, &pods);
    let plan = job::plan(&j, &pods, manage, now());
    if plan.delete_job {
        let one = [j.clone()];
        delete_all(
            &ctx,
            &key,
            &Resource::JOBS,
            &one,
            Some(PropagationPolicy::Background),
        )
        .await?;
        return Ok(None);
    }
    // The status goes first: a Job seen Complete or Failed never starts pods again.
    if let Some(s) = plan.status {
        write_status(&ctx, &Resource::JOBS, &j, s).await?;
    }
    let created = create_pods(&ctx, &key, &plan.create).await;
    delete_all(&ctx, &key, &Resource::PODS, &plan.delete, None).await?;
    created?;
    Ok(plan.requeue_after)
}

/// Runs the CronJob controller until dropped.
pub async fn run_cronjobs(client: Client, options: Options) {
    let spec = Spec {
        owner: Resource::CRONJOBS,
        deps: vec![Resource::JOBS],
        watch_nodes: false,
    };
    run_loop(client, options, spec, sync_cronjob).await
}

async fn sync_cronjob(ctx: Arc<Ctx>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(cj) = ctx.owners.get(&key) else {
        return Ok(None);
    };
    let jobs = ctx.owned("jobs", util::uid(&cj));
    let plan = cronjob::plan(&cj, &jobs, now());
    delete_all(
        &ctx,
        &key,
        &Resource::JOBS,
        &plan.delete,
        Some(PropagationPolicy::Background),
    )
    .await?;
    let mut status = plan.status;
    if let Some(new) = &plan.create {
        let made = match ctx
            .client
            .create(&Resource::JOBS, key.ns(), new, &PostParams::default())
            .await
        {
            Ok(j) => Some(j),
            // Already made for this schedule time (a retried sync): record it if ours.
            Err(e) if e.is_already_exists() => {
                let existing = ctx
                    .client
                    .get(&Resource::JOBS, key.ns(), util::name(new))
                    .await?;
                (controller_ref(&existing).and_then(|r| r["uid"].as_str()) == Some(util::uid(&cj)))
                    .then_some(existing)
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(j) = made {
            cronjob::record_active(&mut status, &j);
        }
    }
    if crate::replicaset::status_differs(&cj, &status) {
        write_status(&ctx, &Resource::CRONJOBS, &cj, status).await?;
    }
    Ok(plan.requeue_after)
}

/// Runs the StatefulSet controller until dropped.
pub async fn run_statefulsets(client: Client, options: Options) {
    let spec = Spec {
        owner: Resource::STATEFULSETS,
        deps: vec![Resource::PODS, Resource::CONTROLLERREVISIONS],
        watch_nodes: false,
    };
    run_loop(client, options, spec, sync_statefulset).await
}

async fn sync_statefulset(ctx: Arc<Ctx>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(sts) = ctx.owners.get(&key) else {
        return Ok(None);
    };
    let uid = util::uid(&sts);
    let pods = ctx.owned("pods", uid);
    let revisions = ctx.owned("controllerrevisions", uid);
    let plan = statefulset::plan(&sts, &pods, &revisions, now());
    let pp = PostParams::default();
    if let Some(rev) = &plan.create_revision {
        match ctx
            .client
            .create(&Resource::CONTROLLERREVISIONS, key.ns(), rev, &pp)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for claim in &plan.create_claims {
        match ctx
            .client
            .create(&Resource::PERSISTENTVOLUMECLAIMS, key.ns(), claim, &pp)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    for p in &plan.create {
        match ctx.client.create(&Resource::PODS, key.ns(), p, &pp).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    delete_all(&ctx, &key, &Resource::PODS, &plan.delete, None).await?;
    if crate::replicaset::status_differs(&sts, &plan.status) {
        write_status(&ctx, &Resource::STATEFULSETS, &sts, plan.status).await?;
    }
    Ok(plan.requeue_after)
}

/// The JSON form of an object reference, as CronJob `status.active` holds them.
pub fn object_reference(o: &Value) -> Value {
    json!({
        "apiVersion": o["apiVersion"].as_str().unwrap_or("batch/v1"),
        "kind": o["kind"].as_str().unwrap_or("Job"),
        "namespace": api::meta::namespace(o),
        "name": util::name(o),
        "uid": util::uid(o),
        "resourceVersion": api::meta::resource_version(o),
    })
}
