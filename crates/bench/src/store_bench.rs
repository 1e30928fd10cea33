//! `drover bench store`: writes per second and put-to-watch delay of drover's embedded
//! SQLite store, side by side with a real etcd (Debian's etcd-server) that the benchmark
//! starts on loopback with a temporary data directory, doing the same sequence through
//! the same `Store` trait (drover's etcd backend): C concurrent writers create N keys,
//! then update each once with compare-and-swap, while one watcher receives every event.

use crate::stats::{p50_p99, round2};
use crate::tools::{free_port, require_file};
use crate::{BenchError, progress, say};
use futures::StreamExt;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::SharedStore;

/// What the scenario does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Keys created (each is then updated once: 2 × keys writes).
    pub keys: usize,
    /// Concurrent writers.
    pub clients: usize,
}

const ETCD: &str = "/usr/bin/etcd";
const PREFIX: &str = "/bench/";

/// One backend's figures.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Acknowledged writes per second.
    pub writes_per_second: f64,
    /// Put-to-watch delays in ms.
    pub delays: Vec<f64>,
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A value about the size of a small Kubernetes object, stamped with its send time.
fn value(pad: &str) -> Vec<u8> {
    format!("{{\"sent\":\"{}\",\"pad\":\"{pad}\"}}", now_nanos()).into_bytes()
}

/// Runs the write sequence against `store` and returns its figures.
pub async fn drive(store: SharedStore, opts: &Options, label: &str) -> Result<Figures, BenchError> {
    let clients = opts.clients.max(1);
    let per_client = opts.keys.div_ceil(clients).max(1);
    let total = per_client * clients * 2;
    let start = store.current_revision();
    let mut events = store.watch(PREFIX, start)?;
    let watcher = tokio::spawn(async move {
        let mut delays = Vec::with_capacity(total);
        while delays.len() < total {
            match tokio::time::timeout(Duration::from_secs(60), events.next()).await {
                Ok(Some(Ok(ev))) => {
                    let v: Value = serde_json::from_slice(&ev.kv.value).unwrap_or(Value::Null);
                    let sent: u128 = v["sent"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                    delays.push(now_nanos().saturating_sub(sent) as f64 / 1e6);
                }
                other => {
                    return Err(format!(
                        "the store watch ended after {} of {total} events: {other:?}",
                        delays.len()
                    ));
                }
            }
        }
        Ok(delays)
    });
    let pad: Arc<str> = "x".repeat(480).into();
    let bar = progress(total as u64, label);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        let pad = pad.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let key = format!("{PREFIX}k{c}-{i}");
                revs.push((key.clone(), store.create(&key, value(&pad)).await?));
                bar.inc(1);
            }
            for (key, rev) in revs {
                store.update(&key, value(&pad), rev).await?;
                bar.inc(1);
            }
            Ok::<_, store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Watch(format!("a writer task failed: {e}")))??;
    }
    let seconds = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let delays = watcher
        .await
        .map_err(|e| BenchError::Watch(format!("the watcher task failed: {e}")))?
        .map_err(BenchError::Watch)?;
    Ok(Figures {
        writes_per_second: total as f64 / seconds.max(1e-9),
        delays,
    })
}

/// Runs the scenario; returns the flat JSON report.
pub async fn run(opts: &Options) -> Result<Value, BenchError> {
    require_file(ETCD, "etcd-server")?;
    let dir = tempfile::tempdir().map_err(BenchError::io("creating the store directory"))?;
    say(format_args!(
        "drover's SQLite store: {} writers, {} creates + {} updates",
        opts.clients, opts.keys, opts.keys
    ));
    let sqlite: SharedStore = Arc::new(store::SqliteStore::open(dir.path().join("state.db"))?);
    let mut ours = drive(sqlite.clone(), opts, "sqlite").await?;
    drop(sqlite);

    say("etcd: starting Debian's etcd on loopback with a temporary data dir");
    let etcd = Etcd::start()?;
    let endpoint = format!("127.0.0.1:{}", etcd.port);
    let remote: SharedStore =
        Arc::new(store::EtcdStore::connect(&[endpoint], "/drover-bench").await?);
    say("etcd: the same sequence through drover's etcd backend");
    let mut theirs = drive(remote.clone(), opts, "etcd").await?;
    drop(remote);
    drop(etcd);

    let (w50, w99) = p50_p99(&mut ours.delays);
    let (e50, e99) = p50_p99(&mut theirs.delays);
    Ok(json!({
        "scenario": "store",
        "keys": opts.keys,
        "clients": opts.clients,
        "writes_per_second": round2(ours.writes_per_second),
        "etcd_writes_per_second": round2(theirs.writes_per_second),
        "ratio": round2(ours.writes_per_second / theirs.writes_per_second.max(1e-9)),
        "watch_delay_p50_ms": round2(w50),
        "watch_delay_p99_ms": round2(w99),
        "etcd_watch_delay_p50_ms": round2(e50),
        "etcd_watch_delay_p99_ms": round2(e99),
        "note": "same Store trait calls for both: creates then compare-and-swap updates from concurrent writers; every write durable before it is acknowledged",
    }))
}

/// A real etcd on free loopback ports with its data in a temporary directory, killed
/// (by PID) and removed on drop.
struct Etcd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Etcd {
    fn start() -> Result<Etcd, BenchError> {
        let dir = tempfile::tempdir().map_err(BenchError::io("creating etcd's data dir"))?;
        let (port, peer) = (free_port()?, free_port()?);
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))
            .map_err(BenchError::io("creating etcd's log"))?;
        let child = Command::new(ETCD)
            .args(["--name", "drover-bench", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("drover-bench={peer}")])
            .args(["--listen-metrics-urls", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::Tool {
                what: "starting etcd".into(),
                detail: format!("{e} (install Debian's etcd-server)"),
            })?;
        let mut etcd = Etcd { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy(port) {
            let exited = etcd.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let log =
                    std::fs::read_to_string(etcd.dir.path().join("etcd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                return Err(BenchError::Tool {
                    what: "etcd".into(),
                    detail: format!(
                        "did not become healthy ({}); its log ends with:\n{}",
                        exited.map_or("still starting after 60 s".into(), |s| s.to_string()),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(etcd)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}
