//! `drover bench scheduler`: N hollow nodes (in this process) and a Deployment of P
//! replicas on a real server with its scheduler and controllers; placements per second,
//! time until every pod is Running, and the server's peak RSS.

use crate::stats::round2;
use crate::{BenchError, BenchServer, ServerError, progress};
use client::{ListParams, PostParams, Resource, WatchEvent};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the scenario does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Hollow nodes.
    pub nodes: u32,
    /// Replicas of the Deployment.
    pub pods: u32,
}

/// Placements per second of the scheduling core alone (filters, scores and the
/// incremental snapshot, no API): the same nodes and pods as the end-to-end run, so the
/// two figures show how much of a placement's cost is the scheduler's and how much the
/// API writes around it.
fn core_pods_per_second(opts: &Options, per_node: u32) -> Result<f64, BenchError> {
    let mut snap = scheduler::Snapshot::new();
    for i in 0..opts.nodes {
        let name = format!("hollow-{i}");
        snap.add_node(&json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": per_node.to_string()},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .map_err(|e| BenchError::Watch(format!("scheduler core: {e}")))?;
    }
    let config = scheduler::Config::default();
    let started = Instant::now();
    for i in 0..opts.pods {
        let pod = json!({
            "metadata": {"name": format!("bench-{i}"), "namespace": "default", "labels": {"app": "bench"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "bench",
                                     "uid": "bench-rs", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
        });
        let node = scheduler::schedule(&snap, &pod, &config)
            .map_err(|e| BenchError::Watch(format!("scheduler core: pod {i}: {e}")))?;
        snap.assume_pod(&pod, &node)
            .map_err(|e| BenchError::Watch(format!("scheduler core: pod {i}: {e}")))?;
    }
    Ok(f64::from(opts.pods) / started.elapsed().as_secs_f64().max(1e-6))
}

/// Runs the scenario against a server started from `exe`; returns the flat JSON report.
pub async fn run(exe: &Path, opts: &Options) -> Result<Value, BenchError> {
    let per_node = (opts.pods / opts.nodes.max(1) + 10).max(110);
    let core = core_pods_per_second(opts, per_node)?;
    // Kubernetes' scale settings: kubelets renew their Lease every 10 s and the node
    // controller allows 40 s. Drover's small-cluster defaults (5 s, 20 s) would double
    // the heartbeat writes (1,000 a second for 5,000 nodes) and measure those instead.
    let server = BenchServer::start_in(
        exe,
        tempfile::tempdir().map_err(ServerError::from)?,
        &["--no-agent", "--node-monitor-grace", "40"].map(String::from),
    )?;
    let client = server.client()?;
    let hollow = agent::hollow::HollowOptions {
        cpu: "64".into(),
        memory: "256Gi".into(),
        pods: per_node,
        // The kubelet writes an unchanged node status every 5 minutes (its Lease every
        // 10 s is the heartbeat); once a minute keeps the fleet's load on the API honest.
        status_interval: Duration::from_secs(60),
        lease_duration_seconds: 40,
        ..Default::default()
    };
    let fleet = tokio::spawn(agent::hollow::run_many(
        client.clone(),
        opts.nodes,
        "hollow",
        hollow,
    ));

    let bar = progress(u64::from(opts.nodes), "nodes");
    loop {
        let nodes = client
            .list(&Resource::NODES, None, &ListParams::default())
            .await?;
        bar.set_position(nodes.items.len() as u64);
        if nodes.items.len() >= opts.nodes as usize {
            break;
        }
        // A list of thousands of nodes is megabytes: ask once a second, not more.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bar.finish_and_clear();

    let start_rv = client
        .list(
            &Resource::PODS,
            Some("default"),
            &ListParams::default().limit(1),
        )
        .await?
        .resource_version;
    let mut events = Box::pin(
        client
            .watch(
                &Resource::PODS,
                Some("default"),
                &ListParams::default(),
                &start_rv,
            )
            .await?,
    );
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
        "spec": {"replicas": opts.pods, "selector": {"matchLabels": {"app": "bench"}},
                 "template": {"metadata": {"labels": {"app": "bench"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox",
                                       "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}});
    let started = Instant::now();
    client
        .create(
            &Resource::DEPLOYMENTS,
            Some("default"),
            &deploy,
            &PostParams::default(),
        )
        .await?;
    let (mut created, mut bound, mut running) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut last_created = Duration::ZERO;
    let (mut first_bound, mut last_bound) = (None, Duration::ZERO);
    let bar = progress(u64::from(opts.pods), "running");
    while running.len() < opts.pods as usize {
        let ev = tokio::time::timeout(Duration::from_secs(300), events.next())
            .await
            .map_err(|_| {
                BenchError::Watch(format!(
                    "no progress for 5 minutes at {} running",
                    running.len()
                ))
            })?;
        let obj = match ev {
            Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o))) => o,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::Watch("the pod watch ended".into())),
        };
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if created.insert(name.clone()) {
            last_created = started.elapsed();
        }
        if obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
            && bound.insert(name.clone())
        {
            let t = started.elapsed();
            first_bound.get_or_insert(t);
            last_bound = t;
        }
        if obj["status"]["phase"] == json!("Running") && running.insert(name) {
            bar.inc(1);
        }
    }
    let all_running = started.elapsed();
    bar.finish_and_clear();
    fleet.abort();
    let placing = last_bound
        .saturating_sub(first_bound.unwrap_or_default())
        .as_secs_f64();
    Ok(json!({
        "scenario": "scheduler",
        "nodes": opts.nodes,
        "pods": opts.pods,
        "pods_per_second": round2(f64::from(opts.pods) / placing.max(1e-3)),
        "core_pods_per_second": round2(core),
        "seconds_to_first_bound": round2(first_bound.unwrap_or_default().as_secs_f64()),
        // The ReplicaSet controller's pace: placements cannot outrun pod creation.
        "seconds_to_all_created": round2(last_created.as_secs_f64()),
        "seconds_to_all_bound": round2(last_bound.as_secs_f64()),
        "seconds_to_all_running": round2(all_running.as_secs_f64()),
        "server_peak_rss_mb": round2(server.peak_rss_mb()?),
        "note": "the hollow nodes run inside the benchmark process, not the server",
    }))
}
