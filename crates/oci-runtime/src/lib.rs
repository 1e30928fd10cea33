//! OCI containers through runc and conmon.
//!
//! The agent describes a container with [`ContainerSpec`]; [`build_spec`] turns it into an OCI runtime
//! spec, and [`Runtime`] runs it with the runc CLI under conmon. Conmon (the monitor CRI-O and Podman
//! use) holds the container's stdio, writes the CRI log file, records the exit code and OOM kills and
//! outlives an agent restart, so a restarted agent finds its containers again with [`Runtime::list`].
//!
//! Layout of `RuntimeConfig::state_dir/<id>/` (the container's bundle):
//! `config.json`, `meta.json` (labels, log path, cgroup), `conmon.pid`, `container.pid`,
//! `started` (its mtime is the start time), `exit/<id>` (exit code, written by conmon),
//! `persist/oom` (OOM marker), `attach` (conmon's attach socket), `ctl` (conmon's control fifo).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attach;
mod cgroup;
mod exec;
pub mod logs;
mod runtime;
mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

pub use attach::{AttachResizer, AttachSession};
pub use cgroup::Stats;
pub use exec::{EXEC_SYNC_OUTPUT_LIMIT, ExecOutput, ExecRequest, ExecResizer, ExecSession};
pub use runtime::Runtime;
pub use spec::{DEFAULT_CAPABILITIES, build_spec};

/// Boxed async byte sink for a container's or exec's stdin.
pub type BoxWrite = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;
/// Boxed async byte source for a container's or exec's stdout/stderr.
pub type BoxRead = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Where the runtime binaries are and where container state lives.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// OCI runtime CLI (runc; crun/youki are CLI compatible).
    pub runtime: PathBuf,
    /// `runc --root`: one per agent so agents (and tests) never see each other's containers.
    pub runtime_root: PathBuf,
    /// The conmon binary (2.1.x).
    pub conmon: PathBuf,
    /// Per-container directories (bundle, conmon pidfile, exit file, oom file, attach socket, ctl fifo).
    /// Keep it short: conmon's attach socket path lives under it.
    pub state_dir: PathBuf,
    /// Default cgroup parent (cgroupfs driver), e.g. "/drover".
    pub cgroup_parent: String,
}

/// Everything the agent decides about one container.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    /// Unique id chosen by the agent: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters.
    pub id: String,
    /// The prepared root filesystem (e.g. an overlay mount); must exist.
    pub rootfs: PathBuf,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Command and arguments (the image's entrypoint + cmd, resolved by the agent).
    pub args: Vec<String>,
    /// `K=V` pairs; `PATH` (and `TERM` with a tty, `HOSTNAME`) are added when missing.
    pub env: Vec<String>,
    /// Working directory; empty means "/".
    pub cwd: String,
    /// User id of the process.
    pub uid: u32,
    /// Group id of the process.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Hostname in the container's UTS namespace; empty means the container id.
    pub hostname: String,
    /// Network namespace to join (the pod sandbox's); None = a new, empty one.
    pub netns: Option<PathBuf>,
    /// IPC namespace to join; None = a new one.
    pub ipc_ns: Option<PathBuf>,
    /// Extra mounts; a mount at a default destination (e.g. /dev/shm) replaces the default one.
    pub mounts: Vec<Mount>,
    /// cgroup v1 cpu.shares.
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// cgroup path (cgroupfs driver); default "<cgroup_parent>/<id>".
    pub cgroup_path: Option<String>,
    /// Capabilities to add ("NET_ADMIN", "CAP_NET_ADMIN" or "ALL").
    pub capabilities_add: Vec<String>,
    /// Capabilities to drop ("NET_ADMIN", "CAP_NET_ADMIN" or "ALL").
    pub capabilities_drop: Vec<String>,
    /// All capabilities, no masked or read-only paths, writable /sys.
    pub privileged: bool,
    /// Set the no_new_privs bit.
    pub no_new_privileges: bool,
    /// Give the process a terminal (conmon holds the master).
    pub tty: bool,
    /// Keep a stdin pipe open to the process (writable through [`Runtime::attach`]).
    pub stdin: bool,
    /// Close the process's stdin when the first attach session ends.
    pub stdin_once: bool,
    /// CRI log file conmon writes (its directory is created).
    pub log_path: PathBuf,
    /// Stored beside the container and returned by [`Runtime::list`] so a restarted agent knows it.
    pub labels: BTreeMap<String, String>,
}

/// An extra mount inside the container.
#[derive(Clone, Debug)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    /// Host path for bind mounts (ignored for tmpfs).
    pub source: PathBuf,
    /// Mount read-only.
    pub readonly: bool,
    /// Bind mount or fresh tmpfs.
    pub kind: MountKind,
}

/// What kind of filesystem a [`Mount`] is.
#[derive(Clone, Debug)]
pub enum MountKind {
    /// Recursive bind mount of `source`.
    Bind,
    /// A new tmpfs, optionally size-limited.
    Tmpfs {
        /// Size limit in bytes.
        size_bytes: Option<u64>,
    },
}

/// Container state as runc reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Created but not started: the process waits before exec'ing the user's command.
    Created,
    /// The process runs.
    Running,
    /// Frozen.
    Paused,
    /// The process has exited (or the container is gone from runc).
    Stopped,
}

/// How a container's main process ended.
#[derive(Clone, Debug)]
pub struct Exit {
    /// Exit code as conmon records it; 128+N when killed by signal N.
    pub code: i32,
    /// The signal, derived from codes 129..=192 (a process exiting with such a code looks the same).
    pub signal: Option<i32>,
    /// The container's cgroup saw an OOM kill.
    pub oom_killed: bool,
    /// When conmon recorded the exit.
    pub finished_at: SystemTime,
}

/// What [`Runtime::info`] and [`Runtime::list`] report.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// Container id.
    pub id: String,
    /// Current state.
    pub status: Status,
    /// Host pid of the main process while it exists.
    pub pid: Option<u32>,
    /// When [`Runtime::create`] ran.
    pub created_at: SystemTime,
    /// When [`Runtime::start`] succeeded.
    pub started_at: Option<SystemTime>,
    /// Set once the container has stopped and conmon recorded the exit.
    pub exit: Option<Exit>,
    /// The labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// The CRI log file.
    pub log_path: PathBuf,
}

/// Errors from the container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The spec cannot be turned into a runnable container.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// No container with this id exists in this runtime's state directory.
    #[error("container {0} not found")]
    NotFound(String),
    /// A container with this id already exists; remove it first.
    #[error("container {0} already exists; remove it first or choose another id")]
    AlreadyExists(String),
    /// The operation needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// A required binary is missing.
    #[error(
        "{what} not found at {path}: install it (apt-get install -y runc conmon) or fix RuntimeConfig"
    )]
    MissingBinary {
        /// Which tool.
        what: &'static str,
        /// Where it was expected.
        path: PathBuf,
    },
    /// Creating the container failed; `message` is runc's own error.
    #[error("creating container {id} failed: {message}")]
    Create {
        /// Container id.
        id: String,
        /// runc's (or conmon's) message.
        message: String,
    },
    /// A runtime command exited with an error.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line, abbreviated.
        command: String,
        /// runc's message.
        message: String,
    },
    /// A deadline passed.
    #[error("{0} timed out")]
    Timeout(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}
