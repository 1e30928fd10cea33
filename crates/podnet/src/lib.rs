//! Pod network sandboxes through CNI.
//!
//! A sandbox is a set of namespaces that all containers of a pod join: a network namespace named
//! `<netns_prefix><pod uid>` under `/run/netns` (so `ip netns exec` works on it), an IPC namespace
//! and a UTS namespace carrying the pod's hostname. They are pinned by bind mounts, so no pause
//! process is needed. The network namespace is wired with Debian's CNI plugins the way the
//! kubelet does it: `lo` up (done in-process, as the `loopback` plugin would), then `bridge` with
//! `host-local` IPAM over the node's pod CIDR, then `portmap` for host ports. Everything the agent needs after a restart is recorded under
//! `state_dir`.
//!
//! Layout of `state_dir`:
//! - `ipam/`: host-local's `dataDir` (IP allocations), private to this node/agent;
//! - `pods/<uid>/intent.json`: what is being set up, written before CNI ADD so a crash mid-ADD
//!   can still be torn down;
//! - `pods/<uid>/sandbox.json`: the complete record (sandbox + CNI result), written atomically
//!   after ADD succeeded;
//! - `pods/<uid>/ipc`, `pods/<uid>/uts`: the pinned IPC and UTS namespaces.

#![forbid(unsafe_code)]

mod cni;
mod ns;

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use ipnet;
pub use ipnet::Ipv4Net;

use cni::{CNI_VERSION, Invocation, Plugins};

/// The interface name of the pod's end of the veth pair.
pub const POD_INTERFACE: &str = "eth0";

/// The CNI network name; host-local keeps its allocations under `state_dir/ipam/<name>/`, and
/// portmap derives its per-pod chain names from it.
const NETWORK_NAME: &str = "drover";

/// Format version of the per-pod files.
const RECORD_VERSION: u32 = 1;

/// How a node wires its pods; one per agent.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Directories searched for the CNI plugins, in order (also passed as `CNI_PATH`).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Name of the Linux bridge the pods are attached to (at most 15 bytes).
    pub bridge: String,
    /// The node's pod CIDR; its first address is the gateway, assigned to the bridge.
    pub subnet: Ipv4Net,
    /// Where IP allocations, CNI results and per-pod records live; must be private to this agent.
    pub state_dir: PathBuf,
    /// Prefix of the network namespace names under `/run/netns` (`<prefix><pod uid>`).
    pub netns_prefix: String,
    /// MTU of the bridge and veths; the kernel default when `None`.
    pub mtu: Option<u32>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "drover0".into(),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 88, 0, 0), 24).unwrap_or_default(),
            state_dir: PathBuf::from("/var/lib/drover/cni"),
            netns_prefix: "drover-".into(),
            mtu: None,
        }
    }
}

/// A pod's namespaces and address, as containers (runc namespace paths) and status need them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSandbox {
    /// The pod's UID, which is also the CNI container ID.
    pub pod_uid: String,
    /// The network namespace file, `/run/netns/<prefix><uid>`.
    pub netns: PathBuf,
    /// The IPC namespace file (under `state_dir`).
    pub ipc_ns: PathBuf,
    /// The UTS namespace file carrying the pod's hostname (under `state_dir`).
    pub uts_ns: Option<PathBuf>,
    /// The pod IP (`status.podIP`).
    pub ip: Ipv4Addr,
    /// The default gateway inside the pod (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The pod-side interface name, `eth0`.
    pub interface: String,
}

/// A pod's namespace files, known (and joinable) before CNI ADD has given the pod its address:
/// a container can be created in them while the plugins run (see
/// [`Network::create_sandbox_early`]); its process must not start before the sandbox is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxNamespaces {
    /// The network namespace file.
    pub netns: PathBuf,
    /// The IPC namespace file.
    pub ipc_ns: PathBuf,
    /// The UTS namespace file.
    pub uts_ns: Option<PathBuf>,
}

/// A host port forwarded to the pod (`containers[].ports[].hostPort`), done by the portmap plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port on the host's addresses (including 127.0.0.1).
    pub host_port: u16,
    /// Port inside the pod.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (any case).
    pub protocol: String,
    /// Restricts the forwarding to one host address; all local addresses when `None`.
    pub host_ip: Option<String>,
}

/// Why a sandbox operation failed.
#[derive(thiserror::Error, Debug)]
pub enum NetError {
    /// A CNI plugin binary is missing.
    #[error(
        "CNI plugin `{plugin}` not found in {dirs}: install Debian's containernetworking-plugins \
         (apt-get install containernetworking-plugins) or set cni_bin_dirs"
    )]
    PluginMissing {
        /// Plugin name.
        plugin: String,
        /// Directories searched.
        dirs: String,
    },
    /// A plugin could not be started.
    #[error("could not run CNI plugin `{plugin}`: {source}")]
    PluginSpawn {
        /// Plugin name.
        plugin: String,
        /// Underlying error.
        source: io::Error,
    },
    /// A plugin reported an error (boxed to keep `Result<_, NetError>` small).
    #[error("{0}")]
    Plugin(Box<PluginFailure>),
    /// A plugin printed something that is not JSON.
    #[error("CNI plugin `{plugin}` printed an unparsable result ({source}): {output}")]
    PluginOutput {
        /// Plugin name.
        plugin: String,
        /// What it printed.
        output: String,
        /// Parse error.
        source: serde_json::Error,
    },
    /// The CNI result lacks what a pod needs.
    #[error("unusable CNI result ({why}): {result}")]
    BadResult {
        /// What is wrong.
        why: String,
        /// The result.
        result: String,
    },
    /// Creating, entering or removing a namespace failed.
    #[error("{what} failed: {source} (podnet must run as root with CAP_SYS_ADMIN)")]
    Namespace {
        /// The operation.
        what: String,
        /// Underlying error.
        source: io::Error,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// The operation.
        context: String,
        /// Underlying error.
        source: io::Error,
    },
    /// A per-pod record is unreadable.
    #[error("pod network record {path} is unreadable: {why}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// An external command (e.g. `ip link delete`) failed.
    #[error("`{command}` failed: {why}")]
    Command {
        /// The command line.
        command: String,
        /// Why.
        why: String,
    },
    /// The configuration is unusable.
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// A caller-supplied argument is unusable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// What a failing CNI plugin said: its CNI error object and its stderr.
#[derive(thiserror::Error, Debug, Clone)]
#[error(
    "CNI plugin `{plugin}` {command} failed ({status}{}): {msg}{}{}",
    code.map(|c| format!(", CNI error code {c}")).unwrap_or_default(),
    if details.is_empty() { String::new() } else { format!(" ({details})") },
    if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") },
)]
pub struct PluginFailure {
    /// Plugin name.
    pub plugin: String,
    /// `ADD` or `DEL`.
    pub command: &'static str,
    /// Exit status.
    pub status: String,
    /// CNI error code, when the plugin printed an error object.
    pub code: Option<u32>,
    /// Error message (or raw stdout).
    pub msg: String,
    /// Error details.
    pub details: String,
    /// Plugin stderr.
    pub stderr: String,
}

/// What is being set up for a pod, written before CNI ADD so teardown knows what to undo.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Intent {
    version: u32,
    pod_uid: String,
    netns: PathBuf,
    ports: Vec<PortMapping>,
}

/// The complete record of a pod's sandbox, written after CNI ADD succeeded.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    version: u32,
    sandbox: PodSandbox,
    ports: Vec<PortMapping>,
    /// The bridge plugin's result, passed as `prevResult` on DEL.
    result: Value,
}

/// A node's pod network: creates and removes pod sandboxes. Cheap to share (`Send + Sync`);
/// operations on different pods run concurrently, those on the same pod one after another.
pub struct Network {
    cfg: NetworkConfig,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    plugins: Plugins,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("cfg", &self.cfg).finish()
    }
}

fn valid_name_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Pod UIDs become file names and CNI container IDs: same rule as libcni's container ID check.
fn validate_uid(uid: &str) -> Result<(), NetError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && uid.as_bytes()[0].is_ascii_alphanumeric()
        && valid_name_chars(uid);
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidArgument(format!(
            "pod uid {uid:?} must be 1-128 characters of letters, digits, '-', '_' or '.', \
             starting with a letter or digit"
        )))
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Io { context, source }
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so readers see either
/// the old or the new content, never half of it.
///
/// No fsync: these records only have to survive a crash of the agent, not of the machine. After a
/// reboot the namespaces they describe (under `/run`) are gone anyway, and a record that did not
/// reach the disk reads as missing or unreadable, which creation and teardown both handle (teardown
/// then falls back to the default netns path and deletes by container ID). The sync cost 2-20 ms
/// per pod start on a busy disk.
fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), NetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let data = serde_json::to_vec_pretty(value)
        .map_err(|e| NetError::InvalidArgument(format!("serialising {}: {e}", path.display())))?;
    let mut tmp = tempfile_in(dir, path)?;
    tmp.1
        .write_all(&data)
        .map_err(io_err(format!("writing {}", tmp.0.display())))?;
    std::fs::rename(&tmp.0, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp.0);
        NetError::Io {
            context: format!("renaming {} to {}", tmp.0.display(), path.display()),
            source: e,
        }
    })
}

fn tempfile_in(dir: &Path, target: &Path) -> Result<(PathBuf, std::fs::File), NetError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file =
        std::fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    Ok((tmp, file))
}

/// Reads a JSON file: `Ok(None)` when absent, an error when unreadable or malformed.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, NetError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(NetError::Record {
                path: path.to_owned(),
                why: e.to_string(),
            });
        }
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| NetError::Record {
            path: path.to_owned(),
            why: e.to_string(),
        })
}

fn remove_file_if_exists(path: &Path) -> Result<(), NetError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("deleting {}", path.display()))(e)),
    }
}

/// Runs a blocking closure off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NetError::Io {
            context: "running a blocking namespace operation".into(),
            source: io::Error::other(e.to_string()),
        })?
}

impl Network {
    /// Validates the configuration and checks that the CNI plugins are installed.
    pub fn new(cfg: NetworkConfig) -> Result<Self, NetError> {
        if cfg.bridge.is_empty() || cfg.bridge.len() > 15 || !valid_name_chars(&cfg.bridge) {
            return Err(NetError::InvalidConfig(format!(
                "bridge name {:?} must be 1-15 characters of letters, digits, '-', '_' or '.'",
                cfg.bridge
            )));
        }
        if cfg.subnet.prefix_len() > 30 {
            return Err(NetError::InvalidConfig(format!(
                "subnet {} leaves no room for pods: use a /30 or larger",
                cfg.subnet
            )));
        }
        if !valid_name_chars(&cfg.netns_prefix) || cfg.netns_prefix.len() > 64 {
            return Err(NetError::InvalidConfig(format!(
                "netns prefix {:?} must be at most 64 letters, digits, '-', '_' or '.'",
                cfg.netns_prefix
            )));
        }
        if cfg.state_dir.as_os_str().is_empty() {
            return Err(NetError::InvalidConfig("state_dir is empty".into()));
        }
        if cfg.cni_bin_dirs.is_empty() {
            return Err(NetError::InvalidConfig("cni_bin_dirs is empty".into()));
        }
        let plugins = Plugins::find(&cfg.cni_bin_dirs)?;
        let subnet = cfg.subnet.trunc();
        let gateway = Ipv4Addr::from(u32::from(subnet.network()) + 1);
        Ok(Self {
            cfg,
            subnet,
            gateway,
            plugins,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    /// The pod CIDR (host bits cleared).
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The bridge's address, every pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// host-local's data directory (allocation files are `<ipam_dir>/drover/<ip>`).
    pub fn ipam_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("ipam")
    }

    /// The network namespace file a pod's sandbox uses.
    pub fn netns_path(&self, pod_uid: &str) -> PathBuf {
        Path::new(ns::NETNS_DIR).join(format!("{}{}", self.cfg.netns_prefix, pod_uid))
    }

    fn pods_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("pods")
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    fn record_path(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("sandbox.json")
    }

    fn intent_path(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("intent.json")
    }

    fn ns_files(&self, uid: &str, netns: PathBuf) -> ns::NsFiles {
        let dir = self.pod_dir(uid);
        ns::NsFiles {
            net: netns,
            ipc: dir.join("ipc"),
            uts: dir.join("uts"),
        }
    }

    async fn lock_pod(&self, uid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(uid.to_owned()).or_default().clone()
        };
        m.lock_owned().await
    }

    /// Drops the pod's lock entry when nobody else holds or waits for it, so the map does not
    /// grow with every pod ever seen.
    fn forget_lock(&self, uid: &str) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Called after the caller dropped its guard: the map's reference is then the only one
        // unless someone else holds or awaits the lock (they clone it under this same mutex).
        if locks.get(uid).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(uid);
        }
    }

    fn bridge_conf(&self, prev: Option<&Value>) -> Value {
        let mut conf = json!({
            "cniVersion": CNI_VERSION,
            "name": NETWORK_NAME,
            "type": "bridge",
            "bridge": self.cfg.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.subnet.to_string(), "gateway": self.gateway.to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.ipam_dir(),
            },
        });
        if let Some(mtu) = self.cfg.mtu {
            conf["mtu"] = json!(mtu);
        }
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    fn portmap_conf(&self, ports: &[PortMapping], prev: Option<&Value>) -> Value {
        let mappings: Vec<Value> = ports
            .iter()
            .map(|p| {
                let mut m = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.to_ascii_lowercase(),
                });
                if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                    m["hostIP"] = json!(ip);
                }
                m
            })
            .collect();
        let mut conf = json!({
            "cniVersion": CNI_VERSION,
            "name": NETWORK_NAME,
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "snat": true,
            "runtimeConfig": {"portMappings": mappings},
        });
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    async fn run(
        &self,
        plugin: &Path,
        command: &'static str,
        uid: &str,
        netns: Option<&Path>,
        ifname: &str,
        config: &Value,
    ) -> Result<Option<Value>, NetError> {
        self.plugins
            .exec(Invocation {
                plugin,
                command,
                container_id: uid,
                netns,
                ifname,
                config,
            })
            .await
    }

    /// Creates the pod's namespaces (network + IPC + UTS with `hostname`, persisted as
    /// bind-mounted files so no pause process is needed), sets `lo` up, runs CNI ADD (bridge with
    /// host-local IPAM over `subnet`, then portmap when `ports` is non-empty) and records the
    /// result. Idempotent: a recorded sandbox whose network namespace still exists is returned as
    /// is (even if `ports` differ); a stale or half-created one is torn down and created anew. On
    /// failure everything created so far is undone.
    pub async fn create_sandbox(
        &self,
        pod_uid: &str,
        hostname: &str,
        ports: &[PortMapping],
    ) -> Result<PodSandbox, NetError> {
        self.create_sandbox_early(pod_uid, hostname, ports, None)
            .await
    }

    /// [`Self::create_sandbox`] that also sends the namespace files on `early` as soon as they
    /// exist, before CNI ADD, so a container can be created in them meanwhile. If the creation
    /// then fails the namespaces are removed (a container created in them keeps its own
    /// references and must be removed by the caller); `early` is dropped unsent when the
    /// namespaces themselves cannot be made.
    pub async fn create_sandbox_early(
        &self,
        pod_uid: &str,
        hostname: &str,
        ports: &[PortMapping],
        early: Option<tokio::sync::oneshot::Sender<SandboxNamespaces>>,
    ) -> Result<PodSandbox, NetError> {
        validate_uid(pod_uid)?;
        if hostname.len() > 64 || hostname.contains('\0') {
            return Err(NetError::InvalidArgument(format!(
                "hostname {hostname:?} must be at most 64 bytes without NUL"
            )));
        }
        for p in ports {
            let proto = p.protocol.to_ascii_lowercase();
            if p.host_port == 0
                || p.container_port == 0
                || !matches!(proto.as_str(), "tcp" | "udp" | "sctp")
            {
                return Err(NetError::InvalidArgument(format!(
                    "port mapping {p:?} needs non-zero ports and protocol tcp, udp or sctp"
                )));
            }
        }
        let _guard = self.lock_pod(pod_uid).await;
        match read_json::<Record>(&self.record_path(pod_uid)) {
            Ok(Some(rec)) if ns::is_ns_mount(&rec.sandbox.netns) => {
                if let Some(tx) = early {
                    let _ = tx.send(SandboxNamespaces {
                        netns: rec.sandbox.netns.clone(),
                        ipc_ns: rec.sandbox.ipc_ns.clone(),
                        uts_ns: rec.sandbox.uts_ns.clone(),
                    });
                }
                return Ok(rec.sandbox);
            }
            Ok(Some(rec)) => tracing::warn!(
                pod_uid,
                netns = %rec.sandbox.netns.display(),
                "recorded sandbox lost its network namespace; recreating it"
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(pod_uid, error = %e, "recreating sandbox with an unreadable record")
            }
        }
        if self.pod_dir(pod_uid).exists() || self.netns_path(pod_uid).exists() {
            self.remove_locked(pod_uid).await?;
        }
        match self.add(pod_uid, hostname, ports, early).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                if let Err(cleanup) = self.remove_locked(pod_uid).await {
                    tracing::warn!(pod_uid, error = %cleanup, "cleaning up after a failed sandbox creation");
                }
                Err(e)
            }
        }
    }

    async fn add(
        &self,
        uid: &str,
        hostname: &str,
        ports: &[PortMapping],
        early: Option<tokio::sync::oneshot::Sender<SandboxNamespaces>>,
    ) -> Result<PodSandbox, NetError> {
        let t0 = std::time::Instant::now();
        let netns = self.netns_path(uid);
        let files = self.ns_files(uid, netns.clone());
        {
            // One trip to a blocking thread for the files and the namespaces; the intent is
            // written first, so teardown knows the ports if anything below fails or crashes.
            let files = files.clone();
            let hostname = hostname.to_owned();
            let pod_dir = self.pod_dir(uid);
            let intent_path = self.intent_path(uid);
            let intent = Intent {
                version: RECORD_VERSION,
                pod_uid: uid.to_owned(),
                netns: netns.clone(),
                ports: ports.to_vec(),
            };
            blocking(move || {
                std::fs::create_dir_all(&pod_dir)
                    .map_err(io_err(format!("creating {}", pod_dir.display())))?;
                write_json_atomic(&intent_path, &intent)?;
                ns::ensure_netns_dir()?;
                ns::create(&files, &hostname)
            })
            .await?;
        }
        let t_ns = t0.elapsed();
        if let Some(tx) = early {
            let _ = tx.send(SandboxNamespaces {
                netns: netns.clone(),
                ipc_ns: files.ipc.clone(),
                uts_ns: Some(files.uts.clone()),
            });
        }
        // `lo` was set up when the namespace was made (all the loopback plugin's ADD does), so
        // the bridge plugin (eth0, the host side, host-local IPAM) is the only process to run.
        let bridge = self
            .run(
                &self.plugins.bridge,
                "ADD",
                uid,
                Some(&netns),
                POD_INTERFACE,
                &self.bridge_conf(None),
            )
            .await?;
        let result = bridge.ok_or_else(|| NetError::BadResult {
            why: "the bridge plugin printed no result".into(),
            result: String::new(),
        })?;
        let (addr, gateway) = cni::pod_address(&result, POD_INTERFACE)?;
        let t_cni = t0.elapsed() - t_ns;
        if !ports.is_empty() {
            self.run(
                &self.plugins.portmap,
                "ADD",
                uid,
                Some(&netns),
                POD_INTERFACE,
                &self.portmap_conf(ports, Some(&result)),
            )
            .await?;
        }
        let sandbox = PodSandbox {
            pod_uid: uid.to_owned(),
            netns,
            ipc_ns: files.ipc,
            uts_ns: Some(files.uts),
            ip: addr.addr(),
            gateway: gateway.unwrap_or(self.gateway),
            interface: POD_INTERFACE.to_owned(),
        };
        write_json_atomic(
            &self.record_path(uid),
            &Record {
                version: RECORD_VERSION,
                sandbox: sandbox.clone(),
                ports: ports.to_vec(),
                result,
            },
        )?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            pod_uid = uid,
            "sandbox created in {:.1} ms: namespaces and lo {:.1}, CNI ADD of bridge {:.1}",
            ms(t0.elapsed()),
            ms(t_ns),
            ms(t_cni),
        );
        tracing::info!(pod_uid = uid, ip = %sandbox.ip, "pod sandbox created");
        Ok(sandbox)
    }

    /// The recorded sandbox of a pod (after an agent restart); `None` when there is no complete
    /// record. Does not check that the namespaces still exist (`create_sandbox` does).
    pub fn sandbox(&self, pod_uid: &str) -> Result<Option<PodSandbox>, NetError> {
        validate_uid(pod_uid)?;
        Ok(read_json::<Record>(&self.record_path(pod_uid))?.map(|r| r.sandbox))
    }

    /// All completely recorded sandboxes, sorted by pod uid, so a restarted agent can remove those
    /// of deleted pods. Unreadable records are skipped (with a warning); see [`Self::list_pod_uids`]
    /// for every pod that has any state at all.
    pub fn list_sandboxes(&self) -> Result<Vec<PodSandbox>, NetError> {
        let mut out = Vec::new();
        for uid in self.recorded_uids()? {
            match read_json::<Record>(&self.record_path(&uid)) {
                Ok(Some(rec)) => out.push(rec.sandbox),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pod_uid = %uid, error = %e, "skipping unreadable sandbox record")
                }
            }
        }
        Ok(out)
    }

    /// Every pod uid with any state left on this node: complete records, half-created sandboxes
    /// (crash during ADD) and network namespaces carrying our prefix. Garbage collection after a
    /// restart should call [`Self::remove_sandbox`] on those of pods that no longer exist.
    pub fn list_pod_uids(&self) -> Result<Vec<String>, NetError> {
        let mut uids: BTreeSet<String> = self.recorded_uids()?.into_iter().collect();
        match std::fs::read_dir(ns::NETNS_DIR) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(uid) = name.strip_prefix(&self.cfg.netns_prefix)
                        && validate_uid(uid).is_ok()
                    {
                        uids.insert(uid.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("listing {}", ns::NETNS_DIR))(e)),
        }
        Ok(uids.into_iter().collect())
    }

    fn recorded_uids(&self) -> Result<Vec<String>, NetError> {
        let dir = self.pods_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("listing {}", dir.display()))(e)),
        };
        let mut uids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|uid| validate_uid(uid).is_ok())
            .collect();
        uids.sort();
        Ok(uids)
    }

    /// CNI DEL (releases the IP, removes the veth and the portmap rules), then removes the
    /// namespaces and records. Idempotent, and works when the namespace is already gone or the
    /// record is missing or unreadable. Containers of the pod should be stopped first: processes
    /// still inside keep the namespaces alive (though detached from their files).
    pub async fn remove_sandbox(&self, pod_uid: &str) -> Result<(), NetError> {
        validate_uid(pod_uid)?;
        let guard = self.lock_pod(pod_uid).await;
        let res = self.remove_locked(pod_uid).await;
        drop(guard);
        self.forget_lock(pod_uid);
        res
    }

    async fn remove_locked(&self, uid: &str) -> Result<(), NetError> {
        let record = read_json::<Record>(&self.record_path(uid)).unwrap_or_else(|e| {
            tracing::warn!(pod_uid = uid, error = %e, "tearing down a sandbox with an unreadable record");
            None
        });
        let intent = read_json::<Intent>(&self.intent_path(uid)).unwrap_or_else(|e| {
            tracing::warn!(pod_uid = uid, error = %e, "tearing down a sandbox with an unreadable intent");
            None
        });
        let netns = record
            .as_ref()
            .map(|r| r.sandbox.netns.clone())
            .or_else(|| intent.as_ref().map(|i| i.netns.clone()))
            .unwrap_or_else(|| self.netns_path(uid));
        let ports = record
            .as_ref()
            .map(|r| r.ports.clone())
            .or_else(|| intent.as_ref().map(|i| i.ports.clone()));
        let prev = record.as_ref().map(|r| &r.result);
        // Plugins must not be pointed at a namespace file that is not (or no longer) mounted.
        let live_netns = ns::is_ns_mount(&netns).then_some(netns.as_path());

        // DEL in reverse order of ADD. Loopback DEL is skipped: it only sets `lo` down in a
        // namespace that is about to disappear.
        match &ports {
            Some(p) if !p.is_empty() => {
                self.run(
                    &self.plugins.portmap,
                    "DEL",
                    uid,
                    live_netns,
                    POD_INTERFACE,
                    &self.portmap_conf(p, prev),
                )
                .await?;
            }
            Some(_) => {}
            None => {
                // Unknown ports: portmap DEL ignores an empty list, so give it a placeholder; it
                // deletes the pod's chains by container ID whatever the ports were.
                let placeholder = [PortMapping {
                    host_port: 1,
                    container_port: 1,
                    protocol: "tcp".into(),
                    host_ip: None,
                }];
                if let Err(e) = self
                    .run(
                        &self.plugins.portmap,
                        "DEL",
                        uid,
                        live_netns,
                        POD_INTERFACE,
                        &self.portmap_conf(&placeholder, None),
                    )
                    .await
                {
                    tracing::debug!(pod_uid = uid, error = %e, "portmap DEL for a sandbox with unknown ports");
                }
            }
        }
        self.run(
            &self.plugins.bridge,
            "DEL",
            uid,
            live_netns,
            POD_INTERFACE,
            &self.bridge_conf(prev),
        )
        .await?;

        // Forget the record first, so a crash below leaves a half-removed sandbox that is no
        // longer listed as usable but still found by `list_pod_uids`.
        remove_file_if_exists(&self.record_path(uid))?;
        let files = self.ns_files(uid, netns);
        let pod_dir = self.pod_dir(uid);
        let intent_path = self.intent_path(uid);
        blocking(move || {
            ns::remove(&files.net)?;
            ns::remove(&files.ipc)?;
            ns::remove(&files.uts)?;
            remove_file_if_exists(&intent_path)?;
            match std::fs::remove_dir_all(&pod_dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(format!("deleting {}", pod_dir.display()))(e)),
            }
        })
        .await?;
        tracing::info!(pod_uid = uid, "pod sandbox removed");
        Ok(())
    }

    /// Removes every sandbox, the bridge and all state under `state_dir` (for tests and
    /// `drover agent --cleanup`). Needs `ip` (iproute2) to delete the bridge.
    pub async fn destroy(&self) -> Result<(), NetError> {
        let mut first_err = None;
        for uid in self.list_pod_uids()? {
            if let Err(e) = self.remove_sandbox(&uid).await {
                tracing::warn!(pod_uid = %uid, error = %e, "removing sandbox during destroy");
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if Path::new("/sys/class/net").join(&self.cfg.bridge).exists() {
            let command = format!("ip link delete {} type bridge", self.cfg.bridge);
            let out = tokio::process::Command::new("ip")
                .args(["link", "delete", &self.cfg.bridge, "type", "bridge"])
                .output()
                .await
                .map_err(|e| NetError::Command {
                    command: command.clone(),
                    why: format!("{e} (install iproute2)"),
                })?;
            if !out.status.success() && Path::new("/sys/class/net").join(&self.cfg.bridge).exists()
            {
                return Err(NetError::Command {
                    command,
                    why: format!(
                        "{}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
        }
        for dir in [self.pods_dir(), self.ipam_dir()] {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("deleting {}", dir.display()))(e)),
            }
        }
        // Only if empty: state_dir may hold things that are not ours.
        let _ = std::fs::remove_dir(&self.cfg.state_dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_validation() {
        assert!(validate_uid("0f8e2b1c-9d3e-4a5b-8c7d-6e5f4a3b2c1d").is_ok());
        for bad in ["", "../x", "a/b", "-x", ".", "..", "a b", &"x".repeat(129)] {
            assert!(validate_uid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_config() {
        let c = NetworkConfig::default();
        assert_eq!(c.subnet.to_string(), "10.88.0.0/24");
        assert_eq!(c.bridge, "drover0");
        assert_eq!(c.netns_prefix, "drover-");
    }

    #[test]
    fn missing_plugins_name_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let err = Network::new(NetworkConfig {
            cni_bin_dirs: vec![dir.path().to_owned()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("containernetworking-plugins"), "{err}");
        assert!(err.contains("bridge"), "{err}");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let long = NetworkConfig {
            bridge: "a-very-long-bridge-name".into(),
            ..Default::default()
        };
        assert!(matches!(
            Network::new(long),
            Err(NetError::InvalidConfig(_))
        ));
        let tiny = NetworkConfig {
            subnet: "10.0.0.0/31".parse().unwrap(),
            ..Default::default()
        };
        assert!(matches!(
            Network::new(tiny),
            Err(NetError::InvalidConfig(_))
        ));
    }

    #[test]
    fn plugin_error_message_includes_everything() {
        let e = NetError::Plugin(Box::new(PluginFailure {
            plugin: "bridge".into(),
            command: "ADD",
            status: "exit status: 1".into(),
            code: Some(11),
            msg: "failed to allocate".into(),
            details: "no IP addresses available".into(),
            stderr: "boom".into(),
        }));
        let s = e.to_string();
        for part in [
            "bridge",
            "ADD",
            "code 11",
            "failed to allocate",
            "no IP addresses",
            "boom",
        ] {
            assert!(s.contains(part), "{s}");
        }
    }

    #[test]
    fn bridge_config_has_gateway_and_private_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let net = Network::new(NetworkConfig {
            subnet: "10.250.3.77/24".parse().unwrap(),
            state_dir: dir.path().to_owned(),
            mtu: Some(1400),
            ..Default::default()
        })
        .expect("the CNI plugins are installed (containernetworking-plugins)");
        let c = net.bridge_conf(None);
        assert_eq!(c["ipam"]["ranges"][0][0]["subnet"], "10.250.3.0/24");
        assert_eq!(c["ipam"]["ranges"][0][0]["gateway"], "10.250.3.1");
        assert_eq!(c["ipam"]["dataDir"], json!(dir.path().join("ipam")));
        assert_eq!(c["isGateway"], true);
        assert_eq!(c["ipMasq"], false);
        assert_eq!(c["hairpinMode"], true);
        assert_eq!(c["mtu"], 1400);
        let p = net.portmap_conf(
            &[PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "TCP".into(),
                host_ip: None,
            }],
            Some(&json!({"cniVersion": "1.0.0"})),
        );
        assert_eq!(p["runtimeConfig"]["portMappings"][0]["protocol"], "tcp");
        assert_eq!(p["prevResult"]["cniVersion"], "1.0.0");
    }
}
