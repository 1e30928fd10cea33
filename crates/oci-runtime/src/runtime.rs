//! The container lifecycle: runc driven by conmon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use command_fds::{CommandFdExt, FdMapping};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::cgroup::{Hierarchies, Stats};
use crate::spec::{build_spec, validate_id};
use crate::{ContainerInfo, ContainerSpec, Exit, RuntimeConfig, RuntimeError, Status};

/// How long `runc create` (through conmon) may take before the create is abandoned.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long remove() waits for a killed container to be reaped by conmon.
const REMOVE_WAIT: Duration = Duration::from_secs(10);

/// Runs containers with an OCI runtime CLI under conmon. Cheap to clone; all state lives on disk,
/// so a new `Runtime` on the same directories (an agent restart) sees the same containers.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: RuntimeConfig,
    version: String,
    pub(crate) cgroups: Hierarchies,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cfg", &self.inner.cfg)
            .field("version", &self.inner.version)
            .finish()
    }
}

/// What we store beside each container (meta.json).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Meta {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub log_path: PathBuf,
    pub created_at_ns: u64,
    pub cgroup_path: String,
    pub tty: bool,
    pub stdin: bool,
}

/// `runc state` / `runc list --format json` output (the fields we use).
#[derive(Deserialize)]
struct RuncState {
    #[serde(default)]
    id: String,
    pid: i64,
    status: String,
}

/// conmon's sync-pipe message: the container pid, or -1 and runc's error.
#[derive(Deserialize)]
struct SyncMsg {
    data: i64,
    #[serde(default)]
    message: Option<String>,
}

fn to_system_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Extracts logrus' `msg="..."` from runc's stderr, or returns the trimmed text.
pub(crate) fn runc_message(stderr: &str) -> String {
    let mut msgs = Vec::new();
    for line in stderr.lines() {
        if let Some(start) = line.find("msg=\"") {
            let rest = &line[start + 5..];
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(other) => out.push(other),
                        None => break,
                    },
                    '"' => break,
                    c => out.push(c),
                }
            }
            msgs.push(out);
        } else if !line.trim().is_empty() {
            msgs.push(line.trim().to_string());
        }
    }
    if msgs.is_empty() {
        stderr.trim().to_string()
    } else {
        msgs.join("; ")
    }
}

/// Whether `pid` is a live (non-zombie) process whose command line contains `needle`.
pub(crate) fn process_alive(pid: u32, needle: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z') | Some('X') | None) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

pub(crate) fn send_signal(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid 0"))?;
    let sig = rustix::process::Signal::from_named_raw(sig).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("unknown signal {sig}"),
        )
    })?;
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

impl Runtime {
    /// Checks the binaries exist, creates the state and runtime-root directories and reads the
    /// runtime's version.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        for (what, path) in [("OCI runtime", &cfg.runtime), ("conmon", &cfg.conmon)] {
            if !path.is_file() {
                return Err(RuntimeError::MissingBinary {
                    what,
                    path: path.clone(),
                });
            }
        }
        for dir in [&cfg.state_dir, &cfg.runtime_root] {
            std::fs::create_dir_all(dir).map_err(|e| {
                RuntimeError::io(format!("creating directory {}", dir.display()), e)
            })?;
        }
        let out = std::process::Command::new(&cfg.runtime)
            .arg("--version")
            .output()
            .map_err(|e| {
                RuntimeError::io(format!("running {} --version", cfg.runtime.display()), e)
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let name = cfg
            .runtime
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "runc".into());
        // "runc version 1.1.5+ds1" → "runc 1.1.5"
        let ver = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().last())
            .map(|v| v.split('+').next().unwrap_or(v).to_string())
            .unwrap_or_else(|| "unknown".into());
        let cgroups = Hierarchies::detect()?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                cfg,
                version: format!("{name} {ver}"),
                cgroups,
            }),
        })
    }

    /// "runc 1.1.5": name and version of the OCI runtime, for the Node's containerRuntimeVersion.
    pub fn runtime_version(&self) -> String {
        self.inner.version.clone()
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.cfg
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.inner.cfg.state_dir.join(id)
    }

    /// runc's own state directory of the container (under `--root`).
    fn runc_dir(&self, id: &str) -> PathBuf {
        self.inner.cfg.runtime_root.join(id)
    }

    fn exit_file(&self, id: &str) -> PathBuf {
        self.dir(id).join("exit").join(id)
    }

    pub(crate) fn read_meta(&self, id: &str) -> Result<Option<Meta>, RuntimeError> {
        if validate_id(id).is_err() {
            return Ok(None);
        }
        let path = self.dir(id).join("meta.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                RuntimeError::io(
                    format!("parsing {}", path.display()),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::io(format!("reading {}", path.display()), e)),
        }
    }

    pub(crate) async fn meta(&self, id: &str) -> Result<Meta, RuntimeError> {
        self.read_meta(id)?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))
    }

    /// `runc --root R <args>`; returns stdout, or runc's message on failure.
    pub(crate) async fn runc(&self, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let cfg = &self.inner.cfg;
        let out = tokio::process::Command::new(&cfg.runtime)
            .arg("--root")
            .arg(&cfg.runtime_root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| RuntimeError::io(format!("running {}", cfg.runtime.display()), e))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(RuntimeError::Command {
                command: format!("runc {}", args.join(" ")),
                message: runc_message(&String::from_utf8_lossy(&out.stderr)),
            })
        }
    }

    async fn runc_state(&self, id: &str) -> Result<Option<RuncState>, RuntimeError> {
        match self.runc(&["state", id]).await {
            Ok(out) => serde_json::from_slice(&out)
                .map(Some)
                .map_err(|e| RuntimeError::Command {
                    command: format!("runc state {id}"),
                    message: format!("unparsable output: {e}"),
                }),
            Err(RuntimeError::Command { message, .. }) if message.contains("does not exist") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the container: writes the bundle and starts conmon, which runs `runc create`.
    /// Returns once the container is created (its process waits for [`Runtime::start`]). On failure
    /// nothing is left behind and the error carries runc's message.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        validate_id(&spec.id)?;
        let id = spec.id.as_str();
        let mut spec = spec.clone();
        let cgroup_path = spec.cgroup_path.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                self.inner.cfg.cgroup_parent.trim_end_matches('/'),
                id
            )
        });
        spec.cgroup_path = Some(cgroup_path.clone());
        if !spec.rootfs.is_dir() {
            return Err(RuntimeError::InvalidSpec(format!(
                "rootfs {} is not a directory",
                spec.rootfs.display()
            )));
        }
        if spec.log_path.as_os_str().is_empty() || !spec.log_path.is_absolute() {
            return Err(RuntimeError::InvalidSpec(format!(
                "log path {:?} must be an absolute file path",
                spec.log_path
            )));
        }
        let oci = build_spec(&spec)?;
        // runc keeps a container's state in `<root>/<id>/`: its presence is what `runc state`
        // would report, without starting a runc process on every create.
        if self.runc_dir(id).exists() {
            return Err(RuntimeError::AlreadyExists(id.to_string()));
        }
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(id.to_string()));
            }
            Err(e) => return Err(RuntimeError::io(format!("creating {}", dir.display()), e)),
        }
        let meta = Meta {
            id: id.to_string(),
            labels: spec.labels.clone(),
            log_path: spec.log_path.clone(),
            created_at_ns: now_ns(),
            cgroup_path: cgroup_path.clone(),
            tty: spec.tty,
            stdin: spec.stdin,
        };
        let result = self.create_inner(&spec, &oci, &meta, &dir).await;
        if let Err(e) = result {
            tracing::debug!(id, error = %e, "create failed; cleaning up");
            if let Err(ce) = self.remove(id).await {
                tracing::warn!(id, error = %ce, "cleanup after failed create");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn create_inner(
        &self,
        spec: &ContainerSpec,
        oci: &oci_spec::runtime::Spec,
        meta: &Meta,
        dir: &Path,
    ) -> Result<(), RuntimeError> {
        let id = spec.id.as_str();
        let cfg = &self.inner.cfg;
        let t0 = std::time::Instant::now();
        let io = |what: &str, p: &Path| {
            let p = p.display().to_string();
            let what = what.to_string();
            move |e| RuntimeError::io(format!("{what} {p}"), e)
        };
        oci.save(dir.join("config.json"))
            .map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        let meta_path = dir.join("meta.json");
        let meta_json = serde_json::to_vec_pretty(meta)
            .map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        std::fs::write(&meta_path, meta_json).map_err(io("writing", &meta_path))?;
        for sub in ["exit", "persist", "sock"] {
            let p = dir.join(sub);
            std::fs::create_dir(&p).map_err(io("creating", &p))?;
        }
        if let Some(parent) = spec.log_path.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating log directory", parent))?;
        }
        let conmon_log_path = dir.join("conmon.log");
        let conmon_log =
            std::fs::File::create(&conmon_log_path).map_err(io("creating", &conmon_log_path))?;
        let conmon_log2 = conmon_log
            .try_clone()
            .map_err(io("duplicating", &conmon_log_path))?;

        let (sync_r, sync_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| RuntimeError::io("creating conmon sync pipe", e.into()))?;
        let mut cmd = tokio::process::Command::new(&cfg.conmon);
        cmd.arg("--api-version")
            .arg("1")
            .args(["-c", id, "-u", id, "-n", id])
            .arg("-r")
            .arg(&cfg.runtime)
            .arg("--runtime-arg")
            .arg(format!("--root={}", cfg.runtime_root.display()))
            .arg("-b")
            .arg(dir)
            .arg("-p")
            .arg(dir.join("container.pid"))
            .arg("-P")
            .arg(dir.join("conmon.pid"))
            .arg("-l")
            .arg(format!("k8s-file:{}", spec.log_path.display()))
            .arg("--exit-dir")
            .arg(dir.join("exit"))
            .arg("--persist-dir")
            .arg(dir.join("persist"))
            .arg("--socket-dir-path")
            .arg(dir.join("sock"))
            .args(["--log-level", "warn"]);
        if spec.tty {
            cmd.arg("--terminal");
        }
        if spec.stdin {
            cmd.arg("--stdin");
            if !spec.stdin_once {
                cmd.arg("--leave-stdin-open");
            }
        }
        cmd.env("_OCI_SYNCPIPE", "3")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(conmon_log))
            .stderr(Stdio::from(conmon_log2))
            .kill_on_drop(false)
            .fd_mappings(vec![FdMapping {
                parent_fd: sync_w,
                child_fd: 3,
            }])
            .map_err(|e| {
                RuntimeError::io("passing the sync pipe to conmon", std::io::Error::other(e))
            })?;
        let t_files = t0.elapsed();
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::io(format!("starting {}", cfg.conmon.display()), e))?;
        // Close our copy of the pipe's write end so EOF means "conmon is gone".
        drop(cmd);
        // conmon forks its monitor and exits at once; reap it.
        let first = child
            .wait()
            .await
            .map_err(|e| RuntimeError::io("waiting for conmon", e))?;
        let t_conmon = t0.elapsed();

        let msg = tokio::time::timeout(CREATE_TIMEOUT, read_sync_msg(id, sync_r))
            .await
            .map_err(|_| {
                RuntimeError::Timeout(format!(
                    "creating container {id} (runc create under conmon)"
                ))
            })??;
        tracing::debug!(
            id,
            "create: bundle files {:.1} ms, conmon forked {:.1} ms, runc create done {:.1} ms",
            t_files.as_secs_f64() * 1000.0,
            t_conmon.as_secs_f64() * 1000.0,
            t0.elapsed().as_secs_f64() * 1000.0
        );
        match msg {
            Some(SyncMsg { data, .. }) if data > 0 => Ok(()),
            Some(SyncMsg { message, .. }) => Err(RuntimeError::Create {
                id: id.to_string(),
                message: runc_message(
                    message
                        .as_deref()
                        .unwrap_or("runc create failed without a message"),
                ),
            }),
            None => {
                let log = std::fs::read_to_string(&conmon_log_path).unwrap_or_default();
                Err(RuntimeError::Create {
                    id: id.to_string(),
                    message: format!(
                        "conmon exited ({first}) without reporting a result: {}",
                        log.trim()
                    ),
                })
            }
        }
    }

    /// Starts a created container's process.
    ///
    /// Does what `runc start` does without the runc process (a Go binary start, ~10 ms): the
    /// created container's init blocks writing one byte to `<runc root>/<id>/exec.fifo`; reading
    /// it lets the init exec the process, and removing the fifo is what makes runc report the
    /// container as running (libcontainer's `exec()`/`handleFifoResult`). Anything but a created
    /// container (no fifo) goes to `runc start` for its own error.
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.meta(id).await?;
        let fifo = self.runc_dir(id).join("exec.fifo");
        match self.release_exec_fifo(id, &fifo).await {
            Ok(true) => {}
            Ok(false) => {
                self.runc(&["start", id]).await?;
            }
            Err(e) => return Err(e),
        }
        let started = self.dir(id).join("started");
        std::fs::write(&started, now_ns().to_string())
            .map_err(|e| RuntimeError::io(format!("writing {}", started.display()), e))?;
        Ok(())
    }

    /// Reads the byte a created container's init writes to its exec fifo and removes the fifo.
    /// False when there is no fifo (the container is not in the created state).
    async fn release_exec_fifo(&self, id: &str, fifo: &Path) -> Result<bool, RuntimeError> {
        let start_err = |message: String| RuntimeError::Command {
            command: format!("runc start {id}"),
            message,
        };
        // Non-blocking, so a reader is there at once whether or not the init has opened its end
        // yet; readiness (epoll) comes only with the byte or with the writer gone.
        let rx = match tokio::net::unix::pipe::OpenOptions::new().open_receiver(fifo) {
            Ok(rx) => rx,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(RuntimeError::io(format!("opening {}", fifo.display()), e)),
        };
        let pid = read_pid(&self.dir(id).join("container.pid"));
        let mut buf = [0u8; 16];
        let mut dead = false;
        loop {
            tokio::select! {
                r = rx.readable() => {
                    r.map_err(|e| RuntimeError::io(format!("waiting on {}", fifo.display()), e))?;
                }
                // The init died before writing (runc polls its pid every 100 ms for this).
                _ = wait_pid_exit(pid.unwrap_or(0), Duration::from_millis(100)), if pid.is_some() && !dead => {
                    dead = pid.is_some_and(|p| !process_alive(p, ""));
                    if !dead {
                        continue;
                    }
                }
            }
            match rx.try_read(&mut buf) {
                Ok(n) if n > 0 => break,
                Ok(_) => return Err(start_err("container process is already dead".into())),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if dead {
                        return Err(start_err("container process is already dead".into()));
                    }
                }
                Err(e) => return Err(RuntimeError::io(format!("reading {}", fifo.display()), e)),
            }
        }
        drop(rx);
        match std::fs::remove_file(fifo) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(RuntimeError::io(format!("removing {}", fifo.display()), e)),
        }
    }

    fn read_exit(&self, id: &str, meta: &Meta) -> Option<Exit> {
        let path = self.exit_file(id);
        let text = std::fs::read_to_string(&path).ok()?;
        let code: i32 = text.trim().parse().ok()?;
        let finished_at = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let dir = self.dir(id);
        let oom_killed = dir.join("persist").join("oom").exists()
            || dir.join("oom").exists()
            || self.inner.cgroups.oom_killed(&meta.cgroup_path);
        let signal = (129..=192).contains(&code).then_some(code - 128);
        Some(Exit {
            code,
            signal,
            oom_killed,
            finished_at,
        })
    }

    pub(crate) fn conmon_pid(&self, id: &str) -> Option<u32> {
        read_pid(&self.dir(id).join("conmon.pid"))
    }

    fn conmon_alive(&self, id: &str) -> bool {
        self.conmon_pid(id)
            .is_some_and(|pid| process_alive(pid, id))
    }

    /// The container's state: runc's view plus conmon's exit record. `None` if unknown.
    pub async fn info(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        let Some(meta) = self.read_meta(id)? else {
            return Ok(None);
        };
        let state = self.runc_state(id).await?;
        Ok(Some(self.info_from(id, meta, state).await))
    }

    async fn info_from(&self, id: &str, meta: Meta, state: Option<RuncState>) -> ContainerInfo {
        let (mut status, pid) = match &state {
            Some(s) => {
                let status = match s.status.as_str() {
                    "created" | "creating" => Status::Created,
                    "running" => Status::Running,
                    "paused" | "pausing" => Status::Paused,
                    _ => Status::Stopped,
                };
                (status, (s.pid > 0).then_some(s.pid as u32))
            }
            None => (Status::Stopped, None),
        };
        let mut exit = self.read_exit(id, &meta);
        if exit.is_some() {
            status = Status::Stopped;
        } else if status == Status::Stopped && self.conmon_alive(id) {
            // runc sees the process gone before conmon has reaped it and written the exit file.
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                exit = self.read_exit(id, &meta);
                if exit.is_some() || !self.conmon_alive(id) {
                    break;
                }
            }
        }
        let started_path = self.dir(id).join("started");
        let started_at = std::fs::read_to_string(&started_path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(to_system_time)
            .or_else(|| {
                // Started by someone else (e.g. `runc start` by hand): fall back to the process start.
                (status == Status::Running)
                    .then(|| pid.and_then(proc_start_time))
                    .flatten()
            });
        ContainerInfo {
            id: id.to_string(),
            status: status.clone(),
            pid: if status == Status::Stopped { None } else { pid },
            created_at: to_system_time(meta.created_at_ns),
            started_at,
            exit,
            labels: meta.labels,
            log_path: meta.log_path,
        }
    }

    /// All containers in the state directory (including stopped ones not yet removed).
    pub async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let dir = &self.inner.cfg.state_dir;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| RuntimeError::io(format!("listing {}", dir.display()), e))?;
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join("meta.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        ids.sort();
        // One `runc list` instead of a `runc state` per container.
        let out = self.runc(&["list", "--format", "json"]).await?;
        let states: Vec<RuncState> = if out.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            serde_json::from_slice::<Option<Vec<RuncState>>>(&out)
                .map_err(|e| RuntimeError::Command {
                    command: "runc list --format json".into(),
                    message: format!("unparsable output: {e}"),
                })?
                .unwrap_or_default()
        };
        let mut states: BTreeMap<String, RuncState> =
            states.into_iter().map(|s| (s.id.clone(), s)).collect();
        let mut infos = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(meta) = self.read_meta(&id)? {
                let state = states.remove(&id);
                infos.push(self.info_from(&id, meta, state).await);
            }
        }
        Ok(infos)
    }

    /// Sends `signal` (a number, e.g. 15) to the container's main process.
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        self.meta(id).await?;
        match self.runc(&["kill", id, &signal.to_string()]).await {
            Ok(_) => Ok(()),
            Err(RuntimeError::Command { message, .. })
                if message.contains("not running") || message.contains("does not exist") =>
            {
                Err(RuntimeError::NotRunning(id.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<Exit, RuntimeError> {
        self.stop_with_signal(id, 15, grace).await
    }

    /// Like [`Runtime::stop`] with the image's StopSignal (a number) instead of SIGTERM.
    pub async fn stop_with_signal(
        &self,
        id: &str,
        signal: i32,
        grace: Duration,
    ) -> Result<Exit, RuntimeError> {
        let meta = self.meta(id).await?;
        if let Some(exit) = self.read_exit(id, &meta) {
            return Ok(exit);
        }
        if grace > Duration::ZERO {
            match self.kill(id, signal).await {
                Ok(()) | Err(RuntimeError::NotRunning(_)) => {}
                Err(e) => return Err(e),
            }
            if let Ok(r) = tokio::time::timeout(grace, self.wait(id)).await {
                return r;
            }
        }
        match self.kill(id, 9).await {
            Ok(()) | Err(RuntimeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        tokio::time::timeout(Duration::from_secs(30), self.wait(id))
            .await
            .map_err(|_| {
                RuntimeError::Timeout(format!("waiting for container {id} to die after SIGKILL"))
            })?
    }

    /// Waits until the container exits and returns conmon's record of it.
    pub async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let meta = self.meta(id).await?;
        loop {
            if let Some(exit) = self.read_exit(id, &meta) {
                return Ok(exit);
            }
            if !self.dir(id).exists() {
                return Err(RuntimeError::NotFound(id.to_string()));
            }
            match self.conmon_pid(id).filter(|p| process_alive(*p, id)) {
                Some(pid) => {
                    // conmon exits right after writing the exit file: wait for that on a pidfd.
                    wait_pid_exit(pid, Duration::from_secs(1)).await;
                }
                None => {
                    // No monitor: the exit can only be learned from runc.
                    match self.runc_state(id).await? {
                        Some(s) if s.status != "stopped" => {
                            tokio::time::sleep(Duration::from_millis(500)).await
                        }
                        _ => {
                            if let Some(exit) = self.read_exit(id, &meta) {
                                return Ok(exit);
                            }
                            return Ok(Exit {
                                code: 255,
                                signal: None,
                                oom_killed: self.inner.cgroups.oom_killed(&meta.cgroup_path),
                                finished_at: SystemTime::now(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Forcibly removes the container: kill, `runc delete --force`, conmon gone, state directory and
    /// cgroup removed. Idempotent. Keeps the log file.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if validate_id(id).is_err() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        if !self.dir(id).exists() && !self.runc_dir(id).exists() {
            // Neither we nor runc know it (the common case when a caller clears the way for a
            // new container): nothing to do, and no runc process to start to find that out.
            return Ok(());
        }
        let meta = self.read_meta(id)?;
        let state = self.runc_state(id).await?;
        if let Some(s) = &state {
            if s.status != "stopped" {
                let _ = self.runc(&["kill", id, "9"]).await;
                // Let conmon reap the process and record the exit before the state is deleted.
                let deadline = tokio::time::Instant::now() + REMOVE_WAIT;
                while tokio::time::Instant::now() < deadline {
                    if self.exit_file(id).exists() || !self.conmon_alive(id) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if let Err(e) = self.runc(&["delete", "--force", id]).await
                && self.runc_state(id).await?.is_some()
            {
                return Err(e);
            }
        }
        if let Some(pid) = self.conmon_pid(id)
            && process_alive(pid, id)
        {
            let _ = send_signal(pid, 9);
            for _ in 0..100 {
                if !process_alive(pid, id) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(meta) = &meta {
            self.inner.cgroups.remove(&meta.cgroup_path)?;
        }
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(format!("removing {}", dir.display()), e)),
        }
    }

    /// Removes a cgroup the containers no longer use (e.g. a pod's "<parent>/pod<uid>") from every
    /// hierarchy. Fails if processes are still in it; missing is fine.
    pub fn remove_cgroup(&self, cgroup_path: &str) -> Result<(), RuntimeError> {
        self.inner.cgroups.remove(cgroup_path)
    }

    /// CPU and memory usage from the container's cgroup.
    pub async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let meta = self.meta(id).await?;
        self.inner.cgroups.stats(&meta.cgroup_path)
    }

    /// The cgroup path the container runs in (as given to runc).
    pub async fn cgroup_path(&self, id: &str) -> Result<String, RuntimeError> {
        Ok(self.meta(id).await?.cgroup_path)
    }

    /// Directories of the container's cgroup in each mounted hierarchy (for inspection).
    pub async fn cgroup_dirs(&self, id: &str) -> Result<Vec<PathBuf>, RuntimeError> {
        Ok(self
            .inner
            .cgroups
            .all_dirs(&self.meta(id).await?.cgroup_path))
    }
}

/// Start time of a process from /proc (boot time + starttime ticks, assuming USER_HZ = 100).
fn proc_start_time(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))?;
    Some(UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks * 10))
}

/// Reads conmon's first sync-pipe message (it may write a second one at exit, which nobody reads).
async fn read_sync_msg(
    id: &str,
    fd: std::os::fd::OwnedFd,
) -> Result<Option<SyncMsg>, RuntimeError> {
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
        .map_err(|e| RuntimeError::io("reading conmon's sync pipe", e))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = rx
            .read(&mut chunk)
            .await
            .map_err(|e| RuntimeError::io("reading conmon's sync pipe", e))?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        match serde_json::Deserializer::from_slice(&buf)
            .into_iter::<SyncMsg>()
            .next()
        {
            Some(Ok(m)) => return Ok(Some(m)),
            Some(Err(e)) if e.is_eof() => continue,
            Some(Err(e)) => {
                return Err(RuntimeError::Create {
                    id: id.to_string(),
                    message: format!(
                        "unexpected message from conmon {:?}: {e}",
                        String::from_utf8_lossy(&buf)
                    ),
                });
            }
            None => continue,
        }
    }
}

/// Waits until `pid` exits (pidfd readiness), or at most `max`.
async fn wait_pid_exit(pid: u32, max: Duration) {
    let pidfd = rustix::process::Pid::from_raw(pid as i32)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    // A pidfd polls readable once the process has exited; tokio's pipe type registers any pollable fd.
    match pidfd.and_then(|fd| tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd).ok()) {
        Some(rx) => {
            let _ = tokio::time::timeout(max, rx.readable()).await;
        }
        None => tokio::time::sleep(max.min(Duration::from_millis(100))).await,
    }
}
