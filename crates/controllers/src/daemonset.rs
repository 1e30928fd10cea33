//! The DaemonSet reconcile logic, pure (Kubernetes' `pkg/controller/daemon`): which
//! nodes should run a daemon pod, which pods to create and delete (including the
//! RollingUpdate replacements, bounded by maxUnavailable) and the status to write.

use crate::events::Note;
use crate::util::{self, Time, controller_ref, int, is_pod_available, is_pod_ready, phase};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The label carrying the template hash of a daemon (or stateful) pod's revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The deprecated label Kubernetes still writes with the DaemonSet's generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Whether `toleration` tolerates `taint` (`Toleration.ToleratesTaint`): an empty effect
/// matches every effect, an empty key with `Exists` matches every key, `Equal` (the
/// default operator) also compares values.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let t_effect = toleration["effect"].as_str().unwrap_or_default();
    if !t_effect.is_empty() && Some(t_effect) != taint["effect"].as_str() {
        return false;
    }
    let t_key = toleration["key"].as_str().unwrap_or_default();
    let op = toleration["operator"].as_str().unwrap_or("Equal");
    if t_key.is_empty() {
        return op == "Exists";
    }
    if Some(t_key) != taint["key"].as_str() {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => {
            toleration["value"].as_str().unwrap_or_default()
                == taint["value"].as_str().unwrap_or_default()
        }
        _ => false,
    }
}

/// The taints of `node` with one of `effects` that no toleration tolerates.
fn untolerated<'a>(node: &'a Value, tolerations: &[Value], effects: &[&str]) -> Vec<&'a Value> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| effects.contains(&t["effect"].as_str().unwrap_or_default()))
                .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
                .collect()
        })
        .unwrap_or_default()
}

fn expression_matches(expr: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = expr["values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let num = |s: &str| s.parse::<i64>().ok();
    match expr["operator"].as_str().unwrap_or_default() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => !value.is_some_and(|v| values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(num),
                values
                    .first()
                    .and_then(|s| num(s))
                    .filter(|_| values.len() == 1),
            ) else {
                return false;
            };
            if expr["operator"] == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether `node` matches one `NodeSelectorTerm`: every matchExpression (on labels) and
/// every matchField (only `metadata.name` exists) holds. A term with neither matches
/// nothing, as in Kubernetes.
pub fn term_matches(term: &Value, node: &Value) -> bool {
    let exprs = term["matchExpressions"].as_array().map(Vec::as_slice);
    let fields = term["matchFields"].as_array().map(Vec::as_slice);
    let exprs = exprs.unwrap_or_default();
    let fields = fields.unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = &node["metadata"]["labels"];
    exprs
        .iter()
        .all(|e| expression_matches(e, labels[e["key"].as_str().unwrap_or_default()].as_str()))
        && fields
            .iter()
            .all(|f| f["key"] == "metadata.name" && expression_matches(f, Some(util::name(node))))
}

/// Whether a pod spec's nodeSelector and required node affinity admit `node` (the
/// scheduler's NodeAffinity filter): every nodeSelector label equal, and at least one
/// required term matching when there are terms.
pub fn node_selected(spec: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels[k] == *v));
    let required =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let affinity_ok = match required["nodeSelectorTerms"].as_array() {
        Some(terms) => terms.iter().any(|t| term_matches(t, node)),
        None => true,
    };
    selector_ok && affinity_ok
}

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): daemons
/// survive not-ready and unreachable nodes, node pressure and cordoning; host-network
/// daemons also tolerate an unavailable network.
pub fn default_tolerations(host_network: bool) -> Vec<Value> {
    let mut v = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        v.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    v
}

/// The template's tolerations plus the daemon defaults (a template toleration with the
/// same key and effect wins).
fn pod_tolerations(spec: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for d in default_tolerations(spec["hostNetwork"].as_bool() == Some(true)) {
        if !out
            .iter()
            .any(|t| t["key"] == d["key"] && t["effect"] == d["effect"])
        {
            out.push(d);
        }
    }
    out
}

/// Whether a daemon pod should run on a node, and whether an existing one may stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// A new daemon pod belongs on the node.
    pub should_run: bool,
    /// An existing daemon pod may keep running there.
    pub should_continue: bool,
}

/// `NodeShouldRunDaemonPod`: the template's nodeName, nodeSelector and required affinity
/// must admit the node; untolerated NoSchedule taints stop new pods, untolerated
/// NoExecute taints also evict existing ones. Nodes being deleted run nothing.
pub fn placement(ds: &Value, node: &Value) -> Placement {
    let no = Placement {
        should_run: false,
        should_continue: false,
    };
    let spec = &ds["spec"]["template"]["spec"];
    if api::meta::is_deleting(node) {
        return no;
    }
    if let Some(n) = spec["nodeName"].as_str().filter(|n| !n.is_empty())
        && n != util::name(node)
    {
        return no;
    }
    if !node_selected(spec, node) {
        return no;
    }
    let tolerations = pod_tolerations(spec);
    if !untolerated(node, &tolerations, &["NoExecute"]).is_empty() {
        return no;
    }
    Placement {
        should_run: untolerated(node, &tolerations, &["NoSchedule"]).is_empty(),
        should_continue: true,
    }
}

/// The hash identifying the DaemonSet's current template (and collision count).
pub fn current_hash(ds: &Value) -> String {
    let cc = ds["status"]["collisionCount"].as_i64();
    util::template_hash(&ds["spec"]["template"], cc)
}

/// The node a daemon pod is for: its `nodeName`, or before binding the node named by the
/// required `metadata.name` affinity the controller wrote (`GetTargetNodeName`).
pub fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"]
        .as_array()?
        .iter()
        .flat_map(|t| t["matchFields"].as_array().into_iter().flatten())
        .find(|f| f["key"] == "metadata.name" && f["operator"] == "In")
        .and_then(|f| f["values"].as_array())
        .filter(|v| v.len() == 1)
        .and_then(|v| v[0].as_str())
}

/// A new daemon pod for `node` (`CreatePodsOnNodes` with
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`): the template, pinned to the node through a
/// required node affinity on `metadata.name` so the scheduler binds it there, the daemon
/// tolerations, the revision labels and the controller reference.
pub fn pod_for_node(ds: &Value, node: &str) -> Value {
    let t = &ds["spec"]["template"];
    let mut meta = Map::new();
    meta.insert("generateName".into(), json!(format!("{}-", util::name(ds))));
    if let Some(ns) = api::meta::namespace(ds) {
        meta.insert("namespace".into(), json!(ns));
    }
    for f in ["annotations", "finalizers"] {
        if let Some(v) = t["metadata"].get(f).filter(|v| !v.is_null()) {
            meta.insert(f.into(), v.clone());
        }
    }
    let mut labels = t["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), json!(current_hash(ds)));
    labels.insert(
        TEMPLATE_GENERATION_LABEL.into(),
        json!(int(&ds["metadata"]["generation"]).to_string()),
    );
    meta.insert("labels".into(), Value::Object(labels));
    meta.insert(
        "ownerReferences".into(),
        json!([util::owner_ref("apps/v1", "DaemonSet", ds)]),
    );
    let mut spec = t["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
        "nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node]}]}]
    });
    spec["tolerations"] = json!(pod_tolerations(&t["spec"]));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// What one DaemonSet sync must do.
#[derive(Clone, Debug, Default)]
pub struct DaemonPlan {
    /// Nodes that need a daemon pod created ([`pod_for_node`]).
    pub create_on: Vec<String>,
    /// Pods to delete: on nodes that stopped matching, duplicates, failed pods and the
    /// old-revision pods a rolling update replaces now.
    pub delete: Vec<Arc<Value>>,
    /// The new status.
    pub status: Value,
    /// When to sync again to see a pod become available (minReadySeconds).
    pub requeue_after: Option<std::time::Duration>,
    /// Events about the DaemonSet to record (`FailedDaemonPod`, `SucceededDaemonPod`);
    /// the pod creations and deletions are recorded by whoever makes them.
    pub notes: Vec<Note>,
}

/// The events Kubernetes records on finding a finished daemon pod it will replace:
/// `FailedDaemonPod` (Warning) or `SucceededDaemonPod` (Normal).
pub fn finished_pod_note(pod: &Value, node: &str) -> Option<Note> {
    let ns = api::meta::namespace(pod).unwrap_or_default();
    let name = util::name(pod);
    match phase(pod) {
        "Failed" => Some(Note::warning(
            "FailedDaemonPod",
            format!("Found failed daemon pod {ns}/{name} on node {node}, will try to kill it"),
        )),
        "Succeeded" => Some(Note::normal(
            "SucceededDaemonPod",
            format!("Found succeeded daemon pod {ns}/{name} on node {node}, will try to delete it"),
        )),
        _ => None,
    }
}

fn is_updated(pod: &Value, hash: &str) -> bool {
    api::meta::labels(pod)
        .get(REVISION_LABEL)
        .and_then(Value::as_str)
        == Some(hash)
}

/// Plans one sync of `ds` over every node and the DaemonSet's namespace pods. Only pods
/// whose controller is `ds` count. `may_manage` is false while earlier creations or
/// deletions are not yet seen in the cache: then nothing is created or deleted, but the
/// status is still computed.
pub fn plan(
    ds: &Value,
    nodes: &[Arc<Value>],
    pods: &[Arc<Value>],
    may_manage: bool,
    now: Time,
) -> DaemonPlan {
    let uid = util::uid(ds);
    let hash = current_hash(ds);
    let min_ready = int(&ds["spec"]["minReadySeconds"]);
    // Live daemon pods per target node, oldest first.
    let mut by_node: BTreeMap<&str, Vec<&Arc<Value>>> = BTreeMap::new();
    let mut out = DaemonPlan::default();
    for p in pods {
        if controller_ref(p).and_then(|r| r["uid"].as_str()) != Some(uid) || uid.is_empty() {
            continue;
        }
        if api::meta::is_deleting(p) {
            continue;
        }
        match target_node(p) {
            Some(n) => by_node.entry(n).or_default().push(p),
            // A daemon pod for no node can never run: replace it.
            None => out.delete.push(p.clone()),
        }
    }
    for v in by_node.values_mut() {
        v.sort_by(|a, b| {
            util::created(a)
                .cmp(&util::created(b))
                .then_with(|| util::name(a).cmp(util::name(b)))
        });
    }
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    // Nodes that should run a pod and have an old-revision one: rolling-update candidates.
    let mut old_on: Vec<(&Arc<Value>, bool)> = Vec::new();
    let mut unavailable = 0i64;
    let mut requeue: Option<std::time::Duration> = None;
    let mut seen_nodes = std::collections::HashSet::new();
    for node in nodes {
        let name = util::name(node);
        seen_nodes.insert(name);
        let place = placement(ds, node);
        let daemon_pods = by_node.get(name).cloned().unwrap_or_default();
        let (running, failed): (Vec<&Arc<Value>>, Vec<&Arc<Value>>) = daemon_pods
            .iter()
            .copied()
            .partition(|p| !matches!(phase(p), "Failed" | "Succeeded"));
        if place.should_run {
            desired += 1;
        }
        if place.should_run && !daemon_pods.is_empty() {
            current += 1;
        }
        if !place.should_run && !daemon_pods.is_empty() {
            misscheduled += 1;
        }
        if place.should_continue {
            // Failed daemon pods are deleted so a fresh one replaces them.
            out.delete.extend(failed.iter().map(|p| (*p).clone()));
            out.notes
                .extend(failed.iter().filter_map(|p| finished_pod_note(p, name)));
            if place.should_run && running.is_empty() {
                out.create_on.push(name.to_string());
            }
            // More than one pod on a node: keep the oldest.
            out.delete
                .extend(running.iter().skip(1).map(|p| (*p).clone()));
        } else {
            out.delete.extend(daemon_pods.iter().map(|p| (*p).clone()));
        }
        if !place.should_run {
            continue;
        }
        match running.first().copied() {
            Some(p) => {
                let avail = is_pod_available(p, min_ready, now);
                if is_pod_ready(p) {
                    ready += 1;
                    if !avail {
                        let w = wait_available(p, min_ready, now);
                        requeue = Some(requeue.map_or(w, |r| r.min(w)));
                    }
                }
                if avail {
                    available += 1;
                } else {
                    unavailable += 1;
                }
                if is_updated(p, &hash) {
                    updated += 1;
                } else {
                    old_on.push((p, avail));
                }
            }
            None => unavailable += 1,
        }
    }
    // Pods for nodes that no longer exist.
    for (n, ps) in &by_node {
        if !seen_nodes.contains(n) {
            out.delete.extend(ps.iter().map(|p| (*p).clone()));
        }
    }
    // RollingUpdate (maxSurge 0): old pods that are unavailable go at once; available
    // ones only while fewer than maxUnavailable nodes lack an available daemon pod.
    let strategy = &ds["spec"]["updateStrategy"];
    if strategy["type"].as_str().unwrap_or("RollingUpdate") == "RollingUpdate" {
        let max_unavailable = strategy["rollingUpdate"]
            .get("maxUnavailable")
            .filter(|v| !v.is_null())
            .map(|v| util::scaled_value(v, desired, true))
            .unwrap_or(1)
            .max(if desired > 0 { 1 } else { 0 });
        old_on.sort_by_key(|(p, avail)| (*avail, util::created(p)));
        for (p, avail) in old_on {
            if !avail {
                out.delete.push(p.clone());
            } else if unavailable < max_unavailable {
                unavailable += 1;
                out.delete.push(p.clone());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.delete.retain(|p| seen.insert(util::uid(p).to_string()));
    if !may_manage || api::meta::is_deleting(ds) {
        out.create_on.clear();
        out.delete.clear();
        out.notes.clear();
    }
    let mut status = json!({
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": int(&ds["metadata"]["generation"]),
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    });
    if let Some(c) = ds["status"].get("collisionCount").filter(|v| !v.is_null()) {
        status["collisionCount"] = c.clone();
    }
    if let Some(c) = ds["status"].get("conditions").filter(|v| !v.is_null()) {
        status["conditions"] = c.clone();
    }
    out.status = status;
    out.requeue_after = requeue;
    out
}

fn wait_available(p: &Value, min_ready: i64, now: Time) -> std::time::Duration {
    let since = util::ready_condition(p).and_then(|c| util::parse_time(&c["lastTransitionTime"]));
    let left = since
        .map(|s| (s + time::Duration::seconds(min_ready) - now).as_seconds_f64())
        .unwrap_or(0.0);
    std::time::Duration::from_secs_f64(left.max(0.0) + 1.0)
}

#[cfg(test)]
mod tests;
