//! Cross-node pod networking, kept in sync from the Node objects, in one of two modes
//! ([`PodNetwork`]):
//!
//! - `host-gw` (flannel's backend of that name, the default): for every other node, a
//!   route to its `spec.podCIDR` via its InternalIP. Works where the nodes share a
//!   layer-2 network (the next hop must be directly reachable).
//! - `vxlan` (flannel's vxlan backend): a kernel vxlan device per node (VNI
//!   [`VXLAN_VNI`], UDP [`VXLAN_PORT`], no learning) with its pod range's network
//!   address (`.0/32`) and a stable MAC published as the Node annotation
//!   [`VTEP_MAC_ANNOTATION`]; for every other node a permanent neighbour entry (its `.0`
//!   → its VTEP MAC), a forwarding entry (its MAC → its InternalIP) and a route
//!   `podCIDR via <its .0> dev <vxlan> onlink`. Needs only UDP between the node IPs.
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

/// How pods on different nodes reach each other (`--pod-network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodNetwork {
    /// Plain routes via the other nodes' addresses (nodes on one layer-2 network).
    #[default]
    HostGw,
    /// A VXLAN overlay (nodes need only reach each other over UDP).
    Vxlan,
}

impl std::str::FromStr for PodNetwork {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "host-gw" => Ok(PodNetwork::HostGw),
            "vxlan" => Ok(PodNetwork::Vxlan),
            _ => Err(format!("pod network {s:?} is not one of host-gw, vxlan")),
        }
    }
}

impl std::fmt::Display for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PodNetwork::HostGw => "host-gw",
            PodNetwork::Vxlan => "vxlan",
        })
    }
}

/// The VXLAN network identifier of Drover's overlay (one per cluster).
pub const VXLAN_VNI: u32 = 4097;
/// The overlay's UDP port (Linux's and flannel's choice, not IANA's 4789).
pub const VXLAN_PORT: u16 = 8472;
/// The MTU of the vxlan device and of the pods in vxlan mode (1500 less the 50-byte
/// VXLAN encapsulation).
pub const VXLAN_MTU: u32 = 1450;
/// The Node annotation carrying the node's VTEP (vxlan device) MAC address.
pub const VTEP_MAC_ANNOTATION: &str = "drover.dev/vtep-mac";

fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The vxlan device of node `node`: stable per name (so `drover reset` finds it) and
/// distinct between agents sharing one kernel.
pub fn vxlan_device(node: &str) -> String {
    format!("dv{:07x}", fnv64(node) & 0x0fff_ffff)
}

/// The VTEP MAC of node `node`: stable (so restarts keep the other nodes' entries
/// valid), locally administered, unicast.
pub fn vtep_mac(node: &str) -> String {
    let h = fnv64(&format!("vtep/{node}")).to_be_bytes();
    format!(
        "0a:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

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
    /// How pods on different nodes reach each other.
    pub mode: PodNetwork,
    /// Where the overlay entries this agent added are recorded (vxlan mode).
    pub vxlan_state_file: PathBuf,
}

/// The routes file under an agent data directory.
pub fn state_file(data_dir: &Path) -> PathBuf {
    data_dir.join("routes.json")
}

/// The vxlan state file under an agent data directory.
pub fn vxlan_state_file(data_dir: &Path) -> PathBuf {
    data_dir.join("vxlan.json")
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
    super::tool::run("ip", args).await
}

/// One of the kernel's routes, as far as Drover cares.
#[derive(Debug, Clone, Default)]
struct KernelRoute {
    via: Option<String>,
    proto: String,
    dev: Option<String>,
}

/// The kernel's IPv4 main-table routes by destination.
async fn kernel_routes() -> Result<BTreeMap<String, KernelRoute>, String> {
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
            KernelRoute {
                via: after("via"),
                proto: after("proto").unwrap_or_default(),
                dev: after("dev"),
            },
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
            Some(KernelRoute { via: gw, proto, .. }) if ours && proto == ROUTE_PROTO => {
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
            Some(KernelRoute { via: gw, proto, .. }) => {
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

async fn remove(cidr: &str, via: &str, current: &BTreeMap<String, KernelRoute>) {
    let present = current
        .get(cidr)
        .is_some_and(|r| r.via.as_deref() == Some(via) && r.proto == ROUTE_PROTO);
    if present {
        match ip(&["route", "del", cidr, "via", via, "proto", ROUTE_PROTO]).await {
            Ok(_) => tracing::info!("pod route {cidr} via {via} removed"),
            Err(e) => tracing::warn!("cannot remove the route {cidr} via {via}: {e}"),
        }
    }
}

/// A node's (podCIDR, VTEP entry "MAC DST") when it needs overlay entries from `cfg`'s
/// node: a route as in host-gw, and a valid VTEP MAC annotation.
pub fn vtep_of(node: &Value, cfg: &RouteConfig) -> Option<(String, String)> {
    let (cidr, ip) = route_of(node, cfg)?;
    let mac = node["metadata"]["annotations"][VTEP_MAC_ANNOTATION]
        .as_str()?
        .to_ascii_lowercase();
    is_mac(&mac).then(|| (cidr, format!("{mac} {ip}")))
}

/// The network address of a pod range (the remote VTEP's address in vxlan mode).
fn network_address(cidr: &str) -> Option<String> {
    let net: podnet::Ipv4Net = cidr.parse().ok()?;
    Some(net.network().to_string())
}

async fn bridge_cmd(args: &[&str]) -> Result<String, String> {
    super::tool::run("bridge", args).await
}

/// Makes this node's vxlan device as it should be; true when it was (re)created (so
/// nothing recorded on it exists any more).
async fn ensure_vxlan(cfg: &RouteConfig) -> Result<bool, String> {
    let dev = vxlan_device(&cfg.node);
    let mac = vtep_mac(&cfg.node);
    let local = cfg.node_ip.to_string();
    let own0 = network_address(&cfg.own_cidr)
        .ok_or_else(|| format!("the pod range {} is not an IPv4 range", cfg.own_cidr))?;
    let mut created = false;
    let fits = |text: &str| {
        let text = text.replace('\\', " ");
        let words: Vec<&str> = text.split_whitespace().collect();
        let has = |k: &str, v: &str| words.windows(2).any(|w| w[0] == k && w[1] == v);
        has("vxlan", "id")
            && has("id", &VXLAN_VNI.to_string())
            && has("local", &local)
            && has("dstport", &VXLAN_PORT.to_string())
            && has("link/ether", &mac)
            && words.contains(&"nolearning")
    };
    match ip(&["-d", "-o", "link", "show", "dev", &dev]).await {
        Ok(text) if fits(&text) => {}
        found => {
            if found.is_ok() {
                tracing::info!("vxlan device {dev} has other settings: making it again");
                ip(&["link", "del", "dev", &dev]).await?;
            }
            ip(&[
                "link",
                "add",
                &dev,
                "address",
                &mac,
                "mtu",
                &VXLAN_MTU.to_string(),
                "type",
                "vxlan",
                "id",
                &VXLAN_VNI.to_string(),
                "local",
                &local,
                "dstport",
                &VXLAN_PORT.to_string(),
                "nolearning",
            ])
            .await?;
            tracing::info!("vxlan device {dev} (VNI {VXLAN_VNI}, local {local}, MAC {mac})");
            created = true;
        }
    }
    ip(&["addr", "replace", &format!("{own0}/32"), "dev", &dev]).await?;
    ip(&["link", "set", "dev", &dev, "up"]).await?;
    Ok(created)
}

/// Brings the overlay entries to `desired` (podCIDR → "MAC DST"), touching only `owned`.
async fn reconcile_vxlan(
    cfg: &RouteConfig,
    desired: &BTreeMap<String, String>,
    owned: &mut BTreeMap<String, String>,
    warned: &mut BTreeMap<String, String>,
) {
    let dev = vxlan_device(&cfg.node);
    match ensure_vxlan(cfg).await {
        Ok(true) => owned.clear(),
        Ok(false) => {}
        Err(e) => {
            if warned.get(&dev) != Some(&e) {
                tracing::warn!(
                    "cannot set up the vxlan device {dev} ({e}): pods on other nodes are unreachable"
                );
                warned.insert(dev.clone(), e);
            }
            return;
        }
    }
    warned.remove(&dev);
    let current = match kernel_routes().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot read the routes: {e}");
            return;
        }
    };
    for (cidr, entry) in desired {
        let Some(gw) = network_address(cidr) else {
            continue;
        };
        let Some((mac, dst)) = entry.split_once(' ') else {
            continue;
        };
        let ours = owned.contains_key(cidr);
        match current.get(cidr) {
            // Ours and as it should be.
            Some(r)
                if ours
                    && r.proto == ROUTE_PROTO
                    && owned.get(cidr) == Some(entry)
                    && r.dev.as_deref() == Some(dev.as_str())
                    && r.via.as_deref() == Some(gw.as_str()) =>
            {
                continue;
            }
            // Ours, to update.
            Some(r) if ours && r.proto == ROUTE_PROTO => {}
            Some(r) => {
                let what = format!("{:?}/{:?}/{}", r.via, r.dev, r.proto);
                if warned.get(cidr) != Some(&what) {
                    tracing::warn!(
                        "not routing pod range {cidr} over vxlan: the host already has a route to it (dev {}, proto {}) that Drover did not make",
                        r.dev.as_deref().unwrap_or("?"),
                        r.proto
                    );
                    warned.insert(cidr.clone(), what);
                }
                if ours {
                    owned.remove(cidr);
                }
                continue;
            }
            None => {}
        }
        if let Some((old_mac, _)) = owned.get(cidr).and_then(|o| o.split_once(' '))
            && old_mac != mac
        {
            let _ = bridge_cmd(&["fdb", "del", old_mac, "dev", &dev, "self"]).await;
        }
        let applied = async {
            ip(&[
                "neigh",
                "replace",
                &gw,
                "lladdr",
                mac,
                "dev",
                &dev,
                "nud",
                "permanent",
            ])
            .await?;
            bridge_cmd(&[
                "fdb",
                "replace",
                mac,
                "dev",
                &dev,
                "dst",
                dst,
                "self",
                "permanent",
            ])
            .await?;
            ip(&[
                "route",
                "replace",
                cidr,
                "via",
                &gw,
                "dev",
                &dev,
                "onlink",
                "proto",
                ROUTE_PROTO,
            ])
            .await
        }
        .await;
        match applied {
            Ok(_) => {
                tracing::info!("pod route {cidr} over vxlan {dev} to {dst} (VTEP {mac})");
                warned.remove(cidr);
                owned.insert(cidr.clone(), entry.clone());
            }
            Err(e) => {
                if warned.get(cidr) != Some(&e) {
                    tracing::warn!("cannot route pod range {cidr} over vxlan: {e}");
                    warned.insert(cidr.clone(), e);
                }
            }
        }
    }
    let stale: Vec<(String, String)> = owned
        .iter()
        .filter(|(c, _)| !desired.contains_key(*c))
        .map(|(c, v)| (c.clone(), v.clone()))
        .collect();
    for (cidr, entry) in stale {
        let gw = network_address(&cidr).unwrap_or_default();
        let present = current
            .get(&cidr)
            .is_some_and(|r| r.proto == ROUTE_PROTO && r.dev.as_deref() == Some(dev.as_str()));
        if present {
            match ip(&["route", "del", &cidr, "dev", &dev, "proto", ROUTE_PROTO]).await {
                Ok(_) => tracing::info!("pod route {cidr} over vxlan removed"),
                Err(e) => tracing::warn!("cannot remove the route {cidr} over vxlan: {e}"),
            }
        }
        if !gw.is_empty() {
            let _ = ip(&["neigh", "del", &gw, "dev", &dev]).await;
        }
        if let Some((mac, _)) = entry.split_once(' ') {
            let _ = bridge_cmd(&["fdb", "del", mac, "dev", &dev, "self"]).await;
        }
        owned.remove(&cidr);
    }
}

/// Publishes this node's VTEP MAC on its Node unless `own` already carries it.
async fn publish_vtep(client: &Client, cfg: &RouteConfig, own: Option<&Value>) {
    let mac = vtep_mac(&cfg.node);
    if own.is_some_and(|n| n["metadata"]["annotations"][VTEP_MAC_ANNOTATION] == mac.as_str()) {
        return;
    }
    let patch = client::Patch::Merge(
        serde_json::json!({"metadata": {"annotations": {VTEP_MAC_ANNOTATION: mac}}}),
    );
    if let Err(e) = client
        .patch(
            &Resource::NODES,
            None,
            &cfg.node,
            &patch,
            &client::PatchParams::default(),
        )
        .await
    {
        tracing::warn!(
            "cannot publish the VTEP MAC of node {} ({e}): other nodes cannot reach its pods",
            cfg.node
        );
    }
}

/// Removes node `node`'s vxlan device (and with it every overlay route, neighbour and
/// forwarding entry on it) and the record of them (`drover reset`, or host-gw mode).
pub async fn cleanup_vxlan(vxlan_state_file: &Path, node: &str) {
    let dev = vxlan_device(node);
    if ip(&["link", "show", "dev", &dev]).await.is_ok() {
        match ip(&["link", "del", "dev", &dev]).await {
            Ok(_) => tracing::info!("vxlan device {dev} removed"),
            Err(e) => tracing::warn!("cannot remove the vxlan device {dev}: {e}"),
        }
    }
    let _ = std::fs::remove_file(vxlan_state_file);
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
    // Whatever the other mode left from an earlier run goes first.
    let state = match cfg.mode {
        PodNetwork::HostGw => {
            cleanup_vxlan(&cfg.vxlan_state_file, &cfg.node).await;
            &cfg.state_file
        }
        PodNetwork::Vxlan => {
            cleanup(&cfg.state_file).await;
            &cfg.vxlan_state_file
        }
    };
    let mut owned = load(state);
    let mut warned = BTreeMap::new();
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut events = Box::pin(client::watcher(
        client.clone(),
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
        let before = owned.clone();
        match cfg.mode {
            PodNetwork::HostGw => {
                let desired: BTreeMap<String, Ipv4Addr> =
                    nodes.values().filter_map(|n| route_of(n, &cfg)).collect();
                reconcile(&desired, &mut owned, &mut warned).await;
            }
            PodNetwork::Vxlan => {
                let desired: BTreeMap<String, String> =
                    nodes.values().filter_map(|n| vtep_of(n, &cfg)).collect();
                reconcile_vxlan(&cfg, &desired, &mut owned, &mut warned).await;
                if nodes.contains_key(&cfg.node) {
                    publish_vtep(&client, &cfg, nodes.get(&cfg.node)).await;
                }
            }
        }
        if owned != before {
            save(state, &owned);
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
            mode: PodNetwork::Vxlan,
            vxlan_state_file: PathBuf::new(),
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

    #[test]
    fn vxlan_entries_need_a_valid_vtep_mac() {
        let cfg = RouteConfig {
            node: "a".into(),
            node_ip: "10.1.0.1".parse().unwrap(),
            own_cidr: "10.244.0.0/24".into(),
            state_file: PathBuf::new(),
            mode: PodNetwork::Vxlan,
            vxlan_state_file: PathBuf::new(),
        };
        let node = |name: &str, cidr: &str, mac: &str| {
            json!({"metadata": {"name": name, "annotations": {VTEP_MAC_ANNOTATION: mac}},
                   "spec": {"podCIDR": cidr},
                   "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.2"}]}})
        };
        assert_eq!(
            vtep_of(&node("b", "10.244.1.0/24", "0A:01:02:03:04:05"), &cfg),
            Some(("10.244.1.0/24".into(), "0a:01:02:03:04:05 10.1.0.2".into()))
        );
        assert_eq!(vtep_of(&node("b", "10.244.1.0/24", "nonsense"), &cfg), None);
        assert_eq!(
            vtep_of(&node("b", "10.244.1.0/24", "0a:01:02:03:04"), &cfg),
            None
        );
        assert_eq!(
            vtep_of(&node("a", "10.244.1.0/24", "0a:01:02:03:04:05"), &cfg),
            None
        );
        assert_eq!(
            network_address("10.244.1.0/24").as_deref(),
            Some("10.244.1.0")
        );
    }

    #[test]
    fn vxlan_names_and_macs_are_stable_and_valid() {
        assert_eq!(vxlan_device("node-1"), vxlan_device("node-1"));
        assert_ne!(vxlan_device("node-1"), vxlan_device("node-2"));
        assert!(vxlan_device("a-very-long-node-name.example.com").len() <= 15);
        let mac = vtep_mac("node-1");
        assert!(is_mac(&mac), "{mac}");
        assert!(
            mac.starts_with("0a:"),
            "locally administered unicast: {mac}"
        );
        assert_eq!(mac, vtep_mac("node-1"));
        assert_ne!(mac, vtep_mac("node-2"));
        assert_eq!("vxlan".parse::<PodNetwork>(), Ok(PodNetwork::Vxlan));
        assert_eq!("host-gw".parse::<PodNetwork>(), Ok(PodNetwork::HostGw));
        assert!("udp".parse::<PodNetwork>().is_err());
        assert_eq!(PodNetwork::default().to_string(), "host-gw");
    }
}
