//! One pod's life on this node: sandbox, volumes, init containers in order, app
//! containers with restarts and back-off, probes, hooks, graceful termination and the
//! status the API shows. Level-triggered: every wake-up (pod change, container exit,
//! probe result, timer) re-runs [`Worker::sync`] against what is actually running.

use super::probe::{self, Kind};
use super::spec::{self, ImageDefaults};
use super::status::{self, ContainerView, PodView, State};
use super::{Ctx, PodEntry, env, volumes};
use client::{DeleteParams, Patch, PatchParams, Resource};
use oci_runtime::{ContainerInfo, ContainerSpec, MountKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Restart back-off: first restart at once, then 10 s doubling to 5 minutes; reset
/// after 10 minutes of running (the kubelet's figures).
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a quiet pod is re-synced anyway (volume contents, lost events).
const RESYNC: Duration = Duration::from_secs(10);
/// When a failed sandbox creation is tried again.
const SANDBOX_RETRY: Duration = Duration::from_secs(5);
/// `create_and_start`'s reason when the pod sandbox could not be made: the container
/// keeps waiting as ContainerCreating, without back-off (the sandbox has its own event).
const SANDBOX_NOT_READY: &str = "SandboxNotReady";

/// Runtime labels that tie a container to its pod, so a restarted agent re-adopts it.
pub const LABEL_POD_UID: &str = "drover.pod.uid";
/// The pod's namespace.
pub const LABEL_POD_NS: &str = "drover.pod.namespace";
/// The pod's name.
pub const LABEL_POD_NAME: &str = "drover.pod.name";
/// The container's name in the pod spec.
pub const LABEL_CONTAINER: &str = "drover.container.name";
/// Which instance of it (0 = first run; restartCount = attempt).
pub const LABEL_ATTEMPT: &str = "drover.container.attempt";

/// What wakes a worker besides pod changes.
#[derive(Debug)]
pub enum Wake {
    /// A container instance exited.
    Exited {
        /// Runtime id.
        id: String,
    },
    /// A probe crossed a threshold.
    Probe {
        /// Runtime id the probe ran against.
        id: String,
        /// Which probe.
        kind: Kind,
        /// Passing or failing now.
        ok: bool,
        /// The failure message.
        message: String,
    },
    /// A background stop (liveness kill) finished.
    Stopped,
}

/// RFC 3339 in whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

struct Ctr {
    name: String,
    init: bool,
    /// Instances created so far (the current one is `instances - 1`).
    instances: u32,
    id: Option<String>,
    image_id: String,
    /// The image store's id of the image this container runs (kept from GC).
    store_image: String,
    state: State,
    last: Option<State>,
    running_since: Option<Instant>,
    backoff: Duration,
    not_before: Option<Instant>,
    ready: bool,
    started: bool,
    readiness: Option<bool>,
    tasks: Vec<JoinHandle<()>>,
    pull_backoff: Duration,
    pull_not_before: Option<Instant>,
    stopping: bool,
}

/// The next restart delay after `d`: 10 s, then doubling to 5 minutes.
fn next_backoff(d: Duration) -> Duration {
    if d.is_zero() {
        BACKOFF_START
    } else {
        (d * 2).min(BACKOFF_MAX)
    }
}

impl Ctr {
    /// Holds the next start back by the current delay and grows it.
    fn back_off(&mut self) {
        self.not_before = Some(Instant::now() + self.backoff);
        self.backoff = next_backoff(self.backoff);
    }

    fn new(name: &str, init: bool, waiting: &str) -> Ctr {
        Ctr {
            name: name.to_string(),
            init,
            instances: 0,
            id: None,
            image_id: String::new(),
            store_image: String::new(),
            state: State::Waiting {
                reason: waiting.into(),
                message: String::new(),
            },
            last: None,
            running_since: None,
            backoff: Duration::ZERO,
            not_before: None,
            ready: false,
            started: false,
            readiness: None,
            tasks: Vec::new(),
            pull_backoff: Duration::ZERO,
            pull_not_before: None,
            stopping: false,
        }
    }
    fn abort_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }
    fn field_path(&self) -> String {
        if self.init {
            format!("spec.initContainers{{{}}}", self.name)
        } else {
            format!("spec.containers{{{}}}", self.name)
        }
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

/// Where a container start spends its time, logged at debug level once the status
/// write that follows it is done (`DROVER_LOG=agent=debug`).
struct Phases {
    mark: Instant,
    parts: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            mark: Instant::now(),
            parts: Vec::new(),
        }
    }
    /// Ends the current phase as `name`.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.parts.push((name, now - self.mark));
        self.mark = now;
    }
    fn take(&mut self) -> String {
        let total: Duration = self.parts.iter().map(|(_, d)| *d).sum();
        let mut out = format!("total={:.1}ms", total.as_secs_f64() * 1000.0);
        for (name, d) in self.parts.drain(..) {
            out.push_str(&format!(" {name}={:.1}ms", d.as_secs_f64() * 1000.0));
        }
        self.mark = Instant::now();
        out
    }
}

/// One pod's worker.
pub struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    ns: String,
    name: String,
    ctrs: Vec<Ctr>,
    sandbox: Option<podnet::PodSandbox>,
    /// The sandbox being created in the background while the first container's image,
    /// environment and rootfs are prepared (they do not need it); settled before the
    /// container's process starts and always by the end of a sync.
    sandbox_task: Option<JoinHandle<Result<podnet::PodSandbox, String>>>,
    /// The pending sandbox's namespace files, sent as soon as they exist (before CNI ADD), so
    /// the first container is created while the plugins run and started once they are done.
    sandbox_ns: Option<oneshot::Receiver<podnet::SandboxNamespaces>>,
    phases: Phases,
    volumes: Option<(volumes::Prepared, Instant)>,
    start_time: String,
    sent: Option<Value>,
    wake_tx: mpsc::UnboundedSender<Wake>,
    failed: Option<(String, String)>,
    started_at: Instant,
    /// spec.hostNetwork: containers join the agent's network namespace, no CNI.
    host_network: bool,
}

fn containers(pod: &Value, field: &str) -> Vec<Value> {
    pod["spec"][field].as_array().cloned().unwrap_or_default()
}

fn container_spec<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod["spec"][*f].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
}

/// Runs one pod until it is deleted (then tears everything down and removes the
/// object) or the agent stops. `adopted` are its containers found in the runtime
/// when the agent started.
pub async fn run(
    ctx: Arc<Ctx>,
    mut rx: watch::Receiver<Option<Arc<Value>>>,
    adopted: Vec<ContainerInfo>,
) {
    let Some(first) = rx.borrow().clone() else {
        return;
    };
    let (wake_tx, mut wake_rx) = mpsc::unbounded_channel();
    let mut w = Worker::new(ctx.clone(), &first, wake_tx);
    w.adopt(&first, adopted).await;
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(pod) = pod else {
            // Gone from the API (force-deleted): stop quickly, clean up.
            w.terminate(&first, Duration::from_secs(2)).await;
            w.cleanup().await;
            return;
        };
        if pod["metadata"]["uid"].as_str() != Some(w.uid.as_str()) {
            return;
        }
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            let grace = pod["metadata"]["deletionGracePeriodSeconds"]
                .as_u64()
                .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_u64())
                .unwrap_or(30);
            w.terminate(&pod, Duration::from_secs(grace)).await;
            w.publish(&pod).await;
            w.cleanup().await;
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: Some(w.uid.clone()),
                ..DeleteParams::default()
            };
            if let Err(e) = ctx
                .client
                .delete(&Resource::PODS, Some(&w.ns), &w.name, &dp)
                .await
                && !e.is_not_found()
                && !e.is_conflict()
            {
                tracing::warn!("pod {}/{}: final delete: {e}", w.ns, w.name);
            }
            return;
        }
        w.phases = Phases::new();
        let next = w.sync(&pod).await;
        w.phases.lap("sync");
        w.publish(&pod).await;
        w.phases.lap("status_write");
        if w.phases.parts.iter().any(|(n, _)| *n == "runc_start") {
            tracing::debug!(
                "pod {}: container start phases: {}",
                w.key(),
                w.phases.take()
            );
        }
        let timer = tokio::time::sleep(next.unwrap_or(RESYNC).min(RESYNC));
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    // The manager is gone (agent stopping): leave containers running.
                    return;
                }
            }
            Some(wake) = wake_rx.recv() => {
                w.handle(&pod, wake).await;
                while let Ok(more) = wake_rx.try_recv() {
                    w.handle(&pod, more).await;
                }
            }
            _ = timer => {}
        }
    }
}

impl Worker {
    fn new(ctx: Arc<Ctx>, pod: &Value, wake_tx: mpsc::UnboundedSender<Wake>) -> Worker {
        let has_init = !containers(pod, "initContainers").is_empty();
        let main_waiting = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let mut ctrs: Vec<Ctr> = containers(pod, "initContainers")
            .iter()
            .map(|c| {
                Ctr::new(
                    c["name"].as_str().unwrap_or_default(),
                    true,
                    "PodInitializing",
                )
            })
            .collect();
        ctrs.extend(
            containers(pod, "containers")
                .iter()
                .map(|c| Ctr::new(c["name"].as_str().unwrap_or_default(), false, main_waiting)),
        );
        let meta = &pod["metadata"];
        Worker {
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            ns: meta["namespace"].as_str().unwrap_or("default").to_string(),
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            start_time: pod["status"]["startTime"]
                .as_str()
                .map_or_else(|| rfc3339(SystemTime::now()), str::to_string),
            ctx,
            ctrs,
            sandbox: None,
            sandbox_task: None,
            sandbox_ns: None,
            phases: Phases::new(),
            volumes: None,
            sent: None,
            wake_tx,
            failed: None,
            started_at: Instant::now(),
            host_network: pod["spec"]["hostNetwork"].as_bool().unwrap_or(false),
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    /// Takes over containers that outlived an agent restart.
    async fn adopt(&mut self, pod: &Value, mut adopted: Vec<ContainerInfo>) {
        self.sandbox = self.ctx.net.sandbox(&self.uid).ok().flatten();
        adopted.sort_by_key(|i| {
            i.labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse::<u32>().ok())
                .unwrap_or(0)
        });
        for info in adopted {
            let Some(name) = info.labels.get(LABEL_CONTAINER).cloned() else {
                continue;
            };
            let attempt: u32 = info
                .labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            let Some(i) = self.ctrs.iter().position(|c| c.name == name) else {
                continue;
            };
            let state = self.state_of(&info);
            let c = &mut self.ctrs[i];
            if attempt + 1 < c.instances {
                continue;
            }
            if let Some(prev) = c.id.take() {
                let _ = prev;
                c.last = Some(c.state.clone());
            }
            c.instances = attempt + 1;
            c.id = Some(info.id.clone());
            c.state = state;
            if let Some(image) = container_spec(pod, &name).and_then(|s| s["image"].as_str())
                && let Ok(Some(img)) = self.ctx.images.get(image)
            {
                c.image_id = img.repo_digests.first().cloned().unwrap_or(img.id.clone());
                c.store_image = img.id.clone();
            }
            if c.running() {
                c.running_since = Some(Instant::now());
            }
        }
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].running() {
                self.watch_container(pod, i);
            }
        }
    }

    fn state_of(&self, info: &ContainerInfo) -> State {
        match (&info.status, &info.exit) {
            (oci_runtime::Status::Running | oci_runtime::Status::Paused, _) => State::Running {
                started_at: rfc3339(info.started_at.unwrap_or(info.created_at)),
            },
            (_, Some(exit)) => self.terminated(info, exit),
            _ => State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
        }
    }

    fn terminated(&self, info: &ContainerInfo, exit: &oci_runtime::Exit) -> State {
        let code = exit.signal.map_or(exit.code, |s| 128 + s);
        let reason = if exit.oom_killed {
            "OOMKilled"
        } else if code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let name = info
            .labels
            .get(LABEL_CONTAINER)
            .cloned()
            .unwrap_or_default();
        let attempt = info.labels.get(LABEL_ATTEMPT).cloned().unwrap_or_default();
        let message = std::fs::read(
            self.ctx
                .pod_dir(&self.uid)
                .join("termination")
                .join(format!("{name}-{attempt}")),
        )
        .map(|b| {
            String::from_utf8_lossy(&b[..b.len().min(4096)])
                .trim_end()
                .to_string()
        })
        .unwrap_or_default();
        State::Terminated {
            exit_code: code,
            reason: reason.into(),
            message,
            started_at: info.started_at.map(rfc3339).unwrap_or_default(),
            finished_at: rfc3339(exit.finished_at),
            container_id: format!("runc://{}", info.id),
        }
    }

    /// Starts the exit waiter and the probes of container `i`'s current instance.
    fn watch_container(&mut self, pod: &Value, i: usize) {
        let Some(id) = self.ctrs[i].id.clone() else {
            return;
        };
        let rt = self.ctx.runtime.clone();
        let tx = self.wake_tx.clone();
        let waiter_id = id.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let _ = rt.wait(&waiter_id).await;
            let _ = tx.send(Wake::Exited { id: waiter_id });
        })];
        let spec = container_spec(pod, &self.ctrs[i].name)
            .cloned()
            .unwrap_or(Value::Null);
        let c = &mut self.ctrs[i];
        if c.init {
            c.tasks = tasks;
            return;
        }
        let startup = probe::parse(&spec, Kind::Startup);
        if let Some(p) = startup.filter(|_| !c.started) {
            tasks.push(self.spawn_probe(id, Kind::Startup, p));
        } else {
            self.ctrs[i].started = true;
            for kind in [Kind::Liveness, Kind::Readiness] {
                if let Some(p) = probe::parse(&spec, kind) {
                    tasks.push(self.spawn_probe(id.clone(), kind, p));
                }
            }
        }
        self.ctrs[i].tasks = tasks;
    }

    fn spawn_probe(&self, id: String, kind: Kind, p: probe::Probe) -> JoinHandle<()> {
        let tx = self.wake_tx.clone();
        let rt = self.ctx.runtime.clone();
        let ip: Option<IpAddr> = self.pod_ip();
        tokio::spawn(async move {
            tokio::time::sleep(p.initial_delay).await;
            let mut tracker = probe::Tracker::new();
            loop {
                let host = |h: &Option<String>| h.as_ref().and_then(|h| h.parse().ok()).or(ip);
                let outcome = match &p.action {
                    probe::Action::Http {
                        host: h,
                        port,
                        path,
                        headers,
                    } => match host(h) {
                        Some(ip) => probe::http_get(ip, *port, path, headers, p.timeout).await,
                        None => Err("no pod IP".into()),
                    },
                    probe::Action::Tcp { host: h, port } => match host(h) {
                        Some(ip) => probe::tcp_connect(ip, *port, p.timeout).await,
                        None => Err("no pod IP".into()),
                    },
                    probe::Action::Exec { command } => {
                        match rt.exec_sync(&id, command, p.timeout).await {
                            Ok(out) if out.exit_code == 0 => Ok(()),
                            Ok(out) => {
                                let text = String::from_utf8_lossy(&out.stdout).to_string()
                                    + &String::from_utf8_lossy(&out.stderr);
                                Err(format!(
                                    "command {command:?} exited with {}: {}",
                                    out.exit_code,
                                    text.trim()
                                ))
                            }
                            Err(e) => Err(format!("command {command:?} failed: {e}")),
                        }
                    }
                };
                let ok = outcome.is_ok();
                if let Some(state) = tracker.record(&p, ok) {
                    let message = outcome.err().unwrap_or_default();
                    if tx
                        .send(Wake::Probe {
                            id: id.clone(),
                            kind,
                            ok: state,
                            message,
                        })
                        .is_err()
                    {
                        return;
                    }
                    if kind == Kind::Startup && state {
                        return;
                    }
                    if kind == Kind::Liveness && !state {
                        // The container is being restarted; a new probe comes with it.
                        return;
                    }
                }
                tokio::time::sleep(p.period).await;
            }
        })
    }

    async fn handle(&mut self, pod: &Value, wake: Wake) {
        match wake {
            Wake::Stopped => {}
            Wake::Exited { id } => {
                let Some(i) = self
                    .ctrs
                    .iter()
                    .position(|c| c.id.as_deref() == Some(id.as_str()))
                else {
                    return;
                };
                let info = match self.ctx.runtime.info(&id).await {
                    Ok(Some(info)) => info,
                    _ => return,
                };
                let Some(exit) = info.exit.clone() else {
                    return;
                };
                let state = self.terminated(&info, &exit);
                let c = &mut self.ctrs[i];
                c.abort_tasks();
                c.state = state;
                c.ready = false;
                c.started = false;
                c.readiness = None;
                c.stopping = false;
                let ran = c
                    .running_since
                    .take()
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                if ran > BACKOFF_RESET {
                    c.backoff = Duration::ZERO;
                }
                c.back_off();
                let dir = self.ctx.container_dir(&id);
                if let Err(e) = self.ctx.images.unmount_rootfs(&dir) {
                    tracing::warn!("pod {}: unmounting {}: {e}", self.key(), dir.display());
                }
            }
            Wake::Probe {
                id,
                kind,
                ok,
                message,
            } => {
                let Some(i) = self
                    .ctrs
                    .iter()
                    .position(|c| c.id.as_deref() == Some(id.as_str()))
                else {
                    return;
                };
                let fp = self.ctrs[i].field_path();
                let cname = self.ctrs[i].name.clone();
                if !ok {
                    self.ctx.events.pod(
                        pod,
                        Some(&fp),
                        "Warning",
                        "Unhealthy",
                        &format!("{} probe failed: {message}", kind.title()),
                    );
                }
                match (kind, ok) {
                    (Kind::Readiness, _) => self.ctrs[i].readiness = Some(ok),
                    (Kind::Startup, true) => {
                        self.ctrs[i].started = true;
                        self.ctrs[i].abort_tasks();
                        self.watch_container(pod, i);
                    }
                    (Kind::Liveness | Kind::Startup, false) => {
                        let what = if kind == Kind::Liveness {
                            "liveness"
                        } else {
                            "startup"
                        };
                        self.ctx.events.pod(
                            pod,
                            Some(&fp),
                            "Normal",
                            "Killing",
                            &format!("Container {cname} failed {what} probe, will be restarted"),
                        );
                        self.stop_in_background(pod, i);
                    }
                    (Kind::Liveness, true) => {}
                }
            }
        }
    }

    fn grace(pod: &Value) -> Duration {
        Duration::from_secs(
            pod["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        )
    }

    /// Stops container `i` (preStop hook, SIGTERM, grace, SIGKILL) without blocking the worker.
    fn stop_in_background(&mut self, pod: &Value, i: usize) {
        let c = &mut self.ctrs[i];
        let Some(id) = c.id.clone() else { return };
        if c.stopping {
            return;
        }
        c.stopping = true;
        let spec = container_spec(pod, &c.name).cloned().unwrap_or(Value::Null);
        let ctx = self.ctx.clone();
        let ip = self.pod_ip();
        let grace = Self::grace(pod);
        let tx = self.wake_tx.clone();
        tokio::spawn(async move {
            stop_container(&ctx, &id, &spec, ip, grace).await;
            let _ = tx.send(Wake::Stopped);
        });
    }

    fn pod_ip(&self) -> Option<IpAddr> {
        if self.host_network {
            return Some(self.ctx.cfg.node_ip);
        }
        self.sandbox.as_ref().map(|s| IpAddr::V4(s.ip))
    }

    /// Brings the pod one step closer to its spec; returns when to look again.
    async fn sync(&mut self, pod: &Value) -> Option<Duration> {
        let next = self.sync_containers(pod).await;
        if self.settle_sandbox(pod).await {
            next
        } else {
            Some(next.map_or(SANDBOX_RETRY, |n| n.min(SANDBOX_RETRY)))
        }
    }

    /// Waits for the sandbox being created in the background, if any: records it and
    /// writes the /etc files that carry its IP, or reports why it failed. True when the
    /// pod's containers can be created (sandbox ready, or host network).
    async fn settle_sandbox(&mut self, pod: &Value) -> bool {
        if let Some(task) = self.sandbox_task.take() {
            self.sandbox_ns = None;
            let created = task
                .await
                .unwrap_or_else(|e| Err(format!("the sandbox task failed: {e}")));
            self.phases.lap("sandbox_wait");
            match created {
                Ok(sb) => {
                    self.sandbox = Some(sb);
                    if let Err(e) = self.write_etc_files(pod) {
                        tracing::warn!("pod {}: writing /etc files: {e}", self.key());
                    }
                }
                Err(e) => {
                    self.ctx.events.pod(
                        pod,
                        None,
                        "Warning",
                        "FailedCreatePodSandBox",
                        &format!("Failed to create pod sandbox: {e}"),
                    );
                }
            }
        }
        self.host_network || self.sandbox.is_some()
    }

    async fn sync_containers(&mut self, pod: &Value) -> Option<Duration> {
        let phase_now = status::phase(
            pod["spec"]["restartPolicy"].as_str().unwrap_or("Always"),
            &self.make_view(pod),
        );
        if matches!(phase_now, "Succeeded" | "Failed") {
            self.release_sandbox().await;
            return None;
        }
        if let Some(deadline) = pod["spec"]["activeDeadlineSeconds"].as_u64()
            && self.started_at.elapsed() > Duration::from_secs(deadline)
            && self.failed.is_none()
        {
            let msg = "Pod was active on the node longer than the specified deadline".to_string();
            self.ctx
                .events
                .pod(pod, None, "Normal", "DeadlineExceeded", &msg);
            self.terminate(pod, Self::grace(pod)).await;
            self.failed = Some(("DeadlineExceeded".into(), msg));
            return None;
        }
        if self.sandbox.is_none() && !self.host_network {
            let ports: Vec<podnet::PortMapping> = containers(pod, "containers")
                .iter()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| {
                    let host_port = u16::try_from(p["hostPort"].as_u64()?).ok()?;
                    Some(podnet::PortMapping {
                        host_port,
                        container_port: u16::try_from(p["containerPort"].as_u64()?).ok()?,
                        protocol: p["protocol"].as_str().unwrap_or("TCP").to_lowercase(),
                        host_ip: p["hostIP"].as_str().map(str::to_string),
                    })
                })
                .collect();
            // CNI ADD (the slowest step of a start: plugin processes, netlink) runs while
            // volumes, image and rootfs are prepared and the first container is created in
            // the namespaces (sent ahead on `sandbox_ns`); `settle_sandbox` joins it.
            if self.sandbox_task.is_none() {
                let ctx = self.ctx.clone();
                let uid = self.uid.clone();
                let hostname = spec::hostname(pod);
                let (ns_tx, ns_rx) = oneshot::channel();
                self.sandbox_ns = Some(ns_rx);
                self.sandbox_task = Some(tokio::spawn(async move {
                    ctx.net
                        .create_sandbox_early(&uid, &hostname, &ports, Some(ns_tx))
                        .await
                        .map_err(|e| e.to_string())
                }));
            }
        }
        let refresh = self
            .volumes
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(15));
        if refresh {
            let dir = self.ctx.pod_dir(&self.uid).join("volumes");
            match volumes::prepare(
                &self.ctx.client,
                pod,
                &dir,
                self.ctx.cpu_millis,
                self.ctx.memory,
            )
            .await
            {
                Ok(v) => self.volumes = Some((v, Instant::now())),
                Err(e) if self.volumes.is_none() => {
                    self.ctx
                        .events
                        .pod(pod, None, "Warning", "FailedMount", &e.to_string());
                    return Some(Duration::from_secs(5));
                }
                Err(e) => tracing::warn!("pod {}: refreshing volumes: {e}", self.key()),
            }
            self.phases.lap("volumes");
            // With a sandbox on its way these lack the IP (the files must exist to be bound
            // into a container created meanwhile); `settle_sandbox` rewrites them in place
            // once it is known, before any container process starts.
            if let Err(e) = self.write_etc_files(pod) {
                tracing::warn!("pod {}: writing /etc files: {e}", self.key());
            }
            self.phases.lap("etc_files");
        }
        let policy = pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();
        let mut next: Option<Duration> = None;
        let mut soonest = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
        // Init containers, strictly in order.
        let n_init = self.ctrs.iter().filter(|c| c.init).count();
        for i in 0..n_init {
            match self.ctrs[i].state.clone() {
                State::Terminated { exit_code: 0, .. } => continue,
                State::Running { .. } => return next,
                State::Terminated { .. } if policy == "Never" => return next,
                State::Terminated { .. } | State::Waiting { .. } => {
                    if let Some(d) = self.maybe_start(pod, i, true).await {
                        soonest(d);
                    }
                    return next;
                }
            }
        }
        for i in n_init..self.ctrs.len() {
            let restart = match &self.ctrs[i].state {
                State::Running { .. } => false,
                State::Waiting { .. } => true,
                State::Terminated { exit_code, .. } => {
                    policy == "Always" || (policy == "OnFailure" && *exit_code != 0)
                }
            };
            if restart && let Some(d) = self.maybe_start(pod, i, false).await {
                soonest(d);
            }
        }
        next
    }

    /// Starts container `i` unless its back-off is still running; returns the time left.
    async fn maybe_start(&mut self, pod: &Value, i: usize, init: bool) -> Option<Duration> {
        let now = Instant::now();
        if let Some(nb) = self.ctrs[i].not_before.filter(|nb| *nb > now) {
            let left = nb - now;
            let c = &mut self.ctrs[i];
            if let State::Terminated { .. } = c.state {
                c.last = Some(c.state.clone());
                let secs = c.backoff.as_secs() / 2;
                let msg = format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    fmt_secs(secs.max(10)),
                    c.name,
                    self.name,
                    self.ns,
                    self.uid
                );
                c.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: msg,
                };
                let fp = c.field_path();
                let cname = c.name.clone();
                self.ctx.events.pod(
                    pod,
                    Some(&fp),
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {cname} in pod {}_{}({})",
                        self.name, self.ns, self.uid
                    ),
                );
            }
            return Some(left);
        }
        if let Some(nb) = self.ctrs[i].pull_not_before.filter(|nb| *nb > now) {
            return Some(nb - now);
        }
        let _ = init;
        self.start(pod, i).await.err()
    }

    fn write_etc_files(&self, pod: &Value) -> std::io::Result<()> {
        let dir = self.ctx.pod_dir(&self.uid).join("etc");
        std::fs::create_dir_all(&dir)?;
        let ip = self.pod_ip().map(|ip| ip.to_string()).unwrap_or_default();
        std::fs::write(dir.join("hosts"), spec::etc_hosts(pod, &ip))?;
        std::fs::write(dir.join("hostname"), format!("{}\n", spec::hostname(pod)))?;
        let resolv = spec::resolv_conf(
            pod,
            self.ctx.cfg.cluster_dns.as_deref(),
            &self.ctx.cfg.cluster_domain,
            &self.ctx.host_resolv,
        );
        std::fs::write(dir.join("resolv.conf"), resolv)?;
        Ok(())
    }

    /// Pulls, creates and starts a new instance of container `i`. On failure the
    /// container waits with the reason kubectl shows, and the error says when to retry.
    async fn start(&mut self, pod: &Value, i: usize) -> Result<(), Duration> {
        let Some(cspec) = container_spec(pod, &self.ctrs[i].name).cloned() else {
            return Err(RESYNC);
        };
        if !self.host_network && self.sandbox.is_none() && self.sandbox_task.is_none() {
            // The sandbox failed earlier in this sync (its event says why).
            return Err(SANDBOX_RETRY);
        }
        let fp = self.ctrs[i].field_path();
        let image_ref = cspec["image"].as_str().unwrap_or_default().to_string();
        let policy = match cspec["imagePullPolicy"].as_str() {
            Some("Always") => images::PullPolicy::Always,
            Some("Never") => images::PullPolicy::Never,
            Some(_) => images::PullPolicy::IfNotPresent,
            None if image_ref.ends_with(":latest")
                || !image_ref.rsplit('/').next().unwrap_or("").contains(':') =>
            {
                images::PullPolicy::Always
            }
            None => images::PullPolicy::IfNotPresent,
        };
        let present = self.ctx.images.get(&image_ref).ok().flatten();
        let needs_pull = match policy {
            images::PullPolicy::Always => true,
            images::PullPolicy::IfNotPresent => present.is_none(),
            images::PullPolicy::Never => false,
        };
        if needs_pull {
            self.ctx.events.pod(
                pod,
                Some(&fp),
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image_ref}\""),
            );
        }
        self.phases.lap("image_lookup");
        let t0 = Instant::now();
        let key = self.key();
        let progress = move |p: images::PullProgress| {
            if p.done_bytes == p.total_bytes {
                tracing::info!(
                    "pod {key}: pulled layer {} ({} bytes)",
                    p.layer,
                    p.total_bytes
                );
            }
        };
        let ensured = match present.filter(|_| !needs_pull) {
            Some(img) => {
                // Present and not to be pulled: start with it now. Recording the use (for
                // image GC's least-recently-used order) is a synced write, done aside; with
                // policy Never it cannot pull should the image go meanwhile.
                let images = self.ctx.images.clone();
                let reference = image_ref.clone();
                tokio::spawn(async move {
                    let none = images::PullOptions::default();
                    let quiet = |_: images::PullProgress| {};
                    let _ = images
                        .ensure(&reference, images::PullPolicy::Never, &none, &quiet)
                        .await;
                });
                Ok(img)
            }
            None => {
                let opts = images::PullOptions {
                    insecure_registries: self.ctx.cfg.insecure_registries.clone(),
                    auth: self.pull_auth(pod, &image_ref).await,
                    mirrors: self.ctx.cfg.registry_mirrors.clone(),
                };
                self.ctx
                    .images
                    .ensure(&image_ref, policy, &opts, &progress)
                    .await
            }
        };
        let image = match ensured {
            Ok(img) => img,
            Err(e) => {
                let c = &mut self.ctrs[i];
                let (reason, message) = match e {
                    images::ImageError::NotPresent { .. } => (
                        "ErrImageNeverPull",
                        format!(
                            "Container image \"{image_ref}\" is not present with pull policy of Never"
                        ),
                    ),
                    ref other => {
                        let backoff = c.pull_backoff;
                        if backoff.is_zero() {
                            ("ErrImagePull", other.to_string())
                        } else {
                            (
                                "ImagePullBackOff",
                                format!("Back-off pulling image \"{image_ref}\": {other}"),
                            )
                        }
                    }
                };
                if reason == "ErrImagePull" || reason == "ErrImageNeverPull" {
                    self.ctx.events.pod(
                        pod,
                        Some(&fp),
                        "Warning",
                        "Failed",
                        &format!("Failed to pull image \"{image_ref}\": {e}"),
                    );
                    self.ctx.events.pod(
                        pod,
                        Some(&fp),
                        "Warning",
                        "Failed",
                        &format!("Error: {reason}"),
                    );
                } else {
                    self.ctx.events.pod(
                        pod,
                        Some(&fp),
                        "Normal",
                        "BackOff",
                        &format!("Back-off pulling image \"{image_ref}\""),
                    );
                }
                let c = &mut self.ctrs[i];
                c.pull_backoff = next_backoff(c.pull_backoff);
                // ErrImagePull shows for a moment, then ImagePullBackOff while waiting.
                let wait = if reason == "ErrImagePull" {
                    Duration::from_secs(2)
                } else {
                    c.pull_backoff
                };
                c.pull_not_before = Some(Instant::now() + wait);
                c.state = State::Waiting {
                    reason: reason.into(),
                    message,
                };
                return Err(wait);
            }
        };
        self.phases.lap("image_ensure");
        self.ctrs[i].pull_backoff = Duration::ZERO;
        self.ctrs[i].pull_not_before = None;
        if needs_pull {
            let size = image.size;
            self.ctx.events.pod(pod, Some(&fp), "Normal", "Pulled", &format!("Successfully pulled image \"{image_ref}\" in {:.3}s. Image size: {size} bytes.", t0.elapsed().as_secs_f64()));
        } else {
            self.ctx.events.pod(
                pod,
                Some(&fp),
                "Normal",
                "Pulled",
                &format!("Container image \"{image_ref}\" already present on machine"),
            );
        }
        self.phases.lap("event_pulled");
        self.ctrs[i].store_image = image.id.clone();
        self.ctrs[i].image_id = image
            .repo_digests
            .first()
            .cloned()
            .unwrap_or_else(|| image.id.clone());
        match self.create_and_start(pod, &cspec, i, &image).await {
            Ok(()) => Ok(()),
            Err((SANDBOX_NOT_READY, _)) => Err(SANDBOX_RETRY),
            Err((reason, message)) => {
                self.ctx.events.pod(
                    pod,
                    Some(&fp),
                    "Warning",
                    "Failed",
                    &format!("Error: {message}"),
                );
                let c = &mut self.ctrs[i];
                c.state = State::Waiting {
                    reason: reason.into(),
                    message,
                };
                c.back_off();
                Err(c.backoff)
            }
        }
    }

    async fn create_and_start(
        &mut self,
        pod: &Value,
        cspec: &Value,
        i: usize,
        image: &images::Image,
    ) -> Result<(), (&'static str, String)> {
        let cfg_err = |e: String| ("CreateContainerConfigError", e);
        let needs_pod_ip = cspec["env"].as_array().into_iter().flatten().any(|e| {
            e["valueFrom"]["fieldRef"]["fieldPath"]
                .as_str()
                .is_some_and(|p| p.starts_with("status.podIP"))
        });
        if needs_pod_ip && !self.settle_sandbox(pod).await {
            return Err((SANDBOX_NOT_READY, String::new()));
        }
        // The downward API sees the IPs this start gives the pod, which its status may
        // not carry yet (the status is written after the first container starts).
        let mut pod_now = pod.clone();
        if let Some(ip) = self.pod_ip() {
            pod_now["status"]["podIP"] = json!(ip.to_string());
            pod_now["status"]["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        let host = self.ctx.cfg.node_ip.to_string();
        pod_now["status"]["hostIP"] = json!(host);
        pod_now["status"]["hostIPs"] = json!([{"ip": host}]);
        let defaults = ImageDefaults {
            entrypoint: image.config.entrypoint.clone(),
            cmd: image.config.cmd.clone(),
            env: image.config.env.clone(),
            working_dir: image.config.working_dir.clone(),
            user: image.config.user.clone(),
        };
        let figures = spec::cgroup_figures(cspec).map_err(|e| cfg_err(e.to_string()))?;
        let sec = spec::security(cspec);
        let vols = self
            .volumes
            .as_ref()
            .map(|(v, _)| v.clone())
            .unwrap_or_default();
        let binds = spec::volume_mounts(cspec, &vols).map_err(|e| cfg_err(e.to_string()))?;
        let c = &self.ctrs[i];
        let attempt = c.instances;
        let short: String = self.uid.chars().filter(|c| *c != '-').take(12).collect();
        let id = format!("{short}-{}-{attempt}", c.name);
        // The instance before the previous one is no longer needed for lastState.
        if attempt >= 2 {
            let old = format!("{short}-{}-{}", c.name, attempt - 2);
            let _ = self.ctx.runtime.remove(&old).await;
            let _ = self
                .ctx
                .images
                .unmount_rootfs(&self.ctx.container_dir(&old));
        }
        self.phases.lap("spec_parts");
        let dir = self.ctx.container_dir(&id);
        let _ = self.ctx.runtime.remove(&id).await;
        self.phases.lap("remove_stale");
        // The environment (API reads: services, ConfigMaps, Secrets) is resolved while the
        // rootfs is mounted: the requests are in flight during the mount syscalls.
        let images = &self.ctx.images;
        let (vars, rootfs) = tokio::join!(
            env::resolve(
                &self.ctx.client,
                &pod_now,
                cspec,
                self.ctx.cpu_millis,
                self.ctx.memory,
            ),
            async { images.mount_rootfs(image, &dir) }
        );
        self.phases.lap("env_mount_rootfs");
        let rootfs = rootfs.map_err(|e| ("CreateContainerError", e.to_string()))?;
        let args = vars.map_err(|e| cfg_err(e.to_string())).and_then(|vars| {
            let args = spec::argv(cspec, &defaults, &vars).map_err(|e| cfg_err(e.to_string()))?;
            Ok((vars, args))
        });
        let (vars, args) = match args {
            Ok(v) => v,
            Err(e) => {
                let _ = self.ctx.images.unmount_rootfs(&dir);
                return Err(e);
            }
        };
        let (uid, gid, groups) = spec::user(&pod["spec"], cspec, &defaults, &rootfs)
            .map_err(|e| cfg_err(e.to_string()))?;
        let pod_dir = self.ctx.pod_dir(&self.uid);
        let term = pod_dir
            .join("termination")
            .join(format!("{}-{attempt}", c.name));
        let log_path = self.ctx.log_path(&self.uid, &c.name, attempt);
        for p in [term.parent(), log_path.parent()].into_iter().flatten() {
            std::fs::create_dir_all(p)
                .map_err(|e| ("CreateContainerError", format!("{}: {e}", p.display())))?;
        }
        std::fs::write(&term, b"")
            .map_err(|e| ("CreateContainerError", format!("{}: {e}", term.display())))?;
        let bind =
            |destination: &str, source: std::path::PathBuf, readonly: bool| oci_runtime::Mount {
                destination: destination.into(),
                source,
                readonly,
                kind: MountKind::Bind,
            };
        let mut mounts: Vec<oci_runtime::Mount> = binds
            .into_iter()
            .map(|b| bind(&b.destination, b.source, b.readonly))
            .collect();
        let etc = pod_dir.join("etc");
        mounts.push(bind("/etc/hosts", etc.join("hosts"), false));
        mounts.push(bind("/etc/hostname", etc.join("hostname"), false));
        mounts.push(bind("/etc/resolv.conf", etc.join("resolv.conf"), false));
        let term_path = cspec["terminationMessagePath"]
            .as_str()
            .unwrap_or("/dev/termination-log")
            .to_string();
        mounts.push(bind(&term_path, term.clone(), false));
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_POD_UID.to_string(), self.uid.clone());
        labels.insert(LABEL_POD_NS.to_string(), self.ns.clone());
        labels.insert(LABEL_POD_NAME.to_string(), self.name.clone());
        labels.insert(LABEL_CONTAINER.to_string(), c.name.clone());
        labels.insert(LABEL_ATTEMPT.to_string(), attempt.to_string());
        let fp = c.field_path();
        let cname = c.name.clone();
        self.phases.lap("user_files_spec");
        // The namespaces to create the container in: the sandbox's, or those of the sandbox
        // still being created (CNI ADD then runs beside `runc create`).
        let namespaces = match (&self.sandbox, self.sandbox_ns.take()) {
            _ if self.host_network => None,
            (Some(sb), _) => Some((sb.netns.clone(), sb.ipc_ns.clone())),
            (None, Some(rx)) => match rx.await {
                Ok(ns) => Some((ns.netns, ns.ipc_ns)),
                Err(_) => None,
            },
            (None, None) => None,
        };
        self.phases.lap("sandbox_ns");
        if !self.host_network && namespaces.is_none() {
            // The namespaces could not be made: the task's error says why.
            self.settle_sandbox(pod).await;
            let _ = self.ctx.images.unmount_rootfs(&dir);
            return Err((SANDBOX_NOT_READY, String::new()));
        }
        // The /etc files are bind sources: they must exist even if the IP is not known yet.
        if !etc.join("hosts").exists()
            && let Err(e) = self.write_etc_files(pod)
        {
            tracing::warn!("pod {}: writing /etc files: {e}", self.key());
        }
        let cwd = cspec["workingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                if defaults.working_dir.is_empty() {
                    "/".into()
                } else {
                    defaults.working_dir.clone()
                }
            });
        let spec = ContainerSpec {
            id: id.clone(),
            rootfs,
            readonly_rootfs: sec.readonly_rootfs,
            args,
            env: spec::environment(&defaults, &vars),
            cwd,
            uid,
            gid,
            additional_gids: groups,
            hostname: spec::hostname(pod),
            netns: if self.host_network {
                // The agent's own namespace is the host's.
                Some(std::path::PathBuf::from(format!(
                    "/proc/{}/ns/net",
                    std::process::id()
                )))
            } else {
                namespaces.as_ref().map(|n| n.0.clone())
            },
            ipc_ns: namespaces.as_ref().map(|n| n.1.clone()),
            mounts,
            cpu_shares: figures.cpu_shares,
            cpu_quota: figures.cpu_quota,
            cpu_period: figures.cpu_period,
            memory_limit: figures.memory_limit,
            cgroup_path: Some(format!(
                "/drover/{}/pod{}/{id}",
                self.ctx.cfg.name, self.uid
            )),
            capabilities_add: sec.add,
            capabilities_drop: sec.drop,
            privileged: sec.privileged,
            no_new_privileges: sec.no_new_privileges,
            tty: cspec["tty"].as_bool().unwrap_or(false),
            stdin: cspec["stdin"].as_bool().unwrap_or(false),
            stdin_once: cspec["stdinOnce"].as_bool().unwrap_or(false),
            log_path,
            labels,
        };
        let created = self.ctx.runtime.create(&spec).await;
        self.phases.lap("conmon_runc_create");
        // The process must not start before the pod's network (and /etc/hosts) is complete.
        let sandbox_ready = self.settle_sandbox(pod).await;
        if !sandbox_ready {
            if created.is_ok() {
                let _ = self.ctx.runtime.remove(&id).await;
            }
            let _ = self.ctx.images.unmount_rootfs(&dir);
            return Err((SANDBOX_NOT_READY, String::new()));
        }
        if let Err(e) = created {
            let _ = self.ctx.images.unmount_rootfs(&dir);
            return Err(("CreateContainerError", e.to_string()));
        }
        {
            let c = &mut self.ctrs[i];
            if c.instances > 0 && !matches!(c.state, State::Waiting { .. }) {
                c.last = Some(c.state.clone());
            }
            c.instances = attempt + 1;
            c.id = Some(id.clone());
        }
        self.ctx.events.pod(
            pod,
            Some(&fp),
            "Normal",
            "Created",
            &format!("Created container {cname}"),
        );
        self.phases.lap("event_created");
        let started = self.ctx.runtime.start(&id).await;
        self.phases.lap("runc_start");
        if let Err(e) = started {
            let info = self.ctx.runtime.info(&id).await.ok().flatten();
            let state = match info
                .as_ref()
                .and_then(|inf| inf.exit.clone().map(|x| (inf.clone(), x)))
            {
                Some((inf, exit)) => {
                    let mut s = self.terminated(&inf, &exit);
                    if let State::Terminated {
                        reason, message, ..
                    } = &mut s
                    {
                        *reason = "StartError".into();
                        *message = e.to_string();
                    }
                    s
                }
                None => State::Terminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: e.to_string(),
                    started_at: String::new(),
                    finished_at: rfc3339(SystemTime::now()),
                    container_id: format!("runc://{id}"),
                },
            };
            let c = &mut self.ctrs[i];
            c.state = state;
            c.back_off();
            self.ctx.events.pod(
                pod,
                Some(&fp),
                "Warning",
                "Failed",
                &format!("Error: failed to start container \"{cname}\": {e}"),
            );
            return Ok(());
        }
        self.ctx.events.pod(
            pod,
            Some(&fp),
            "Normal",
            "Started",
            &format!("Started container {cname}"),
        );
        {
            let c = &mut self.ctrs[i];
            c.state = State::Running {
                started_at: rfc3339(SystemTime::now()),
            };
            c.running_since = Some(Instant::now());
            c.readiness = None;
            c.started = false;
        }
        self.watch_container(pod, i);
        self.phases.lap("event_started_watch");
        if let Some(hook) = cspec["lifecycle"]["postStart"]
            .as_object()
            .map(|o| Value::Object(o.clone()))
            && let Err(msg) = run_hook(&self.ctx, &id, &hook, self.pod_ip(), Self::grace(pod)).await
        {
            {
                self.ctx.events.pod(
                    pod,
                    Some(&fp),
                    "Warning",
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {msg}"),
                );
                self.stop_in_background(pod, i);
            }
        }
        Ok(())
    }

    async fn pull_auth(&self, pod: &Value, image: &str) -> Option<images::RegistryAuth> {
        let host = registry_host(image);
        for s in pod["spec"]["imagePullSecrets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(name) = s["name"].as_str() else {
                continue;
            };
            let Ok(secret) = self
                .ctx
                .client
                .get(&Resource::SECRETS, Some(&self.ns), name)
                .await
            else {
                continue;
            };
            let data = env::data_of(&secret, true);
            let Some(cfg) = data.get(".dockerconfigjson").or(data.get(".dockercfg")) else {
                continue;
            };
            let Ok(cfg) = serde_json::from_str::<Value>(cfg) else {
                continue;
            };
            let auths = if cfg["auths"].is_object() {
                &cfg["auths"]
            } else {
                &cfg
            };
            for (server, entry) in auths.as_object().into_iter().flatten() {
                let server_host = server
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or("");
                let matches = server_host == host
                    || (host == "docker.io" && server_host.contains("docker.io"));
                if !matches {
                    continue;
                }
                if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str())
                {
                    return Some(images::RegistryAuth {
                        username: u.into(),
                        password: p.into(),
                    });
                }
                if let Some(auth) = entry["auth"].as_str() {
                    use base64::Engine;
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth)
                        .ok()?;
                    let text = String::from_utf8(decoded).ok()?;
                    let (u, p) = text.split_once(':')?;
                    return Some(images::RegistryAuth {
                        username: u.into(),
                        password: p.into(),
                    });
                }
            }
        }
        None
    }

    /// Computes the status and writes it when it changed.
    async fn publish(&mut self, pod: &Value) {
        let view = self.make_view(pod);
        let status = status::pod_status(pod, &view, &rfc3339(SystemTime::now()));
        let entry = PodEntry {
            uid: self.uid.clone(),
            ip: self.pod_ip(),
            containers: self
                .ctrs
                .iter()
                .filter_map(|c| {
                    c.id.clone().map(|id| {
                        (
                            c.name.clone(),
                            (id, c.instances.saturating_sub(1), c.running()),
                        )
                    })
                })
                .collect(),
            waiting: self
                .ctrs
                .iter()
                .filter_map(|c| match &c.state {
                    State::Waiting { reason, .. } => Some((c.name.clone(), reason.clone())),
                    _ => None,
                })
                .collect(),
            images: self
                .ctrs
                .iter()
                .filter(|c| !c.store_image.is_empty())
                .map(|c| c.store_image.clone())
                .collect(),
        };
        self.ctx
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(self.key(), entry);
        if self.sent.as_ref() == Some(&status) && pod["status"]["phase"] == status["phase"] {
            return;
        }
        let patch = Patch::Merge(json!({"metadata": {"uid": self.uid}, "status": status}));
        match self
            .ctx
            .client
            .patch_status(
                &Resource::PODS,
                Some(&self.ns),
                &self.name,
                &patch,
                &PatchParams::default(),
            )
            .await
        {
            Ok(_) => self.sent = Some(status),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!("pod {}: status: {e}", self.key()),
        }
    }

    fn make_view(&self, pod: &Value) -> PodView {
        let image = |name: &str| {
            container_spec(pod, name)
                .and_then(|c| c["image"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        let views: Vec<ContainerView> = self
            .ctrs
            .iter()
            .map(|c| {
                let has_readiness = container_spec(pod, &c.name)
                    .is_some_and(|s| probe::parse(s, Kind::Readiness).is_some());
                let ready = if c.init {
                    matches!(c.state, State::Terminated { exit_code: 0, .. })
                } else if has_readiness {
                    c.running() && c.started && c.readiness == Some(true)
                } else {
                    c.running() && c.started
                };
                ContainerView {
                    name: c.name.clone(),
                    image: image(&c.name),
                    image_id: c.image_id.clone(),
                    container_id: c
                        .id
                        .as_ref()
                        .map(|id| format!("runc://{id}"))
                        .unwrap_or_default(),
                    state: c.state.clone(),
                    last: c.last.clone(),
                    restart_count: c.instances.saturating_sub(1),
                    ready: if c.init { false } else { ready },
                    started: c.running() && c.started,
                }
            })
            .collect();
        let (init, main): (Vec<_>, Vec<_>) = views
            .into_iter()
            .zip(self.ctrs.iter())
            .partition(|(_, c)| c.init);
        PodView {
            sandbox_ready: self.sandbox.is_some() || self.host_network,
            pod_ip: self
                .pod_ip()
                .map(|ip| ip.to_string())
                .or_else(|| pod["status"]["podIP"].as_str().map(str::to_string)),
            host_ip: self.ctx.cfg.node_ip.to_string(),
            start_time: self.start_time.clone(),
            init: init.into_iter().map(|(v, _)| v).collect(),
            main: main.into_iter().map(|(v, _)| v).collect(),
            failed: self.failed.clone(),
        }
    }

    /// Stops every running container: preStop hooks, then SIGTERM, the grace period, SIGKILL.
    async fn terminate(&mut self, pod: &Value, grace: Duration) {
        let mut stops = Vec::new();
        let pod_ip = self.pod_ip();
        for c in &mut self.ctrs {
            c.abort_tasks();
            let Some(id) = c.id.clone() else { continue };
            let running = matches!(self.ctx.runtime.info(&id).await, Ok(Some(ref i)) if matches!(i.status, oci_runtime::Status::Running | oci_runtime::Status::Created | oci_runtime::Status::Paused));
            if !running {
                continue;
            }
            self.ctx.events.pod(
                pod,
                Some(&c.field_path()),
                "Normal",
                "Killing",
                &format!("Stopping container {}", c.name),
            );
            let spec = container_spec(pod, &c.name).cloned().unwrap_or(Value::Null);
            let ctx = self.ctx.clone();
            let ip = pod_ip;
            stops.push(async move { stop_container(&ctx, &id, &spec, ip, grace).await });
        }
        futures::future::join_all(stops).await;
        for i in 0..self.ctrs.len() {
            let Some(id) = self.ctrs[i].id.clone() else {
                continue;
            };
            if let Ok(Some(info)) = self.ctx.runtime.info(&id).await
                && let Some(exit) = info.exit.clone()
            {
                let st = self.terminated(&info, &exit);
                let c = &mut self.ctrs[i];
                if c.running() {
                    c.state = st;
                }
                c.ready = false;
            }
        }
    }

    async fn release_sandbox(&mut self) {
        if self.sandbox.is_some() {
            if let Err(e) = self.ctx.net.remove_sandbox(&self.uid).await {
                tracing::warn!("pod {}: removing the sandbox: {e}", self.key());
                return;
            }
            self.sandbox = None;
        }
    }

    /// Removes the pod's containers, rootfs mounts, sandbox, volumes and files.
    async fn cleanup(&mut self) {
        let mut ids: Vec<String> = match self.ctx.runtime.list().await {
            Ok(all) => all
                .into_iter()
                .filter(|i| i.labels.get(LABEL_POD_UID) == Some(&self.uid))
                .map(|i| i.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        ids.extend(self.ctrs.iter().filter_map(|c| c.id.clone()));
        ids.sort();
        ids.dedup();
        for id in ids {
            if let Err(e) = self.ctx.runtime.remove(&id).await {
                tracing::warn!("pod {}: removing container {id}: {e}", self.key());
            }
            let _ = self.ctx.images.unmount_rootfs(&self.ctx.container_dir(&id));
        }
        if let Err(e) = self.ctx.net.remove_sandbox(&self.uid).await {
            tracing::warn!("pod {}: removing the sandbox: {e}", self.key());
        }
        self.sandbox = None;
        if let Err(e) = self
            .ctx
            .runtime
            .remove_cgroup(&format!("/drover/{}/pod{}", self.ctx.cfg.name, self.uid))
        {
            tracing::warn!("pod {}: removing its cgroup: {e}", self.key());
        }
        let dir = self.ctx.pod_dir(&self.uid);
        if let Err(e) = volumes::teardown(&dir.join("volumes")).await {
            tracing::warn!("pod {}: removing volumes: {e}", self.key());
        }
        let _ = std::fs::remove_dir_all(&dir);
        self.ctx
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key());
        self.ctx.events.forget(&self.uid);
    }
}

fn fmt_secs(s: u64) -> String {
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The registry host of an image reference (`docker.io` for Docker Hub names).
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".into(),
    }
}

/// Runs a lifecycle hook (exec or httpGet) within `timeout`.
async fn run_hook(
    ctx: &Ctx,
    id: &str,
    hook: &Value,
    ip: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(cmd) = hook["exec"]["command"].as_array() {
        let args: Vec<String> = cmd
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        return match ctx.runtime.exec_sync(id, &args, timeout).await {
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) => Err(format!(
                "command {args:?} exited with {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    if hook["httpGet"].is_object() {
        let h = &hook["httpGet"];
        let port = h["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(80);
        let host = h["host"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or(ip)
            .ok_or("no pod IP")?;
        return probe::http_get(host, port, h["path"].as_str().unwrap_or("/"), &[], timeout).await;
    }
    if let Some(secs) = hook["sleep"]["seconds"].as_u64() {
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
    }
    Ok(())
}

/// preStop hook within the grace period, then SIGTERM, the rest of the grace, SIGKILL.
async fn stop_container(ctx: &Ctx, id: &str, spec: &Value, ip: Option<IpAddr>, grace: Duration) {
    let t0 = Instant::now();
    if let Some(hook) = spec["lifecycle"]["preStop"]
        .as_object()
        .map(|o| Value::Object(o.clone()))
        && let Err(e) = run_hook(ctx, id, &hook, ip, grace).await
    {
        tracing::warn!("container {id}: preStop hook: {e}");
    }
    let left = grace
        .saturating_sub(t0.elapsed())
        .max(Duration::from_secs(if grace.is_zero() { 0 } else { 2 }));
    if let Err(e) = ctx.runtime.stop(id, left).await {
        tracing::warn!("container {id}: stopping: {e}");
    }
}
