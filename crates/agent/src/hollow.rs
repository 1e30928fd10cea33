//! Hollow nodes: node agents that do everything an agent tells the API server (a
//! Node object, a Lease heartbeat, pods reported Running with an IP) without running
//! anything, like Kubernetes' kubemark. They let the scheduler, the controllers and
//! scale tests run against many nodes on one machine.
//!
//! ```text
//!  register Node (create, or patch labels if it exists) + status + Lease
//!        │
//!        ├── every lease_duration/4: renew Lease spec.renewTime
//!        ├── every status_interval:  Ready condition lastHeartbeatTime
//!        └── pod watch (spec.nodeName = this node):
//!              bound, not yet Running ─▶ status: Running, podIP, hostIP, conditions
//!              deletionTimestamp set  ─▶ delete with gracePeriodSeconds=0
//!              deleted                ─▶ its pod IP is free again
//! ```
//!
//! [`run_many`] runs a whole fleet in one process with one pod watch and one ticker,
//! so thousands of hollow nodes cost thousands of objects, not thousands of watches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use client::{Client, DeleteParams, Event, ListParams, Patch, PatchParams, PostParams, Resource};
use futures::StreamExt;
use serde_json::{Value, json};

/// The namespace of node heartbeat Leases (Kubernetes' NodeLease feature).
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// How one hollow node presents itself. [`run_many`] derives each node's name, IP and
/// pod range from these.
#[derive(Debug, Clone, PartialEq)]
pub struct HollowOptions {
    /// Node name (also the `kubernetes.io/hostname` label and the Lease name).
    pub name: String,
    /// CPU capacity and allocatable (a Kubernetes quantity: `4`, `3500m`).
    pub cpu: String,
    /// Memory capacity and allocatable (`8Gi`).
    pub memory: String,
    /// Maximum pods (Kubernetes' kubelet default: 110).
    pub pods: u32,
    /// Ephemeral storage capacity and allocatable (`100Gi`).
    pub ephemeral_storage: String,
    /// Extra node labels (zone, role ...), beside the well-known ones set always.
    pub labels: BTreeMap<String, String>,
    /// The node's InternalIP (pods' hostIP).
    pub internal_ip: Ipv4Addr,
    /// First address of the node's pod range (`spec.podCIDR`).
    pub pod_cidr_base: Ipv4Addr,
    /// Prefix length of the pod range (24 gives 253 pod IPs).
    pub pod_cidr_prefix: u8,
    /// `spec.leaseDurationSeconds` of the Lease; it is renewed every quarter of it,
    /// as the kubelet does.
    pub lease_duration_seconds: u32,
    /// How often the Ready condition's heartbeat is written.
    pub status_interval: Duration,
}

impl Default for HollowOptions {
    fn default() -> Self {
        HollowOptions {
            name: "hollow-0".to_string(),
            cpu: "4".to_string(),
            memory: "8Gi".to_string(),
            pods: 110,
            ephemeral_storage: "100Gi".to_string(),
            labels: BTreeMap::new(),
            internal_ip: Ipv4Addr::new(10, 240, 0, 1),
            pod_cidr_base: Ipv4Addr::new(10, 244, 0, 0),
            pod_cidr_prefix: 24,
            lease_duration_seconds: 20,
            status_interval: Duration::from_secs(10),
        }
    }
}

impl HollowOptions {
    /// The options of the `index`-th node of a fleet: name `PREFIX-INDEX`, InternalIP
    /// `internal_ip + index`, pod range the `index`-th block after `pod_cidr_base`.
    pub fn for_index(&self, prefix: &str, index: u32) -> HollowOptions {
        let block = 1u32
            .checked_shl(32 - u32::from(self.pod_cidr_prefix.min(32)))
            .unwrap_or(0);
        let mut o = self.clone();
        o.name = format!("{prefix}-{index}");
        o.internal_ip = Ipv4Addr::from(u32::from(self.internal_ip).wrapping_add(index));
        o.pod_cidr_base =
            Ipv4Addr::from(u32::from(self.pod_cidr_base).wrapping_add(block.wrapping_mul(index)));
        o
    }

    /// `spec.podCIDR`.
    pub fn pod_cidr(&self) -> String {
        format!("{}/{}", self.pod_cidr_base, self.pod_cidr_prefix)
    }
}

/// Kubernetes' metav1.Time (whole seconds) or, with `micros`, MicroTime (Leases).
pub(crate) fn timestamp(micros: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    if micros {
        format!("{base}.{:06}Z", now.microsecond())
    } else {
        format!("{base}Z")
    }
}

/// Pod IPs of one node's range: the network address and the first host (the bridge
/// gateway, by CNI bridge convention) and the broadcast address are never handed out.
/// A pod keeps its IP for its whole life (by uid).
#[derive(Debug, Clone)]
pub struct IpPool {
    base: u32,
    size: u32,
    next: u32,
    by_uid: HashMap<String, Ipv4Addr>,
    used: BTreeSet<u32>,
}

impl IpPool {
    /// The pool of `base/prefix`.
    pub fn new(base: Ipv4Addr, prefix: u8) -> IpPool {
        let size = 1u64 << (32 - u32::from(prefix.min(32)));
        IpPool {
            base: u32::from(base),
            size: u32::try_from(size).unwrap_or(u32::MAX),
            next: 2,
            by_uid: HashMap::new(),
            used: BTreeSet::new(),
        }
    }

    /// The IP of pod `uid`: the one it has, `wanted` if that is free and in range (an
    /// IP reported before a restart), else the next free one. None when the range is
    /// full.
    pub fn allocate(&mut self, uid: &str, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Some(*ip);
        }
        let usable = |off: u32| off >= 2 && off + 1 < self.size;
        let off = match wanted.map(|w| u32::from(w).wrapping_sub(self.base)) {
            Some(off) if usable(off) && !self.used.contains(&off) => off,
            _ => {
                let span = self.size.saturating_sub(3);
                let mut found = None;
                for i in 0..span {
                    let off = 2 + (self.next - 2 + i) % span;
                    if !self.used.contains(&off) {
                        found = Some(off);
                        break;
                    }
                }
                let off = found?;
                self.next = off + 1;
                off
            }
        };
        self.used.insert(off);
        let ip = Ipv4Addr::from(self.base.wrapping_add(off));
        self.by_uid.insert(uid.to_string(), ip);
        Some(ip)
    }

    /// Frees pod `uid`'s IP.
    pub fn release(&mut self, uid: &str) {
        if let Some(ip) = self.by_uid.remove(uid) {
            self.used.remove(&u32::from(ip).wrapping_sub(self.base));
        }
    }

    /// The uids holding an IP.
    pub fn uids(&self) -> Vec<String> {
        self.by_uid.keys().cloned().collect()
    }
}

/// The Node object a hollow node registers.
pub fn node_object(opts: &HollowOptions, ready_since: &str) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("beta.kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("beta.kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("kubernetes.io/hostname".into(), json!(opts.name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert("drover.dev/hollow".into(), json!("true"));
    for (k, v) in &opts.labels {
        labels.insert(k.clone(), json!(v));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": opts.name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": opts.pod_cidr(), "podCIDRs": [opts.pod_cidr()]},
        "status": node_status(opts, ready_since),
    })
}

/// The node's status: capacity = allocatable (nothing reserved), the kubelet's four
/// conditions with a fresh heartbeat, addresses and node info.
pub fn node_status(opts: &HollowOptions, ready_since: &str) -> Value {
    let now = timestamp(false);
    let resources = json!({
        "cpu": opts.cpu,
        "memory": opts.memory,
        "pods": opts.pods.to_string(),
        "ephemeral-storage": opts.ephemeral_storage,
    });
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": ready_since,
        })
    };
    json!({
        "capacity": resources,
        "allocatable": resources,
        "phase": "Running",
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (hollow node)"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": opts.internal_ip.to_string()},
            {"type": "Hostname", "address": opts.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": format!("hollow-{}", opts.name),
            "systemUUID": format!("hollow-{}", opts.name),
            "bootID": format!("hollow-{}", opts.name),
            "kernelVersion": "hollow",
            "osImage": "Drover hollow node",
            "containerRuntimeVersion": "hollow://0.1.0",
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "v1.33.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// The node's heartbeat Lease, owned by the Node so it goes when the node does.
pub fn lease_object(opts: &HollowOptions, node_uid: Option<&str>) -> Value {
    node_lease(&opts.name, opts.lease_duration_seconds, node_uid)
}

/// The heartbeat Lease of node `name` (for hollow and real agents alike).
pub fn node_lease(name: &str, duration_seconds: u32, node_uid: Option<&str>) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": timestamp(true),
        },
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "Node", "name": name, "uid": uid,
        }]);
    }
    lease
}

/// The status of a pod that "runs" here: phase Running, the pod and host IPs, the
/// conditions a kubelet sets once every container is ready, and a running, ready
/// status per container (init containers completed).
pub fn running_status(pod: &Value, pod_ip: Ipv4Addr, host_ip: Ipv4Addr) -> Value {
    let now = timestamp(false);
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let start = pod["status"]["startTime"]
        .as_str()
        .map_or_else(|| now.clone(), str::to_string);
    let scheduled_at = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "True")
        })
        .and_then(|c| c["lastTransitionTime"].as_str())
        .map_or_else(|| now.clone(), str::to_string);
    let cond = |t: &str, at: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": at});
    let container = |c: &Value, init: bool| {
        let name = c["name"].as_str().unwrap_or_default();
        let state = if init {
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": start, "finishedAt": now}})
        } else {
            json!({"running": {"startedAt": now}})
        };
        json!({
            "name": name,
            "image": c["image"],
            "imageID": "",
            "containerID": format!("hollow://{uid}/{name}"),
            "ready": !init,
            "started": !init,
            "restartCount": 0,
            "state": state,
            "lastState": {},
        })
    };
    let list = |field: &str, init: bool| -> Vec<Value> {
        pod["spec"][field]
            .as_array()
            .map(|cs| cs.iter().map(|c| container(c, init)).collect())
            .unwrap_or_default()
    };
    let mut status = json!({
        "phase": "Running",
        "hostIP": host_ip.to_string(),
        "hostIPs": [{"ip": host_ip.to_string()}],
        "podIP": pod_ip.to_string(),
        "podIPs": [{"ip": pod_ip.to_string()}],
        "startTime": start,
        "conditions": [
            cond("PodReadyToStartContainers", &now),
            cond("Initialized", &now),
            cond("Ready", &now),
            cond("ContainersReady", &now),
            cond("PodScheduled", &scheduled_at),
        ],
        "containerStatuses": list("containers", false),
    });
    let init = list("initContainers", true);
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    status
}

/// Whether a pod bound here still needs its Running status reported.
fn needs_report(pod: &Value, host_ip: Ipv4Addr) -> bool {
    pod["status"]["phase"] != "Running"
        || pod["status"]["podIP"].as_str().is_none_or(str::is_empty)
        || pod["status"]["hostIP"].as_str() != Some(host_ip.to_string().as_str())
}

struct NodeState {
    opts: HollowOptions,
    uid: Option<String>,
    ready_since: String,
    ips: IpPool,
}

#[derive(Default)]
struct Fleet {
    nodes: HashMap<String, NodeState>,
    /// Pod uids whose status report is in flight or done.
    reported: HashSet<String>,
    /// Pod uids whose final delete is in flight.
    finishing: HashSet<String>,
}

type SharedFleet = Arc<Mutex<Fleet>>;

fn lock(f: &SharedFleet) -> MutexGuard<'_, Fleet> {
    f.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one hollow node until the future is dropped: registers it, heartbeats, and
/// reports the pods bound to it Running. API errors are logged and retried.
pub async fn run(client: Client, opts: HollowOptions) {
    let selector = format!("spec.nodeName={}", opts.name);
    run_fleet(client, vec![opts], Some(selector)).await;
}

/// Runs `count` hollow nodes named `PREFIX-0` ... in one process (see
/// [`HollowOptions::for_index`]), sharing one pod watch and one heartbeat ticker.
/// The returned future owns everything it needs (`'static`), ready for `tokio::spawn`.
pub fn run_many(
    client: Client,
    count: u32,
    prefix: &str,
    opts: HollowOptions,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let nodes = (0..count).map(|i| opts.for_index(prefix, i)).collect();
    run_fleet(client, nodes, None)
}

/// Concurrent API calls of a fleet's registration and heartbeats.
const CONCURRENCY: usize = 16;

async fn run_fleet(client: Client, nodes: Vec<HollowOptions>, pod_selector: Option<String>) {
    let fleet: SharedFleet = Arc::new(Mutex::new(Fleet::default()));
    let now = timestamp(false);
    {
        let mut f = lock(&fleet);
        for o in &nodes {
            f.nodes.insert(
                o.name.clone(),
                NodeState {
                    ips: IpPool::new(o.pod_cidr_base, o.pod_cidr_prefix),
                    opts: o.clone(),
                    uid: None,
                    ready_since: now.clone(),
                },
            );
        }
    }
    futures::stream::iter(nodes.iter())
        .for_each_concurrent(CONCURRENCY, |o| {
            let client = client.clone();
            let fleet = fleet.clone();
            async move { register(&client, &fleet, o).await }
        })
        .await;
    let Some(first) = nodes.first() else {
        return;
    };
    let lease_every = Duration::from_secs(u64::from(first.lease_duration_seconds.max(4)) / 4);
    let status_every = first.status_interval.max(Duration::from_secs(1));
    let beats = tokio::spawn(heartbeat(
        client.clone(),
        fleet.clone(),
        nodes.clone(),
        lease_every,
        status_every,
    ));
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _beats = Abort(beats);
    watch_pods(client, fleet, pod_selector).await;
}

/// Registers a node, retrying with back-off until the API accepts it (the kubelet's
/// registerWithAPIServer).
async fn register(client: &Client, fleet: &SharedFleet, opts: &HollowOptions) {
    let mut delay = Duration::from_millis(100);
    loop {
        match try_register(client, fleet, opts).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!("hollow node {}: registering: {e}", opts.name);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(7));
            }
        }
    }
}

async fn try_register(
    client: &Client,
    fleet: &SharedFleet,
    opts: &HollowOptions,
) -> Result<(), client::Error> {
    let since = lock(fleet)
        .nodes
        .get(&opts.name)
        .map(|n| n.ready_since.clone())
        .unwrap_or_else(|| timestamp(false));
    let node = node_object(opts, &since);
    let created = match client
        .create(&Resource::NODES, None, &node, &PostParams::default())
        .await
    {
        Ok(n) => n,
        Err(e) if e.is_already_exists() => {
            // Re-registration keeps spec (a cordon stays) and foreign labels.
            let patch = Patch::Merge(json!({"metadata": {"labels": node["metadata"]["labels"]}}));
            client
                .patch(
                    &Resource::NODES,
                    None,
                    &opts.name,
                    &patch,
                    &PatchParams::default(),
                )
                .await?
        }
        Err(e) => return Err(e),
    };
    // Status through its subresource, whatever the create kept of it.
    let patch = Patch::Merge(json!({"status": node_status(opts, &since)}));
    client
        .patch_status(
            &Resource::NODES,
            None,
            &opts.name,
            &patch,
            &PatchParams::default(),
        )
        .await?;
    let uid = created["metadata"]["uid"].as_str().map(str::to_string);
    if let Some(n) = lock(fleet).nodes.get_mut(&opts.name) {
        n.uid.clone_from(&uid);
    }
    renew_lease(client, opts, uid.as_deref()).await
}

async fn renew_lease(
    client: &Client,
    opts: &HollowOptions,
    uid: Option<&str>,
) -> Result<(), client::Error> {
    renew_node_lease(client, &opts.name, opts.lease_duration_seconds, uid).await
}

/// Renews node `name`'s Lease, creating it when it is missing.
pub async fn renew_node_lease(
    client: &Client,
    name: &str,
    duration_seconds: u32,
    uid: Option<&str>,
) -> Result<(), client::Error> {
    let lease = node_lease(name, duration_seconds, uid);
    let patch = Patch::Merge(json!({"spec": lease["spec"]}));
    match client
        .patch(
            &Resource::LEASES,
            Some(NODE_LEASE_NAMESPACE),
            name,
            &patch,
            &PatchParams::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => client
            .create(
                &Resource::LEASES,
                Some(NODE_LEASE_NAMESPACE),
                &lease,
                &PostParams::default(),
            )
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}

async fn heartbeat(
    client: Client,
    fleet: SharedFleet,
    nodes: Vec<HollowOptions>,
    lease_every: Duration,
    status_every: Duration,
) {
    let mut lease_tick = tokio::time::interval(lease_every);
    let mut status_tick = tokio::time::interval(status_every);
    lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first ticks fire at once: registration just did both.
    lease_tick.tick().await;
    status_tick.tick().await;
    loop {
        let status = tokio::select! {
            _ = lease_tick.tick() => false,
            _ = status_tick.tick() => true,
        };
        futures::stream::iter(nodes.iter())
            .for_each_concurrent(CONCURRENCY, |o| {
                let client = client.clone();
                let fleet = fleet.clone();
                async move {
                    let (uid, since) = {
                        let f = lock(&fleet);
                        match f.nodes.get(&o.name) {
                            Some(n) => (n.uid.clone(), n.ready_since.clone()),
                            None => return,
                        }
                    };
                    let r = if status {
                        let patch = Patch::Merge(
                            json!({"status": {"conditions": node_status(o, &since)["conditions"]}}),
                        );
                        match client
                            .patch_status(
                                &Resource::NODES,
                                None,
                                &o.name,
                                &patch,
                                &PatchParams::default(),
                            )
                            .await
                        {
                            // The node was deleted: register it again, as a kubelet does.
                            Err(e) if e.is_not_found() => try_register(&client, &fleet, o).await,
                            r => r.map(|_| ()),
                        }
                    } else {
                        renew_lease(&client, o, uid.as_deref()).await
                    };
                    if let Err(e) = r {
                        tracing::warn!("hollow node {}: heartbeat: {e}", o.name);
                    }
                }
            })
            .await;
    }
}

/// What to do about one pod event.
enum Action {
    None,
    Report {
        ns: String,
        name: String,
        status: Value,
    },
    Finish {
        ns: String,
        name: String,
        uid: String,
    },
}

fn decide(f: &mut Fleet, pod: &Value) -> Action {
    let Some(node) = pod["spec"]["nodeName"].as_str() else {
        return Action::None;
    };
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let Some(name) = pod["metadata"]["name"].as_str().map(str::to_string) else {
        return Action::None;
    };
    let Fleet {
        nodes,
        reported,
        finishing,
    } = f;
    let Some(state) = nodes.get_mut(node) else {
        return Action::None;
    };
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        // Nothing runs, so a graceful stop is over at once.
        if finishing.insert(uid.clone()) {
            return Action::Finish { ns, name, uid };
        }
        return Action::None;
    }
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return Action::None;
    }
    let host = state.opts.internal_ip;
    if !needs_report(pod, host) || reported.contains(&uid) {
        return Action::None;
    }
    let wanted = pod["status"]["podIP"]
        .as_str()
        .and_then(|s| s.parse::<Ipv4Addr>().ok());
    let Some(ip) = state.ips.allocate(&uid, wanted) else {
        tracing::warn!("hollow node {node}: pod range full, {ns}/{name} gets no IP");
        return Action::None;
    };
    reported.insert(uid);
    Action::Report {
        ns,
        name,
        status: running_status(pod, ip, host),
    }
}

fn forget(f: &mut Fleet, pod: &Value) {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    f.reported.remove(uid);
    f.finishing.remove(uid);
    if let Some(n) = pod["spec"]["nodeName"]
        .as_str()
        .and_then(|n| f.nodes.get_mut(n))
    {
        n.ips.release(uid);
    }
}

async fn act(client: Client, fleet: SharedFleet, action: Action) {
    match action {
        Action::None => {}
        Action::Report { ns, name, status } => {
            let patch = Patch::Merge(json!({ "status": status }));
            if let Err(e) = client
                .patch_status(
                    &Resource::PODS,
                    Some(&ns),
                    &name,
                    &patch,
                    &PatchParams::default(),
                )
                .await
            {
                if !e.is_not_found() {
                    tracing::warn!("hollow: status of {ns}/{name}: {e}");
                }
                // Let the next event retry.
                if let Some(uid) = client_uid(&status) {
                    lock(&fleet).reported.remove(&uid);
                }
            }
        }
        Action::Finish { ns, name, uid } => {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: Some(uid.clone()),
                ..DeleteParams::default()
            };
            if let Err(e) = client.delete(&Resource::PODS, Some(&ns), &name, &dp).await
                && !e.is_not_found()
            {
                tracing::warn!("hollow: finishing {ns}/{name}: {e}");
                lock(&fleet).finishing.remove(&uid);
            }
        }
    }
}

/// The pod uid encoded in a running status' container IDs (`hollow://UID/NAME`).
fn client_uid(status: &Value) -> Option<String> {
    status["containerStatuses"][0]["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("hollow://"))
        .and_then(|rest| rest.split('/').next())
        .map(str::to_string)
}

async fn watch_pods(client: Client, fleet: SharedFleet, selector: Option<String>) {
    let mut params = ListParams::default();
    if let Some(s) = selector {
        params = params.fields(s);
    }
    let mut events = std::pin::pin!(client::watcher(
        client.clone(),
        Resource::PODS,
        None,
        params
    ));
    while let Some(ev) = events.next().await {
        let actions: Vec<Action> = {
            let mut f = lock(&fleet);
            match ev {
                Err(e) => {
                    tracing::warn!("hollow: pod watch: {e}");
                    Vec::new()
                }
                Ok(Event::Applied(p)) => vec![decide(&mut f, &p)],
                Ok(Event::Deleted(p)) => {
                    forget(&mut f, &p);
                    Vec::new()
                }
                Ok(Event::Restarted(list)) => {
                    let live: HashSet<&str> = list
                        .iter()
                        .filter_map(|p| p["metadata"]["uid"].as_str())
                        .collect();
                    let mut gone = Vec::new();
                    for n in f.nodes.values() {
                        gone.extend(
                            n.ips
                                .uids()
                                .into_iter()
                                .filter(|u| !live.contains(u.as_str())),
                        );
                    }
                    for uid in gone {
                        for n in f.nodes.values_mut() {
                            n.ips.release(&uid);
                        }
                        f.reported.remove(&uid);
                        f.finishing.remove(&uid);
                    }
                    list.iter().map(|p| decide(&mut f, p)).collect()
                }
            }
        };
        for a in actions {
            if !matches!(a, Action::None) {
                tokio::spawn(act(client.clone(), fleet.clone(), a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_pool_skips_network_gateway_and_broadcast() {
        let mut pool = IpPool::new(Ipv4Addr::new(10, 244, 1, 0), 30);
        // A /30 has 4 addresses: .0 network, .1 gateway, .3 broadcast: only .2 is a pod IP.
        assert_eq!(pool.allocate("a", None), Some(Ipv4Addr::new(10, 244, 1, 2)));
        assert_eq!(pool.allocate("b", None), None);
        // The same pod keeps its IP.
        assert_eq!(pool.allocate("a", None), Some(Ipv4Addr::new(10, 244, 1, 2)));
        pool.release("a");
        assert_eq!(pool.allocate("b", None), Some(Ipv4Addr::new(10, 244, 1, 2)));
    }

    #[test]
    fn ip_pool_honours_a_previous_ip_and_wraps() {
        let mut pool = IpPool::new(Ipv4Addr::new(10, 244, 0, 0), 24);
        let want = Ipv4Addr::new(10, 244, 0, 77);
        assert_eq!(pool.allocate("old", Some(want)), Some(want));
        // Taken or out of range: the next free one instead.
        assert_eq!(
            pool.allocate("x", Some(want)),
            Some(Ipv4Addr::new(10, 244, 0, 2))
        );
        assert_eq!(
            pool.allocate("y", Some(Ipv4Addr::new(10, 9, 9, 9))),
            Some(Ipv4Addr::new(10, 244, 0, 3))
        );
        for i in 0..250 {
            pool.allocate(&format!("p{i}"), None);
        }
        // 253 usable addresses (.2 to .254), all taken.
        assert_eq!(pool.allocate("full", None), None);
        pool.release("p100");
        assert!(pool.allocate("again", None).is_some());
    }

    #[test]
    fn fleet_members_get_distinct_names_ips_and_ranges() {
        let o = HollowOptions::default();
        let a = o.for_index("n", 0);
        let b = o.for_index("n", 1);
        assert_eq!(a.name, "n-0");
        assert_eq!(b.name, "n-1");
        assert_eq!(b.internal_ip, Ipv4Addr::new(10, 240, 0, 2));
        assert_eq!(a.pod_cidr(), "10.244.0.0/24");
        assert_eq!(b.pod_cidr(), "10.244.1.0/24");
    }

    #[test]
    fn node_has_well_known_labels_resources_and_ready() {
        let mut o = HollowOptions::default();
        o.labels
            .insert("topology.kubernetes.io/zone".into(), "z1".into());
        let n = node_object(&o, "2024-01-01T00:00:00Z");
        assert_eq!(
            n["metadata"]["labels"]["kubernetes.io/hostname"],
            "hollow-0"
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(n["metadata"]["labels"]["topology.kubernetes.io/zone"], "z1");
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        assert_eq!(n["status"]["capacity"]["ephemeral-storage"], "100Gi");
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastTransitionTime"], "2024-01-01T00:00:00Z");
        // The scheduler core accepts it as a Ready, schedulable node.
        assert_eq!(n["status"]["addresses"][0]["type"], "InternalIP");
    }

    #[test]
    fn lease_renew_time_is_micro_time_and_owned_by_node() {
        let o = HollowOptions::default();
        let l = lease_object(&o, Some("u1"));
        let t = l["spec"]["renewTime"].as_str().unwrap();
        // MicroTime: RFC 3339 with exactly six fractional digits.
        assert_eq!(t.len(), "2006-01-02T15:04:05.000000Z".len(), "{t}");
        assert_eq!(l["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 20);
    }

    #[test]
    fn running_status_is_ready_with_ips_and_containers() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"nodeName": "hollow-0",
                     "initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        });
        let s = running_status(
            &pod,
            Ipv4Addr::new(10, 244, 0, 2),
            Ipv4Addr::new(10, 240, 0, 1),
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.2");
        assert_eq!(s["hostIP"], "10.240.0.1");
        for t in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
            let c = s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap();
            assert_eq!(c["status"], "True", "{t}");
        }
        let scheduled = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(scheduled["lastTransitionTime"], "2024-01-01T00:00:00Z");
        let cs = s["containerStatuses"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[1]["name"], "b");
        assert_eq!(cs[1]["ready"], true);
        assert!(cs[1]["state"]["running"]["startedAt"].is_string());
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(client_uid(&s).as_deref(), Some("u"));
        assert!(!needs_report(
            &json!({"status": s}),
            Ipv4Addr::new(10, 240, 0, 1)
        ));
        assert!(needs_report(&pod, Ipv4Addr::new(10, 240, 0, 1)));
    }

    #[test]
    fn decide_reports_once_and_finishes_graceful_deletes() {
        let mut f = Fleet::default();
        let o = HollowOptions::default();
        f.nodes.insert(
            o.name.clone(),
            NodeState {
                ips: IpPool::new(o.pod_cidr_base, o.pod_cidr_prefix),
                opts: o,
                uid: None,
                ready_since: String::new(),
            },
        );
        let mut pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                             "spec": {"nodeName": "hollow-0", "containers": [{"name": "c"}]}});
        assert!(matches!(decide(&mut f, &pod), Action::Report { .. }));
        assert!(matches!(decide(&mut f, &pod), Action::None));
        let mut other = pod.clone();
        other["spec"]["nodeName"] = json!("elsewhere");
        assert!(matches!(decide(&mut f, &other), Action::None));
        pod["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(matches!(decide(&mut f, &pod), Action::Finish { .. }));
        assert!(matches!(decide(&mut f, &pod), Action::None));
        forget(&mut f, &pod);
        assert!(f.reported.is_empty() && f.finishing.is_empty());
    }
}
