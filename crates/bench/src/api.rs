//! `drover bench api`: create/update/get/list latency and throughput under concurrent
//! clients, with watchers that must receive every event (fan-out delay).

use crate::stats::{p50_p99, round2};
use crate::{BenchError, BenchServer, progress};
use client::{ListParams, PostParams, Resource, WatchEvent};
use futures::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the scenario does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Concurrent writing clients.
    pub clients: usize,
    /// Concurrent watchers, each of which must see every create.
    pub watchers: usize,
    /// Objects created (then updated and read) in all.
    pub objects: usize,
}

const NS: &str = "bench";

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the scenario against a server started from `exe`; returns the flat JSON report.
pub async fn run(exe: &Path, opts: &Options) -> Result<Value, BenchError> {
    let server = BenchServer::start(exe)?;
    let client = server.client()?;
    let cm = Resource::CONFIGMAPS;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    client
        .create(&Resource::NAMESPACES, None, &ns, &PostParams::default())
        .await?;
    let per_client = opts.objects.div_ceil(opts.clients.max(1));
    let total = per_client * opts.clients.max(1);

    // Watchers first, from the current revision, so each must see every create.
    let rv = client
        .list(&cm, Some(NS), &ListParams::default())
        .await?
        .resource_version;
    let mut watchers = Vec::new();
    for _ in 0..opts.watchers {
        let mut stream = Box::pin(
            client
                .watch(&cm, Some(NS), &ListParams::default(), &rv)
                .await?,
        );
        watchers.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(total);
            while delays.len() < total {
                match tokio::time::timeout(Duration::from_secs(120), stream.next()).await {
                    Ok(Some(Ok(WatchEvent::Added(obj)))) => {
                        let sent: u128 = obj["metadata"]["annotations"]["bench/sent-nanos"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        delays.push(now_nanos().saturating_sub(sent) as f64 / 1e6);
                    }
                    Ok(Some(Ok(_))) => {}
                    other => {
                        return Err(format!(
                            "watch ended after {} of {total} events: {other:?}",
                            delays.len()
                        ));
                    }
                }
            }
            Ok(delays)
        }));
    }

    let bar = progress((total * 3) as u64, "api");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..opts.clients.max(1) {
        let client = client.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let cm = Resource::CONFIGMAPS;
            let mut creates = Vec::with_capacity(per_client);
            let mut objects = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("c{c}-{i}"), "annotations": {"bench/sent-nanos": now_nanos().to_string()}},
                    "data": {"value": "0"}});
                let t = Instant::now();
                let created = client.create(&cm, Some(NS), &obj, &PostParams::default()).await?;
                creates.push(ms(t.elapsed()));
                objects.push(created);
                bar.inc(1);
            }
            let mut updates = Vec::with_capacity(per_client);
            for mut obj in objects.clone() {
                obj["data"]["value"] = json!("1");
                let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let t = Instant::now();
                client.replace(&cm, Some(NS), &name, &obj, &PostParams::default()).await?;
                updates.push(ms(t.elapsed()));
                bar.inc(1);
            }
            let mut gets = Vec::with_capacity(per_client);
            for obj in &objects {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                let t = Instant::now();
                client.get(&cm, Some(NS), name).await?;
                gets.push(ms(t.elapsed()));
                bar.inc(1);
            }
            Ok::<_, client::Error>((creates, updates, gets))
        }));
    }
    let (mut creates, mut updates, mut gets) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        let (c, u, g) = t.await.map_err(|e| BenchError::Watch(e.to_string()))??;
        creates.extend(c);
        updates.extend(u);
        gets.extend(g);
    }
    let write_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let mut lists = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        client.list(&cm, Some(NS), &ListParams::default()).await?;
        lists.push(ms(t.elapsed()));
    }
    let mut delays = Vec::new();
    for w in watchers {
        delays.extend(
            w.await
                .map_err(|e| BenchError::Watch(e.to_string()))?
                .map_err(BenchError::Watch)?,
        );
    }
    let mut mutations: Vec<f64> = creates.iter().chain(updates.iter()).copied().collect();
    let (m50, m99) = p50_p99(&mut mutations);
    let (c50, c99) = p50_p99(&mut creates);
    let (u50, u99) = p50_p99(&mut updates);
    let (g50, g99) = p50_p99(&mut gets);
    let (l50, l99) = p50_p99(&mut lists);
    let (w50, w99) = p50_p99(&mut delays);
    Ok(json!({
        "scenario": "api",
        "clients": opts.clients, "watchers": opts.watchers, "objects": total,
        "requests_per_second": round2((creates.len() + updates.len() + gets.len()) as f64 / write_seconds.max(1e-9)),
        "mutation_p50_ms": round2(m50), "mutation_p99_ms": round2(m99),
        "create_p50_ms": round2(c50), "create_p99_ms": round2(c99),
        "update_p50_ms": round2(u50), "update_p99_ms": round2(u99),
        "get_p50_ms": round2(g50), "get_p99_ms": round2(g99),
        "list_p50_ms": round2(l50), "list_p99_ms": round2(l99),
        "watch_delay_p50_ms": round2(w50), "watch_delay_p99_ms": round2(w99),
        "server_rss_mb": round2(server.rss_mb()?),
    }))
}
