//! `drover`: one binary for the control plane and the command line. Each verb lives in
//! its own file under `cmd/`; this file only parses arguments and reports errors.
#![forbid(unsafe_code)]

mod cmd;

/// mimalloc instead of glibc's allocator: the API server allocates and frees JSON values
/// at a high rate from many threads, where glibc spent a third of the CPU time and kept
/// per-thread arenas resident (measured with `drover bench scheduler` and perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Drover: a container orchestrator that speaks the Kubernetes API.
#[derive(Parser)]
#[command(name = "drover", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server and embedded store).
    Server(cmd::server::Args),
    /// Join a server as a node agent (hollow nodes with --simulate).
    Agent(cmd::agent::Args),
    /// Manage the node's images.
    Image(cmd::image::Args),
    /// Remove what a node agent left on this machine (containers, mounts, networks).
    Reset(cmd::reset::Args),
    /// Create, list and revoke the tokens other machines join with.
    Token(cmd::token::Args),
    /// Run a benchmark scenario against a server started for it.
    Bench(cmd::bench::Args),
    /// Run a Compose application on the cluster (up, down, ps, logs, scale, exec, config).
    Compose(cmd::compose::Args),
    /// Print the admin kubeconfig.
    Kubeconfig {
        /// The server's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => cmd::server::run(args),
        Command::Kubeconfig { data_dir } => cmd::kubeconfig::run(data_dir),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Image(args) => cmd::image::run(args),
        Command::Reset(args) => cmd::reset::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Compose(args) => cmd::compose::run(args),
    };
    if let Err(e) = result {
        eprintln!("drover: {e:#}");
        std::process::exit(1);
    }
}
