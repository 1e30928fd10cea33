//! `drover compose`: Compose files on the cluster. The `compose` crate translates the
//! files into Kubernetes objects; this file applies them with server-side apply (field
//! manager `drover-compose`), prunes what the project no longer has, waits for rollouts
//! with a line per service, and lists, scales, restarts and removes by Docker's labels.
//! `logs` and `exec` run kubectl.

use anyhow::{Context, anyhow, bail};
use client::{Client, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy, Resource};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The field manager of everything `up` applies.
const MANAGER: &str = "drover-compose";

/// The kinds a project is made of, in the order `down` removes them.
const KINDS: [Resource; 6] = [
    Resource::JOBS,
    Resource::DEPLOYMENTS,
    Resource::DAEMONSETS,
    Resource::SERVICES,
    Resource::CONFIGMAPS,
    Resource::SECRETS,
];

/// Flags every subcommand takes, before or after the subcommand (Docker's order).
#[derive(clap::Args, Clone, Default)]
pub struct Common {
    /// Compose file(s), merged in order (`-` reads stdin). Default: compose.yaml,
    /// docker-compose.yml, ... in the current directory.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    rest: CommonRest,
}

/// The common flags without `-f` (which `logs` uses for --follow, as Docker does).
#[derive(clap::Args, Clone, Default)]
pub struct CommonRest {
    /// Project name (default: `name:` in the file, else the project directory's name).
    #[arg(short = 'p', long = "project-name")]
    project_name: Option<String>,
    /// Where relative paths and `.env` start (default: the first file's directory).
    #[arg(long)]
    project_directory: Option<PathBuf>,
    /// Variables file(s) instead of PROJECT_DIR/.env.
    #[arg(long)]
    env_file: Vec<PathBuf>,
    /// Enable services of this profile (repeatable; also COMPOSE_PROFILES).
    #[arg(long)]
    profile: Vec<String>,
    /// The kubeconfig (default: $KUBECONFIG, else DATA_DIR/kubeconfig, else ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The server's data directory (for its kubeconfig and the default volume dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where named volumes live on the nodes (default: DATA_DIR/volumes).
    #[arg(long)]
    volume_dir: Option<PathBuf>,
    /// Image of the init containers that wait for dependencies (busybox; default
    /// $DROVER_COMPOSE_WAIT_IMAGE, else busybox:1.36).
    #[arg(long)]
    wait_image: Option<String>,
}

/// Flags of `drover compose`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create or update the application and wait until every service runs (and is
    /// healthy, where it has a healthcheck).
    Up {
        #[command(flatten)]
        common: Common,
        /// Return once applied, without waiting (unless --wait).
        #[arg(short = 'd', long)]
        detach: bool,
        /// Wait for every service to be running and healthy (the default unless -d).
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 300)]
        wait_timeout: u64,
        /// Keep objects of services no longer in the file (default: remove them).
        #[arg(long)]
        no_prune: bool,
        /// Only these services (and their dependencies).
        services: Vec<String>,
    },
    /// Remove everything the project created (named volumes only with -v).
    Down {
        #[command(flatten)]
        common: Common,
        /// Also remove the project's named volumes.
        #[arg(short = 'v', long)]
        volumes: bool,
        /// Give up waiting for pods to go after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// List the project's containers (pods).
    Ps {
        #[command(flatten)]
        common: Common,
        /// Only pod names.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Only these services.
        services: Vec<String>,
    },
    /// Show service logs (through kubectl).
    Logs {
        /// Compose file(s) (`--file`; `-f` is --follow here, as in Docker).
        #[arg(long = "file")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        rest: CommonRest,
        /// Follow the output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Lines from the end of each log.
        #[arg(long)]
        tail: Option<String>,
        /// Show timestamps.
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Only these services.
        services: Vec<String>,
    },
    /// Set the number of replicas: `scale web=3 worker=2`.
    Scale {
        #[command(flatten)]
        common: Common,
        /// SERVICE=N pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Restart services (a rolling restart of their pods).
    Restart {
        #[command(flatten)]
        common: Common,
        /// Only these services (default: all).
        services: Vec<String>,
    },
    /// Run a command in a running container of a service (through kubectl).
    Exec {
        #[command(flatten)]
        common: Common,
        /// Do not allocate a TTY.
        #[arg(short = 'T', long = "no-TTY")]
        no_tty: bool,
        /// Which replica (1-based, in pod name order).
        #[arg(long, default_value_t = 1)]
        index: usize,
        /// The service.
        service: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Print the Kubernetes objects `up` would apply (YAML; --format json for JSON).
    Config {
        #[command(flatten)]
        common: Common,
        /// `yaml` or `json`.
        #[arg(long, default_value = "yaml")]
        format: String,
        /// Only print the service names.
        #[arg(long)]
        services: bool,
        /// Print the merged, interpolated model (services and their settings) as JSON
        /// instead of Kubernetes objects.
        #[arg(long)]
        quiet: bool,
    },
}

impl Common {
    /// These flags with `other`'s filled in where these are empty (flags after the
    /// subcommand win over those before it).
    fn or(mut self, other: &Common) -> Common {
        if self.files.is_empty() {
            self.files = other.files.clone();
        }
        let (r, o) = (&mut self.rest, &other.rest);
        macro_rules! fill {
            ($($f:ident),*) => {$(
                if r.$f.is_none() { r.$f = o.$f.clone(); }
            )*};
        }
        fill!(
            project_name,
            project_directory,
            kubeconfig,
            namespace,
            data_dir,
            volume_dir,
            wait_image
        );
        if r.env_file.is_empty() {
            r.env_file = o.env_file.clone();
        }
        if r.profile.is_empty() {
            r.profile = o.profile.clone();
        }
        self
    }

    fn data_dir(&self) -> PathBuf {
        self.rest
            .data_dir
            .clone()
            .unwrap_or_else(super::default_data_dir)
    }

    fn kubeconfig(&self) -> PathBuf {
        if let Some(k) = &self.rest.kubeconfig {
            return k.clone();
        }
        if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
            // kubectl merges a list; we use its first file.
            if let Some(first) = std::env::split_paths(&k).next() {
                return first;
            }
        }
        let in_data = self.data_dir().join("kubeconfig");
        if in_data.is_file() || self.rest.data_dir.is_some() {
            return in_data;
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".kube/config"))
            .unwrap_or(in_data)
    }

    fn load(&self) -> anyhow::Result<compose::Project> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let opts = compose::LoadOptions {
            files: vec![],
            working_dir: cwd.clone(),
            project_dir: self.rest.project_directory.clone(),
            project_name: self.rest.project_name.clone(),
            env: std::env::vars().collect(),
            env_files: self.rest.env_file.clone(),
            profiles: self.rest.profile.clone(),
        };
        let project = if self.files.is_empty() {
            compose::load(&opts)?
        } else {
            let mut sources = Vec::new();
            for f in &self.files {
                if f.as_os_str() == "-" {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                        .context("cannot read the Compose file from stdin")?;
                    sources.push(compose::Source {
                        name: "-".into(),
                        text,
                        dir: cwd.clone(),
                    });
                } else {
                    sources.push(compose::Source::read(f)?);
                }
            }
            compose::load_sources(&sources, &opts)?
        };
        Ok(project)
    }

    fn translate(
        &self,
        project: &compose::Project,
        namespace: Option<String>,
    ) -> anyhow::Result<compose::Translation> {
        let mut opts = compose::TranslateOptions {
            namespace,
            volume_dir: Some(self.volume_dir()),
            ..Default::default()
        };
        if let Some(img) = self
            .rest
            .wait_image
            .clone()
            .or_else(|| std::env::var("DROVER_COMPOSE_WAIT_IMAGE").ok())
            .filter(|s| !s.is_empty())
        {
            opts.wait_image = img;
        }
        let t = compose::translate(project, &opts)?;
        for w in &t.warnings {
            eprintln!("warning: {w}");
        }
        Ok(t)
    }

    fn volume_dir(&self) -> PathBuf {
        self.rest
            .volume_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("volumes"))
    }

    fn client(&self) -> anyhow::Result<(Client, String)> {
        let path = self.kubeconfig();
        // The client's error already names its cause; `{e}` keeps the message to one line.
        let client = Client::from_kubeconfig_file(&path).map_err(|e| {
            anyhow!(
                "cannot use the kubeconfig {}: {e}; pass --kubeconfig or set KUBECONFIG",
                path.display()
            )
        })?;
        let ns = self
            .rest
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        Ok((client, ns))
    }

    fn kubectl(&self, ns: &str) -> std::process::Command {
        let mut c = std::process::Command::new("kubectl");
        c.env("KUBECONFIG", self.kubeconfig()).args(["-n", ns]);
        c
    }
}

/// Runs `drover compose`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let top = args.common;
    match args.command {
        Command::Config {
            common,
            format,
            services,
            quiet,
        } => {
            let c = common.or(&top);
            let project = c.load()?;
            if services {
                for s in &project.services {
                    println!("{}", s.name);
                }
                return Ok(());
            }
            let t = c.translate(&project, c.rest.namespace.clone())?;
            if quiet {
                return Ok(());
            }
            match format.as_str() {
                "json" => {
                    let list = json!({"apiVersion": "v1", "kind": "List", "items": t.objects});
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                "yaml" => print!("{}", compose::to_yaml_stream(&t.objects)?),
                other => bail!("--format {other:?}: use yaml or json"),
            }
            Ok(())
        }
        Command::Up {
            common,
            detach,
            wait,
            wait_timeout,
            no_prune,
            services,
        } => {
            let c = common.or(&top);
            let project = c.load()?;
            let (client, ns) = c.client()?;
            let t = c.translate(&project, Some(ns.clone()))?;
            runtime.block_on(up(
                &client,
                &ns,
                &project,
                &t,
                UpOptions {
                    wait: wait || !detach,
                    timeout: Duration::from_secs(wait_timeout),
                    prune: !no_prune && services.is_empty(),
                    only: services,
                },
            ))
        }
        Command::Down {
            common,
            volumes,
            timeout,
        } => {
            let c = common.or(&top);
            // The project name may come from the file; without a file, -p is enough.
            let (name, vols) = match c.load() {
                Ok(p) => {
                    let dir = c.volume_dir();
                    let vols: Vec<PathBuf> = p
                        .volumes
                        .iter()
                        .filter(|(_, v)| !v.external)
                        .map(|(k, v)| {
                            dir.join(v.name.clone().unwrap_or_else(|| format!("{}_{k}", p.name)))
                        })
                        .collect();
                    (p.name, vols)
                }
                Err(e) => match &c.rest.project_name {
                    Some(n) => (
                        compose::normalize_project_name(n)
                            .ok_or_else(|| anyhow!("invalid project name {n:?}"))?,
                        vec![],
                    ),
                    None => return Err(e),
                },
            };
            let (client, ns) = c.client()?;
            runtime.block_on(down(&client, &ns, &name, Duration::from_secs(timeout)))?;
            if volumes {
                for v in vols {
                    match std::fs::remove_dir_all(&v) {
                        Ok(()) => eprintln!("removed volume {}", v.display()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => eprintln!(
                            "warning: cannot remove volume {}: {e} (on another node, remove it there)",
                            v.display()
                        ),
                    }
                }
            }
            Ok(())
        }
        Command::Ps {
            common,
            quiet,
            services,
        } => {
            let c = common.or(&top);
            let name = project_name(&c)?;
            let (client, ns) = c.client()?;
            runtime.block_on(ps(&client, &ns, &name, &services, quiet))
        }
        Command::Scale { common, pairs } => {
            let c = common.or(&top);
            let project = c.load()?;
            let (client, ns) = c.client()?;
            runtime.block_on(scale(&client, &ns, &project, &pairs))
        }
        Command::Restart { common, services } => {
            let c = common.or(&top);
            let project = c.load()?;
            let (client, ns) = c.client()?;
            runtime.block_on(restart(&client, &ns, &project, &services))
        }
        Command::Logs {
            files,
            rest,
            follow,
            tail,
            timestamps,
            services,
        } => {
            let c = Common { files, rest }.or(&top);
            let name = project_name(&c)?;
            let (_, ns) = c.client()?;
            let mut selector = compose::project_selector(&name);
            if !services.is_empty() {
                selector.push_str(&format!(
                    ",{} in ({})",
                    compose::SERVICE_LABEL,
                    services.join(",")
                ));
            }
            let mut cmd = c.kubectl(&ns);
            cmd.args(["logs", "-l", &selector, "--prefix", "--all-containers"])
                .args(["--max-log-requests", "50"]);
            if follow {
                cmd.arg("-f");
            }
            if timestamps {
                cmd.arg("--timestamps");
            }
            if let Some(t) = tail {
                cmd.arg(format!("--tail={t}"));
            }
            let status = cmd
                .status()
                .context("cannot run kubectl (is it installed?)")?;
            if !status.success() {
                bail!("kubectl logs failed");
            }
            Ok(())
        }
        Command::Exec {
            common,
            no_tty,
            index,
            service,
            command,
        } => {
            let c = common.or(&top);
            let name = project_name(&c)?;
            let (client, ns) = c.client()?;
            let pod = runtime.block_on(pod_of(&client, &ns, &name, &service, index))?;
            let mut cmd = c.kubectl(&ns);
            // Interactive like `docker compose exec`; a TTY only on a terminal and not -T.
            cmd.args(["exec", "-i"]);
            if std::io::stdin().is_terminal() && !no_tty {
                cmd.arg("-t");
            }
            cmd.arg(&pod).arg("--").args(&command);
            let status = cmd
                .status()
                .context("cannot run kubectl (is it installed?)")?;
            std::process::exit(status.code().unwrap_or(1));
        }
    }
}

/// The project name without needing a file when -p is given.
fn project_name(c: &Common) -> anyhow::Result<String> {
    if let Some(n) = &c.rest.project_name
        && c.files.is_empty()
    {
        return compose::normalize_project_name(n)
            .ok_or_else(|| anyhow!("invalid project name {n:?}"));
    }
    Ok(c.load()?.name)
}

struct UpOptions {
    wait: bool,
    timeout: Duration,
    prune: bool,
    only: Vec<String>,
}

fn resource_of(obj: &Value) -> anyhow::Result<Resource> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    KINDS
        .iter()
        .find(|r| r.kind == kind)
        .cloned()
        .ok_or_else(|| anyhow!("internal error: no resource for kind {kind:?}"))
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn service_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["labels"][compose::SERVICE_LABEL].as_str()
}

/// The services `only` names plus everything they depend on.
fn with_dependencies(p: &compose::Project, only: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = only.to_vec();
    while let Some(s) = todo.pop() {
        if out.contains(&s) {
            continue;
        }
        let svc = p
            .service(&s)
            .ok_or_else(|| anyhow!("no such service: {s}"))?;
        todo.extend(svc.depends_on.iter().map(|d| d.service.clone()));
        out.push(s);
    }
    Ok(out)
}

async fn apply(client: &Client, ns: &str, project: &str, obj: &Value) -> anyhow::Result<()> {
    let r = resource_of(obj)?;
    let name = name_of(obj);
    // Never take over an object of another project (or one made by hand).
    match client.get(&r, Some(ns), name).await {
        Ok(live) => {
            let owner = live["metadata"]["labels"][compose::PROJECT_LABEL].as_str();
            if owner != Some(project) {
                bail!(
                    "{} {name} already exists in namespace {ns} and belongs to {}; remove it or use another namespace (-n)",
                    r.kind,
                    match owner {
                        Some(o) => format!("project {o:?}"),
                        None => "no Compose project".into(),
                    }
                );
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {} {name}", r.kind)),
    }
    let pp = PatchParams {
        field_manager: Some(MANAGER.into()),
        force: true,
        dry_run: false,
    };
    match client
        .patch(&r, Some(ns), name, &Patch::Apply(obj.clone()), &pp)
        .await
    {
        Ok(_) => Ok(()),
        // Immutable fields (a Job's template, a Service's clusterIP): replace the object.
        Err(e) if e.code() == Some(422) && (r.kind == "Job" || r.kind == "Service") => {
            delete_and_wait(client, &r, ns, name).await?;
            client
                .patch(&r, Some(ns), name, &Patch::Apply(obj.clone()), &pp)
                .await
                .with_context(|| format!("cannot apply {} {name}", r.kind))?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot apply {} {name}", r.kind)),
    }
}

async fn delete_and_wait(
    client: &Client,
    r: &Resource,
    ns: &str,
    name: &str,
) -> anyhow::Result<()> {
    // Background: the garbage collector removes what the object owns (Foreground would
    // leave objects without dependents waiting on their finalizer).
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match client.delete(r, Some(ns), name, &dp).await {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot delete {} {name}", r.kind)),
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match client.get(r, Some(ns), name).await {
            Err(e) if e.is_not_found() => return Ok(()),
            _ if Instant::now() > deadline => {
                bail!("{} {name} was not removed within 120s", r.kind)
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

async fn up(
    client: &Client,
    ns: &str,
    project: &compose::Project,
    t: &compose::Translation,
    opts: UpOptions,
) -> anyhow::Result<()> {
    let selected: Option<Vec<String>> = if opts.only.is_empty() {
        None
    } else {
        Some(with_dependencies(project, &opts.only)?)
    };
    let in_scope = |o: &Value| match (&selected, service_of(o)) {
        (Some(sel), Some(s)) => sel.iter().any(|x| x == s),
        _ => true,
    };
    let mut progress = Progress::new();
    for o in t.objects.iter().filter(|o| in_scope(o)) {
        let kind = o["kind"].as_str().unwrap_or_default();
        let is_workload = matches!(kind, "Deployment" | "DaemonSet" | "Job");
        // Dependencies that must complete first (service_completed_successfully).
        if let Some(after) = o["metadata"]["annotations"][compose::AFTER_ANNOTATION].as_str() {
            for job in after.split(',').filter(|s| !s.is_empty()) {
                progress.line(job, "waiting for completion");
                wait_job(client, ns, job, opts.timeout, &mut progress).await?;
            }
        }
        apply(client, ns, &project.name, o).await?;
        if is_workload {
            progress.line(service_of(o).unwrap_or(name_of(o)), "applied");
        }
    }
    if opts.prune {
        let keep = compose::object_keys(t);
        for r in KINDS.iter() {
            let list = client
                .list(
                    r,
                    Some(ns),
                    &ListParams::default().labels(compose::project_selector(&project.name)),
                )
                .await
                .with_context(|| format!("cannot list {}", r.plural))?;
            for item in list.items {
                let name = name_of(&item).to_string();
                if !keep.contains(&(r.kind.to_string(), name.clone())) {
                    eprintln!("removing {} {name} (no longer in the project)", r.kind);
                    delete_and_wait(client, r, ns, &name).await?;
                }
            }
        }
    }
    if !opts.wait {
        return Ok(());
    }
    let workloads: Vec<&Value> = t
        .objects
        .iter()
        .filter(|o| {
            in_scope(o) && matches!(o["kind"].as_str(), Some("Deployment" | "DaemonSet" | "Job"))
        })
        .collect();
    let deadline = Instant::now() + opts.timeout;
    loop {
        let mut pending: Vec<String> = Vec::new();
        for o in &workloads {
            let r = resource_of(o)?;
            let name = name_of(o);
            let svc = service_of(o).unwrap_or(name).to_string();
            let live = client
                .get(&r, Some(ns), name)
                .await
                .with_context(|| format!("cannot read {} {name}", r.kind))?;
            let (done, text) = rollout_state(&live)?;
            let text = if done {
                text
            } else {
                match pod_problem(client, ns, &project.name, &svc).await {
                    Some(why) => format!("{text} ({why})"),
                    None => text,
                }
            };
            progress.line(&svc, &text);
            if !done {
                pending.push(svc);
            }
        }
        if pending.is_empty() {
            progress.finish();
            return Ok(());
        }
        if Instant::now() > deadline {
            progress.finish();
            bail!(
                "not ready after {}s: {} (see `drover compose ps` and `drover compose logs`)",
                opts.timeout.as_secs(),
                pending.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a workload has finished rolling out, and a short state for the progress line.
fn rollout_state(live: &Value) -> anyhow::Result<(bool, String)> {
    let st = &live["status"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let generation = n(&live["metadata"]["generation"]);
    let observed = n(&st["observedGeneration"]);
    match live["kind"].as_str().unwrap_or_default() {
        "Deployment" => {
            let want = live["spec"]["replicas"].as_u64().unwrap_or(1);
            let updated = n(&st["updatedReplicas"]);
            let total = n(&st["replicas"]);
            let ready = n(&st["readyReplicas"]);
            let available = n(&st["availableReplicas"]);
            let done = observed >= generation
                && updated == want
                && total == want
                && available >= want
                && ready >= want;
            let text = if done {
                format!("running {ready}/{want}")
            } else if updated < want || total > updated {
                format!("rolling out {updated}/{want} updated, {ready} ready")
            } else {
                format!("starting {ready}/{want} ready")
            };
            Ok((done, text))
        }
        "DaemonSet" => {
            let want = n(&st["desiredNumberScheduled"]);
            let updated = n(&st["updatedNumberScheduled"]);
            let available = n(&st["numberAvailable"]);
            let done = observed >= generation && updated == want && available == want;
            Ok((done, format!("{available}/{want} nodes ready")))
        }
        "Job" => {
            let want = live["spec"]["completions"].as_u64().unwrap_or(1);
            let ok = n(&st["succeeded"]);
            let failed = n(&st["failed"]);
            let backoff = live["spec"]["backoffLimit"].as_u64().unwrap_or(6);
            if failed > backoff
                || st["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Failed" && c["status"] == "True")
                })
            {
                bail!(
                    "service {} failed (job {}: {failed} failed attempts); see `drover compose logs`",
                    live["metadata"]["labels"][compose::SERVICE_LABEL]
                        .as_str()
                        .unwrap_or_default(),
                    live["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
            Ok((
                ok >= want,
                if ok >= want {
                    "completed".into()
                } else {
                    format!("running ({ok}/{want} done)")
                },
            ))
        }
        k => Ok((true, k.to_string())),
    }
}

/// A waiting reason of one of the service's pods (ImagePullBackOff, CrashLoopBackOff ...).
async fn pod_problem(client: &Client, ns: &str, project: &str, svc: &str) -> Option<String> {
    let sel = format!(
        "{},{}={svc}",
        compose::project_selector(project),
        compose::SERVICE_LABEL
    );
    let pods = client
        .list(
            &Resource::PODS,
            Some(ns),
            &ListParams::default().labels(sel),
        )
        .await
        .ok()?;
    for p in &pods.items {
        for key in ["initContainerStatuses", "containerStatuses"] {
            for cs in p["status"][key].as_array().into_iter().flatten() {
                if let Some(r) = cs["state"]["waiting"]["reason"].as_str()
                    && r != "ContainerCreating"
                    && r != "PodInitializing"
                {
                    return Some(r.to_string());
                }
                if key == "initContainerStatuses" && cs["state"]["running"].is_object() {
                    return Some(format!(
                        "{} waiting for dependencies",
                        p["metadata"]["name"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    None
}

async fn wait_job(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let live = match client.get(&Resource::JOBS, Some(ns), name).await {
            Ok(j) => j,
            Err(e) if e.is_not_found() => bail!("job {name} does not exist"),
            Err(e) => return Err(e).with_context(|| format!("cannot read job {name}")),
        };
        let (done, text) = rollout_state(&live)?;
        progress.line(name, &text);
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not complete within {}s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn down(client: &Client, ns: &str, project: &str, timeout: Duration) -> anyhow::Result<()> {
    let sel = compose::project_selector(project);
    let lp = ListParams::default().labels(sel.clone());
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let mut removed = 0;
    for r in KINDS.iter() {
        let list = client
            .list(r, Some(ns), &lp)
            .await
            .with_context(|| format!("cannot list {}", r.plural))?;
        for item in list.items {
            let name = name_of(&item);
            match client.delete(r, Some(ns), name, &dp).await {
                Ok(_) => {
                    removed += 1;
                    eprintln!("removed {} {name}", r.kind);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot delete {} {name}", r.kind));
                }
            }
        }
    }
    // What the controllers made (ReplicaSets, pods) carries the labels too: wait until
    // the garbage collector has removed it, helping it along.
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = 0;
        for r in [Resource::REPLICASETS, Resource::PODS] {
            let list = client
                .list(&r, Some(ns), &lp)
                .await
                .with_context(|| format!("cannot list {}", r.plural))?;
            for item in &list.items {
                left += 1;
                if item["metadata"]["deletionTimestamp"].is_null() {
                    let _ = client.delete(&r, Some(ns), name_of(item), &dp).await;
                }
            }
        }
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{left} ReplicaSets/pods of project {project} are still terminating after {}s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if removed == 0 {
        eprintln!("nothing to remove for project {project} in namespace {ns}");
    }
    Ok(())
}

async fn ps(
    client: &Client,
    ns: &str,
    project: &str,
    services: &[String],
    quiet: bool,
) -> anyhow::Result<()> {
    let pods = client
        .list(
            &Resource::PODS,
            Some(ns),
            &ListParams::default().labels(compose::project_selector(project)),
        )
        .await
        .context("cannot list pods")?;
    let mut rows: Vec<[String; 5]> = Vec::new();
    for p in &pods.items {
        let svc = p["metadata"]["labels"][compose::SERVICE_LABEL]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !services.is_empty() && !services.contains(&svc) {
            continue;
        }
        let name = name_of(p).to_string();
        let phase = p["status"]["phase"].as_str().unwrap_or("Pending");
        let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let waiting = p["status"]["containerStatuses"].as_array().and_then(|cs| {
            cs.iter()
                .find_map(|c| c["state"]["waiting"]["reason"].as_str())
        });
        let status = match (phase, ready, waiting) {
            (_, _, Some(w)) => w.to_string(),
            ("Running", true, _) => "running (ready)".into(),
            ("Running", false, _) => "running (not ready)".into(),
            (ph, _, _) => ph.to_lowercase(),
        };
        let restarts: u64 = p["status"]["containerStatuses"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["restartCount"].as_u64()).sum())
            .unwrap_or(0);
        let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
        rows.push([name, svc, status, restarts.to_string(), ip]);
    }
    rows.sort();
    if quiet {
        for r in rows {
            println!("{}", r[0]);
        }
        return Ok(());
    }
    let header = ["NAME", "SERVICE", "STATUS", "RESTARTS", "IP"].map(String::from);
    let all: Vec<&[String; 5]> = std::iter::once(&header).chain(rows.iter()).collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in all {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

async fn scale(
    client: &Client,
    ns: &str,
    project: &compose::Project,
    pairs: &[String],
) -> anyhow::Result<()> {
    for pair in pairs {
        let (svc, n) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("{pair:?}: write SERVICE=REPLICAS, e.g. web=3"))?;
        let n: u64 = n
            .parse()
            .map_err(|_| anyhow!("{pair:?}: the replica count must be a number"))?;
        let s = project
            .service(svc)
            .ok_or_else(|| anyhow!("no such service: {svc}"))?;
        let r = match compose::workload_kind(project, s) {
            compose::WorkloadKind::Deployment => Resource::DEPLOYMENTS,
            compose::WorkloadKind::Job => Resource::JOBS,
            compose::WorkloadKind::DaemonSet => {
                bail!("service {svc} runs one pod per node (mode: global) and cannot be scaled")
            }
        };
        let patch = if r.kind == "Job" {
            json!({"spec": {"parallelism": n}})
        } else {
            json!({"spec": {"replicas": n}})
        };
        client
            .patch(
                &r,
                Some(ns),
                &compose::k8s_name(svc),
                &Patch::Merge(patch),
                &PatchParams::default(),
            )
            .await
            .with_context(|| format!("cannot scale {svc} (has `drover compose up` run?)"))?;
        eprintln!("scaled {svc} to {n}");
    }
    Ok(())
}

async fn restart(
    client: &Client,
    ns: &str,
    project: &compose::Project,
    services: &[String],
) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    for s in &project.services {
        if !services.is_empty() && !services.contains(&s.name) {
            continue;
        }
        let r = match compose::workload_kind(project, s) {
            compose::WorkloadKind::Deployment => Resource::DEPLOYMENTS,
            compose::WorkloadKind::DaemonSet => Resource::DAEMONSETS,
            compose::WorkloadKind::Job => continue,
        };
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
        client
            .patch(
                &r,
                Some(ns),
                &compose::k8s_name(&s.name),
                &Patch::Merge(patch),
                &PatchParams::default(),
            )
            .await
            .with_context(|| format!("cannot restart {}", s.name))?;
        eprintln!("restarting {}", s.name);
    }
    for s in services {
        if project.service(s).is_none() {
            bail!("no such service: {s}");
        }
    }
    Ok(())
}

async fn pod_of(
    client: &Client,
    ns: &str,
    project: &str,
    service: &str,
    index: usize,
) -> anyhow::Result<String> {
    let sel = format!(
        "{},{}={service}",
        compose::project_selector(project),
        compose::SERVICE_LABEL
    );
    let pods = client
        .list(
            &Resource::PODS,
            Some(ns),
            &ListParams::default().labels(sel),
        )
        .await
        .context("cannot list pods")?;
    let mut running: Vec<String> = pods
        .items
        .iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|p| name_of(p).to_string())
        .collect();
    running.sort();
    running
        .get(index.saturating_sub(1))
        .cloned()
        .ok_or_else(|| anyhow!("service {service} has no running container #{index}"))
}

/// One line per service: spinners on a terminal, plain lines on changes otherwise.
struct Progress {
    bars: Option<(
        indicatif::MultiProgress,
        BTreeMap<String, indicatif::ProgressBar>,
    )>,
    last: BTreeMap<String, String>,
}

impl Progress {
    fn new() -> Progress {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| (indicatif::MultiProgress::new(), BTreeMap::new()));
        Progress {
            bars,
            last: BTreeMap::new(),
        }
    }

    fn line(&mut self, service: &str, text: &str) {
        if self.last.get(service).map(String::as_str) == Some(text) {
            return;
        }
        self.last.insert(service.to_string(), text.to_string());
        let done = text.starts_with("running") && !text.contains("not") && !text.contains('(')
            || text == "completed";
        match &mut self.bars {
            Some((multi, bars)) => {
                let bar = bars.entry(service.to_string()).or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new_spinner());
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                let mark = if done { "✔" } else { " " };
                bar.set_message(format!("{mark} {service:<20} {text}"));
            }
            None => eprintln!("{service}: {text}"),
        }
    }

    fn finish(&mut self) {
        if let Some((_, bars)) = &self.bars {
            for b in bars.values() {
                b.finish();
            }
        }
    }
}
