//! Node lifecycle, pure (Kubernetes' `pkg/controller/nodelifecycle` and the taint
//! eviction controller): a node whose agent stops renewing its Lease (and stops
//! posting status) for the grace period gets `Ready=Unknown` and the
//! `node.kubernetes.io/unreachable` taints; a node reporting `Ready=False` gets the
//! `not-ready` ones; both go when it is Ready again. Pods on a node that is not ready
//! are marked `Ready=False`, and pods on a node with `NoExecute` taints are evicted
//! once their tolerations run out.
//!
//! ```text
//!  lease renewTime / Ready heartbeat changes ─▶ HealthTracker: last sign of life
//!  now - last sign of life > grace ─▶ plan_node: Ready=Unknown (NodeStatusUnknown)
//!  Ready False / Unknown / True    ─▶ plan_node: not-ready / unreachable / no taints
//!  NoExecute taints + tolerations  ─▶ plan_pods: mark NotReady, evict now or later
//! ```
//!
//! The I/O side is in [`run`].

use crate::util::{self, Time};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod run;
pub use run::run;

/// Taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown (its agent went silent).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a cordoned node (`spec.unschedulable`), as TaintNodesByCondition adds it.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The toleration seconds the DefaultTolerationSeconds admission plugin gives every
/// pod for the not-ready and unreachable taints. A toleration exactly like the one it
/// adds stands for "the cluster default", which [`plan_pods`] replaces by the
/// controller's configured eviction timeout.
pub const ADMISSION_DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The node conditions the kubelet posts, set to Unknown when it goes silent.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the Ready condition says (absent counts as Unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`: the agent reports the node unhealthy.
    NotReady,
    /// `Ready=Unknown` or no condition: nobody knows.
    Unknown,
}

/// The node's Ready condition status.
pub fn readiness(node: &Value) -> Readiness {
    let status = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str());
    match status {
        Some("True") => Readiness::Ready,
        Some("False") => Readiness::NotReady,
        _ => Readiness::Unknown,
    }
}

/// Remembers, per node, when this controller last saw a sign of life: a changed Lease
/// `renewTime` or a changed Ready `lastHeartbeatTime`. Like Kubernetes' `probeTimestamp`
/// it is the controller's own clock at observation, so clock skew between the agent and
/// the controller never matters; a node first seen starts with a full grace period.
#[derive(Debug, Default)]
pub struct HealthTracker {
    nodes: HashMap<String, Probe>,
}

#[derive(Debug, Clone)]
struct Probe {
    lease_renew: Option<String>,
    heartbeat: Option<String>,
    seen_at: Time,
}

impl HealthTracker {
    /// Records what `node` and its `lease` say now and returns the time of the last
    /// sign of life.
    pub fn observe(&mut self, node: &Value, lease: Option<&Value>, now: Time) -> Time {
        let lease_renew = lease.and_then(|l| l["spec"]["renewTime"].as_str().map(str::to_string));
        let heartbeat = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["lastHeartbeatTime"].as_str().map(str::to_string));
        let p = self
            .nodes
            .entry(util::name(node).to_string())
            .or_insert_with(|| Probe {
                lease_renew: lease_renew.clone(),
                heartbeat: heartbeat.clone(),
                seen_at: now,
            });
        if p.lease_renew != lease_renew || p.heartbeat != heartbeat {
            p.lease_renew = lease_renew;
            p.heartbeat = heartbeat;
            p.seen_at = now;
        }
        p.seen_at
    }

    /// Drops a deleted node.
    pub fn forget(&mut self, name: &str) {
        self.nodes.remove(name);
    }
}

/// What one sync of a node must write.
#[derive(Clone, Debug, PartialEq)]
pub struct NodePlan {
    /// New `status.conditions` (the kubelet's conditions set to Unknown), if they change.
    pub conditions: Option<Vec<Value>>,
    /// New `spec.taints`, if they change.
    pub taints: Option<Vec<Value>>,
    /// The Ready state after this plan.
    pub readiness: Readiness,
    /// Sync again after this long: when the grace period runs out.
    pub requeue_after: Option<Duration>,
}

/// Plans one node: `last_seen` is [`HealthTracker::observe`]'s answer, `grace` the
/// node monitor grace period (Kubernetes: `--node-monitor-grace-period`).
pub fn plan_node(node: &Value, last_seen: Time, now: Time, grace: Duration) -> NodePlan {
    let grace_t = time::Duration::try_from(grace).unwrap_or(time::Duration::MAX);
    let deadline = last_seen + grace_t;
    let mut conditions = None;
    let mut requeue_after = None;
    if now >= deadline {
        conditions = unknown_conditions(node, now);
    } else {
        let left = (deadline - now).as_seconds_f64().max(0.0);
        requeue_after = Some(Duration::from_secs_f64(left) + Duration::from_millis(100));
    }
    let readiness = match &conditions {
        Some(_) => Readiness::Unknown,
        None => readiness(node),
    };
    let current: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wanted = desired_taints(&current, readiness, unschedulable(node), now);
    let taints = (wanted != current).then_some(wanted);
    NodePlan {
        conditions,
        taints,
        readiness,
        requeue_after,
    }
}

fn unschedulable(node: &Value) -> bool {
    node["spec"]["unschedulable"].as_bool() == Some(true)
}

/// `tryUpdateNodeHealth` after the grace period: every kubelet condition not already
/// Unknown becomes Unknown (reason NodeStatusUnknown, "Kubelet stopped posting node
/// status."), keeping its last heartbeat; a condition never posted is added with
/// NodeStatusNeverUpdated. None when nothing changes.
fn unknown_conditions(node: &Value, now: Time) -> Option<Vec<Value>> {
    let mut conditions: Vec<Value> = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let t = util::format_time(now);
    let mut changed = false;
    for kind in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c["type"] == kind) {
            Some(c) if c["status"] == "Unknown" => {}
            Some(c) => {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(t);
                changed = true;
            }
            None => {
                conditions.push(json!({
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": node["metadata"]["creationTimestamp"].clone(),
                    "lastTransitionTime": t,
                }));
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The taints a node should carry: the user's own, plus not-ready (Ready=False) or
/// unreachable (Unknown) with effects NoSchedule and NoExecute, plus unschedulable
/// NoSchedule when cordoned. A NoExecute taint already present keeps its `timeAdded`
/// (eviction deadlines count from it); a new one gets `now`.
fn desired_taints(
    current: &[Value],
    readiness: Readiness,
    cordoned: bool,
    now: Time,
) -> Vec<Value> {
    let ours = |t: &Value| {
        let k = t["key"].as_str().unwrap_or_default();
        let e = t["effect"].as_str().unwrap_or_default();
        ((k == TAINT_NOT_READY || k == TAINT_UNREACHABLE)
            && (e == "NoSchedule" || e == "NoExecute"))
            || (k == TAINT_UNSCHEDULABLE && e == "NoSchedule")
    };
    let mut out: Vec<Value> = current.iter().filter(|t| !ours(t)).cloned().collect();
    let mut want = Vec::new();
    match readiness {
        Readiness::Ready => {}
        Readiness::NotReady => want.push(TAINT_NOT_READY),
        Readiness::Unknown => want.push(TAINT_UNREACHABLE),
    }
    for key in want {
        for effect in ["NoSchedule", "NoExecute"] {
            let existing = current
                .iter()
                .find(|t| t["key"] == key && t["effect"] == effect);
            out.push(match existing {
                Some(t) => t.clone(),
                None if effect == "NoExecute" => {
                    json!({"key": key, "effect": effect, "timeAdded": util::format_time(now)})
                }
                None => json!({"key": key, "effect": effect}),
            });
        }
    }
    if cordoned {
        out.push(
            current
                .iter()
                .find(|t| t["key"] == TAINT_UNSCHEDULABLE && t["effect"] == "NoSchedule")
                .cloned()
                .unwrap_or_else(|| json!({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"})),
        );
    }
    // Keep the order the node already has, so an unchanged set is not rewritten.
    let pos = |t: &Value| {
        current
            .iter()
            .position(|c| c["key"] == t["key"] && c["effect"] == t["effect"])
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(pos);
    out
}

/// `Toleration.ToleratesTaint`: the effect matches (empty tolerates all effects), the
/// key matches (empty key with Exists tolerates every key), and the value matches for
/// operator Equal (the default).
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = toleration["effect"].as_str().unwrap_or_default();
    if !effect.is_empty() && Some(effect) != taint["effect"].as_str() {
        return false;
    }
    let key = toleration["key"].as_str().unwrap_or_default();
    let op = toleration["operator"].as_str().unwrap_or("Equal");
    if !key.is_empty() && Some(key) != taint["key"].as_str() {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration["value"].as_str().unwrap_or_default()
                    == taint["value"].as_str().unwrap_or_default()
        }
        _ => false,
    }
}

/// When a pod on a node with NoExecute taints must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every NoExecute taint forever (or there are none).
    Never,
    /// Now: some NoExecute taint is not tolerated, or the toleration ran out.
    Now,
    /// At this time (the earliest toleration to run out).
    At(Time),
}

/// The taint eviction rule (`getMinTolerationTime`): a pod not tolerating every
/// NoExecute taint is evicted at once; otherwise at the taints' `timeAdded` plus the
/// smallest `tolerationSeconds` among the matching tolerations (none set: never).
/// A toleration like the one DefaultTolerationSeconds admission adds (Exists on
/// not-ready/unreachable, 300 s) counts as `default_window`. DaemonSet pods are never
/// evicted: their controller gives them unlimited tolerations for these taints.
pub fn eviction(pod: &Value, taints: &[Value], now: Time, default_window: Duration) -> Eviction {
    let no_execute: Vec<&Value> = taints
        .iter()
        .filter(|t| t["effect"] == "NoExecute")
        .collect();
    if no_execute.is_empty() {
        return Eviction::Never;
    }
    if util::controller_ref(pod).is_some_and(|r| r["kind"] == "DaemonSet") {
        return Eviction::Never;
    }
    let tolerations: Vec<Value> = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut min_secs: Option<i64> = None;
    let mut since: Option<Time> = None;
    for taint in no_execute {
        let matching: Vec<&Value> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        let added = util::parse_time(&taint["timeAdded"]).unwrap_or(now);
        since = Some(since.map_or(added, |s: Time| s.min(added)));
        for t in matching {
            let Some(secs) = t["tolerationSeconds"].as_i64() else {
                continue;
            };
            let secs = if is_admission_default(t) {
                i64::try_from(default_window.as_secs()).unwrap_or(i64::MAX)
            } else {
                secs.max(0)
            };
            min_secs = Some(min_secs.map_or(secs, |m| m.min(secs)));
        }
    }
    let Some(secs) = min_secs else {
        return Eviction::Never;
    };
    let at = since.unwrap_or(now) + time::Duration::seconds(secs);
    if at <= now {
        Eviction::Now
    } else {
        Eviction::At(at)
    }
}

fn is_admission_default(t: &Value) -> bool {
    let key = t["key"].as_str().unwrap_or_default();
    (key == TAINT_NOT_READY || key == TAINT_UNREACHABLE)
        && t["operator"] == "Exists"
        && t["effect"] == "NoExecute"
        && t["tolerationSeconds"].as_i64() == Some(ADMISSION_DEFAULT_TOLERATION_SECONDS)
        && t["value"].as_str().unwrap_or_default().is_empty()
}

/// What to do with the pods of one node.
#[derive(Clone, Debug, Default)]
pub struct PodsPlan {
    /// Pods to mark `Ready=False` (with the new `status.conditions` to write).
    pub mark_not_ready: Vec<(Arc<Value>, Vec<Value>)>,
    /// Pods to delete now (TaintManagerEviction).
    pub evict: Vec<Arc<Value>>,
    /// Pods whose graceful deletion has expired on a node that is not Ready: nobody
    /// will finish it, so they are deleted with grace 0 (the pod GC's job).
    pub force_delete: Vec<Arc<Value>>,
    /// Sync again after this long: the next eviction deadline.
    pub requeue_after: Option<Duration>,
}

/// Plans the pods bound to `node` (already filtered by `spec.nodeName`), given the
/// node's readiness and taints after [`plan_node`]. Pods being deleted are left alone.
pub fn plan_pods(
    readiness: Readiness,
    taints: &[Value],
    pods: &[Arc<Value>],
    now: Time,
    default_window: Duration,
) -> PodsPlan {
    let mut out = PodsPlan::default();
    let mut next: Option<Time> = None;
    if readiness != Readiness::Ready {
        for pod in pods.iter().filter(|p| api::meta::is_deleting(p)) {
            let due = pod["metadata"]["deletionTimestamp"]
                .as_str()
                .and_then(|t| Time::parse(t, &time::format_description::well_known::Rfc3339).ok());
            match due {
                Some(t) if t > now => next = Some(next.map_or(t, |n: Time| n.min(t))),
                _ => out.force_delete.push(pod.clone()),
            }
        }
    }
    for pod in pods.iter().filter(|p| !api::meta::is_deleting(p)) {
        match eviction(pod, taints, now, default_window) {
            Eviction::Now => {
                out.evict.push(pod.clone());
                continue;
            }
            Eviction::At(t) => next = Some(next.map_or(t, |n: Time| n.min(t))),
            Eviction::Never => {}
        }
        if readiness != Readiness::Ready
            && let Some(c) = not_ready_conditions(pod, now)
        {
            out.mark_not_ready.push((pod.clone(), c));
        }
    }
    out.requeue_after = next.map(|t| {
        Duration::from_secs_f64((t - now).as_seconds_f64().max(0.0)) + Duration::from_millis(100)
    });
    out
}

/// `MarkPodsNotReady` for one pod: its conditions with Ready flipped to False (as in
/// Kubernetes, only the status and transition time change), or None when the pod has
/// no Ready condition, it is already False, or the pod is terminal.
pub fn not_ready_conditions(pod: &Value, now: Time) -> Option<Vec<Value>> {
    if matches!(util::phase(pod), "Succeeded" | "Failed") {
        return None;
    }
    let mut conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let c = conditions.iter_mut().find(|c| c["type"] == "Ready")?;
    if c["status"] == "False" {
        return None;
    }
    c["status"] = json!("False");
    c["lastTransitionTime"] = json!(util::format_time(now));
    Some(conditions)
}

#[cfg(test)]
mod tests;
