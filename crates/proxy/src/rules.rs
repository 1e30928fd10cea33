//! The kernel rules, as a pure function: (services, endpoint slices, config) -> one
//! `nft -f` script for this agent's table `ip <prefix>`.
//!
//! Layout of the table (names are unique per service port and endpoint, so a change
//! touches only what changed and a ClientIP affinity set survives unrelated updates):
//!
//! ```text
//! nat-prerouting / nat-output (dstnat)  ──jump──▶ services
//! services:  ip daddr . l4proto . dport vmap { CLUSTERIP . tcp . 80 : goto svc-NS/NAME/tcp/80 }
//!            ip daddr { node IPs, 127.0.0.1 } l4proto . dport vmap { tcp . 30080 : goto ext-... }
//! ext-...:   mark for masquerade; goto svc-...
//! svc-...:   [ip saddr != cluster/pod CIDR: mark]  [ip saddr @aff-EP goto ep-EP]...
//!            numgen random mod N vmap { 0 : goto ep-A, 1 : goto ep-B, ... }
//! ep-...:    ip saddr EP: mark (hairpin)  [update @aff-EP { ip saddr }]  dnat to EP:PORT
//! nat-postrouting (srcnat): meta mark & 0x4000 masquerade
//! filter-input/forward/output (-110): ct state new, daddr . proto . port of a service
//!            port without endpoints: reject (ICMP port unreachable: clients fail fast)
//! filter-forward / filter-output-post-dnat (-90): ct state new, still addressed to a
//!            cluster IP (no service port matched): reject, never out the default route
//! ```
//!
//! An update is one `nft -f` transaction (atomic): add what is missing, flush every chain
//! of ours, refill the wanted ones, delete the chains and sets no longer wanted.

use crate::model::{Protocol, Service, Slice, backends};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// The packet mark bit that asks `nat-postrouting` to masquerade (kube-proxy's choice).
pub const MASQ_MARK: u32 = 0x4000;

/// What the rules depend on besides the API objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesConfig {
    /// nft table name (the lowercased chain prefix).
    pub table: String,
    /// Addresses the node ports answer on (127.0.0.1 is always added).
    pub node_ips: Vec<Ipv4Addr>,
    /// Traffic to a cluster IP from outside this range is masqueraded (so replies come
    /// back through this node). The cluster CIDR if known, else this node's pod CIDR.
    pub local_cidr: Option<String>,
}

/// The chains and sets of our table now in the kernel (from `nft -t list table`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Existing {
    /// Whether the table exists at all.
    pub table: bool,
    /// Chain names.
    pub chains: BTreeSet<String>,
    /// Set names.
    pub sets: BTreeSet<String>,
}

/// Parses `nft -t list table ip T` output into the names of its chains and sets.
pub fn parse_existing(listing: &str) -> Existing {
    let mut e = Existing::default();
    for line in listing.lines() {
        let l = line.trim();
        if l.starts_with("table ") {
            e.table = true;
        } else if let Some(rest) = l.strip_prefix("chain ") {
            if let Some(name) = rest.strip_suffix(" {") {
                e.chains.insert(name.trim_matches('"').to_string());
            }
        } else if let Some(rest) = l.strip_prefix("set ")
            && let Some(name) = rest.strip_suffix(" {")
        {
            e.sets.insert(name.trim_matches('"').to_string());
        }
    }
    e
}

/// Base chains: name and hook definition.
const BASE_CHAINS: &[(&str, &str)] = &[
    (
        "nat-prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
    ),
    (
        "nat-output",
        "type nat hook output priority -100; policy accept;",
    ),
    (
        "nat-postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
    (
        "filter-input",
        "type filter hook input priority -110; policy accept;",
    ),
    (
        "filter-forward",
        "type filter hook forward priority -110; policy accept;",
    ),
    (
        "filter-output",
        "type filter hook output priority -110; policy accept;",
    ),
    (
        "filter-output-post-dnat",
        "type filter hook output priority -90; policy accept;",
    ),
];

/// The wanted content of the table: chain name -> rules, and the affinity sets
/// (name -> timeout seconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Chains in creation order (base chains first) with their rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets and their timeouts.
    pub sets: BTreeMap<String, u32>,
}

fn v4(ip: &IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    }
}

fn proto(p: Protocol) -> &'static str {
    p.as_str()
}

/// Computes the wanted chains and sets.
pub fn desired(services: &[Service], slices: &[Slice], cfg: &RulesConfig) -> Desired {
    let mut d = Desired::default();
    let mark = format!("meta mark set meta mark | {MASQ_MARK:#x}");
    for (name, _) in BASE_CHAINS {
        d.chains.insert(name.to_string(), Vec::new());
    }
    let push = |d: &mut Desired, chain: &str, rule: String| {
        d.chains.entry(chain.to_string()).or_default().push(rule);
    };
    push(&mut d, "nat-prerouting", "jump services".into());
    push(&mut d, "nat-output", "jump services".into());
    push(
        &mut d,
        "nat-postrouting",
        format!("meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade"),
    );
    for c in ["filter-input", "filter-forward", "filter-output"] {
        push(&mut d, c, "ct state new jump no-endpoints".into());
    }
    // After DNAT: what still goes to a cluster IP hit no service port; reject it rather
    // than let it leave by the default route.
    for c in ["filter-forward", "filter-output-post-dnat"] {
        push(&mut d, c, "ct state new jump cluster-ips".into());
    }
    d.chains.insert("services".into(), Vec::new());
    d.chains.insert("no-endpoints".into(), Vec::new());
    d.chains.insert("cluster-ips".into(), Vec::new());
    let mut all_vips: BTreeSet<Ipv4Addr> = BTreeSet::new();

    let mut node_addrs: Vec<Ipv4Addr> = vec![Ipv4Addr::LOCALHOST];
    for ip in &cfg.node_ips {
        if !node_addrs.contains(ip) {
            node_addrs.push(*ip);
        }
    }
    let node_set = node_addrs
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ");

    let mut vips: Vec<String> = Vec::new(); // "IP . proto . port : goto chain"
    let mut nodeports: Vec<String> = Vec::new(); // "proto . port : goto chain"
    let mut rejects: Vec<String> = Vec::new(); // "IP . proto . port"

    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for svc in sorted {
        let ips: Vec<Ipv4Addr> = svc.cluster_ips.iter().filter_map(v4).collect();
        if svc.headless || ips.is_empty() {
            continue;
        }
        all_vips.extend(ips.iter().copied());
        for sp in &svc.ports {
            let p = proto(sp.protocol);
            let id = format!("{}/{}/{}/{}", svc.namespace, svc.name, p, sp.port);
            let eps: Vec<(Ipv4Addr, u16)> = backends(svc, sp, slices)
                .into_iter()
                .filter_map(|(a, port)| Some((v4(&a)?, port)))
                .collect();
            let node_port = sp.node_port.filter(|_| svc.has_node_ports());
            if eps.is_empty() {
                for ip in &ips {
                    rejects.push(format!("{ip} . {p} . {}", sp.port));
                }
                if let Some(np) = node_port {
                    for a in &node_addrs {
                        rejects.push(format!("{a} . {p} . {np}"));
                    }
                }
                continue;
            }
            let svc_chain = format!("svc-{id}");
            for ip in &ips {
                vips.push(format!("{ip} . {p} . {} : goto {svc_chain}", sp.port));
            }
            if let Some(np) = node_port {
                let ext = format!("ext-{id}");
                nodeports.push(format!("{p} . {np} : goto {ext}"));
                push(&mut d, &ext, mark.clone());
                push(&mut d, &ext, format!("goto {svc_chain}"));
            }
            d.chains.insert(svc_chain.clone(), Vec::new());
            if let Some(cidr) = &cfg.local_cidr {
                push(&mut d, &svc_chain, format!("ip saddr != {cidr} {mark}"));
            }
            let mut ep_chains = Vec::new();
            for (addr, port) in &eps {
                let ep_chain = format!("ep-{id}/{addr}/{port}");
                let mut rules = vec![format!("ip saddr {addr} {mark}")];
                if let Some(t) = svc.affinity_timeout {
                    let set = format!("aff-{id}/{addr}/{port}/{t}");
                    d.sets.insert(set.clone(), t);
                    push(
                        &mut d,
                        &svc_chain,
                        format!("ip saddr @{set} goto {ep_chain}"),
                    );
                    rules.push(format!("update @{set} {{ ip saddr }}"));
                }
                rules.push(format!("meta l4proto {p} dnat to {addr}:{port}"));
                d.chains.insert(ep_chain.clone(), rules);
                ep_chains.push(ep_chain);
            }
            if ep_chains.len() == 1 {
                push(&mut d, &svc_chain, format!("goto {}", ep_chains[0]));
            } else {
                let arms = ep_chains
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i} : goto {c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                push(
                    &mut d,
                    &svc_chain,
                    format!("numgen random mod {} vmap {{ {arms} }}", ep_chains.len()),
                );
            }
        }
    }
    if !vips.is_empty() {
        push(
            &mut d,
            "services",
            format!(
                "ip daddr . meta l4proto . th dport vmap {{ {} }}",
                vips.join(", ")
            ),
        );
    }
    if !nodeports.is_empty() {
        push(
            &mut d,
            "services",
            format!(
                "ip daddr {{ {node_set} }} meta l4proto . th dport vmap {{ {} }}",
                nodeports.join(", ")
            ),
        );
    }
    if !all_vips.is_empty() {
        let list = all_vips
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        push(
            &mut d,
            "cluster-ips",
            format!("ip daddr {{ {list} }} reject with icmp type port-unreachable"),
        );
    }
    if !rejects.is_empty() {
        push(
            &mut d,
            "no-endpoints",
            format!(
                "ip daddr . meta l4proto . th dport {{ {} }} reject with icmp type port-unreachable",
                rejects.join(", ")
            ),
        );
    }
    d
}

/// The `nft -f` script that turns `existing` into `desired`, as one transaction.
pub fn render(d: &Desired, existing: &Existing, table: &str) -> String {
    let mut s = String::new();
    let t = format!("ip {table}");
    let _ = writeln!(s, "add table {t}");
    for (name, def) in BASE_CHAINS {
        let _ = writeln!(s, "add chain {t} {name} {{ {def} }}");
    }
    let base: BTreeSet<&str> = BASE_CHAINS.iter().map(|(n, _)| *n).collect();
    for name in d.chains.keys().filter(|n| !base.contains(n.as_str())) {
        if !existing.chains.contains(name) {
            let _ = writeln!(s, "add chain {t} {name}");
        }
    }
    for (name, timeout) in &d.sets {
        if !existing.sets.contains(name) {
            let _ = writeln!(
                s,
                "add set {t} {name} {{ type ipv4_addr; flags timeout; timeout {timeout}s; }}"
            );
        }
    }
    // Flush everything of ours (wanted and stale) so nothing references a stale chain.
    let all: BTreeSet<&String> = d.chains.keys().chain(existing.chains.iter()).collect();
    for name in &all {
        let _ = writeln!(s, "flush chain {t} {name}");
    }
    // Base chains first, then the rest (order does not matter to nft, only to readers).
    for (name, _) in BASE_CHAINS {
        for r in d.chains.get(*name).into_iter().flatten() {
            let _ = writeln!(s, "add rule {t} {name} {r}");
        }
    }
    for (name, rules) in d.chains.iter().filter(|(n, _)| !base.contains(n.as_str())) {
        for r in rules {
            let _ = writeln!(s, "add rule {t} {name} {r}");
        }
    }
    for name in existing
        .chains
        .iter()
        .filter(|n| !d.chains.contains_key(*n))
    {
        let _ = writeln!(s, "delete chain {t} {name}");
    }
    for name in existing.sets.iter().filter(|n| !d.sets.contains_key(*n)) {
        let _ = writeln!(s, "delete set {t} {name}");
    }
    s
}

/// Convenience: desired + render in one call (what unit tests and the proxy use).
pub fn script(
    services: &[Service],
    slices: &[Slice],
    cfg: &RulesConfig,
    existing: &Existing,
) -> String {
    render(&desired(services, slices, cfg), existing, &cfg.table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        Service::from_json(&v).unwrap()
    }

    fn web(extra: serde_json::Value) -> Service {
        let mut o = json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
        });
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                o["spec"][k] = v.clone();
            }
        }
        svc(o)
    }

    fn slice(ready: &[(&str, bool)]) -> Slice {
        let eps: Vec<_> = ready
            .iter()
            .map(|(a, r)| json!({"addresses": [a], "conditions": {"ready": r}}))
            .collect();
        Slice::from_endpoint_slice(&json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps,
        }))
        .unwrap()
    }

    fn cfg() -> RulesConfig {
        RulesConfig {
            table: "drvtest".into(),
            node_ips: vec!["192.0.2.2".parse().unwrap()],
            local_cidr: Some("10.244.0.0/16".into()),
        }
    }

    #[test]
    fn balances_over_ready_endpoints() {
        let d = desired(
            &[web(json!({}))],
            &[slice(&[
                ("10.244.0.2", true),
                ("10.244.0.3", true),
                ("10.244.0.4", false),
            ])],
            &cfg(),
        );
        let svc = &d.chains["svc-ns/web/tcp/80"];
        assert_eq!(
            svc,
            &vec![
                "ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000".to_string(),
                "numgen random mod 2 vmap { 0 : goto ep-ns/web/tcp/80/10.244.0.2/8080, 1 : goto ep-ns/web/tcp/80/10.244.0.3/8080 }".to_string(),
            ]
        );
        assert_eq!(
            d.chains["ep-ns/web/tcp/80/10.244.0.2/8080"],
            vec![
                "ip saddr 10.244.0.2 meta mark set meta mark | 0x4000".to_string(),
                "meta l4proto tcp dnat to 10.244.0.2:8080".to_string(),
            ]
        );
        assert!(!d.chains.contains_key("ep-ns/web/tcp/80/10.244.0.4/8080"));
        assert_eq!(
            d.chains["services"],
            vec![
                "ip daddr . meta l4proto . th dport vmap { 10.96.0.5 . tcp . 80 : goto svc-ns/web/tcp/80 }".to_string(),
                "ip daddr { 127.0.0.1, 192.0.2.2 } meta l4proto . th dport vmap { tcp . 30080 : goto ext-ns/web/tcp/80 }".to_string(),
            ]
        );
        assert_eq!(
            d.chains["ext-ns/web/tcp/80"],
            vec![
                "meta mark set meta mark | 0x4000".to_string(),
                "goto svc-ns/web/tcp/80".to_string()
            ]
        );
        assert!(d.chains["no-endpoints"].is_empty());
        assert_eq!(
            d.chains["cluster-ips"],
            vec!["ip daddr { 10.96.0.5 } reject with icmp type port-unreachable".to_string()]
        );
    }

    #[test]
    fn no_ready_endpoint_rejects_cluster_ip_and_node_ports() {
        let d = desired(
            &[web(json!({}))],
            &[slice(&[("10.244.0.4", false)])],
            &cfg(),
        );
        assert!(!d.chains.contains_key("svc-ns/web/tcp/80"));
        assert_eq!(
            d.chains["no-endpoints"],
            vec!["ip daddr . meta l4proto . th dport { 10.96.0.5 . tcp . 80, 127.0.0.1 . tcp . 30080, 192.0.2.2 . tcp . 30080 } reject with icmp type port-unreachable".to_string()]
        );
        assert!(d.chains["services"].is_empty());
    }

    #[test]
    fn affinity_uses_per_endpoint_sets() {
        let d = desired(
            &[web(
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
            )],
            &[slice(&[("10.244.0.2", true), ("10.244.0.3", true)])],
            &cfg(),
        );
        assert_eq!(
            d.sets.keys().collect::<Vec<_>>(),
            vec![
                "aff-ns/web/tcp/80/10.244.0.2/8080/60",
                "aff-ns/web/tcp/80/10.244.0.3/8080/60"
            ]
        );
        let svc = &d.chains["svc-ns/web/tcp/80"];
        assert_eq!(
            svc[1],
            "ip saddr @aff-ns/web/tcp/80/10.244.0.2/8080/60 goto ep-ns/web/tcp/80/10.244.0.2/8080"
        );
        assert_eq!(
            d.chains["ep-ns/web/tcp/80/10.244.0.3/8080"][1],
            "update @aff-ns/web/tcp/80/10.244.0.3/8080/60 { ip saddr }"
        );
    }

    #[test]
    fn headless_external_name_and_cluster_ip_types() {
        let headless = svc(json!({"metadata": {"name": "db", "namespace": "ns"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}));
        let ext = svc(json!({"metadata": {"name": "ext", "namespace": "ns"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}}));
        // A ClusterIP service ignores a stray nodePort.
        let plain = web(json!({"type": "ClusterIP"}));
        let d = desired(
            &[headless, ext, plain],
            &[slice(&[("10.244.0.2", true)])],
            &cfg(),
        );
        assert_eq!(
            d.chains["services"],
            vec!["ip daddr . meta l4proto . th dport vmap { 10.96.0.5 . tcp . 80 : goto svc-ns/web/tcp/80 }".to_string()]
        );
        assert_eq!(
            d.chains["svc-ns/web/tcp/80"][1],
            "goto ep-ns/web/tcp/80/10.244.0.2/8080"
        );
    }

    #[test]
    fn render_adds_missing_and_deletes_stale() {
        let d = desired(
            &[web(json!({"sessionAffinity": "ClientIP"}))],
            &[slice(&[("10.244.0.2", true)])],
            &cfg(),
        );
        let existing = parse_existing(
            "table ip drvtest {\n\tset aff-ns/web/tcp/80/10.244.0.9/8080/10800 {\n\t\ttype ipv4_addr\n\t}\n\
             \tset aff-ns/web/tcp/80/10.244.0.2/8080/10800 {\n\t}\n\
             \tchain services {\n\t}\n\tchain ep-ns/web/tcp/80/10.244.0.9/8080 {\n\t}\n}\n",
        );
        assert!(existing.table);
        assert_eq!(existing.sets.len(), 2);
        let s = render(&d, &existing, "drvtest");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "add table ip drvtest");
        assert!(lines.contains(&"add chain ip drvtest svc-ns/web/tcp/80"));
        assert!(!lines.contains(&"add chain ip drvtest services"));
        assert!(!lines.iter().any(|l| l.starts_with("add set")));
        assert!(lines.contains(&"flush chain ip drvtest ep-ns/web/tcp/80/10.244.0.9/8080"));
        let flush = lines
            .iter()
            .position(|l| *l == "flush chain ip drvtest ep-ns/web/tcp/80/10.244.0.9/8080")
            .unwrap();
        let del = lines
            .iter()
            .position(|l| *l == "delete chain ip drvtest ep-ns/web/tcp/80/10.244.0.9/8080")
            .unwrap();
        assert!(flush < del);
        assert_eq!(
            lines.last().unwrap(),
            &"delete set ip drvtest aff-ns/web/tcp/80/10.244.0.9/8080/10800"
        );
    }
}
