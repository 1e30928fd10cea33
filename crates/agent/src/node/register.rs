//! The Node object of a real agent: registration, status heartbeats and the Lease.

use super::Ctx;
use super::machine::{Machine, arch};
use client::{Patch, PatchParams, PostParams, Resource};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Lease duration (the node lifecycle controller's grace is a server flag, 20 s by
/// default; the lease is renewed every quarter of this).
pub const LEASE_SECONDS: u32 = 20;

fn resources(m: &Machine, max_pods: u32) -> Value {
    json!({
        "cpu": m.cpus.to_string(),
        "memory": format!("{}Ki", m.memory_bytes / 1024),
        "pods": max_pods.to_string(),
        "ephemeral-storage": format!("{}Ki", m.disk_bytes / 1024),
    })
}

/// The node's status now.
pub fn node_status(ctx: &Ctx, m: &Machine, ready_since: &str) -> Value {
    let now = crate::hollow::timestamp(false);
    let cond =
        |type_: &str, bad: bool, ok_reason: &str, ok_msg: &str, bad_reason: &str, bad_msg: &str| {
            let (status, reason, message) = if bad {
                ("True", bad_reason, bad_msg)
            } else {
                ("False", ok_reason, ok_msg)
            };
            json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": ready_since})
        };
    let images: Vec<Value> = ctx
        .images
        .list()
        .unwrap_or_default()
        .into_iter()
        .take(50)
        .map(|i| {
            let names = [i.repo_digests.clone(), i.references.clone()].concat();
            json!({"names": names, "sizeBytes": i.size})
        })
        .collect();
    json!({
        "capacity": resources(m, ctx.cfg.max_pods),
        "allocatable": resources(m, ctx.cfg.max_pods),
        "conditions": [
            cond("MemoryPressure", m.memory_pressure(), "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
            cond("DiskPressure", m.disk_pressure(), "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
            cond("PIDPressure", m.pid_pressure(), "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": now, "lastTransitionTime": ready_since},
        ],
        "addresses": [
            {"type": "InternalIP", "address": ctx.cfg.node_ip.to_string()},
            {"type": "Hostname", "address": ctx.cfg.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": ctx.port}},
        "nodeInfo": {
            "machineID": m.machine_id,
            "systemUUID": m.machine_id,
            "bootID": m.boot_id,
            "kernelVersion": m.kernel,
            "osImage": m.os_image,
            "containerRuntimeVersion": ctx.runtime.runtime_version().replacen(' ', "://", 1),
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "v1.33.0",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
        "images": images,
    })
}

/// Registers the node (create, or re-label an existing one keeping its spec) and
/// returns its uid and spec.podCIDR.
pub async fn register(
    ctx: &Ctx,
    ready_since: &str,
) -> Result<(String, Option<String>), client::Error> {
    let m = Machine::read(&ctx.cfg.data_dir);
    let mut labels = json!({
        "beta.kubernetes.io/arch": arch(), "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(), "kubernetes.io/hostname": ctx.cfg.name, "kubernetes.io/os": "linux",
    });
    for (k, v) in &ctx.cfg.labels {
        labels[k] = json!(v);
    }
    let mut spec = json!({});
    if let Some(cidr) = &ctx.cfg.pod_cidr {
        spec = json!({"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]});
    }
    if !ctx.cfg.taints.is_empty() {
        spec["taints"] = json!(ctx.cfg.taints);
    }
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": ctx.cfg.name, "labels": labels},
        "spec": spec,
    });
    let obj = match ctx
        .client
        .create(&Resource::NODES, None, &node, &PostParams::default())
        .await
    {
        Ok(n) => n,
        Err(e) if e.is_already_exists() => {
            let mut patch = json!({"metadata": {"labels": labels}});
            let existing = ctx
                .client
                .get(&Resource::NODES, None, &ctx.cfg.name)
                .await?;
            if existing["spec"]["podCIDR"].is_null() && ctx.cfg.pod_cidr.is_some() {
                patch["spec"] = spec;
            }
            ctx.client
                .patch(
                    &Resource::NODES,
                    None,
                    &ctx.cfg.name,
                    &Patch::Merge(patch),
                    &PatchParams::default(),
                )
                .await?
        }
        Err(e) => return Err(e),
    };
    let status = Patch::Merge(json!({"status": node_status(ctx, &m, ready_since)}));
    ctx.client
        .patch_status(
            &Resource::NODES,
            None,
            &ctx.cfg.name,
            &status,
            &PatchParams::default(),
        )
        .await?;
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    crate::hollow::renew_node_lease(&ctx.client, &ctx.cfg.name, LEASE_SECONDS, Some(&uid)).await?;
    Ok((uid, obj["spec"]["podCIDR"].as_str().map(str::to_string)))
}

/// Renews the Lease every 5 s and the status every 10 s, re-registering a node that
/// was deleted. Runs until dropped.
pub async fn heartbeat(ctx: Arc<Ctx>, mut uid: String, ready_since: String) {
    let mut lease = tokio::time::interval(Duration::from_secs(u64::from(LEASE_SECONDS / 4)));
    let mut status = tokio::time::interval(Duration::from_secs(10));
    lease.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    lease.tick().await;
    status.tick().await;
    loop {
        let r = tokio::select! {
            _ = lease.tick() => crate::hollow::renew_node_lease(&ctx.client, &ctx.cfg.name, LEASE_SECONDS, Some(&uid)).await,
            _ = status.tick() => {
                let m = Machine::read(&ctx.cfg.data_dir);
                let patch = Patch::Merge(json!({"status": node_status(&ctx, &m, &ready_since)}));
                match ctx.client.patch_status(&Resource::NODES, None, &ctx.cfg.name, &patch, &PatchParams::default()).await {
                    Err(e) if e.is_not_found() => match register(&ctx, &ready_since).await {
                        Ok((u, _)) => { uid = u; Ok(()) }
                        Err(e) => Err(e),
                    },
                    r => r.map(|_| ()),
                }
            }
        };
        if let Err(e) = r {
            tracing::warn!("node {}: heartbeat: {e}", ctx.cfg.name);
        }
    }
}
