//! `drover reset`: removes what a node agent left on this machine (containers,
//! mounts, pod networks, its bridge), as `kubeadm reset` does. Images stay.

use anyhow::Context;
use std::path::PathBuf;

/// Flags of `drover reset`.
#[derive(clap::Args)]
pub struct Args {
    /// The server's or agent's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The node name the agent ran as (its cgroups are named after it).
    #[arg(long)]
    node_name: Option<String>,
    /// The agent's pod bridge.
    #[arg(long, default_value = "drover0")]
    bridge: String,
}

/// Runs the reset.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    let name = args.node_name.unwrap_or_else(super::agent::host_name);
    let mut cfg = agent::node::AgentConfig::new(&name, dir.join("agent"));
    cfg.bridge = args.bridge;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(agent::node::reset(&cfg))
        .with_context(|| format!("cannot reset the agent state in {}", dir.display()))?;
    println!(
        "removed {} container(s) and {} pod network(s)",
        report.containers, report.sandboxes
    );
    Ok(())
}
