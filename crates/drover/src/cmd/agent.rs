//! `drover agent`: a node agent joining a server. So far only hollow nodes (`--simulate`):
//! they register, heartbeat and report their pods Running without starting containers,
//! for scale tests and benchmarks. The runc agent arrives with the agent issue.

use anyhow::{Context, bail};
use std::path::PathBuf;

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

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Joins the server and runs until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.simulate {
        bail!("only hollow nodes exist so far: add --simulate (the runc agent is not built yet)");
    }
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
    let name = args.name.unwrap_or_else(host_name);
    let opts = agent::hollow::HollowOptions {
        name: name.clone(),
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
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
