//! The horizontal pod autoscaler (autoscaling/v2, CPU and memory resource metrics):
//! every 15 s it reads each target's scale and its pods' usage from metrics.k8s.io,
//! and sets the replica count Kubernetes' algorithm gives: `ceil(current × usage /
//! target)`, within a 10 % tolerance, clamped to min/max, scaling down only to the
//! highest recommendation of the last 5 minutes (downscale stabilization).

use crate::Options;
use api::quantity::Quantity;
use client::{Client, ListParams, Patch, PatchParams, Resource};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How often every autoscaler is evaluated (kube-controller-manager's default).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// Recommendations older than this no longer hold a scale-down back.
pub const DOWNSCALE_WINDOW: Duration = Duration::from_secs(300);
/// Ratios within this distance of 1 change nothing.
pub const TOLERANCE: f64 = 0.1;

/// The replica count for `current` replicas whose pods use `usage` of `request` (summed
/// over pods with metrics) against a target utilization in percent.
pub fn desired_replicas(current: u32, usage: f64, request: f64, target_percent: f64) -> u32 {
    if current == 0 || request <= 0.0 || target_percent <= 0.0 {
        return current;
    }
    let ratio = (usage / request * 100.0) / target_percent;
    if (ratio - 1.0).abs() <= TOLERANCE {
        return current;
    }
    (f64::from(current) * ratio).ceil().max(1.0) as u32
}

/// Kubernetes' quantity for CPU (cores) or memory (bytes) as a float; usage comes in
/// nanocores, finer than milli-units.
fn amount(q: &str) -> Option<f64> {
    if let Some(n) = q.strip_suffix('n') {
        return n.parse::<f64>().ok().map(|v| v / 1e9);
    }
    if let Some(u) = q.strip_suffix('u') {
        return u.parse::<f64>().ok().map(|v| v / 1e6);
    }
    Quantity::parse(q)
        .ok()
        .map(|q| q.milli_value() as f64 / 1000.0)
}

fn resource_of(obj: &Value) -> Option<Resource> {
    let kind = obj["kind"].as_str()?;
    Some(match kind {
        "Deployment" => Resource::DEPLOYMENTS,
        "ReplicaSet" => Resource::REPLICASETS,
        "StatefulSet" => Resource::STATEFULSETS,
        _ => return None,
    })
}

/// The target utilization of the first CPU or memory Resource metric.
fn target(hpa: &Value) -> Option<(String, f64)> {
    hpa["spec"]["metrics"].as_array()?.iter().find_map(|m| {
        let r = &m["resource"];
        let name = r["name"].as_str()?;
        let pct = r["target"]["averageUtilization"].as_f64()?;
        (m["type"] == "Resource" && (name == "cpu" || name == "memory"))
            .then(|| (name.to_string(), pct))
    })
}

/// Runs the autoscaler until dropped.
pub async fn run(client: Client, options: Options) {
    let _ = options;
    let mut history: HashMap<String, VecDeque<(Instant, u32)>> = HashMap::new();
    loop {
        match client
            .list(
                &Resource::HORIZONTALPODAUTOSCALERS,
                None,
                &ListParams::default(),
            )
            .await
        {
            Ok(list) => {
                for hpa in &list.items {
                    if let Err(e) = sync(&client, hpa, &mut history).await {
                        tracing::warn!(
                            "autoscaler {}/{}: {e}",
                            hpa["metadata"]["namespace"].as_str().unwrap_or_default(),
                            hpa["metadata"]["name"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
            Err(e) => tracing::warn!("autoscaler: listing: {e}"),
        }
        tokio::time::sleep(SYNC_PERIOD).await;
    }
}

async fn sync(
    client: &Client,
    hpa: &Value,
    history: &mut HashMap<String, VecDeque<(Instant, u32)>>,
) -> Result<(), client::Error> {
    let ns = hpa["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = hpa["metadata"]["name"].as_str().unwrap_or_default();
    let target_ref = &hpa["spec"]["scaleTargetRef"];
    let Some(r) = resource_of(target_ref) else {
        return Ok(());
    };
    let Some(target_name) = target_ref["name"].as_str() else {
        return Ok(());
    };
    let Some((metric, target_pct)) = target(hpa) else {
        return Ok(());
    };
    let scale = client
        .request(
            http::Method::GET,
            &r.path(Some(ns), Some(target_name), Some("scale")),
            None,
        )
        .await?;
    let current = scale["spec"]["replicas"].as_u64().unwrap_or(0) as u32;
    let selector = scale["status"]["selector"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap_or(1) as u32;
    let max = hpa["spec"]["maxReplicas"]
        .as_u64()
        .unwrap_or(u64::from(current.max(1))) as u32;
    let pods = client
        .list(
            &Resource::PODS,
            Some(ns),
            &ListParams::default().labels(selector.clone()),
        )
        .await?;
    let metrics_path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector={}",
        percent_encode(&selector)
    );
    let metrics = client
        .request(http::Method::GET, &metrics_path, None)
        .await?;
    let mut usage = 0.0;
    let mut request = 0.0;
    let mut measured = 0;
    for pm in metrics["items"].as_array().into_iter().flatten() {
        let pod_name = pm["metadata"]["name"].as_str().unwrap_or_default();
        let Some(pod) = pods
            .items
            .iter()
            .find(|p| p["metadata"]["name"] == pod_name)
        else {
            continue;
        };
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let used: f64 = pm["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["usage"][metric.as_str()].as_str().and_then(amount))
            .sum();
        let req: f64 = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                c["resources"]["requests"][metric.as_str()]
                    .as_str()
                    .and_then(amount)
            })
            .sum();
        if req > 0.0 {
            usage += used;
            request += req;
            measured += 1;
        }
    }
    let key = format!("{ns}/{name}");
    let (desired, status_util) = if measured == 0 {
        (current, None)
    } else {
        let d = desired_replicas(current, usage, request, target_pct).clamp(min.max(1), max.max(1));
        (d, Some((usage / request * 100.0).round() as i64))
    };
    // Downscale stabilization: never below the highest recommendation of the window.
    let now = Instant::now();
    let recs = history.entry(key).or_default();
    recs.push_back((now, desired));
    while recs
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) > DOWNSCALE_WINDOW)
    {
        recs.pop_front();
    }
    let stabilized = if desired < current {
        recs.iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(desired)
            .min(current)
    } else {
        desired
    };
    let stabilized = stabilized.clamp(min.max(1), max.max(1));
    if stabilized != current && current > 0 {
        let patch = Patch::Merge(json!({"spec": {"replicas": stabilized}}));
        client
            .patch_scale(&r, Some(ns), target_name, &patch, &PatchParams::default())
            .await?;
        tracing::info!(
            "autoscaler {ns}/{name}: {current} → {stabilized} replicas ({metric} at {status_util:?}% of {target_pct}%)"
        );
    }
    let mut status = json!({
        "currentReplicas": current,
        "desiredReplicas": stabilized,
        "conditions": [{"type": "ScalingActive", "status": if measured > 0 { "True" } else { "False" },
            "reason": if measured > 0 { "ValidMetricFound" } else { "FailedGetResourceMetric" },
            "message": if measured > 0 { "the HPA was able to successfully calculate a replica count" } else { "no metrics returned from resource metrics API" }}],
    });
    if stabilized != current {
        status["lastScaleTime"] = json!(crate::util::format_time(time::OffsetDateTime::now_utc()));
    }
    if let Some(u) = status_util {
        status["currentMetrics"] = json!([{"type": "Resource", "resource": {"name": metric, "current": {"averageUtilization": u}}}]);
    }
    client
        .patch_status(
            &Resource::HORIZONTALPODAUTOSCALERS,
            Some(ns),
            name,
            &Patch::Merge(json!({"status": status})),
            &PatchParams::default(),
        )
        .await?;
    Ok(())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_replica_algorithm() {
        // 2 pods at 90% of requests against a 50% target → ceil(2 × 1.8) = 4.
        assert_eq!(desired_replicas(2, 0.9 * 0.2, 0.2, 50.0), 4);
        // Within the 10% tolerance nothing changes.
        assert_eq!(desired_replicas(3, 0.52, 1.0, 50.0), 3);
        // Idle pods scale down.
        assert_eq!(desired_replicas(4, 0.04, 0.4, 50.0), 1);
        assert_eq!(desired_replicas(0, 1.0, 1.0, 50.0), 0);
        assert_eq!(desired_replicas(2, 1.0, 0.0, 50.0), 2);
    }

    #[test]
    fn targets_and_quantities() {
        let hpa = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
        assert_eq!(target(&hpa), Some(("cpu".to_string(), 50.0)));
        assert_eq!(amount("250m"), Some(0.25));
        assert_eq!(amount("1500000n"), Some(0.0015));
        assert_eq!(
            percent_encode("app=web,x in (a)"),
            "app%3Dweb%2Cx%20in%20%28a%29"
        );
    }
}
