//! The node proxy and the cluster DNS server every Drover agent runs in-process.
//!
//! - [`run`] programs the kernel from Services and EndpointSlices: one nftables table
//!   `ip <prefix>` per agent (see [`rules`] for its layout). nftables rather than
//!   iptables because an update is one atomic `nft -f` transaction confined to our own
//!   table (others' rules are never read or rewritten), service lookup is a verdict map
//!   (O(1) per packet instead of a linear chain walk), random-equal balancing is
//!   `numgen random mod N vmap`, ClientIP affinity is a native set with timeouts, and
//!   cleanup is a single `delete table`.
//! - [`serve_dns`] answers for the cluster domain from the same watches (see [`dns`]),
//!   and forwards other names to the host's resolvers.
#![forbid(unsafe_code)]

pub mod dns;
pub mod model;
mod nft;
pub mod rules;
mod watch;

pub use dns::{DnsConfig, serve_dns, serve_dns_on, upstreams_from_resolv_conf};

use futures::StreamExt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::time::Instant;

/// What went wrong in the proxy or the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `nft` could not be started.
    #[error("cannot run `nft` ({0}); install Debian's `nftables` package")]
    NftMissing(#[source] std::io::Error),
    /// `nft` refused a command.
    #[error("nft failed to {what}: {stderr}")]
    Nft {
        /// The operation.
        what: String,
        /// nft's message.
        stderr: String,
    },
    /// The configuration is unusable.
    #[error("invalid proxy configuration: {0}")]
    Config(String),
    /// A DNS socket could not be opened.
    #[error("cannot listen for DNS on {addr}: {source}; pick a free address")]
    Bind {
        /// Where.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The DNS server stopped.
    #[error("the DNS server stopped: {0}")]
    Dns(String),
}

/// How one agent's proxy is set up.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// This node's name (for logs).
    pub node_name: String,
    /// Addresses NodePorts answer on (besides 127.0.0.1). IPv6 ones are ignored.
    pub node_ips: Vec<IpAddr>,
    /// Unique per agent on a host, letters/digits/`_`, at most 10 characters, starting
    /// with a letter; the nft table is its lowercase form.
    pub chain_prefix: String,
    /// This node's pod range, e.g. `10.244.1.0/24`.
    pub pod_cidr: String,
    /// The whole cluster's pod range, if known: cluster-IP traffic from outside it is
    /// masqueraded (falls back to `pod_cidr`).
    pub cluster_cidr: Option<String>,
}

/// The nft table of a chain prefix, after checking the prefix is a safe identifier.
pub fn table_name(chain_prefix: &str) -> Result<String, ProxyError> {
    let ok = !chain_prefix.is_empty()
        && chain_prefix.len() <= 10
        && chain_prefix.starts_with(|c: char| c.is_ascii_alphabetic())
        && chain_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(ProxyError::Config(format!(
            "chain prefix {chain_prefix:?} must be 1-10 letters, digits or '_', starting with a letter"
        )));
    }
    Ok(chain_prefix.to_ascii_lowercase())
}

/// Checks `a.b.c.d/n` (it is pasted into nft rules).
fn ipv4_cidr(s: &str) -> Result<String, ProxyError> {
    let bad = || ProxyError::Config(format!("{s:?} is not an IPv4 CIDR like 10.244.0.0/16"));
    let (ip, len) = s.trim().split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    Ok(format!("{ip}/{len}"))
}

/// Best-effort sysctl write (we run as root; a failure only degrades NodePort on
/// 127.0.0.1, so it is logged, not fatal).
fn sysctl(path: &str, value: &str) {
    let p = format!("/proc/sys/{path}");
    match std::fs::read_to_string(&p) {
        Ok(v) if v.trim() == value => {}
        _ => {
            if let Err(e) = std::fs::write(&p, value) {
                tracing::warn!("proxy: cannot set {path}={value}: {e}");
            }
        }
    }
}

/// How long to wait after a change for more changes before syncing (coalesces bursts).
const COALESCE: Duration = Duration::from_millis(100);
/// Full re-apply period, repairing anything that removed our rules.
const RESYNC: Duration = Duration::from_secs(30);

/// Runs the node proxy until dropped: watches Services and EndpointSlices (v1 Endpoints
/// if the server has no slices) and keeps this agent's nft table in step, within about
/// 100 ms of a change. Fails only at start (bad config, no usable `nft`); API and nft
/// errors after that are logged and retried.
pub async fn run(client: client::Client, cfg: ProxyConfig) -> Result<(), ProxyError> {
    let table = table_name(&cfg.chain_prefix)?;
    let local_cidr = match cfg.cluster_cidr.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(ipv4_cidr(c)?),
        None if !cfg.pod_cidr.is_empty() => Some(ipv4_cidr(&cfg.pod_cidr)?),
        None => None,
    };
    let rcfg = rules::RulesConfig {
        table: table.clone(),
        node_ips: cfg
            .node_ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect(),
        local_cidr,
    };
    // NodePorts on 127.0.0.1 need loopback-sourced packets to be routable to pods;
    // service traffic from pods is routed by the host.
    sysctl("net/ipv4/conf/all/route_localnet", "1");
    sysctl("net/ipv4/ip_forward", "1");
    nft::existing(&table).await?;
    let (cluster, mut events) = watch::watch(&client, "proxy").await;
    tracing::info!(
        "proxy: node {} programs nft table ip {table}",
        cfg.node_name
    );
    let mut last: Option<rules::Desired> = None;
    let mut due: Option<Instant> = None;
    let mut next_resync = Instant::now() + RESYNC;
    loop {
        let wake = due.unwrap_or(next_resync).min(next_resync);
        tokio::select! {
            ev = events.next() => {
                if ev.is_none() {
                    // The watchers never end; if they do, keep the rules and idle.
                    std::future::pending::<()>().await;
                }
                if due.is_none() {
                    due = Some(Instant::now() + COALESCE);
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                let force = Instant::now() >= next_resync;
                if force {
                    next_resync = Instant::now() + RESYNC;
                }
                if !cluster.is_ready() {
                    // The other cache's first list is still coming: look again soon.
                    due = Some(Instant::now() + COALESCE);
                    continue;
                }
                due = None;
                let (services, slices) = cluster.snapshot();
                let want = rules::desired(&services, &slices, &rcfg);
                if !force && last.as_ref() == Some(&want) {
                    continue;
                }
                match sync(&table, &want).await {
                    Ok(()) => last = Some(want),
                    Err(e) => {
                        tracing::warn!("proxy: {e}; retrying in 1 s");
                        last = None;
                        due = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
    }
}

/// Applies `want` over what the kernel has; if nft refuses the incremental update
/// (someone changed our table), recreates the table from scratch.
async fn sync(table: &str, want: &rules::Desired) -> Result<(), ProxyError> {
    let started = std::time::Instant::now();
    let existing = nft::existing(table).await?;
    let script = rules::render(want, &existing, table);
    if let Err(e) = nft::apply(table, &script).await {
        tracing::warn!("proxy: incremental update failed ({e}); recreating table ip {table}");
        nft::delete_table(table).await?;
        let script = rules::render(want, &rules::Existing::default(), table);
        nft::apply(table, &script).await?;
    }
    tracing::debug!(
        "proxy: synced table ip {table} ({} chains) in {:?}",
        want.chains.len(),
        started.elapsed()
    );
    Ok(())
}

/// Removes every rule, chain and set of this prefix (its whole nft table). Used on agent
/// reset and by tests; absent is fine.
pub async fn cleanup(chain_prefix: &str) -> Result<(), ProxyError> {
    nft::delete_table(&table_name(chain_prefix)?).await
}
