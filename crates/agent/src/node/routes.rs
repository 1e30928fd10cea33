//! Cross-node pod networking without an overlay ("host-gw", as flannel's backend of that
//! name): for every other node, a route to its `spec.podCIDR` via its InternalIP, kept in
//! sync from the Node objects. Works where the nodes share a layer-2 network (the next
//! hop must be directly reachable).
//!
//! Only routes this agent added are ever changed or removed: they carry the routing
//! protocol [`ROUTE_PROTO`] and are recorded in a state file in the data directory (agents
//! sharing one kernel each remove only their own). A route to the same prefix made by
//! someone else is left alone, with a warning.

use client::{Client, Event, ListParams, Resource};
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The routing protocol number on Drover's routes (`ip route ... proto 213`).
pub const ROUTE_PROTO: &str = "213";
/// How often routes are re-checked even without Node changes (links flap, people type
/// `ip route flush`).
pub const RESYNC: Duration = Duration::from_secs(30);

/// What the route keeper needs to know about this node.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// This node's name (its own range is on its bridge, not routed).
    pub node: String,
    /// This node's address.
    pub node_ip: IpAddr,
    /// This node's pod range.
    pub own_cidr: String,
    /// Where the routes this agent added are recorded.
    pub state_file: PathBuf,
}

/// The routes file under an agent data directory.
pub fn state_file(data_dir: &Path) -> PathBuf {
    data_dir.join("routes.json")
}

/// A node's (podCIDR, InternalIP) when it needs a route from `cfg`'s node.
pub fn route_of(node: &Value, cfg: &RouteConfig) -> Option<(String, Ipv4Addr)> {
    if node["metadata"]["name"].as_str() == Some(cfg.node.as_str()) {
        return None;
    }
    let cidr = node["spec"]["podCIDR"].as_str()?;
    let net: podnet::Ipv4Net = cidr.parse().ok()?;
    if net.to_string() == cfg.own_cidr {
        return None;
    }
    let ip: Ipv4Addr = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())?
        .parse()
        .ok()?;
    if ip.is_loopback() || ip.is_unspecified() || IpAddr::V4(ip) == cfg.node_ip {
        return None;
    }
    Some((net.to_string(), ip))
}

async fn ip(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run ip (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The kernel's IPv4 main-table routes: destination → (gateway, protocol).
async fn kernel_routes() -> Result<BTreeMap<String, (Option<String>, String)>, String> {
    let text = ip(&["-4", "route", "show", "table", "main"]).await?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(dst) = words.first() else { continue };
        let after = |k: &str| {
            words
                .iter()
                .position(|w| *w == k)
                .and_then(|i| words.get(i + 1))
                .map(|s| s.to_string())
        };
        out.insert(
            dst.to_string(),
            (after("via"), after("proto").unwrap_or_default()),
        );
    }
    Ok(out)
}

fn load(path: &Path) -> BTreeMap<String, String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(path: &Path, owned: &BTreeMap<String, String>) {
    let write = || -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(owned).unwrap_or_default())?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!("cannot record the pod routes in {}: {e}", path.display());
    }
}

/// Brings the kernel's routes to `desired` (prefix → next hop), touching only `owned`
/// (what this agent added), which it updates.
async fn reconcile(
    desired: &BTreeMap<String, Ipv4Addr>,
    owned: &mut BTreeMap<String, String>,
    warned: &mut BTreeMap<String, String>,
) {
    let current = match kernel_routes().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot read the routes: {e}");
            return;
        }
    };
    for (cidr, via) in desired {
        let via = via.to_string();
        let ours = owned.contains_key(cidr);
        match current.get(cidr) {
            Some((gw, proto)) if ours && proto == ROUTE_PROTO => {
                if gw.as_deref() != Some(via.as_str()) {
                    match ip(&["route", "replace", cidr, "via", &via, "proto", ROUTE_PROTO]).await {
                        Ok(_) => {
                            tracing::info!("pod route {cidr} now via {via}");
                            owned.insert(cidr.clone(), via);
                        }
                        Err(e) => tracing::warn!("cannot route {cidr} via {via}: {e}"),
                    }
                }
            }
            Some((gw, proto)) => {
                let what = format!("{gw:?}/{proto}");
                if warned.get(cidr) != Some(&what) {
                    tracing::warn!(
                        "not routing pod range {cidr} via {via}: the host already has a route to it (via {}, proto {proto}) that Drover did not make",
                        gw.as_deref().unwrap_or("a direct link")
                    );
                    warned.insert(cidr.clone(), what);
                }
                if ours && proto != ROUTE_PROTO {
                    owned.remove(cidr);
                }
            }
            None => match ip(&["route", "add", cidr, "via", &via, "proto", ROUTE_PROTO]).await {
                Ok(_) => {
                    tracing::info!("pod route {cidr} via {via}");
                    warned.remove(cidr);
                    owned.insert(cidr.clone(), via);
                }
                Err(e) => {
                    if warned.get(cidr) != Some(&e) {
                        tracing::warn!(
                            "cannot route pod range {cidr} via {via} ({e}); host-gw needs the nodes on one network"
                        );
                        warned.insert(cidr.clone(), e);
                    }
                }
            },
        }
    }
    let stale: Vec<(String, String)> = owned
        .iter()
        .filter(|(c, _)| !desired.contains_key(*c))
        .map(|(c, v)| (c.clone(), v.clone()))
        .collect();
    for (cidr, via) in stale {
        remove(&cidr, &via, &current).await;
        owned.remove(&cidr);
    }
}

async fn remove(cidr: &str, via: &str, current: &BTreeMap<String, (Option<String>, String)>) {
    let present = current
        .get(cidr)
        .is_some_and(|(gw, proto)| gw.as_deref() == Some(via) && proto == ROUTE_PROTO);
    if present {
        match ip(&["route", "del", cidr, "via", via, "proto", ROUTE_PROTO]).await {
            Ok(_) => tracing::info!("pod route {cidr} via {via} removed"),
            Err(e) => tracing::warn!("cannot remove the route {cidr} via {via}: {e}"),
        }
    }
}

/// Keeps the routes to other nodes' pod ranges until dropped.
pub async fn run(client: Client, cfg: RouteConfig) {
    // Forwarding between the host link and the pod bridge.
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0")
        && let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    {
        tracing::warn!(
            "cannot enable IPv4 forwarding ({e}): pods on other nodes cannot reach this node's pods"
        );
    }
    let mut owned = load(&cfg.state_file);
    let mut warned = BTreeMap::new();
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut events = Box::pin(client::watcher(
        client,
        Resource::NODES,
        None,
        ListParams::default(),
    ));
    let mut tick = tokio::time::interval(RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listed = false;
    loop {
        tokio::select! {
            ev = events.next() => {
                let name = |o: &Value| o["metadata"]["name"].as_str().unwrap_or("").to_string();
                match ev {
                    Some(Ok(Event::Applied(o))) => { nodes.insert(name(&o), o); }
                    Some(Ok(Event::Deleted(o))) => { nodes.remove(&name(&o)); }
                    Some(Ok(Event::Restarted(all))) => {
                        nodes = all.into_iter().map(|o| (name(&o), o)).collect();
                        listed = true;
                    }
                    Some(Err(e)) => {
                        tracing::debug!("node watch: {e}");
                        continue;
                    }
                    None => return,
                }
            }
            _ = tick.tick() => {}
        }
        if !listed {
            continue;
        }
        let desired: BTreeMap<String, Ipv4Addr> =
            nodes.values().filter_map(|n| route_of(n, &cfg)).collect();
        let before = owned.clone();
        reconcile(&desired, &mut owned, &mut warned).await;
        if owned != before {
            save(&cfg.state_file, &owned);
        }
    }
}

/// Removes every route recorded in `state_file` (`drover reset`).
pub async fn cleanup(state_file: &Path) {
    let owned = load(state_file);
    if owned.is_empty() {
        return;
    }
    let current = kernel_routes().await.unwrap_or_default();
    for (cidr, via) in &owned {
        remove(cidr, via, &current).await;
    }
    let _ = std::fs::remove_file(state_file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_only_for_other_nodes_with_a_range_and_an_address() {
        let cfg = RouteConfig {
            node: "a".into(),
            node_ip: "10.1.0.1".parse().unwrap(),
            own_cidr: "10.244.0.0/24".into(),
            state_file: PathBuf::new(),
        };
        let node = |name: &str, cidr: &str, ip: &str| {
            json!({"metadata": {"name": name}, "spec": {"podCIDR": cidr},
                   "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}})
        };
        assert_eq!(
            route_of(&node("b", "10.244.1.0/24", "10.1.0.2"), &cfg),
            Some(("10.244.1.0/24".into(), "10.1.0.2".parse().unwrap()))
        );
        assert_eq!(
            route_of(&node("a", "10.244.1.0/24", "10.1.0.2"), &cfg),
            None
        );
        assert_eq!(
            route_of(&node("c", "10.244.0.0/24", "10.1.0.3"), &cfg),
            None
        );
        assert_eq!(
            route_of(&node("d", "10.244.3.0/24", "127.0.0.1"), &cfg),
            None
        );
        assert_eq!(
            route_of(&node("e", "10.244.3.0/24", "10.1.0.1"), &cfg),
            None
        );
        assert_eq!(route_of(&node("f", "fd00::/64", "10.1.0.6"), &cfg), None);
        assert_eq!(route_of(&json!({"metadata": {"name": "g"}}), &cfg), None);
    }
}
