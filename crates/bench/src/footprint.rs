//! `drover bench footprint`: resident memory of an idle server, and what 1,000 pods add.

use crate::stats::round2;
use crate::{BenchError, BenchServer, progress};
use client::{PostParams, Resource};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Runs the scenario: idle RSS after start, then RSS after storing `pods` pod objects.
pub async fn run(exe: &Path, pods: usize) -> Result<Value, BenchError> {
    let server = BenchServer::start(exe)?;
    let client = server.client()?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let start-up allocations settle
    let idle = server.rss_mb()?;
    let bar = progress(pods as u64, "pods");
    for i in 0..pods {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "labels": {"app": "footprint"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
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
    let loaded = server.rss_mb()?;
    Ok(json!({
        "scenario": "footprint",
        "idle_rss_mb": round2(idle),
        "pods": pods,
        "rss_mb_per_1000_pods": round2((loaded - idle) * 1000.0 / pods.max(1) as f64),
        "note": "control plane only: the node agent is not built yet",
    }))
}
