//! `drover bench SCENARIO`: runs one benchmark scenario against a server it starts itself,
//! prints the figures and optionally writes them as JSON.

use anyhow::Context;
use std::path::PathBuf;

/// The benchmark scenarios (see the benchmark issue for what each reports).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Scenario {
    /// API latency and throughput with concurrent clients and watchers.
    Api,
    /// Resident memory of an idle server with its agent, and per 1,000 pods.
    Footprint,
    /// Placement rate and time to all Running on hollow nodes.
    Scheduler,
    /// Create-to-Running of real runc pods, one after another, vs bare `runc run -d`.
    PodStartup,
    /// A Deployment to all Running on the local agent and memory per pod, vs Docker Swarm.
    Deploy,
    /// Writes per second and watch delay of the SQLite store vs a real etcd.
    Store,
}

/// Flags of `drover bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Which scenario to run.
    scenario: Scenario,
    /// Concurrent clients (api) or writers (store).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Concurrent watchers that must see every event (api).
    #[arg(long, default_value_t = 10)]
    watchers: usize,
    /// Objects to create, update and read (api), or keys to create and update (store).
    #[arg(long, default_value_t = 4000)]
    objects: usize,
    /// Pods to store (footprint; default 1,000), replicas to place (scheduler; default
    /// 10,000), pods to start one by one (pod-startup; 100) or replicas (deploy; 100).
    #[arg(long)]
    pods: Option<usize>,
    /// Skip the Docker Swarm side of `deploy` (its figures are then null).
    #[arg(long)]
    no_swarm: bool,
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
        let scenario = async {
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
                Scenario::PodStartup => {
                    let opts = bench::pod_startup::Options {
                        pods: args.pods.unwrap_or(100),
                    };
                    bench::pod_startup::run(&exe, &opts).await
                }
                Scenario::Deploy => {
                    let opts = bench::deploy::Options {
                        pods: args.pods.unwrap_or(100),
                        swarm: !args.no_swarm,
                    };
                    bench::deploy::run(&exe, &opts).await
                }
                Scenario::Store => {
                    let opts = bench::store_bench::Options {
                        keys: args.objects,
                        clients: args.clients,
                    };
                    bench::store_bench::run(&opts).await
                }
            }
        };
        // Ctrl-C drops the scenario, so its servers, containers and reference systems are
        // removed by their guards before the process exits.
        tokio::select! {
            r = scenario => r.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => {
                bench::interrupt();
                Err(anyhow::anyhow!("interrupted; what the benchmark started has been removed"))
            }
        }
    })?;
    if let Some(table) = bench::comparison_table(&report) {
        println!("{table}");
    }
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
