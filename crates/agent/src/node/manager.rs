//! The pods bound to this node: one worker per pod uid, fed the latest object; on
//! start, containers and sandboxes of pods that no longer exist are removed and the
//! rest are handed to their workers for adoption.

use super::Ctx;
use super::worker::{self, LABEL_POD_UID};
use client::{Event, ListParams, Resource};
use futures::StreamExt;
use oci_runtime::ContainerInfo;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;

struct Running {
    tx: watch::Sender<Option<Arc<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Watches this node's pods and runs their workers until dropped.
pub async fn run(ctx: Arc<Ctx>) {
    let mut adoptable: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
    match ctx.runtime.list().await {
        Ok(all) => {
            for info in all {
                if let Some(uid) = info.labels.get(LABEL_POD_UID) {
                    adoptable.entry(uid.clone()).or_default().push(info);
                }
            }
        }
        Err(e) => tracing::warn!("node {}: listing containers: {e}", ctx.cfg.name),
    }
    let mut workers: HashMap<String, Running> = HashMap::new();
    let mut first_list = true;
    let params = ListParams::default().fields(format!("spec.nodeName={}", ctx.cfg.name));
    let mut events = std::pin::pin!(client::watcher(
        ctx.client.clone(),
        Resource::PODS,
        None,
        params
    ));
    while let Some(ev) = events.next().await {
        workers.retain(|_, w| !w.task.is_finished());
        match ev {
            Err(e) => tracing::warn!("node {}: pod watch: {e}", ctx.cfg.name),
            Ok(Event::Applied(p)) => feed(&ctx, &mut workers, &mut adoptable, p),
            Ok(Event::Deleted(p)) => {
                if let Some(w) = p["metadata"]["uid"].as_str().and_then(|u| workers.get(u)) {
                    let _ = w.tx.send(None);
                }
            }
            Ok(Event::Restarted(list)) => {
                let live: HashSet<String> = list
                    .iter()
                    .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
                    .collect();
                for (uid, w) in &workers {
                    if !live.contains(uid) {
                        let _ = w.tx.send(None);
                    }
                }
                if first_list {
                    first_list = false;
                    remove_orphans(&ctx, &live, &mut adoptable).await;
                }
                for p in list {
                    feed(&ctx, &mut workers, &mut adoptable, p);
                }
            }
        }
    }
}

fn feed(
    ctx: &Arc<Ctx>,
    workers: &mut HashMap<String, Running>,
    adoptable: &mut HashMap<String, Vec<ContainerInfo>>,
    pod: Value,
) {
    let Some(uid) = pod["metadata"]["uid"].as_str().map(str::to_string) else {
        return;
    };
    let pod = Arc::new(pod);
    if let Some(w) = workers.get(&uid) {
        let _ = w.tx.send(Some(pod));
        return;
    }
    // A finished pod whose worker already cleaned up and removed it needs nothing.
    let (tx, rx) = watch::channel(Some(pod));
    let adopted = adoptable.remove(&uid).unwrap_or_default();
    let task = tokio::spawn(worker::run(ctx.clone(), rx, adopted));
    workers.insert(uid, Running { tx, task });
}

/// Removes containers, sandboxes and pod directories of pods the API no longer has.
async fn remove_orphans(
    ctx: &Ctx,
    live: &HashSet<String>,
    adoptable: &mut HashMap<String, Vec<ContainerInfo>>,
) {
    let dead: Vec<String> = adoptable
        .keys()
        .filter(|u| !live.contains(*u))
        .cloned()
        .collect();
    for uid in &dead {
        for info in adoptable.remove(uid).unwrap_or_default() {
            tracing::info!(
                "node {}: removing container {} of deleted pod {uid}",
                ctx.cfg.name,
                info.id
            );
            if let Err(e) = ctx.runtime.remove(&info.id).await {
                tracing::warn!("removing container {}: {e}", info.id);
            }
            let _ = ctx.images.unmount_rootfs(&ctx.container_dir(&info.id));
        }
    }
    if let Ok(uids) = ctx.net.list_pod_uids() {
        for uid in uids {
            if !live.contains(&uid) {
                tracing::info!(
                    "node {}: removing the sandbox of deleted pod {uid}",
                    ctx.cfg.name
                );
                if let Err(e) = ctx.net.remove_sandbox(&uid).await {
                    tracing::warn!("removing sandbox {uid}: {e}");
                }
            }
        }
    }
    if let Ok(dirs) = std::fs::read_dir(ctx.cfg.data_dir.join("pods")) {
        for d in dirs.flatten() {
            let uid = d.file_name().to_string_lossy().to_string();
            if !live.contains(&uid) {
                let _ = super::volumes::teardown(&d.path().join("volumes")).await;
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
    }
    // Rootfs mounts of containers that no longer exist.
    if let Ok(dirs) = std::fs::read_dir(ctx.cfg.data_dir.join("containers")) {
        let known: HashSet<String> = ctx
            .runtime
            .list()
            .await
            .map(|l| l.into_iter().map(|i| i.id).collect())
            .unwrap_or_default();
        for d in dirs.flatten() {
            let id = d.file_name().to_string_lossy().to_string();
            if !known.contains(&id) {
                let _ = ctx.images.unmount_rootfs(&d.path());
            }
        }
    }
}
