//! `drover bench pod-startup`: time from the POST of a Pod (image cached) to its status
//! Running as a watch sees it, for pods created one after another on the real local
//! agent (runc under conmon, CNI bridge), side by side with the floor: `runc run -d` of
//! an equivalent bundle with no orchestrator.

use crate::podwatch::{PodWatch, failure, is_running, name};
use crate::stats::{p50_p99, round2};
use crate::{BUSYBOX, BenchError, NodeServer, progress, say};
use client::{PostParams, Resource};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the scenario does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Pods created one after another (and `runc run -d` calls for the floor).
    pub pods: usize,
}

/// Untimed starts before the timed ones (first bridge, first image mount, cold caches).
const WARMUP: usize = 1;
const NS: &str = "default";

/// The pod the scenario creates: busybox sleeping, as the floor's bundle does.
pub fn pod(name: &str, label: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": label}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sleep", "3600"]}]}})
}

/// Runs the scenario; returns the flat JSON report.
pub async fn run(exe: &Path, opts: &Options) -> Result<Value, BenchError> {
    let pods = opts.pods.max(1);
    say(format_args!(
        "floor: {pods} sequential `runc run -d` of a busybox bundle"
    ));
    let mut floor = tokio::task::spawn_blocking(move || crate::runc_floor::measure(pods, WARMUP))
        .await
        .map_err(|e| BenchError::Watch(format!("the runc floor task failed: {e}")))??;

    let node = NodeServer::start(exe, (pods + WARMUP + 10) as u32, "pod-startup").await?;
    let client = node.server().client()?;
    let mut watch = PodWatch::start(&client, NS, Some("bench=pod-startup")).await?;
    say(format_args!(
        "drover: {pods} pods created one after another, each timed until Running"
    ));
    let bar = progress(pods as u64, "pods");
    let mut samples = Vec::with_capacity(pods);
    let mut bound = Vec::with_capacity(pods);
    for i in 0..pods + WARMUP {
        let pod_name = format!("startup-{i}");
        let t = Instant::now();
        client
            .create(
                &Resource::PODS,
                Some(NS),
                &pod(&pod_name, "pod-startup"),
                &PostParams::default(),
            )
            .await?;
        let deadline = t + Duration::from_secs(120);
        let mut bound_at = None;
        loop {
            let p = watch
                .next(
                    deadline,
                    &format!("pod {pod_name} was not Running within 120 s"),
                )
                .await
                .map_err(|e| with_log(e, &node))?;
            if name(&p) != pod_name {
                continue;
            }
            if bound_at.is_none()
                && p["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
            {
                bound_at = Some(t.elapsed());
            }
            if is_running(&p) {
                break;
            }
            if let Some(why) = failure(&p) {
                return Err(BenchError::Watch(why));
            }
        }
        if i >= WARMUP {
            let running = t.elapsed();
            samples.push(running.as_secs_f64() * 1000.0);
            bound.push(bound_at.unwrap_or(running).as_secs_f64() * 1000.0);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    drop(watch);
    drop(node);

    let (p50, p99) = p50_p99(&mut samples);
    let (f50, f99) = p50_p99(&mut floor);
    let (b50, b99) = p50_p99(&mut bound);
    Ok(json!({
        "scenario": "pod-startup",
        "pods": pods,
        "p50_ms": round2(p50),
        "p99_ms": round2(p99),
        "bound_p50_ms": round2(b50),
        "bound_p99_ms": round2(b99),
        "runc_floor_p50_ms": round2(f50),
        "runc_floor_p99_ms": round2(f99),
        "ratio_p50": round2(p50 / f50.max(1e-9)),
        "warmup": WARMUP,
        "note": "sequential creates; drover = POST to Running seen by a watch (conmon, CNI bridge, status write included); floor = runc run -d alone",
    }))
}

/// Adds the server's last log lines to a timeout, where the cause usually is.
pub(crate) fn with_log(e: BenchError, node: &NodeServer) -> BenchError {
    match e {
        BenchError::Timeout(what) => BenchError::Timeout(format!(
            "{what}; the server's last log lines:\n{}",
            node.server().log_tail()
        )),
        e => e,
    }
}
