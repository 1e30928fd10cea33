//! The ReplicaSet (and ReplicationController) reconcile logic, pure: which pods to
//! adopt, release, create and delete, and the status to write (Kubernetes'
//! `pkg/controller/replicaset`).

use crate::util::{
    self, Time, controller_ref, int, is_pod_active, is_pod_available, is_pod_ready, phase,
};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// Kubernetes' `burstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;

/// Which of the two replica controllers an object belongs to: they differ only in
/// their API version, kind and selector type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaKind {
    /// `apps/v1` ReplicaSet: `spec.selector` is a `LabelSelector`.
    ReplicaSet,
    /// `v1` ReplicationController: `spec.selector` is a plain label map.
    ReplicationController,
}

impl ReplicaKind {
    /// The `apiVersion` of the owner, as written into owner references.
    pub fn api_version(self) -> &'static str {
        match self {
            ReplicaKind::ReplicaSet => "apps/v1",
            ReplicaKind::ReplicationController => "v1",
        }
    }

    /// The kind, as written into owner references.
    pub fn kind(self) -> &'static str {
        match self {
            ReplicaKind::ReplicaSet => "ReplicaSet",
            ReplicaKind::ReplicationController => "ReplicationController",
        }
    }

    /// The owner's pod selector. A missing or malformed selector selects nothing (the API
    /// server refuses those; nothing must be adopted by accident).
    pub fn selector(self, owner: &Value) -> labels::LabelSelector {
        let s = &owner["spec"]["selector"];
        match self {
            ReplicaKind::ReplicaSet => util::selector(s),
            ReplicaKind::ReplicationController => match s.as_object() {
                Some(m) if !m.is_empty() => labels::LabelSelector::from_map(m),
                _ => labels::LabelSelector::nothing(),
            },
        }
    }
}

/// What one sync of a replica controller must do to its pods.
#[derive(Clone, Debug, Default)]
pub struct PodPlan {
    /// Active pods this owner controls after adoption and release: what status counts.
    pub claimed: Vec<Arc<Value>>,
    /// Orphans matching the selector: add our controller reference.
    pub adopt: Vec<Arc<Value>>,
    /// Pods we control that no longer match: remove our reference (they keep running).
    pub release: Vec<Arc<Value>>,
    /// Pods to create from the template.
    pub create: usize,
    /// Pods to delete, least useful first.
    pub delete: Vec<Arc<Value>>,
}

/// Plans one sync of `owner`, given every pod of its namespace and the pods of sibling
/// owners (same Deployment), used to rank which pods to delete. `may_manage` is false
/// while earlier creations or deletions are not yet seen in the cache (expectations):
/// then only adoption and release happen, so a slow cache never makes it create twice.
pub fn plan(
    kind: ReplicaKind,
    owner: &Value,
    pods: &[Arc<Value>],
    related: &[Arc<Value>],
    may_manage: bool,
) -> PodPlan {
    let selector = kind.selector(owner);
    let owner_uid = util::uid(owner);
    let deleting = api::meta::is_deleting(owner);
    let mut out = PodPlan::default();
    for pod in pods.iter().filter(|p| is_pod_active(p)) {
        let matches = selector.matches(api::meta::labels(pod));
        match controller_ref(pod) {
            Some(r) if r["uid"].as_str() == Some(owner_uid) => {
                if matches {
                    out.claimed.push(pod.clone());
                } else if !deleting {
                    out.release.push(pod.clone());
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && !owner_uid.is_empty() {
                    out.adopt.push(pod.clone());
                    out.claimed.push(pod.clone());
                }
            }
        }
    }
    if !may_manage || deleting {
        return out;
    }
    let want = usize::try_from(int(&owner["spec"]["replicas"]).max(0)).unwrap_or(0);
    let have = out.claimed.len();
    if have < want {
        out.create = (want - have).min(BURST_REPLICAS);
    } else if have > want {
        let n = (have - want).min(BURST_REPLICAS);
        out.delete = pods_to_delete(&out.claimed, related, n);
    }
    out
}

/// `getPodsToDelete`: ranks pods by `ActivePodsWithRanks` and takes the first `n`.
fn pods_to_delete(pods: &[Arc<Value>], related: &[Arc<Value>], n: usize) -> Vec<Arc<Value>> {
    // Rank: how many related active pods share the pod's node (spreading is kept by
    // deleting from crowded nodes first).
    let mut on_node: HashMap<&str, i64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for p in related.iter().chain(pods) {
        if !is_pod_active(p) || !seen.insert(util::uid(p).to_string()) {
            continue;
        }
        if let Some(node) = p["spec"]["nodeName"].as_str().filter(|s| !s.is_empty()) {
            *on_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .and_then(|n| on_node.get(n).copied())
            .unwrap_or(0)
    };
    let mut ranked: Vec<(i64, &Arc<Value>)> = pods.iter().map(|p| (rank(p), p)).collect();
    ranked.sort_by(|a, b| compare_for_deletion(a.1, a.0, b.1, b.0));
    ranked.into_iter().take(n).map(|(_, p)| p.clone()).collect()
}

fn phase_ordinal(p: &Value) -> u8 {
    match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(p: &Value) -> i64 {
    util::annotation(p, "controller.kubernetes.io/pod-deletion-cost")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(p: &Value) -> i64 {
    p["status"]["containerStatuses"]
        .as_array()
        .map(|a| a.iter().map(|c| int(&c["restartCount"])).max().unwrap_or(0))
        .unwrap_or(0)
}

/// `ActivePodsWithRanks.Less`: Less means "delete first".
fn compare_for_deletion(a: &Value, ra: i64, b: &Value, rb: i64) -> Ordering {
    let assigned = |p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    };
    // 1. Unassigned before assigned.
    assigned(a)
        .cmp(&assigned(b))
        // 2. Pending < Unknown < Running.
        .then_with(|| phase_ordinal(a).cmp(&phase_ordinal(b)))
        // 3. Not ready before ready.
        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
        // 4. Lower pod-deletion-cost first.
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        // 5. Doubled-up (higher rank) first.
        .then_with(|| rb.cmp(&ra))
        // 6. Ready for less time first (later Ready transition first).
        .then_with(|| {
            if is_pod_ready(a) && is_pod_ready(b) {
                let t = |p: &Value| {
                    util::ready_condition(p)
                        .and_then(|c| util::parse_time(&c["lastTransitionTime"]))
                };
                t(b).cmp(&t(a))
            } else {
                Ordering::Equal
            }
        })
        // 7. More restarts first.
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        // 8. Newer first.
        .then_with(|| util::created(b).cmp(&util::created(a)))
        .then_with(|| util::name(a).cmp(util::name(b)))
}

/// A new pod from `owner`'s template (`GetPodFromTemplate`): template labels,
/// annotations, finalizers and spec, `generateName: <owner>-` (the server appends five
/// random characters), and the controller owner reference.
pub fn pod_from_template(kind: ReplicaKind, owner: &Value) -> Value {
    let t = &owner["spec"]["template"];
    let mut meta = Map::new();
    meta.insert(
        "generateName".into(),
        json!(format!("{}-", util::name(owner))),
    );
    if let Some(ns) = api::meta::namespace(owner) {
        meta.insert("namespace".into(), json!(ns));
    }
    for f in ["labels", "annotations", "finalizers"] {
        if let Some(v) = t["metadata"].get(f).filter(|v| !v.is_null()) {
            meta.insert(f.into(), v.clone());
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([util::owner_ref(kind.api_version(), kind.kind(), owner)]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": t["spec"].clone(),
    })
}

/// The status of `owner` for the pods it controls (`calculateStatus`), with a
/// ReplicaFailure condition when creating or deleting failed (`manage_error`).
pub fn status(
    owner: &Value,
    claimed: &[Arc<Value>],
    manage_error: Option<&str>,
    now: Time,
) -> Value {
    let template_labels = owner["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .map(labels::LabelSelector::from_map)
        .unwrap_or_else(labels::LabelSelector::everything);
    let min_ready = int(&owner["spec"]["minReadySeconds"]);
    // One pass: this runs over every pod of the owner on each sync.
    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for p in claimed {
        fully_labeled += usize::from(template_labels.matches(api::meta::labels(p)));
        if is_pod_ready(p) {
            ready += 1;
            available += usize::from(is_pod_available(p, min_ready, now));
        }
    }
    let mut conditions: Vec<Value> = owner["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let existing = conditions
        .iter()
        .position(|c| c["type"] == "ReplicaFailure");
    match (manage_error, existing) {
        (Some(msg), None) => conditions.push(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": msg, "lastTransitionTime": util::format_time(now),
        })),
        (None, Some(i)) => {
            conditions.remove(i);
        }
        _ => {}
    }
    let mut s = json!({
        "replicas": claimed.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int(&owner["metadata"]["generation"]),
    });
    if !conditions.is_empty() {
        s["conditions"] = json!(conditions);
    }
    s
}

/// Whether `new` differs from what the owner's status says (so a write is needed).
/// Zero counts equal absent ones: the server may drop zero values.
pub fn status_differs(owner: &Value, new: &Value) -> bool {
    util::normalize(&strip_zeros(&owner["status"])) != util::normalize(&strip_zeros(new))
}

fn strip_zeros(v: &Value) -> Value {
    match v.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| x.as_i64() != Some(0))
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect(),
        ),
        None => Value::Null,
    }
}

/// How long until a ready pod becomes available (minReadySeconds), so the owner is
/// synced again then; None when nothing is waiting.
pub fn requeue_for_availability(
    owner: &Value,
    claimed: &[Arc<Value>],
    now: Time,
) -> Option<std::time::Duration> {
    let min_ready = int(&owner["spec"]["minReadySeconds"]);
    if min_ready <= 0 {
        return None;
    }
    claimed
        .iter()
        .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready, now))
        .filter_map(|p| {
            util::ready_condition(p).and_then(|c| util::parse_time(&c["lastTransitionTime"]))
        })
        .map(|t| t + time::Duration::seconds(min_ready) - now)
        .min()
        .map(|d| std::time::Duration::from_secs_f64(d.as_seconds_f64().max(0.0) + 1.0))
}

#[cfg(test)]
mod tests;
