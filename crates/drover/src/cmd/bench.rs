//! `drover bench SCENARIO`: runs one benchmark scenario against a server it starts itself,
//! prints the figures and optionally writes them as JSON.

use anyhow::Context;
use std::path::PathBuf;

/// The scenarios built so far (the others arrive with the features they measure).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Scenario {
    /// API latency and throughput with concurrent clients and watchers.
    Api,
    /// Resident memory of an idle server and per 1,000 pods.
    Footprint,
    /// Placement rate and time to all Running on hollow nodes.
    Scheduler,
}

/// Flags of `drover bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Which scenario to run.
    scenario: Scenario,
    /// Concurrent clients (api).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Concurrent watchers that must see every event (api).
    #[arg(long, default_value_t = 10)]
    watchers: usize,
    /// Objects to create, update and read (api).
    #[arg(long, default_value_t = 4000)]
    objects: usize,
    /// Pods to store (footprint) or replicas to place (scheduler; default 10,000 there).
    #[arg(long)]
    pods: Option<usize>,
    /// Hollow nodes (scheduler).
    #[arg(long, default_value_t = 1000)]
    nodes: u32,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs the scenario and reports.
pub fn run(args: Args) -> anyhow::Result<()> {
    let exe =
        std::env::current_exe().context("cannot find the drover executable to start a server")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        match args.scenario {
            Scenario::Api => {
                let opts = bench::api::Options {
                    clients: args.clients,
                    watchers: args.watchers,
                    objects: args.objects,
                };
                bench::api::run(&exe, &opts).await
            }
            Scenario::Footprint => bench::footprint::run(&exe, args.pods.unwrap_or(1000)).await,
            Scenario::Scheduler => {
                let pods = u32::try_from(args.pods.unwrap_or(10_000)).unwrap_or(u32::MAX);
                bench::scheduler::run(
                    &exe,
                    &bench::scheduler::Options {
                        nodes: args.nodes,
                        pods,
                    },
                )
                .await
            }
        }
    })?;
    if let Some(map) = report.as_object() {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in map {
            println!("{k:<width$}  {v}");
        }
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
