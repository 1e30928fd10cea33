//! `drover bench deploy`: a Deployment of P busybox replicas (image cached) on the real
//! local agent, timed from its POST until P pods are Running (watch), and the memory the
//! node spends per running pod; side by side with Docker Swarm mode doing the same.

use crate::pod_startup::with_log;
use crate::podwatch::{PodWatch, failure, is_running, name};
use crate::stats::round2;
use crate::{BUSYBOX, BenchError, NodeServer, progress, say};
use client::{PostParams, Resource};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the scenario does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Replicas.
    pub pods: usize,
    /// Also run Docker Swarm for comparison.
    pub swarm: bool,
}

const NS: &str = "default";
/// Time for status writes and allocator caches to settle before memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// The Deployment: P replicas of busybox sleeping.
pub fn deployment(replicas: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench-deploy"}},
                 "template": {"metadata": {"labels": {"app": "bench-deploy"}},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "c", "image": BUSYBOX,
                                                       "imagePullPolicy": "IfNotPresent",
                                                       "command": ["sleep", "3600"]}]}}}})
}

/// Runs the scenario; returns the flat JSON report.
pub async fn run(exe: &Path, opts: &Options) -> Result<Value, BenchError> {
    let pods = opts.pods.max(1);
    let node = NodeServer::start(exe, (pods + 10) as u32, "deploy").await?;
    let client = node.server().client()?;
    tokio::time::sleep(SETTLE).await;
    let before = node.node_rss_mb();
    let mut watch = PodWatch::start(&client, NS, Some("app=bench-deploy")).await?;
    say(format_args!(
        "drover: Deployment of {pods} replicas, timed until {pods}/{pods} Running"
    ));
    let bar = progress(pods as u64, "running");
    let t = Instant::now();
    client
        .create(
            &Resource::DEPLOYMENTS,
            Some(NS),
            &deployment(pods),
            &PostParams::default(),
        )
        .await?;
    let deadline = t + Duration::from_secs(600);
    let mut running = HashSet::new();
    while running.len() < pods {
        let p = watch
            .next(
                deadline,
                &format!("{} of {pods} pods Running after 600 s", running.len()),
            )
            .await
            .map_err(|e| with_log(e, &node))?;
        if is_running(&p) {
            if running.insert(name(&p).to_string()) {
                bar.inc(1);
            }
        } else if let Some(why) = failure(&p) {
            return Err(BenchError::Watch(why));
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(watch);
    tokio::time::sleep(SETTLE).await;
    let after = node.node_rss_mb();
    let conmon_pids = node.conmon_pids();
    let conmon_mb = crate::procs::rss_mb(&conmon_pids);
    let conmons = conmon_pids.len();
    let mb_per_pod = (after - before) / pods as f64;

    // Swarm runs alone: the node's containers go first so both get the whole machine.
    let keep = tempfile::tempdir().map_err(BenchError::io("creating a temporary directory"))?;
    let archive = keep.path().join("busybox.oci.tar");
    std::fs::copy(&node.image_archive, &archive)
        .map_err(BenchError::io("copying the busybox image archive"))?;
    drop(node);

    let swarm = if !opts.swarm {
        None
    } else if let Some(why) = crate::swarm::missing() {
        say(format_args!(
            "Docker Swarm is not installed, so its figures are null: {why}"
        ));
        None
    } else {
        let figures = tokio::task::spawn_blocking(move || crate::swarm::measure(&archive, pods))
            .await
            .map_err(|e| BenchError::Watch(format!("the Docker Swarm task failed: {e}")))??;
        Some(figures)
    };
    let ratio = |ours: f64, theirs: Option<f64>| {
        theirs.map_or(Value::Null, |t| json!(round2(ours / t.max(1e-9))))
    };
    Ok(json!({
        "scenario": "deploy",
        "pods": pods,
        "seconds_to_100": round2(seconds),
        "swarm_seconds_to_100": swarm.as_ref().map(|s| round2(s.seconds)),
        "ratio": ratio(seconds, swarm.as_ref().map(|s| s.seconds)),
        "mb_per_pod": round2(mb_per_pod),
        "swarm_mb_per_pod": swarm.as_ref().map(|s| round2(s.mb_per_pod)),
        "memory_ratio": ratio(mb_per_pod, swarm.as_ref().map(|s| s.mb_per_pod)),
        "node_rss_before_mb": round2(before),
        "node_rss_after_mb": round2(after),
        "conmon_processes": conmons,
        "conmon_mb_each": round2(conmon_mb / conmons.max(1) as f64),
        "server_mb_per_pod": round2((after - conmon_mb - before) / pods as f64),
        "note": "seconds_to_100 is for `pods` replicas; drover memory = server (incl. agent) + conmons, Swarm's = dockerd + containerd + shims; swarm tasks have no network (--bridge=none), drover pods get a CNI bridge IP",
    }))
}
