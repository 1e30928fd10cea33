//! `drover server`: the control plane with its embedded store.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `drover server`.
#[derive(clap::Args)]
pub struct Args {
    /// Where the store, certificates and kubeconfig live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The HTTPS address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Do not run a node agent in this process.
    #[arg(long)]
    no_agent: bool,
    /// The store: `sqlite` (default, embedded in DATA_DIR) or `etcd://HOST:PORT[,HOST:PORT]`.
    #[arg(long)]
    store: Option<String>,
    /// Revisions of history kept for watchers to resume from; older ones get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    history_revisions: i64,
    /// Bin-pack pods onto the fewest nodes instead of spreading them (Swarm's "binpack").
    #[arg(long)]
    binpack: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    no_scheduler: bool,
    /// Do not run the controllers (ReplicaSet, Deployment, ...) in this process.
    #[arg(long)]
    no_controllers: bool,
    /// Seconds without a lease renewal before a node turns NotReady (Ready=Unknown); must
    /// exceed the agents' renewal interval (hollow nodes renew every 5 s).
    #[arg(long, default_value_t = 20)]
    node_monitor_grace: u64,
    /// Seconds pods tolerate a NotReady node by default before they are evicted.
    #[arg(long, default_value_t = 30)]
    pod_eviction_timeout: u64,
    /// Seconds between compactions of the store's history.
    #[arg(long, default_value_t = 60)]
    compaction_interval: u64,
    /// The range Services' ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// The range node pod CIDRs are cut from (one /24 per node without --pod-cidr).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// The local agent's node name (default: this host's name).
    #[arg(long)]
    node_name: Option<String>,
    /// Run the scheduler and the controllers only while this server holds their Lease
    /// (`kube-system/kube-scheduler`, `kube-system/kube-controller-manager`), so that
    /// several servers on one etcd act one at a time; `--leader-elect=false` runs them
    /// unconditionally.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    leader_elect: bool,
    /// Seconds other servers wait, after last seeing the leader renew, before taking over.
    #[arg(long, default_value_t = 15)]
    leader_elect_lease_duration: u64,
    /// Seconds the leader keeps trying to renew before it stops its loops.
    #[arg(long, default_value_t = 10)]
    leader_elect_renew_deadline: u64,
    /// Seconds between renewals and between attempts to acquire.
    #[arg(long, default_value_t = 2)]
    leader_elect_retry_period: u64,
    #[command(flatten)]
    node: super::agent::NodeArgs,
}

/// Starts the server and serves until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DROVER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let timing = client::leader::Timing::from_secs(
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    );
    if args.leader_elect {
        timing.validate().context(
            "check --leader-elect-lease-duration, --leader-elect-renew-deadline and \
             --leader-elect-retry-period",
        )?;
    }
    let data_dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let mut loops = ControlLoops {
        timing: args.leader_elect.then_some(timing),
        identity: leader_identity(&data_dir),
        shutdown: tokio::sync::watch::channel(false).0,
        elections: Vec::new(),
        checked_namespace: false,
    };
    // The runtime comes first: the etcd client's connections live on it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let store: store::SharedStore = match args.store.as_deref() {
        None | Some("sqlite") => Arc::new(
            store::SqliteStore::open(data_dir.join("state.db"))
                .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
        ),
        Some(other) if other.starts_with("etcd://") => {
            let endpoints: Vec<String> = other["etcd://".len()..]
                .split(',')
                .map(|e| e.trim().trim_end_matches('/').to_string())
                .filter(|e| !e.is_empty())
                .collect();
            if endpoints.is_empty() {
                bail!(
                    "--store {other:?} names no etcd endpoint: use `etcd://HOST:PORT[,HOST:PORT]`"
                );
            }
            let connected =
                runtime.block_on(store::EtcdStore::connect(&endpoints, store::DEFAULT_PREFIX));
            // "cannot reach etcd at H:P: why" is the whole sentence; no "database error:".
            Arc::new(connected.map_err(|e| match e {
                store::StoreError::Database(m) => anyhow::anyhow!(m),
                e => e.into(),
            })?)
        }
        Some(other) => bail!("unknown store {other:?}: use `sqlite` or `etcd://HOST:PORT`"),
    };
    runtime.block_on(async move {
        let running = apiserver::start(apiserver::Config {
            data_dir: data_dir.clone(),
            listen: args.listen,
            store,
            history_revisions: args.history_revisions.max(0),
            compaction_interval: std::time::Duration::from_secs(args.compaction_interval.max(1)),
            service_cidr: args.service_cidr.clone(),
        })
        .await
        .context("cannot start the API server")?;
        tracing::info!(addr = %running.addr, "API server ready");
        // The control loops are API clients like any other, over loopback HTTPS.
        if !args.no_scheduler {
            let client = client::Client::from_kubeconfig_str(&running.kubeconfig)
                .context("cannot make the in-process API client")?;
            let config = scheduler::Config {
                strategy: if args.binpack {
                    scheduler::Strategy::Binpack
                } else {
                    scheduler::Strategy::Spread
                },
                ..Default::default()
            };
            loops.spawn(&client.clone(), "kube-scheduler", move || {
                scheduler::runner::run(client.clone(), config.clone())
            });
        }
        if !args.no_controllers {
            let client = client::Client::from_kubeconfig_str(&running.kubeconfig)
                .context("cannot make the in-process API client")?;
            let options = controllers::Options {
                node_monitor_grace: std::time::Duration::from_secs(args.node_monitor_grace.max(1)),
                pod_eviction_timeout: std::time::Duration::from_secs(args.pod_eviction_timeout),
                cluster_cidr: Some(args.cluster_cidr.clone()),
                ..Default::default()
            };
            loops.spawn(&client.clone(), "kube-controller-manager", move || {
                controllers::run(client.clone(), options.clone())
            });
        }
        if !args.no_agent {
            let client = client::Client::from_kubeconfig_str(&running.kubeconfig)
                .context("cannot make the in-process API client")?;
            let token = std::fs::read_to_string(data_dir.join("join-token"))
                .context("cannot read the join token the API server wrote")?;
            let name = args.node_name.clone().unwrap_or_else(super::agent::host_name);
            let mut node = args.node.clone();
            if node.pod_cidr.is_none() {
                node.pod_cidr = Some("10.88.0.0/24".into());
            }
            let url = format!("https://{}", running.addr);
            let cfg = node.config(&name, &data_dir, &url, token.trim())?;
            tokio::spawn(async move {
                if let Err(e) = agent::node::run(client, cfg).await {
                    tracing::error!("the local node agent stopped: {e}");
                    eprintln!("drover: the local node agent stopped: {e} (run with --no-agent to serve the API without it)");
                }
            });
        }
        eprintln!(
            "drover: serving the Kubernetes API on https://{}\n  export KUBECONFIG={}\n  join another machine: {}",
            running.addr,
            data_dir.join("kubeconfig").display(),
            running.join_command
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = running.task => {}
        }
        tracing::info!("shutting down");
        // Leaders stop their loops and release their Leases: a standby takes over at once.
        loops.shutdown().await;
        Ok(())
    })
}

/// The namespace of the control plane's leader election Leases.
const ELECTION_NAMESPACE: &str = "kube-system";

/// The scheduler and the controllers, each run under its own leader election unless
/// `--leader-elect=false`.
struct ControlLoops {
    /// None without leader election.
    timing: Option<client::leader::Timing>,
    identity: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    elections: Vec<tokio::task::JoinHandle<()>>,
    checked_namespace: bool,
}

impl ControlLoops {
    /// Runs `work()` (again after each re-election) while this server leads the Lease
    /// `kube-system/{lease}`, or unconditionally without leader election.
    fn spawn<F, Fut>(&mut self, client: &client::Client, lease: &str, mut work: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(timing) = self.timing else {
            tokio::spawn(work());
            return;
        };
        let check = !std::mem::replace(&mut self.checked_namespace, true);
        let elector = client::leader::LeaderElector::new(
            client.clone(),
            client::leader::LeaseLock::new(ELECTION_NAMESPACE, lease),
            self.identity.clone(),
            timing,
        );
        let client = client.clone();
        let mut stop = self.shutdown.subscribe();
        self.elections.push(tokio::spawn(async move {
            if check {
                ensure_namespace(&client, ELECTION_NAMESPACE).await;
            }
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            elector.run_until(shutdown, &mut work).await;
        }));
    }

    /// Stops the elected loops and waits (bounded) for their Leases to be released.
    async fn shutdown(self) {
        self.shutdown.send_replace(true);
        let budget = self
            .timing
            .map_or(std::time::Duration::ZERO, |t| t.renew_deadline)
            + std::time::Duration::from_secs(1);
        let all = futures_join_all(self.elections);
        if tokio::time::timeout(budget, all).await.is_err() {
            tracing::warn!(
                "releasing the leader leases timed out; standbys take over when they expire"
            );
        }
    }
}

/// Awaits every handle.
async fn futures_join_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// The election Leases' namespace exists from the API server's bootstrap; should it have
/// been deleted, it is created again (the elections retry until it exists anyway).
async fn ensure_namespace(client: &client::Client, name: &str) {
    let r = client::Resource::NAMESPACES;
    match client.get(&r, None, name).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match client.create(&r, None, &ns, &Default::default()).await {
                Ok(_) => tracing::info!("created the namespace {name} for leader election"),
                Err(e) if e.is_already_exists() => {}
                Err(e) => tracing::warn!(
                    "cannot create the namespace {name} for leader election (retrying in the elections): {e}"
                ),
            }
        }
        Err(e) => tracing::warn!("cannot check the namespace {name} for leader election: {e}"),
    }
}

/// The file in the data directory keeping this server's leader election identity.
const IDENTITY_FILE: &str = "leader-election-identity";

/// `HOSTNAME_<random>`, drawn once per data directory and kept in it: a server restarted
/// after a crash is the same candidate and renews its own Leases at once instead of
/// waiting for them to expire, while servers with their own data directories (several
/// servers on one etcd) are distinct candidates.
fn leader_identity(data_dir: &std::path::Path) -> String {
    let path = data_dir.join(IDENTITY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if !id.is_empty() && !id.contains(char::is_whitespace) {
            return id.to_string();
        }
    }
    let id = client::leader::unique_identity(&super::agent::host_name());
    if let Err(e) = std::fs::write(&path, format!("{id}\n")) {
        tracing::warn!(
            "cannot save the leader election identity in {}: {e} (a restart waits for the leases to expire)",
            path.display()
        );
    }
    id
}
