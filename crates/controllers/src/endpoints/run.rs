//! The Endpoints/EndpointSlice controller's I/O: caches of Services, pods, Endpoints and
//! EndpointSlices; one queue of Service keys fed by every change that can move an
//! endpoint (a Service, a selected pod, a pod that was in a slice, a slice or Endpoints
//! changed behind our back).

use super::{SERVICE_NAME_LABEL, SLICE_MANAGED_BY_LABEL, SLICE_MANAGER, Write, service_selector};
use crate::{Error, Options, util};
use client::{
    Client, DeleteParams, Informers, ObjectKey, PostParams, Resource, SharedEvents, Store,
    WorkQueue,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

const NS_INDEX: &str = "namespace";
/// Slices by `namespace/service-name`.
const SERVICE_INDEX: &str = "service";
/// Slices by the uid of each pod they point at.
const POD_INDEX: &str = "pod";

struct Ctx {
    client: Client,
    services: Store,
    pods: Store,
    endpoints: Store,
    slices: Store,
    queue: WorkQueue<ObjectKey>,
}

fn ns_index(o: &Value) -> Vec<String> {
    api::meta::namespace(o)
        .map(|n| vec![n.to_string()])
        .unwrap_or_default()
}

fn slice_service(s: &Value) -> Option<ObjectKey> {
    let name = s["metadata"]["labels"][SERVICE_NAME_LABEL].as_str()?;
    Some(ObjectKey::new(api::meta::namespace(s), name))
}

/// Runs the Endpoints and EndpointSlice controller until the future is dropped.
pub async fn run(client: Client, options: Options, informers: Arc<Informers>) {
    let (services, svc_events) = informers.informer(&Resource::SERVICES, None);
    services.add_index(NS_INDEX, ns_index);
    let (pods, pod_events) = informers.informer(&Resource::PODS, None);
    pods.add_index(NS_INDEX, ns_index);
    let (endpoints, ep_events) = informers.informer(&Resource::ENDPOINTS, None);
    let (slices, slice_events) = informers.informer(&Resource::ENDPOINTSLICES, None);
    slices.add_index(SERVICE_INDEX, |s| {
        slice_service(s)
            .map(|k| vec![k.to_string()])
            .unwrap_or_default()
    });
    slices.add_index(POD_INDEX, |s| {
        s["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["targetRef"]["uid"].as_str().map(str::to_string))
            .collect()
    });
    let ctx = Arc::new(Ctx {
        client,
        services,
        pods,
        endpoints,
        slices,
        queue: WorkQueue::new(),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(drive(svc_events, ctx.clone(), |c, o| {
        if let Some(k) = ObjectKey::from_object(o) {
            c.queue.add(k);
        }
    }));
    tasks.spawn(drive(pod_events, ctx.clone(), on_pod));
    tasks.spawn(drive(ep_events, ctx.clone(), |c, o| {
        if let Some(k) = ObjectKey::from_object(o) {
            c.queue.add(k);
        }
    }));
    tasks.spawn(drive(slice_events, ctx.clone(), |c, s| {
        if s["metadata"]["labels"][SLICE_MANAGED_BY_LABEL] == SLICE_MANAGER
            && let Some(k) = slice_service(s)
        {
            c.queue.add(k);
        }
    }));
    {
        let ctx = ctx.clone();
        let every = options.resync.max(Duration::from_secs(1));
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for k in ctx.services.keys() {
                    ctx.queue.add(k);
                }
            }
        });
    }
    ctx.services.wait_until_ready().await;
    ctx.pods.wait_until_ready().await;
    ctx.endpoints.wait_until_ready().await;
    ctx.slices.wait_until_ready().await;
    for _ in 0..options.workers.max(1) {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            while let Some(lease) = ctx.queue.get().await {
                let key = lease.key().clone();
                match sync(&ctx, &key).await {
                    Ok(()) => ctx.queue.forget(&key),
                    Err(e) => {
                        tracing::info!(service = %key, error = %e, "endpoints sync failed; retrying");
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

/// A pod changed: every Service selecting it now, and every Service whose slices point
/// at it (it may have lost the labels that selected it).
fn on_pod(ctx: &Ctx, pod: &Value) {
    let ns = api::meta::namespace(pod).unwrap_or_default();
    let labels = api::meta::labels(pod);
    for svc in ctx.services.by_index(NS_INDEX, ns) {
        if service_selector(&svc).is_some_and(|s| s.matches(labels))
            && let Some(k) = ObjectKey::from_object(&svc)
        {
            ctx.queue.add(k);
        }
    }
    for s in ctx.slices.by_index(POD_INDEX, util::uid(pod)) {
        if let Some(k) = slice_service(&s) {
            ctx.queue.add(k);
        }
    }
}

/// One sync of one Service's Endpoints and EndpointSlices.
async fn sync(ctx: &Ctx, key: &ObjectKey) -> Result<(), Error> {
    let ns = key.ns().unwrap_or_default();
    let svc = ctx.services.get(key);
    // A Service being deleted gets no new endpoint objects (its slices are its dependents:
    // recreating them would keep a foreground deletion waiting forever).
    if svc.as_deref().is_some_and(api::meta::is_deleting) {
        return Ok(());
    }
    let pods = ctx.pods.by_index(NS_INDEX, ns);
    let current = ctx.endpoints.get(key);
    if let Some(w) = super::plan_endpoints(ns, &key.name, svc.as_deref(), &pods, current.as_deref())
    {
        apply(ctx, &Resource::ENDPOINTS, ns, w).await?;
    }
    let existing: Vec<Arc<Value>> = ctx
        .slices
        .by_index(SERVICE_INDEX, &key.to_string())
        .into_iter()
        .filter(|s| s["metadata"]["labels"][SLICE_MANAGED_BY_LABEL] == SLICE_MANAGER)
        .collect();
    for w in super::plan_slices(ns, &key.name, svc.as_deref(), &pods, &existing) {
        apply(ctx, &Resource::ENDPOINTSLICES, ns, w).await?;
    }
    Ok(())
}

async fn apply(ctx: &Ctx, r: &Resource, ns: &str, w: Write) -> Result<(), Error> {
    let pp = PostParams::default();
    let res = match w {
        Write::Create(o) => match ctx.client.create(r, Some(ns), &o, &pp).await {
            // The cache is behind; its event brings the object and another sync.
            Err(e) if e.is_already_exists() => Ok(Value::Null),
            other => other,
        },
        Write::Update(o) => {
            ctx.client
                .replace(r, Some(ns), util::name(&o), &o, &pp)
                .await
        }
        Write::Delete { name, uid } => {
            let dp = DeleteParams {
                precondition_uid: Some(uid),
                ..Default::default()
            };
            match ctx.client.delete(r, Some(ns), &name, &dp).await {
                Err(e) if e.is_not_found() => Ok(Value::Null),
                other => other,
            }
        }
    };
    res.map(|_| ()).map_err(Error::from)
}
