//! `drover bench footprint`: resident memory of an idle server with its local node agent
//! (the default `drover server`), and what 1,000 stored pods add.

use crate::stats::round2;
use crate::{BUSYBOX, BenchError, BenchServer, NodeServer, progress, say};
use client::{PostParams, Resource};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Time for start-up allocations to settle before memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// Runs the scenario: idle RSS of the control plane alone and of the server with its
/// agent (node Ready, no pods), then RSS after storing `pods` pod objects that no
/// scheduler takes (so they are stored, not run).
pub async fn run(exe: &Path, pods: usize) -> Result<Value, BenchError> {
    say("idle control plane alone (--no-agent)");
    let alone = BenchServer::start(exe)?;
    tokio::time::sleep(SETTLE).await;
    let idle_no_agent = alone.rss_mb()?;
    drop(alone);

    let node = NodeServer::start(exe, 110, "footprint").await?;
    let server = node.server();
    let client = server.client()?;
    tokio::time::sleep(SETTLE).await;
    let idle = node.node_rss_mb();
    say(format_args!("storing {pods} pods"));
    let bar = progress(pods as u64, "pods");
    for i in 0..pods {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "labels": {"app": "footprint"}},
            "spec": {"schedulerName": "bench-footprint-unscheduled",
                     "containers": [{"name": "c", "image": BUSYBOX, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
        client
            .create(
                &Resource::PODS,
                Some("default"),
                &pod,
                &PostParams::default(),
            )
            .await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    tokio::time::sleep(SETTLE).await;
    let loaded = node.node_rss_mb();
    Ok(json!({
        "scenario": "footprint",
        "idle_rss_mb": round2(idle),
        "idle_rss_mb_no_agent": round2(idle_no_agent),
        "pods": pods,
        "rss_mb_per_1000_pods": round2((loaded - idle) * 1000.0 / pods.max(1) as f64),
        "note": "idle = drover server with its local agent, node Ready, no pods; the pods are stored but left unscheduled (schedulerName nobody serves)",
    }))
}
