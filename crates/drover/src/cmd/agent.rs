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
    /// A Docker Hub mirror (HOST[:PORT]) tried before docker.io (repeatable; plain HTTP
    /// only for loopback and --insecure-registry hosts).
    #[arg(long = "registry-mirror", value_name = "HOST:PORT")]
    pub registry_mirrors: Vec<String>,
    /// An extra node label (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Where cluster DNS forwards other names (default: the host's resolv.conf servers).
    #[arg(long = "dns-upstream", value_name = "IP:PORT")]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Cluster DNS answers only cluster names (SERVFAIL for the rest), never forwarding.
    #[arg(long)]
    pub no_dns_upstream: bool,
    /// A taint the node registers with, KEY[=VALUE]:EFFECT (repeatable).
    #[arg(long = "register-with-taint", value_name = "KEY=VALUE:EFFECT")]
    pub taints: Vec<String>,
    /// How pods on different nodes reach each other: host-gw (routes via the other
    /// nodes' addresses; the nodes must share a layer-2 network) or vxlan (an overlay
    /// over UDP 8472 between the node addresses).
    #[arg(long, default_value = "host-gw", value_parser = ["host-gw", "vxlan"])]
    pub pod_network: String,
    /// A YAML file with any of these settings (camelCase keys: nodeIP, agentPort, podCIDR,
    /// bridge, runtime, conmon, insecureRegistries, registryMirrors, nodeLabels, registerWithTaints, maxPods,
    /// dnsUpstream, containerLogMaxSize, podNetwork); flags given on the command line win.
    #[arg(long = "config", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Rotate a container's log file above this size (bytes, or a quantity such as 10Mi).
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
}

/// Flags of `drover agent`.
#[derive(clap::Args)]
pub struct Args {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token `drover server` printed (DATA_DIR/node-token, or `drover token
    /// create`); optional once this node has joined (its credentials are in the data
    /// directory). The server's legacy DATA_DIR/join-token also works, with --ca-file.
    #[arg(long)]
    token: Option<String>,
    /// The cluster CA certificate (DATA_DIR/ca.crt on the server); not needed with a join
    /// token, which carries the CA's hash.
    #[arg(long)]
    ca_file: Option<PathBuf>,
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

/// The agent configuration file (`--config`): the node flags as YAML.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeFile {
    #[serde(rename = "nodeIP")]
    node_ip: Option<IpAddr>,
    agent_port: Option<u16>,
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    bridge: Option<String>,
    runtime: Option<PathBuf>,
    conmon: Option<PathBuf>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    node_labels: Option<std::collections::BTreeMap<String, String>>,
    register_with_taints: Option<Vec<TaintSpec>>,
    max_pods: Option<u32>,
    dns_upstream: Option<Vec<std::net::SocketAddr>>,
    container_log_max_size: Option<String>,
    pod_network: Option<String>,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TaintSpec {
    key: String,
    #[serde(default)]
    value: String,
    effect: String,
}

/// Parses `KEY[=VALUE]:EFFECT` into a Node taint.
fn parse_taint(t: &str) -> anyhow::Result<serde_json::Value> {
    let (kv, effect) = t
        .rsplit_once(':')
        .with_context(|| format!("taint {t:?} must be KEY[=VALUE]:EFFECT"))?;
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    taint(key, value, effect)
}

fn taint(key: &str, value: &str, effect: &str) -> anyhow::Result<serde_json::Value> {
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        bail!("taint effect {effect:?} must be NoSchedule, PreferNoSchedule or NoExecute");
    }
    if key.is_empty() {
        bail!("a taint needs a key");
    }
    Ok(serde_json::json!({"key": key, "value": value, "effect": effect}))
}

impl NodeArgs {
    /// These flags with the configuration file's settings filled in where no flag was
    /// given (a flag still at its default counts as not given).
    fn with_file(&self) -> anyhow::Result<(NodeArgs, Vec<serde_json::Value>)> {
        let mut a = self.clone();
        let mut taints = Vec::new();
        if let Some(path) = &self.config_file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the agent configuration {}", path.display())
            })?;
            let f: NodeFile = serde_saphyr::from_str(&text)
                .with_context(|| format!("{}: not a valid agent configuration", path.display()))?;
            a.node_ip = a.node_ip.or(f.node_ip);
            if a.agent_port == 10250 {
                a.agent_port = f.agent_port.unwrap_or(10250);
            }
            a.pod_cidr = a.pod_cidr.or(f.pod_cidr);
            if a.bridge == "drover0" {
                a.bridge = f.bridge.unwrap_or(a.bridge);
            }
            if a.runtime.as_os_str() == "/usr/sbin/runc" {
                a.runtime = f.runtime.unwrap_or(a.runtime);
            }
            if a.conmon.as_os_str() == "/usr/bin/conmon" {
                a.conmon = f.conmon.unwrap_or(a.conmon);
            }
            a.insecure_registries
                .extend(f.insecure_registries.unwrap_or_default());
            a.registry_mirrors
                .extend(f.registry_mirrors.unwrap_or_default());
            for (k, v) in f.node_labels.unwrap_or_default() {
                if !a
                    .labels
                    .iter()
                    .any(|l| l.split_once('=').is_some_and(|(lk, _)| lk == k))
                {
                    a.labels.push(format!("{k}={v}"));
                }
            }
            for t in f.register_with_taints.unwrap_or_default() {
                taints.push(taint(&t.key, &t.value, &t.effect)?);
            }
            if a.max_pods == 110 {
                a.max_pods = f.max_pods.unwrap_or(110);
            }
            if a.dns_upstream.is_empty() && !a.no_dns_upstream {
                a.dns_upstream = f.dns_upstream.unwrap_or_default();
            }
            if a.container_log_max_size == "10Mi" {
                a.container_log_max_size =
                    f.container_log_max_size.unwrap_or(a.container_log_max_size);
            }
            if a.pod_network == "host-gw" {
                a.pod_network = f.pod_network.unwrap_or(a.pod_network);
            }
        }
        for t in &self.taints {
            taints.push(parse_taint(t)?);
        }
        Ok((a, taints))
    }

    /// The agent configuration for node `name` with data in `data_dir/agent`.
    pub fn config(
        &self,
        name: &str,
        data_dir: &std::path::Path,
        server_url: &str,
        token: &str,
    ) -> anyhow::Result<agent::node::AgentConfig> {
        let (merged, taints) = self.with_file()?;
        let this = &merged;
        let mut cfg = agent::node::AgentConfig::new(name, data_dir.join("agent"));
        cfg.taints = taints;
        cfg.node_ip = match this.node_ip {
            Some(ip) => ip,
            None => local_ip_towards(server_url).unwrap_or(IpAddr::from([127, 0, 0, 1])),
        };
        cfg.port = this.agent_port;
        cfg.pod_cidr = match &this.pod_cidr {
            Some(c) => Some(c.parse().with_context(|| {
                format!("--pod-cidr {c:?} is not an IPv4 CIDR such as 10.88.0.0/24")
            })?),
            None => None,
        };
        cfg.bridge.clone_from(&this.bridge);
        if cfg.bridge.is_empty() || cfg.bridge.len() > 15 {
            bail!(
                "--bridge {:?} must be 1 to 15 characters (a Linux interface name)",
                this.bridge
            );
        }
        cfg.runtime.clone_from(&this.runtime);
        cfg.conmon.clone_from(&this.conmon);
        cfg.insecure_registries
            .clone_from(&this.insecure_registries);
        cfg.registry_mirrors.clone_from(&this.registry_mirrors);
        for l in &this.labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--node-label {l:?} must be KEY=VALUE"))?;
            cfg.labels.insert(k.to_string(), v.to_string());
        }
        cfg.max_pods = this.max_pods;
        if this.no_dns_upstream {
            cfg.dns_upstream = Some(Vec::new());
        } else if !this.dns_upstream.is_empty() {
            cfg.dns_upstream = Some(this.dns_upstream.clone());
        }
        cfg.container_log_max_bytes = api::quantity::Quantity::parse(&this.container_log_max_size)
            .ok()
            .and_then(|q| u64::try_from(q.value()).ok())
            .with_context(|| {
                format!(
                    "--container-log-max-size {:?} is not a size such as 10Mi",
                    this.container_log_max_size
                )
            })?;
        cfg.pod_network = this
            .pod_network
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{e}"))?;
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
    let name = args.name.clone().unwrap_or_else(host_name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.simulate {
        let token = args.token.as_deref().unwrap_or("");
        let Some(ca_file) = &args.ca_file else {
            bail!(
                "--simulate needs --ca-file and the server's cluster token (DATA_DIR/join-token)"
            );
        };
        if apiserver::join::JoinToken::looks_like(token) || token.is_empty() {
            bail!(
                "--simulate runs many nodes under one credential: pass the server's cluster token (DATA_DIR/join-token), not a join token"
            );
        }
        let ca = std::fs::read(ca_file)
            .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
        let client = client::Client::from_parts(args.server.clone(), ca, token.to_string())
            .with_context(|| format!("cannot make a client for {}", args.server))?;
        return run_hollow(runtime, client, name, args);
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(super::default_data_dir);
    let (client, server_token) = runtime.block_on(connect(&args, &name, &data_dir))?;
    let cfg = args
        .node
        .config(&name, &data_dir, &args.server, &server_token)?;
    eprintln!("drover: node {name} joining {}", args.server);
    runtime.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = agent::node::run(client, cfg) => r.context("the node agent stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    })
}

fn run_hollow(
    runtime: tokio::runtime::Runtime,
    client: client::Client,
    name: String,
    args: Args,
) -> anyhow::Result<()> {
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

/// Where a joined node keeps its credentials.
pub fn credentials_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("node-credentials.json")
}

/// A node's saved credentials (written when it joins, read on every start).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    server: String,
    #[serde(flatten)]
    creds: apiserver::join::NodeCredentials,
}

fn api_message(e: &client::Error) -> String {
    match e.status() {
        Some(s) if !s.message.is_empty() => s.message.clone(),
        _ => e.to_string(),
    }
}

/// The API client of a real agent and the token the API server will present to it:
/// saved node credentials, or a join (join token → node credentials), or the legacy
/// cluster token with --ca-file.
async fn connect(
    args: &Args,
    name: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<(client::Client, String)> {
    use apiserver::join::{self, JoinToken, NodeCredentials};
    let token = args.token.as_deref().map(str::trim).unwrap_or("");
    if !token.is_empty() && !JoinToken::looks_like(token) {
        let Some(ca_file) = &args.ca_file else {
            bail!(
                "--token is not a join token (drv1.<id>.<secret>.<ca-hash>); with the server's cluster token pass --ca-file too"
            );
        };
        let ca = std::fs::read(ca_file)
            .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
        let client = client::Client::from_parts(args.server.clone(), ca, token.to_string())
            .with_context(|| format!("cannot make a client for {}", args.server))?;
        return Ok((client, token.to_string()));
    }
    let path = credentials_path(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(saved) = serde_json::from_str::<Saved>(&text)
        && saved.server == args.server
        && saved.creds.node == name
    {
        let client = client::Client::from_parts(
            args.server.clone(),
            saved.creds.ca_pem.clone(),
            saved.creds.token.clone(),
        )
        .with_context(|| format!("cannot make a client for {}", args.server))?;
        match client.get(&client::Resource::NODES, None, name).await {
            Ok(_) => return Ok((client, saved.creds.agent_token)),
            Err(e) if e.is_not_found() => return Ok((client, saved.creds.agent_token)),
            Err(e) if e.code() == Some(401) && !token.is_empty() => {
                eprintln!(
                    "drover: the saved credentials of node {name} were refused ({}); joining again",
                    api_message(&e)
                );
            }
            Err(e) if e.code() == Some(401) => bail!(
                "the server refused the saved credentials of node {name} ({}): join again with --token",
                api_message(&e)
            ),
            // The server may be down: keep the credentials, the agent retries.
            Err(_) => return Ok((client, saved.creds.agent_token)),
        }
    }
    if token.is_empty() {
        bail!(
            "--token is required: node {name} has no saved credentials in {} (use the join command `drover server` printed, or `drover token create` on the server)",
            path.display()
        );
    }
    let t = JoinToken::parse(token)?;
    let ca_pem = match (&args.ca_file, &t.ca_hash) {
        (Some(f), hash) => {
            let pem = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the CA file {}", f.display()))?;
            if let Some(h) = hash {
                let got = join::ca_hash(&pem)?;
                if &got != h {
                    bail!(
                        "the CA file {} does not match the join token (sha256:{got}, the token expects sha256:{h})",
                        f.display()
                    );
                }
            }
            pem
        }
        (None, Some(h)) => join::fetch_ca(&args.server, h).await?,
        (None, None) => bail!(
            "the token has no CA hash: pass --ca-file, or use a full join token (drv1.<id>.<secret>.<ca-hash>)"
        ),
    };
    let boot = client::Client::from_parts(args.server.clone(), ca_pem.clone(), t.bearer())
        .with_context(|| format!("cannot make a client for {}", args.server))?;
    let answer = boot
        .request(
            http::Method::POST,
            join::JOIN_PATH,
            Some(&serde_json::json!({"node": name})),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot join {}: {}", args.server, api_message(&e)))?;
    let creds: NodeCredentials = serde_json::from_value(answer).with_context(|| {
        format!(
            "{} answered the join with something unexpected",
            args.server
        )
    })?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let saved = Saved {
        server: args.server.clone(),
        creds,
    };
    let text = serde_json::to_string_pretty(&saved).context("cannot encode the credentials")?;
    apiserver::pki::write_private(&path, &text)?;
    let client = client::Client::from_parts(
        args.server.clone(),
        saved.creds.ca_pem.clone(),
        saved.creds.token.clone(),
    )
    .with_context(|| format!("cannot make a client for {}", args.server))?;
    eprintln!(
        "drover: node {name} joined {} (credentials in {})",
        args.server,
        path.display()
    );
    Ok((client, saved.creds.agent_token))
}
