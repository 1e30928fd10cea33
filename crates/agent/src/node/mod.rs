//! The real node agent (Drover's kubelet): registers the machine as a Node, runs the
//! pods bound to it as OCI containers (images from [`images`], a CNI network sandbox
//! per pod from [`podnet`], containers under conmon from [`oci_runtime`]), probes
//! them, reports their status, and serves logs, exec, attach, port-forward and
//! resource figures to the API server.
//!
//! ```text
//!  pod watch (spec.nodeName = me) ─▶ manager ─▶ one worker per pod uid
//!                                               │ sandbox → volumes → init containers → containers
//!                                               │ container exits, probe results, back-off timers wake it
//!                                               └ status patch whenever the computed status changes
//!  heartbeat: Lease every 5 s, Node status every 10 s
//!  HTTPS server: /containerLogs /exec /attach /portForward /stats/summary
//! ```

mod cgroups;
pub mod env;
pub mod events;
mod logrotate;
pub mod machine;
mod manager;
pub mod probe;
mod register;
pub mod routes;
mod server;
pub mod spec;
mod stats;
pub mod status;
mod tool;
pub mod volumes;
mod worker;

use client::Client;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the agent is set up (`drover agent` flags, or the server's local agent).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Node name.
    pub name: String,
    /// Where images, pod files, logs and runtime state live.
    pub data_dir: PathBuf,
    /// The node's InternalIP (also where the agent's HTTPS server listens).
    pub node_ip: IpAddr,
    /// The agent's HTTPS port (0 picks a free one).
    pub port: u16,
    /// The pod range; None waits for spec.podCIDR to be assigned.
    pub pod_cidr: Option<podnet::Ipv4Net>,
    /// The pod bridge.
    pub bridge: String,
    /// The OCI runtime binary (runc; crun or youki can replace it).
    pub runtime: PathBuf,
    /// conmon.
    pub conmon: PathBuf,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Docker Hub mirrors tried before docker.io.
    pub registry_mirrors: Vec<String>,
    /// The token the API server presents when it calls the agent.
    pub server_token: String,
    /// Extra node labels.
    pub labels: BTreeMap<String, String>,
    /// Taints the Node is created with (kubelet's registerWithTaints).
    pub taints: Vec<serde_json::Value>,
    /// Pod capacity.
    pub max_pods: u32,
    /// Cluster DNS server for pods' resolv.conf (once cluster DNS exists).
    pub cluster_dns: Option<String>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// A container's log file is rotated (one old generation kept) above this size.
    pub container_log_max_bytes: u64,
    /// Where cluster DNS forwards names outside the cluster domain; None: the host's
    /// resolv.conf servers.
    pub dns_upstream: Option<Vec<std::net::SocketAddr>>,
    /// How pods on different nodes reach each other (host-gw routes or a VXLAN overlay).
    pub pod_network: routes::PodNetwork,
}

impl AgentConfig {
    /// Defaults for node `name` with data under `data_dir`.
    pub fn new(name: &str, data_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            name: name.to_string(),
            data_dir,
            node_ip: IpAddr::from([127, 0, 0, 1]),
            port: 10250,
            pod_cidr: None,
            bridge: "drover0".into(),
            runtime: "/usr/sbin/runc".into(),
            conmon: "/usr/bin/conmon".into(),
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            server_token: String::new(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            max_pods: 110,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            container_log_max_bytes: 10 << 20,
            dns_upstream: None,
            pod_network: routes::PodNetwork::HostGw,
        }
    }
}

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The image store.
    #[error("image store: {0}")]
    Images(#[from] images::ImageError),
    /// The pod network.
    #[error("pod network: {0}")]
    Network(#[from] podnet::NetError),
    /// The container runtime.
    #[error("container runtime: {0}")]
    Runtime(#[from] oci_runtime::RuntimeError),
    /// Local files.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The API server.
    #[error("API server: {0}")]
    Api(#[from] client::Error),
    /// The agent's HTTPS server.
    #[error("agent server: {0}")]
    Server(String),
}

/// A pod the agent runs, as the HTTPS server needs to find it.
#[derive(Debug, Clone, Default)]
pub struct PodEntry {
    /// The pod uid.
    pub uid: String,
    /// Its IP.
    pub ip: Option<IpAddr>,
    /// Container name → (current runtime id, attempt, running).
    pub containers: BTreeMap<String, (String, u32, bool)>,
    /// Container name → why it is not running (for log errors).
    pub waiting: BTreeMap<String, String>,
    /// Image store ids its containers use (never garbage-collected).
    pub images: std::collections::BTreeSet<String>,
}

/// What every part of the agent shares.
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub cfg: AgentConfig,
    /// The image store.
    pub images: images::ImageStore,
    /// Pod sandboxes.
    pub net: podnet::Network,
    /// Containers.
    pub runtime: oci_runtime::Runtime,
    /// Events.
    pub events: events::Recorder,
    /// The HTTPS port actually bound.
    pub port: u16,
    /// Node CPU in millicores (limits default for resourceFieldRef).
    pub cpu_millis: i64,
    /// Node memory in bytes.
    pub memory: i64,
    /// The host's resolv.conf (for dnsPolicy Default).
    pub host_resolv: String,
    /// `namespace/name` → running pod.
    pub pods: Mutex<BTreeMap<String, PodEntry>>,
    /// CPU samples for usage rates.
    pub stats: stats::Sampler,
}

impl Ctx {
    /// `pods/<uid>` under the data directory.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.data_dir.join("pods").join(uid)
    }
    /// The log file of one container instance.
    pub fn log_path(&self, uid: &str, container: &str, attempt: u32) -> PathBuf {
        self.pod_dir(uid)
            .join("logs")
            .join(container)
            .join(format!("{attempt}.log"))
    }
    /// Where one container instance's rootfs is mounted.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("containers").join(id)
    }
}

/// Runs the agent until the future is dropped or a fatal error.
pub async fn run(client: Client, cfg: AgentConfig) -> Result<(), AgentError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| AgentError::Io {
            what: what.clone(),
            source,
        }
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(io("creating the data directory"))?;
    let images = images::ImageStore::open(&cfg.data_dir.join("images"))?;
    let runtime = oci_runtime::Runtime::new(oci_runtime::RuntimeConfig {
        runtime: cfg.runtime.clone(),
        runtime_root: cfg.data_dir.join("runc"),
        conmon: cfg.conmon.clone(),
        state_dir: cfg.data_dir.join("runtime"),
        cgroup_parent: format!("/drover/{}", cfg.name),
    })?;
    let listener = server::bind(&cfg).await?;
    let port = listener
        .local_addr()
        .map_err(io("reading the agent's port"))?
        .port();
    let m = machine::Machine::read(&cfg.data_dir);
    let ctx_base = |net: podnet::Network, cfg: AgentConfig| Ctx {
        events: events::Recorder::new(client.clone(), &cfg.name),
        client: client.clone(),
        images: images.clone(),
        net,
        runtime: runtime.clone(),
        port,
        cpu_millis: i64::from(m.cpus) * 1000,
        memory: i64::try_from(m.memory_bytes).unwrap_or(i64::MAX),
        host_resolv: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        pods: Mutex::default(),
        stats: stats::Sampler::default(),
        cfg,
    };
    // Register first: the pod range may come from the Node's spec.
    let since = crate::hollow::timestamp(false);
    let placeholder = podnet::Network::new(net_config(
        &cfg,
        cfg.pod_cidr
            .unwrap_or_else(|| "10.88.0.0/24".parse().unwrap_or_default()),
    ))?;
    let pre = Arc::new(ctx_base(placeholder, cfg.clone()));
    let (uid, cidr) = loop {
        match register::register(&pre, &since).await {
            Ok((uid, cidr)) => match cidr.or_else(|| cfg.pod_cidr.map(|c| c.to_string())) {
                Some(c) => break (uid, c),
                None => tracing::info!(
                    "node {}: waiting for a podCIDR (pass --pod-cidr or run the node IPAM controller)",
                    cfg.name
                ),
            },
            Err(e) => tracing::warn!("node {}: registering: {e}", cfg.name),
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    let subnet: podnet::Ipv4Net = cidr.parse().map_err(|_| {
        AgentError::Server(format!(
            "node {}: spec.podCIDR {cidr:?} is not an IPv4 CIDR",
            cfg.name
        ))
    })?;
    drop(pre);
    // Cluster DNS for this node's pods listens on the bridge's gateway address (a
    // node-local resolver, as NodeLocal DNSCache), so the bridge is made up front.
    let gateway = std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1);
    let mut cfg = cfg;
    let dns = match ensure_bridge(&cfg.bridge, gateway, subnet.prefix_len()).await {
        Ok(()) => bind_dns(gateway).await,
        Err(e) => Err(e),
    };
    let dns = match dns {
        Ok(sockets) => {
            cfg.cluster_dns = Some(gateway.to_string());
            Some(sockets)
        }
        Err(e) => {
            tracing::warn!(
                "node {}: no cluster DNS for pods ({e}); they use the host's resolvers",
                cfg.name
            );
            None
        }
    };
    let ctx = Arc::new(ctx_base(
        podnet::Network::new(net_config(&cfg, subnet))?,
        cfg.clone(),
    ));
    tracing::info!(
        "node {} registered: pods in {subnet}, agent on https://{}:{port}",
        cfg.name,
        cfg.node_ip
    );
    let beat = tokio::spawn(register::heartbeat(ctx.clone(), uid, since));
    let serve = tokio::spawn(server::serve(ctx.clone(), listener));
    let sample = tokio::spawn(stats::sample_loop(ctx.clone()));
    let gc = tokio::spawn(image_gc_loop(ctx.clone()));
    let rotate = tokio::spawn(log_rotation_loop(ctx.clone()));
    let proxy_cfg = proxy::ProxyConfig {
        node_name: cfg.name.clone(),
        node_ips: vec![cfg.node_ip],
        chain_prefix: proxy_prefix(&cfg.name),
        pod_cidr: subnet.to_string(),
        cluster_cidr: None,
    };
    let proxy_client = ctx.client.clone();
    let node = cfg.name.clone();
    let services = tokio::spawn(async move {
        if let Err(e) = proxy::run(proxy_client, proxy_cfg).await {
            tracing::error!("node {node}: the service proxy stopped: {e}");
        }
    });
    let routes = tokio::spawn(routes::run(
        ctx.client.clone(),
        routes::RouteConfig {
            node: cfg.name.clone(),
            node_ip: cfg.node_ip,
            own_cidr: subnet.to_string(),
            state_file: routes::state_file(&cfg.data_dir),
            mode: cfg.pod_network,
            vxlan_state_file: routes::vxlan_state_file(&cfg.data_dir),
        },
    ));
    let resolver = match dns {
        Some((udp, tcp)) => {
            let dns_cfg = proxy::DnsConfig {
                listen: std::net::SocketAddr::from((gateway, 53)),
                cluster_domain: cfg.cluster_domain.clone(),
                upstream: cfg
                    .dns_upstream
                    .clone()
                    .unwrap_or_else(|| proxy::upstreams_from_resolv_conf(&ctx.host_resolv)),
            };
            let dns_client = ctx.client.clone();
            let node = cfg.name.clone();
            tokio::spawn(async move {
                if let Err(e) = proxy::serve_dns_on(dns_client, dns_cfg, udp, tcp).await {
                    tracing::error!("node {node}: cluster DNS stopped: {e}");
                }
            })
        }
        None => tokio::spawn(async {}),
    };
    struct Abort(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for Abort {
        fn drop(&mut self) {
            for h in &self.0 {
                h.abort();
            }
        }
    }
    let _tasks = Abort(vec![
        beat, serve, sample, gc, rotate, services, resolver, routes,
    ]);
    manager::run(ctx).await;
    Ok(())
}

/// The agent's nftables table prefix: stable per node name (so `drover reset` finds
/// it) and distinct between agents sharing one kernel.
pub fn proxy_prefix(node: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in node.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("drv{:07x}", h & 0x0fff_ffff)
}

async fn ip(args: &[&str]) -> Result<String, AgentError> {
    tool::run("ip", args).await.map_err(AgentError::Server)
}

/// Creates the pod bridge with its gateway address (the CNI bridge plugin adopts it).
async fn ensure_bridge(
    name: &str,
    gateway: std::net::Ipv4Addr,
    prefix: u8,
) -> Result<(), AgentError> {
    if ip(&["link", "show", "dev", name]).await.is_err() {
        ip(&["link", "add", name, "type", "bridge"]).await?;
    }
    let addrs = ip(&["-4", "-o", "addr", "show", "dev", name]).await?;
    if !addrs.contains(&format!("inet {gateway}/")) {
        ip(&["addr", "add", &format!("{gateway}/{prefix}"), "dev", name]).await?;
    }
    // A bridge without an address of its own takes the lowest MAC of its ports, which
    // changes as pods' veths come and go; pods keep sending to the old one and lose
    // packets until ARP refreshes (seen as DNS lookups stalling for 5 s during rolling
    // updates). Setting the address pins it (addr_assign_type 3).
    let sys = format!("/sys/class/net/{name}");
    let assigned = std::fs::read_to_string(format!("{sys}/addr_assign_type")).unwrap_or_default();
    if assigned.trim() != "3" {
        let mac =
            std::fs::read_to_string(format!("{sys}/address")).map_err(|source| AgentError::Io {
                what: format!("reading the MAC of bridge {name}"),
                source,
            })?;
        ip(&["link", "set", "dev", name, "address", mac.trim()]).await?;
    }
    ip(&["link", "set", name, "up"]).await?;
    Ok(())
}

async fn bind_dns(
    addr: std::net::Ipv4Addr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), AgentError> {
    let at = std::net::SocketAddr::from((addr, 53));
    let err = |e: std::io::Error| {
        AgentError::Server(format!("cannot listen on {at} for cluster DNS: {e}"))
    };
    let udp = tokio::net::UdpSocket::bind(at).await.map_err(err)?;
    let tcp = tokio::net::TcpListener::bind(at).await.map_err(err)?;
    Ok((udp, tcp))
}

/// Every 5 s: rotates the log files of running containers that outgrew the limit.
async fn log_rotation_loop(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let logs: Vec<PathBuf> = ctx
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .flat_map(|p| {
                p.containers
                    .iter()
                    .filter(|(_, c)| c.2)
                    .map(|(name, c)| ctx.log_path(&p.uid, name, c.1))
                    .collect::<Vec<_>>()
            })
            .collect();
        for log in logs {
            match logrotate::rotate_if_needed(&log, ctx.cfg.container_log_max_bytes) {
                Ok(true) => tracing::debug!("rotated {}", log.display()),
                Ok(false) => {}
                Err(e) => tracing::warn!("rotating {}: {e}", log.display()),
            }
        }
    }
}

/// Disk use above which unused images are removed, and the use to bring it down to
/// (the kubelet's imageGCHighThresholdPercent / imageGCLowThresholdPercent).
const IMAGE_GC_HIGH_PERCENT: u64 = 85;
const IMAGE_GC_LOW_PERCENT: u64 = 80;

/// Every minute: when the data directory's filesystem is fuller than the high
/// threshold, removes least recently used images no pod on this node uses.
async fn image_gc_loop(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let m = machine::Machine::read(&ctx.cfg.data_dir);
        if m.disk_bytes == 0 {
            continue;
        }
        let used = m.disk_bytes - m.disk_free.min(m.disk_bytes);
        if used * 100 < m.disk_bytes * IMAGE_GC_HIGH_PERCENT {
            continue;
        }
        let target = m.disk_bytes * IMAGE_GC_LOW_PERCENT / 100;
        let in_use: std::collections::HashSet<String> = ctx
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .flat_map(|p| p.images.iter().cloned())
            .collect();
        match ctx.images.gc(&in_use, used.saturating_sub(target)) {
            Ok(freed) => tracing::info!(
                "node {}: disk {}% full, image GC freed {freed} bytes",
                ctx.cfg.name,
                used * 100 / m.disk_bytes
            ),
            Err(e) => tracing::warn!("node {}: image GC: {e}", ctx.cfg.name),
        }
    }
}

fn net_config(cfg: &AgentConfig, subnet: podnet::Ipv4Net) -> podnet::NetworkConfig {
    podnet::NetworkConfig {
        bridge: cfg.bridge.clone(),
        subnet,
        state_dir: cfg.data_dir.join("cni"),
        // Per agent: a restarted agent (or `drover reset`) removes namespaces with its
        // prefix that have no pod, so agents sharing a kernel must never share one.
        netns_prefix: format!("{}-", proxy_prefix(&cfg.name)),
        // Room for the VXLAN encapsulation.
        mtu: (cfg.pod_network == routes::PodNetwork::Vxlan).then_some(routes::VXLAN_MTU),
        ..podnet::NetworkConfig::default()
    }
}

/// What [`reset`] removed.
#[derive(Debug, Default)]
pub struct ResetReport {
    /// Containers removed.
    pub containers: usize,
    /// Pod sandboxes removed.
    pub sandboxes: usize,
}

/// Removes everything an agent with this configuration left on the machine: its
/// containers (and their monitors), rootfs mounts, pod volumes, sandboxes, IP
/// allocations and its bridge (`drover reset`, and test clean-up). Images stay.
pub async fn reset(cfg: &AgentConfig) -> Result<ResetReport, AgentError> {
    let mut report = ResetReport::default();
    let images = images::ImageStore::open(&cfg.data_dir.join("images"))?;
    let runtime = oci_runtime::Runtime::new(oci_runtime::RuntimeConfig {
        runtime: cfg.runtime.clone(),
        runtime_root: cfg.data_dir.join("runc"),
        conmon: cfg.conmon.clone(),
        state_dir: cfg.data_dir.join("runtime"),
        cgroup_parent: format!("/drover/{}", cfg.name),
    })?;
    for c in runtime.list().await? {
        runtime.remove(&c.id).await?;
        report.containers += 1;
    }
    if let Ok(dirs) = std::fs::read_dir(cfg.data_dir.join("containers")) {
        for d in dirs.flatten() {
            images.unmount_rootfs(&d.path())?;
        }
    }
    if let Ok(dirs) = std::fs::read_dir(cfg.data_dir.join("pods")) {
        for d in dirs.flatten() {
            volumes::teardown(&d.path().join("volumes"))
                .await
                .map_err(|source| AgentError::Io {
                    what: format!("removing volumes in {}", d.path().display()),
                    source,
                })?;
            let _ = std::fs::remove_dir_all(d.path());
        }
    }
    let subnet = cfg.pod_cidr.unwrap_or_else(|| {
        podnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 88, 0, 0), 24).unwrap_or_default()
    });
    let net = podnet::Network::new(net_config(cfg, subnet))?;
    for uid in net.list_pod_uids()? {
        net.remove_sandbox(&uid).await?;
        report.sandboxes += 1;
    }
    net.destroy().await?;
    routes::cleanup(&routes::state_file(&cfg.data_dir)).await;
    routes::cleanup_vxlan(&routes::vxlan_state_file(&cfg.data_dir), &cfg.name).await;
    proxy::cleanup(&proxy_prefix(&cfg.name))
        .await
        .map_err(|e| AgentError::Server(format!("removing the service rules: {e}")))?;
    runtime.remove_cgroup(&format!("/drover/{}", cfg.name))?;
    cgroups::remove_if_empty("/drover");
    Ok(report)
}
