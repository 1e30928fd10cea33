//! `drover agent`: a node agent joining a server. By default it runs the pods bound to
//! this machine as runc containers; `--simulate` runs hollow nodes instead (they
//! register, heartbeat and report pods Running without containers, for scale tests).

use anyhow::{Context, bail};
use std::net::IpAddr;
use std::path::PathBuf;

/// Settings of a real (runc) agent, shared by `drover agent` and the server's local agent.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's IP (its InternalIP, where the agent listens for the API server);
    /// default: the local address that reaches the server.
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The agent's HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 10250)]
    pub agent_port: u16,
    /// This node's pod range (e.g. 10.88.0.0/24); default: the Node's spec.podCIDR.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The Linux bridge pods attach to.
    #[arg(long, default_value = "drover0")]
    pub bridge: String,
    /// The OCI runtime binary (runc; crun or youki can replace it).
    #[arg(long, default_value = "/usr/sbin/runc")]
    pub runtime: PathBuf,
    /// The container monitor.
    #[arg(long, default_value = "/usr/bin/conmon")]
    pub conmon: PathBuf,
    /// A registry reached over plain HTTP (registries on 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// An extra node label (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
}

/// Flags of `drover agent`.
#[derive(clap::Args)]
pub struct Args {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token (DATA_DIR/join-token on the server).
    #[arg(long)]
    token: String,
    /// The cluster CA certificate (DATA_DIR/ca.crt on the server).
    #[arg(long)]
    ca_file: PathBuf,
    /// The node name (default: this host's name); with --count, the prefix of the names.
    #[arg(long)]
    name: Option<String>,
    /// Where images, pods and container state live (the agent uses DIR/agent).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
    /// Run hollow nodes: no containers, pods reported Running.
    #[arg(long)]
    simulate: bool,
    /// How many hollow nodes this process runs (with --simulate).
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Allocatable CPU of each hollow node.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Allocatable memory of each hollow node.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Pod capacity of each hollow node.
    #[arg(long, default_value_t = 110)]
    pods: u32,
}

/// This machine's host name, lower-cased (node names are DNS labels).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// The local address used to reach `server_url` (no packet is sent).
fn local_ip_towards(server_url: &str) -> Option<IpAddr> {
    let authority = server_url.split("://").nth(1)?.split('/').next()?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .ok()?
        .next()?;
    let sock = std::net::UdpSocket::bind(if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .ok()?;
    sock.connect(addr).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

impl NodeArgs {
    /// The agent configuration for node `name` with data in `data_dir/agent`.
    pub fn config(
        &self,
        name: &str,
        data_dir: &std::path::Path,
        server_url: &str,
        token: &str,
    ) -> anyhow::Result<agent::node::AgentConfig> {
        let mut cfg = agent::node::AgentConfig::new(name, data_dir.join("agent"));
        cfg.node_ip = match self.node_ip {
            Some(ip) => ip,
            None => local_ip_towards(server_url).unwrap_or(IpAddr::from([127, 0, 0, 1])),
        };
        cfg.port = self.agent_port;
        cfg.pod_cidr = match &self.pod_cidr {
            Some(c) => Some(c.parse().with_context(|| {
                format!("--pod-cidr {c:?} is not an IPv4 CIDR such as 10.88.0.0/24")
            })?),
            None => None,
        };
        cfg.bridge.clone_from(&self.bridge);
        if cfg.bridge.is_empty() || cfg.bridge.len() > 15 {
            bail!(
                "--bridge {:?} must be 1 to 15 characters (a Linux interface name)",
                self.bridge
            );
        }
        cfg.runtime.clone_from(&self.runtime);
        cfg.conmon.clone_from(&self.conmon);
        cfg.insecure_registries
            .clone_from(&self.insecure_registries);
        for l in &self.labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--node-label {l:?} must be KEY=VALUE"))?;
            cfg.labels.insert(k.to_string(), v.to_string());
        }
        cfg.max_pods = self.max_pods;
        cfg.server_token = token.to_string();
        Ok(cfg)
    }
}

/// Joins the server and runs until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let ca = std::fs::read(&args.ca_file)
        .with_context(|| format!("cannot read the CA file {}", args.ca_file.display()))?;
    let client = client::Client::from_parts(args.server.clone(), ca, args.token.clone())
        .with_context(|| format!("cannot make a client for {}", args.server))?;
    let name = args.name.clone().unwrap_or_else(host_name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if !args.simulate {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(super::default_data_dir);
        let cfg = args
            .node
            .config(&name, &data_dir, &args.server, &args.token)?;
        eprintln!("drover: node {name} joining {}", args.server);
        return runtime.block_on(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("cannot listen for SIGTERM")?;
            tokio::select! {
                r = agent::node::run(client, cfg) => r.context("the node agent stopped"),
                _ = tokio::signal::ctrl_c() => Ok(()),
                _ = term.recv() => Ok(()),
            }
        });
    }
    let opts = agent::hollow::HollowOptions {
        name: name.clone(),
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        ..Default::default()
    };
    runtime.block_on(async move {
        let work = if args.count <= 1 {
            tokio::spawn(agent::hollow::run(client, opts))
        } else {
            tokio::spawn(agent::hollow::run_many(client, args.count, &name, opts))
        };
        eprintln!(
            "drover: {} hollow node(s) joined {}",
            args.count.max(1),
            args.server
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = work => {}
        }
        Ok(())
    })
}
