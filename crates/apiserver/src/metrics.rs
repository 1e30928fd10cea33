//! `metrics.k8s.io/v1beta1` (what `kubectl top` reads), served as metrics-server does:
//! each request scrapes the Ready nodes' agents' `/stats/summary` concurrently, skipping
//! the agents that do not answer in time, and turns the figures into NodeMetrics and
//! PodMetrics. Nothing is stored.

use crate::agents::Endpoint;
use crate::http::{self, Body};
use crate::read;
use crate::route::Target as ResourceTarget;
use crate::state::{self, State};
use ::http::Response;
use api::ApiError;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its only version.
pub const VERSION: &str = "v1beta1";
/// `group/version`.
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";
/// How long one agent may take to answer a scrape.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many agents are scraped at once (enough that a large fleet with some dead agents
/// still answers within a few scrape timeouts, without a socket per node at once).
const MAX_CONCURRENT_SCRAPES: usize = 256;
/// The window metrics-server reports (the agents' rates are over about that long).
const WINDOW: &str = "10s";

/// What a metrics request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/nodes` or `/nodes/{name}`.
    Nodes(Option<String>),
    /// `/pods`, `/namespaces/{ns}/pods` or `/namespaces/{ns}/pods/{name}`.
    Pods {
        /// The namespace (None: all namespaces).
        namespace: Option<String>,
        /// The pod.
        name: Option<String>,
    },
}

/// Parses the part of the path after `/apis/metrics.k8s.io/v1beta1`.
pub fn parse(rest: &[&str]) -> Option<Target> {
    let s = |x: &&str| x.to_string();
    match rest {
        ["nodes"] => Some(Target::Nodes(None)),
        ["nodes", n] => Some(Target::Nodes(Some(s(n)))),
        ["pods"] => Some(Target::Pods {
            namespace: None,
            name: None,
        }),
        ["namespaces", ns, "pods"] => Some(Target::Pods {
            namespace: Some(s(ns)),
            name: None,
        }),
        ["namespaces", ns, "pods", n] => Some(Target::Pods {
            namespace: Some(s(ns)),
            name: Some(s(n)),
        }),
        _ => None,
    }
}

const RESOURCES: [(&str, &str, &str, bool); 2] = [
    ("nodes", "nodemetrics", "NodeMetrics", false),
    ("pods", "podmetrics", "PodMetrics", true),
];

/// The group's entry in `/apis` (APIGroupList).
pub fn group_entry() -> Value {
    let v = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({"name": GROUP, "versions": [v], "preferredVersion": v})
}

/// `/apis/metrics.k8s.io` (APIGroup).
pub fn api_group() -> Value {
    let mut e = group_entry();
    e["kind"] = json!("APIGroup");
    e["apiVersion"] = json!("v1");
    e
}

/// `/apis/metrics.k8s.io/v1beta1` (APIResourceList).
pub fn resource_list() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({"name": plural, "singularName": singular, "namespaced": namespaced,
                   "kind": kind, "verbs": ["get", "list"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
           "resources": resources})
}

/// The group's item in aggregated discovery (`/apis`, APIGroupDiscoveryList).
pub fn aggregated_item() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({"resource": plural, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                   "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                   "singularResource": singular, "verbs": ["get", "list"]})
        })
        .collect();
    json!({"metadata": {"name": GROUP, "creationTimestamp": null},
           "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]})
}

/// CPU in nanocores as a canonical decimal quantity (`250000000` → `250m`).
pub fn cpu_quantity(nanocores: u64) -> String {
    if nanocores == 0 {
        return "0".into();
    }
    for (div, suffix) in [(1_000_000_000, ""), (1_000_000, "m"), (1_000, "u")] {
        if nanocores.is_multiple_of(div) {
            return format!("{}{suffix}", nanocores / div);
        }
    }
    format!("{nanocores}n")
}

/// Bytes as a canonical binary quantity (`104857600` → `100Mi`; not a multiple of
/// 1024 → plain bytes), as Kubernetes prints a BinarySI quantity.
pub fn memory_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let mut n = bytes;
    let mut i = 0;
    let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    while n.is_multiple_of(1024) && i + 1 < suffixes.len() {
        n /= 1024;
        i += 1;
    }
    format!("{n}{}", suffixes[i])
}

/// A usage object from a summary's `cpu` and `memory` stats; None when either figure is
/// missing (metrics-server skips those too).
fn usage(stats: &Value) -> Option<(Value, Option<&str>)> {
    let cpu = stats["cpu"]["usageNanoCores"].as_u64()?;
    let mem = stats["memory"]["workingSetBytes"].as_u64()?;
    let time = stats["cpu"]["time"]
        .as_str()
        .or_else(|| stats["memory"]["time"].as_str());
    Some((
        json!({"cpu": cpu_quantity(cpu), "memory": memory_quantity(mem)}),
        time,
    ))
}

fn not_found(plural: &str, name: &str) -> ApiError {
    ApiError::not_found(GROUP, plural, name)
}

fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn target(
    state: &State,
    plural: &str,
    namespace: Option<&str>,
) -> Result<ResourceTarget, ApiError> {
    let info = state
        .registry()
        .find("", "v1", plural)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
    Ok(ResourceTarget {
        info,
        namespace: namespace.map(str::to_string),
        name: None,
        sub: None,
    })
}

/// The selector part of a metrics query (the rest, such as `limit`, does not apply).
fn selector_query(q: &HashMap<String, String>) -> HashMap<String, String> {
    q.iter()
        .filter(|(k, _)| *k == "labelSelector" || *k == "fieldSelector")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Scrapes the agents of `nodes` concurrently; the ones that fail are skipped (and logged).
async fn scrape(state: &State, nodes: &[Value]) -> HashMap<String, Value> {
    let scrapes = nodes
        .iter()
        .filter_map(Endpoint::of_node)
        .map(|ep| async move {
            let r = state
                .agents
                .get_json(&ep, "/stats/summary", SCRAPE_TIMEOUT)
                .await;
            (ep, r)
        });
    let results: Vec<_> = futures::stream::iter(scrapes)
        .buffer_unordered(MAX_CONCURRENT_SCRAPES)
        .collect()
        .await;
    let mut out = HashMap::new();
    for (ep, r) in results {
        match r {
            Ok(summary) => {
                out.insert(ep.node, summary);
            }
            Err(e) => tracing::debug!(node = %ep.node, addr = %ep.authority(), error = %e,
                "skipping a node whose agent did not give its summary"),
        }
    }
    out
}

fn node_metrics(node: &Value, summary: &Value, now: &str) -> Option<Value> {
    let (usage, time) = usage(&summary["node"])?;
    let m = &node["metadata"];
    let mut meta = json!({"name": m["name"], "creationTimestamp": now});
    if let Some(l) = m.get("labels") {
        meta["labels"] = l.clone();
    }
    Some(json!({
        "kind": "NodeMetrics", "apiVersion": GROUP_VERSION, "metadata": meta,
        "timestamp": time.unwrap_or(now), "window": WINDOW, "usage": usage,
    }))
}

fn pod_metrics(pod: &Value, stats: &Value, now: &str) -> Option<Value> {
    let mut time = stats["cpu"]["time"].as_str();
    let containers: Vec<Value> = stats["containers"]
        .as_array()?
        .iter()
        .filter_map(|c| {
            let (u, t) = usage(c)?;
            time = time.or(t);
            Some(json!({"name": c["name"], "usage": u}))
        })
        .collect();
    if containers.is_empty() {
        return None;
    }
    let m = &pod["metadata"];
    let mut meta =
        json!({"name": m["name"], "namespace": m["namespace"], "creationTimestamp": now});
    if let Some(l) = m.get("labels") {
        meta["labels"] = l.clone();
    }
    Some(json!({
        "kind": "PodMetrics", "apiVersion": GROUP_VERSION, "metadata": meta,
        "timestamp": time.unwrap_or(now), "window": WINDOW, "containers": containers,
    }))
}

/// The pod entries of the scraped summaries, by namespace and name (and uid, to tell a
/// recreated pod from the one measured).
fn pod_stats(summaries: &HashMap<String, Value>) -> HashMap<(String, String), &Value> {
    let mut out = HashMap::new();
    for s in summaries.values() {
        for p in s["pods"].as_array().into_iter().flatten() {
            let r = &p["podRef"];
            if let (Some(ns), Some(n)) = (r["namespace"].as_str(), r["name"].as_str()) {
                out.insert((ns.to_string(), n.to_string()), p);
            }
        }
    }
    out
}

fn same_pod(pod: &Value, stats: &Value) -> bool {
    match (
        pod["metadata"]["uid"].as_str(),
        stats["podRef"]["uid"].as_str(),
    ) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => a == b,
        _ => true,
    }
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
}

/// Serves a metrics request (GET only; the caller checked the method).
pub async fn serve(
    state: &State,
    t: Target,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let now = state::now();
    let sel = selector_query(q);
    match t {
        Target::Nodes(Some(name)) => {
            let nodes_t = target(state, "nodes", None)?;
            let node = match read::get_object(state, &nodes_t, &name).await {
                Ok(n) => n,
                Err(e) if e.code == 404 => return Err(not_found("nodemetrics", &name)),
                Err(e) => return Err(e),
            };
            let summaries = scrape(state, std::slice::from_ref(&node)).await;
            let m = summaries
                .get(&name)
                .and_then(|s| node_metrics(&node, s, &now))
                .ok_or_else(|| not_found("nodemetrics", &name))?;
            Ok(http::json(200, &m))
        }
        Target::Nodes(None) => {
            let nodes_t = target(state, "nodes", None)?;
            let (nodes, _, _) = read::list_objects(state, &nodes_t, &sel).await?;
            let ready: Vec<Value> = nodes.into_iter().filter(is_ready).collect();
            let summaries = scrape(state, &ready).await;
            let items = ready
                .iter()
                .filter_map(|n| {
                    let name = n["metadata"]["name"].as_str()?;
                    node_metrics(n, summaries.get(name)?, &now)
                })
                .collect();
            Ok(http::json(200, &list("NodeMetricsList", items)))
        }
        Target::Pods {
            namespace: Some(ns),
            name: Some(name),
        } => {
            let missing = || not_found("podmetrics", &format!("{ns}/{name}"));
            let pods_t = target(state, "pods", Some(&ns))?;
            let pod = match read::get_object(state, &pods_t, &name).await {
                Ok(p) => p,
                Err(e) if e.code == 404 => return Err(missing()),
                Err(e) => return Err(e),
            };
            let node_name = pod["spec"]["nodeName"].as_str().ok_or_else(missing)?;
            let nodes_t = target(state, "nodes", None)?;
            let node = match read::get_object(state, &nodes_t, node_name).await {
                Ok(n) => n,
                Err(e) if e.code == 404 => return Err(missing()),
                Err(e) => return Err(e),
            };
            let summaries = scrape(state, std::slice::from_ref(&node)).await;
            let stats = pod_stats(&summaries);
            let m = stats
                .get(&(ns.clone(), name.clone()))
                .filter(|s| same_pod(&pod, s))
                .and_then(|s| pod_metrics(&pod, s, &now))
                .ok_or_else(missing)?;
            Ok(http::json(200, &m))
        }
        Target::Pods { namespace, .. } => {
            let pods_t = target(state, "pods", namespace.as_deref())?;
            let (pods, _, _) = read::list_objects(state, &pods_t, &sel).await?;
            let wanted: HashSet<&str> = pods
                .iter()
                .filter_map(|p| p["spec"]["nodeName"].as_str())
                .collect();
            let nodes_t = target(state, "nodes", None)?;
            let (nodes, _, _) = read::list_objects(state, &nodes_t, &HashMap::new()).await?;
            let nodes: Vec<Value> = nodes
                .into_iter()
                .filter(|n| {
                    is_ready(n)
                        && n["metadata"]["name"]
                            .as_str()
                            .is_some_and(|name| wanted.contains(name))
                })
                .collect();
            let summaries = scrape(state, &nodes).await;
            let stats = pod_stats(&summaries);
            let items = pods
                .iter()
                .filter_map(|p| {
                    let key = (
                        p["metadata"]["namespace"].as_str()?.to_string(),
                        p["metadata"]["name"].as_str()?.to_string(),
                    );
                    let s = stats.get(&key).filter(|s| same_pod(p, s))?;
                    pod_metrics(p, s, &now)
                })
                .collect();
            Ok(http::json(200, &list("PodMetricsList", items)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(cpu_quantity(250_000_000), "250m");
        assert_eq!(cpu_quantity(2_000_000_000), "2");
        assert_eq!(cpu_quantity(1_500), "1500n");
        assert_eq!(cpu_quantity(3_000), "3u");
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(memory_quantity(104_857_600), "100Mi");
        assert_eq!(memory_quantity(2048), "2Ki");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(memory_quantity(1_073_741_824), "1Gi");
    }

    #[test]
    fn paths() {
        assert_eq!(parse(&["nodes"]), Some(Target::Nodes(None)));
        assert_eq!(
            parse(&["namespaces", "d", "pods", "p"]),
            Some(Target::Pods {
                namespace: Some("d".into()),
                name: Some("p".into())
            })
        );
        assert_eq!(parse(&["namespaces", "d"]), None);
    }

    #[test]
    fn pod_metrics_from_a_summary() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d", "uid": "u1", "labels": {"app": "x"}}});
        let stats = json!({"podRef": {"name": "p", "namespace": "d", "uid": "u1"},
            "containers": [{"name": "c", "cpu": {"time": "2026-01-01T00:00:00Z", "usageNanoCores": 250000000u64},
                            "memory": {"time": "2026-01-01T00:00:00Z", "workingSetBytes": 104857600u64}}]});
        let m = pod_metrics(&pod, &stats, "now").unwrap();
        assert_eq!(m["containers"][0]["usage"]["cpu"], "250m");
        assert_eq!(m["containers"][0]["usage"]["memory"], "100Mi");
        assert_eq!(m["timestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(m["metadata"]["labels"]["app"], "x");
        assert!(same_pod(&pod, &stats));
    }
}
