//! Resource figures for `kubectl top`: the kubelet Summary API (`/stats/summary`)
//! from cgroup counters of each container and /proc for the node. CPU rates need two
//! samples, so a background loop samples every 5 s and a request rates against the
//! latest sample.

use super::Ctx;
use super::worker::rfc3339;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The last cumulative CPU reading and the rate it gave, per container id ("" for
/// the node).
#[derive(Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, (Instant, u64, u64)>>,
}

impl Sampler {
    /// Records a cumulative CPU reading (ns); the rate is updated when the previous
    /// reading is at least half a second old.
    pub fn record(&self, key: &str, cumulative_ns: u64) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = match last.get(key) {
            Some((t, _, _)) if now.duration_since(*t) < Duration::from_millis(500) => return,
            Some((t, v, _)) => {
                let dt = now.duration_since(*t).as_nanos().max(1);
                (u128::from(cumulative_ns.saturating_sub(*v)) * 1_000_000_000 / dt) as u64
            }
            None => 0,
        };
        last.insert(key.to_string(), (now, cumulative_ns, rate));
    }

    /// The latest rate in nanocores (0 before two readings).
    pub fn rate(&self, key: &str) -> u64 {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map_or(0, |s| s.2)
    }

    /// Drops readings of containers that are gone.
    pub fn retain(&self, keep: &std::collections::HashSet<String>) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| k.is_empty() || keep.contains(k));
    }
}

/// The node's cumulative busy CPU time in nanoseconds (/proc/stat, USER_HZ = 100).
pub fn node_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle.min(total)) * 10_000_000
}

async fn sample_once(ctx: &Ctx) {
    ctx.stats.record("", node_cpu_ns());
    let ids: std::collections::HashSet<String> = ctx
        .pods
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .flat_map(|p| {
            p.containers
                .values()
                .filter(|c| c.2)
                .map(|c| c.0.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    for id in &ids {
        if let Ok(s) = ctx.runtime.stats(id).await {
            ctx.stats.record(id, s.cpu_usage_ns);
        }
    }
    ctx.stats.retain(&ids);
}

/// Samples every 5 s (and twice quickly at start, so figures exist soon).
pub async fn sample_loop(ctx: Arc<Ctx>) {
    sample_once(&ctx).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    loop {
        sample_once(&ctx).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// The kubelet Summary API document.
pub async fn summary(ctx: &Ctx) -> Value {
    let now = rfc3339(SystemTime::now());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = super::machine::meminfo(&mem, "MemTotal").unwrap_or(0);
    let avail = super::machine::meminfo(&mem, "MemAvailable").unwrap_or(0);
    let node = json!({
        "nodeName": ctx.cfg.name,
        "startTime": now,
        "cpu": {"time": now, "usageNanoCores": ctx.stats.rate(""), "usageCoreNanoSeconds": node_cpu_ns()},
        "memory": {"time": now, "workingSetBytes": total.saturating_sub(avail), "usageBytes": total.saturating_sub(avail), "availableBytes": avail},
    });
    let pods: Vec<(String, super::PodEntry)> = ctx
        .pods
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = Vec::new();
    for (key, entry) in pods {
        let (ns, name) = key.split_once('/').unwrap_or(("default", &key));
        let mut containers = Vec::new();
        let (mut pod_cpu, mut pod_cpu_total, mut pod_mem) = (0u64, 0u64, 0u64);
        for (cname, (id, _, running)) in &entry.containers {
            if !running {
                continue;
            }
            let Ok(s) = ctx.runtime.stats(id).await else {
                continue;
            };
            let rate = ctx.stats.rate(id);
            pod_cpu += rate;
            pod_cpu_total += s.cpu_usage_ns;
            pod_mem += s.memory_working_set_bytes;
            containers.push(json!({
                "name": cname,
                "startTime": now,
                "cpu": {"time": now, "usageNanoCores": rate, "usageCoreNanoSeconds": s.cpu_usage_ns},
                "memory": {"time": now, "workingSetBytes": s.memory_working_set_bytes, "usageBytes": s.memory_usage_bytes},
            }));
        }
        if containers.is_empty() {
            continue;
        }
        out.push(json!({
            "podRef": {"name": name, "namespace": ns, "uid": entry.uid},
            "startTime": now,
            "containers": containers,
            "cpu": {"time": now, "usageNanoCores": pod_cpu, "usageCoreNanoSeconds": pod_cpu_total},
            "memory": {"time": now, "workingSetBytes": pod_mem},
        }));
    }
    json!({"node": node, "pods": out})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cpu_counter_moves() {
        let a = node_cpu_ns();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(node_cpu_ns() >= a);
        assert!(a > 0);
    }
}
