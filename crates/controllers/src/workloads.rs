//! The I/O side of the DaemonSet, Job, CronJob and StatefulSet controllers: one small
//! loop per controller (reflector caches of the owners and their dependents, handlers
//! that enqueue the owner's `namespace/name`, workers that run the pure planner and
//! apply its writes).

use crate::events::{self, Note, Recorder};
use crate::expectations::Expectations;
use crate::util::{self, controller_ref};
use crate::{Error, Options, cronjob, daemonset, drive, job, statefulset};
use client::{
    Client, DeleteParams, Event, Informers, ObjectKey, PostParams, PropagationPolicy, Resource,
    SharedEvents, Store, WorkQueue,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use client::informer::CONTROLLER_INDEX as OWNER_INDEX;

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
    /// Writes the controller's Events (`source.component` as in Kubernetes).
    recorder: Recorder,
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

fn watched(informers: &Informers, resource: Resource) -> (Store, SharedEvents) {
    informers.informer(&resource, None)
}

async fn run_loop<F, Fut>(
    client: Client,
    options: Options,
    informers: Arc<Informers>,
    spec: Spec,
    sync: F,
) where
    F: Fn(Arc<Ctx>, ObjectKey) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<Option<Duration>, Error>> + Send,
{
    let mut tasks = JoinSet::new();
    let (owners, owner_events) = watched(&informers, spec.owner.clone());
    let mut deps = HashMap::new();
    let mut dep_events = Vec::new();
    for r in &spec.deps {
        let (s, ev) = watched(&informers, r.clone());
        deps.insert(plural_of(r), s);
        dep_events.push((kind_of(&spec.owner), ev));
    }
    let (nodes, node_events) = if spec.watch_nodes {
        let (s, ev) = watched(&informers, Resource::NODES);
        (Some(s), Some(ev))
    } else {
        (None, None)
    };
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), component_of(&spec.owner)),
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

/// The `source.component` of the controller of `r`'s objects, as Kubernetes names it.
fn component_of(r: &Resource) -> &'static str {
    match &*r.kind {
        "DaemonSet" => "daemonset-controller",
        "Job" => "job-controller",
        "CronJob" => "cronjob-controller",
        "StatefulSet" => "statefulset-controller",
        _ => "workload-controller",
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

/// Whether earlier creations and deletions of `key` are all visible in `pods`.
fn may_manage(ctx: &Ctx, key: &ObjectKey, pods: &[Arc<Value>]) -> bool {
    let names: HashSet<&str> = pods.iter().map(|p| util::name(p)).collect();
    let uids: HashMap<&str, &Value> = pods.iter().map(|p| (util::uid(p), &**p)).collect();
    ctx.exp().satisfied(
        key,
        |n| names.contains(n),
        |u| uids.get(u).copied(),
        Instant::now(),
    )
}

/// Creates pods, recording the names as expected. Returns the events Kubernetes'
/// `RealPodControl` records for them (`SuccessfulCreate` "Created pod: NAME",
/// `FailedCreate` with the error) and the first error.
async fn create_pods(
    ctx: &Ctx,
    key: &ObjectKey,
    pods: &[Value],
) -> (Vec<Note>, Result<(), client::Error>) {
    let ns = key.ns();
    let pp = PostParams::default();
    let results = futures::future::join_all(
        pods.iter()
            .map(|p| ctx.client.create(&Resource::PODS, ns, p, &pp)),
    )
    .await;
    let mut created = Vec::new();
    let mut notes = Vec::new();
    let mut err = None;
    for r in results {
        match r {
            Ok(p) => {
                notes.push(events::pod_created(util::name(&p)));
                created.push(util::name(&p).to_string());
            }
            Err(e) if e.is_already_exists() => {}
            Err(e) => {
                notes.push(events::pod_create_failed(&e));
                err = Some(e);
            }
        }
    }
    ctx.exp().expect_creations(key, created, Instant::now());
    (notes, err.map_or(Ok(()), Err))
}

/// Deletes objects by name with a UID precondition (records pod deletions as expected).
/// Each object's outcome, in order: Ok(true) deleted, Ok(false) already gone or
/// replaced by another object of that name, Err the API refused.
async fn delete_each(
    ctx: &Ctx,
    key: &ObjectKey,
    r: &Resource,
    objs: &[Arc<Value>],
    policy: Option<PropagationPolicy>,
) -> Vec<Result<bool, client::Error>> {
    if objs.is_empty() {
        return Vec::new();
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
    results
        .into_iter()
        .map(|res| match res {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        })
        .collect()
}

/// Deletes objects like [`delete_each`]; returns the first error.
async fn delete_all(
    ctx: &Ctx,
    key: &ObjectKey,
    r: &Resource,
    objs: &[Arc<Value>],
    policy: Option<PropagationPolicy>,
) -> Result<(), client::Error> {
    let results = delete_each(ctx, key, r, objs, policy).await;
    results
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

/// The events for deletions of `objs` whose outcomes are `results` (see
/// [`delete_each`]), worded by `done` and `failed`, and the first error.
fn deletion_notes(
    objs: &[Arc<Value>],
    results: Vec<Result<bool, client::Error>>,
    done: impl Fn(&Value) -> Note,
    failed: impl Fn(&Value, &client::Error) -> Note,
) -> (Vec<Note>, Result<(), client::Error>) {
    let mut notes = Vec::new();
    let mut err = None;
    for (o, r) in objs.iter().zip(results) {
        match r {
            Ok(true) => notes.push(done(o)),
            Ok(false) => {}
            Err(e) => {
                notes.push(failed(o, &e));
                err.get_or_insert(e);
            }
        }
    }
    (notes, err.map_or(Ok(()), Err))
}

fn pod_deleted(p: &Value) -> Note {
    events::pod_deleted(util::name(p))
}

fn pod_not_deleted(_: &Value, e: &client::Error) -> Note {
    events::pod_delete_failed(e)
}

/// `obj` (from a cache, perhaps without `apiVersion` and `kind`) typed as `r`, as an
/// event's `involvedObject` needs it.
fn typed(r: &Resource, obj: &Value) -> Value {
    events::typed(obj, &r.api_version(), &r.kind)
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
pub async fn run_daemonsets(client: Client, options: Options, informers: Arc<Informers>) {
    let spec = Spec {
        owner: Resource::DAEMONSETS,
        deps: vec![Resource::PODS],
        watch_nodes: true,
    };
    run_loop(client, options, informers, spec, sync_daemonset).await
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
    let owner = typed(&Resource::DAEMONSETS, &ds);
    // FailedDaemonPod / SucceededDaemonPod: what was found, before it is deleted.
    ctx.recorder.record_notes(&owner, &plan.notes).await;
    let (mut notes, created) = create_pods(&ctx, &key, &new).await;
    let results = delete_each(&ctx, &key, &Resource::PODS, &plan.delete, None).await;
    let (deletions, deleted) = deletion_notes(&plan.delete, results, pod_deleted, pod_not_deleted);
    notes.extend(deletions);
    ctx.recorder.record_notes(&owner, &notes).await;
    if crate::replicaset::status_differs(&ds, &plan.status) {
        write_status(&ctx, &Resource::DAEMONSETS, &ds, plan.status).await?;
    }
    created?;
    deleted?;
    Ok(plan.requeue_after)
}

/// Runs the Job controller until dropped.
pub async fn run_jobs(client: Client, options: Options, informers: Arc<Informers>) {
    let spec = Spec {
        owner: Resource::JOBS,
        deps: vec![Resource::PODS],
        watch_nodes: false,
    };
    run_loop(client, options, informers, spec, sync_job).await
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
    let owner = typed(&Resource::JOBS, &j);
    // The status goes first: a Job seen Complete or Failed never starts pods again.
    if let Some(s) = plan.status {
        write_status(&ctx, &Resource::JOBS, &j, s).await?;
        // Completed, BackoffLimitExceeded, ...: true once the status says so.
        ctx.recorder.record_notes(&owner, &plan.notes).await;
    }
    let (mut notes, created) = create_pods(&ctx, &key, &plan.create).await;
    let results = delete_each(&ctx, &key, &Resource::PODS, &plan.delete, None).await;
    let (deletions, deleted) = deletion_notes(&plan.delete, results, pod_deleted, pod_not_deleted);
    notes.extend(deletions);
    ctx.recorder.record_notes(&owner, &notes).await;
    deleted?;
    created?;
    Ok(plan.requeue_after)
}

/// Runs the CronJob controller until dropped.
pub async fn run_cronjobs(client: Client, options: Options, informers: Arc<Informers>) {
    let spec = Spec {
        owner: Resource::CRONJOBS,
        deps: vec![Resource::JOBS],
        watch_nodes: false,
    };
    run_loop(client, options, informers, spec, sync_cronjob).await
}

async fn sync_cronjob(ctx: Arc<Ctx>, key: ObjectKey) -> Result<Option<Duration>, Error> {
    let Some(cj) = ctx.owners.get(&key) else {
        return Ok(None);
    };
    let owner = typed(&Resource::CRONJOBS, &cj);
    let jobs = ctx.owned("jobs", util::uid(&cj));
    let plan = cronjob::plan(&cj, &jobs, now());
    // Writes that happened, recorded whatever comes after them.
    let results = delete_each(
        &ctx,
        &key,
        &Resource::JOBS,
        &plan.delete,
        Some(PropagationPolicy::Background),
    )
    .await;
    let (mut done, deleted) = deletion_notes(
        &plan.delete,
        results,
        |j| Note::normal("SuccessfulDelete", format!("Deleted job {}", util::name(j))),
        // Kubernetes' wording, odd as it is.
        |_, e| Note::warning("FailedDelete", format!("Deleted job: {e}")),
    );
    if let Err(e) = deleted {
        ctx.recorder.record_notes(&owner, &done).await;
        return Err(e.into());
    }
    let mut status = plan.status;
    if let Some(new) = &plan.create {
        let made = match ctx
            .client
            .create(&Resource::JOBS, key.ns(), new, &PostParams::default())
            .await
        {
            Ok(j) => {
                let msg = format!("Created job {}", util::name(&j));
                done.push(Note::normal("SuccessfulCreate", msg));
                Some(j)
            }
            // Already made for this schedule time (a retried sync): record it if ours.
            Err(e) if e.is_already_exists() => {
                let existing = ctx
                    .client
                    .get(&Resource::JOBS, key.ns(), util::name(new))
                    .await?;
                (controller_ref(&existing).and_then(|r| r["uid"].as_str()) == Some(util::uid(&cj)))
                    .then_some(existing)
            }
            Err(e) => {
                done.push(Note::warning(
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                ));
                ctx.recorder.record_notes(&owner, &done).await;
                return Err(e.into());
            }
        };
        if let Some(j) = made {
            cronjob::record_active(&mut status, &j);
        }
    }
    // Listed Jobs the cache lacks: still listed if the API has them (the cache lags),
    // MissingJob if not. A Replace run stops whatever was listed anyway.
    let replacing = plan.create.is_some() && cj["spec"]["concurrencyPolicy"] == "Replace";
    let mut observed = Vec::new();
    for r in &plan.missing {
        let name = r["name"].as_str().unwrap_or_default();
        match ctx.client.get(&Resource::JOBS, key.ns(), name).await {
            Ok(j) if util::uid(&j) == r["uid"].as_str().unwrap_or_default() => {
                if !replacing {
                    cronjob::record_active(&mut status, &j);
                }
            }
            Ok(_) => observed.push(missing_job(name)),
            Err(e) if e.is_not_found() => observed.push(missing_job(name)),
            Err(e) => {
                ctx.recorder.record_notes(&owner, &done).await;
                return Err(e.into());
            }
        }
    }
    let unexpected = unexpected_jobs(&ctx, &cj, &plan.unexpected).await;
    if crate::replicaset::status_differs(&cj, &status)
        && let Err(e) = write_status(&ctx, &Resource::CRONJOBS, &cj, status).await
    {
        ctx.recorder.record_notes(&owner, &done).await;
        return Err(e);
    }
    // The status now says what these events tell (SawCompletedJob, MissingJob).
    let mut notes = unexpected;
    notes.extend(plan.notes);
    notes.extend(observed);
    notes.extend(done);
    ctx.recorder.record_notes(&owner, &notes).await;
    Ok(plan.requeue_after)
}

fn missing_job(name: &str) -> Note {
    Note::normal("MissingJob", format!("Active job went missing: {name}"))
}

/// `UnexpectedJob` for each of `names` (unfinished Jobs of ours that the cached
/// CronJob's `status.active` does not list) that the CronJob as the API has it does not
/// list either: the cache may just not show our own status write yet.
async fn unexpected_jobs(ctx: &Ctx, cj: &Value, names: &[String]) -> Vec<Note> {
    if names.is_empty() {
        return Vec::new();
    }
    let fresh = match ctx
        .client
        .get(
            &Resource::CRONJOBS,
            api::meta::namespace(cj),
            util::name(cj),
        )
        .await
    {
        Ok(o) if util::uid(&o) == util::uid(cj) => o,
        Ok(_) => return Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "could not re-read a CronJob; no UnexpectedJob events");
            return Vec::new();
        }
    };
    let listed = fresh["status"]["active"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    names
        .iter()
        .filter(|n| !listed.iter().any(|r| r["name"] == n.as_str()))
        .map(|n| {
            Note::warning(
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {n}"),
            )
        })
        .collect()
}

/// Runs the StatefulSet controller until dropped.
pub async fn run_statefulsets(client: Client, options: Options, informers: Arc<Informers>) {
    let spec = Spec {
        owner: Resource::STATEFULSETS,
        deps: vec![Resource::PODS, Resource::CONTROLLERREVISIONS],
        watch_nodes: false,
    };
    run_loop(client, options, informers, spec, sync_statefulset).await
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
    let owner = typed(&Resource::STATEFULSETS, &sts);
    let set = util::name(&sts);
    // Each pod after its claims (`CreateStatefulPod`), each event once its write is done.
    for p in &plan.create {
        let pod = util::name(p);
        let suffix = format!("-{pod}");
        let claims = plan
            .create_claims
            .iter()
            .filter(|c| util::name(c).ends_with(&suffix));
        for claim in claims {
            let claim_name = util::name(claim);
            match ctx
                .client
                .create(&Resource::PERSISTENTVOLUMECLAIMS, key.ns(), claim, &pp)
                .await
            {
                Ok(_) => {
                    let n = statefulset::claim_note(set, pod, claim_name, None);
                    ctx.recorder.record_notes(&owner, &[n]).await;
                }
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    let notes = [
                        statefulset::claim_note(set, pod, claim_name, Some(&e)),
                        statefulset::pod_note("create", set, pod, Some(&e)),
                    ];
                    ctx.recorder.record_notes(&owner, &notes).await;
                    return Err(e.into());
                }
            }
        }
        match ctx.client.create(&Resource::PODS, key.ns(), p, &pp).await {
            Ok(_) => {
                let n = statefulset::pod_note("create", set, pod, None);
                ctx.recorder.record_notes(&owner, &[n]).await;
            }
            Err(e) if e.is_already_exists() => {}
            Err(e) => {
                let n = statefulset::pod_note("create", set, pod, Some(&e));
                ctx.recorder.record_notes(&owner, &[n]).await;
                return Err(e.into());
            }
        }
    }
    // RecreatingFailedPod: why a pod goes, before it does.
    ctx.recorder.record_notes(&owner, &plan.notes).await;
    let results = delete_each(&ctx, &key, &Resource::PODS, &plan.delete, None).await;
    let (notes, deleted) = deletion_notes(
        &plan.delete,
        results,
        |p| statefulset::pod_note("delete", set, util::name(p), None),
        |p, e| statefulset::pod_note("delete", set, util::name(p), Some(e)),
    );
    ctx.recorder.record_notes(&owner, &notes).await;
    deleted?;
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
