//! The StatefulSet reconcile logic, pure (Kubernetes' `pkg/controller/statefulset`):
//! pods with stable names `<set>-0 .. <set>-(N-1)`, created in order with each waiting
//! for the previous to be Running and Ready (OrderedReady) or all at once (Parallel),
//! removed from the highest ordinal down, rolled to a new template from the highest
//! ordinal down to the partition. Templates are kept in ControllerRevisions named
//! `<set>-<hash>`; pods carry the revision in `controller-revision-hash`.

use crate::events::Note;
use crate::util::{self, Time, controller_ref, int, is_pod_available, is_pod_ready, phase};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The pod label naming the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The pod label with the pod's own name (Kubernetes sets it so a Service can select
/// one replica).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The ControllerRevision label with the template hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// What one StatefulSet sync must do.
#[derive(Clone, Debug, Default)]
pub struct SetPlan {
    /// The ControllerRevision of the current template, when it does not exist yet.
    pub create_revision: Option<Value>,
    /// PersistentVolumeClaims from volumeClaimTemplates the new pods need (creating one
    /// that exists is harmless: AlreadyExists).
    pub create_claims: Vec<Value>,
    /// Pods to create (fixed names).
    pub create: Vec<Value>,
    /// Pods to delete.
    pub delete: Vec<Arc<Value>>,
    /// The new status.
    pub status: Value,
    /// When to sync again (a pod waiting out minReadySeconds).
    pub requeue_after: Option<Duration>,
    /// Events about the set to record before the deletions (`RecreatingFailedPod`,
    /// `RecreatingTerminatedPod`); pod and claim creations and deletions are recorded
    /// by whoever makes them ([`pod_note`], [`claim_note`]).
    pub notes: Vec<Note>,
}

/// The StatefulSet controller's event for `verb` (`create`, `delete`) applied to pod
/// `pod` of `set` (`recordPodEvent`): `SuccessfulCreate` "create Pod web-0 in
/// StatefulSet web successful", or `FailedCreate` with the error.
pub fn pod_note(verb: &str, set: &str, pod: &str, error: Option<&dyn std::fmt::Display>) -> Note {
    let (ok, failed) = match verb {
        "create" => ("SuccessfulCreate", "FailedCreate"),
        "delete" => ("SuccessfulDelete", "FailedDelete"),
        _ => ("SuccessfulUpdate", "FailedUpdate"),
    };
    match error {
        None => Note::normal(
            ok,
            format!("{verb} Pod {pod} in StatefulSet {set} successful"),
        ),
        Some(e) => Note::warning(
            failed,
            format!("{verb} Pod {pod} in StatefulSet {set} failed error: {e}"),
        ),
    }
}

/// The StatefulSet controller's event for a claim created for a pod
/// (`recordClaimEvent`): "create Claim data-web-0 Pod web-0 in StatefulSet web success".
pub fn claim_note(
    set: &str,
    pod: &str,
    claim: &str,
    error: Option<&dyn std::fmt::Display>,
) -> Note {
    match error {
        None => Note::normal(
            "SuccessfulCreate",
            format!("create Claim {claim} Pod {pod} in StatefulSet {set} success"),
        ),
        Some(e) => Note::warning(
            "FailedCreate",
            format!("create Claim {claim} for Pod {pod} in StatefulSet {set} failed error: {e}"),
        ),
    }
}

/// The ordinal of a pod of `set` named `<set>-<ordinal>`.
pub fn ordinal(set: &Value, pod: &Value) -> Option<usize> {
    let rest = util::name(pod)
        .strip_prefix(util::name(set))?
        .strip_prefix('-')?;
    if rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_digit())
        || (rest.len() > 1 && rest.starts_with('0'))
    {
        return None;
    }
    rest.parse().ok()
}

/// The revision name of the set's current template: `<set>-<hash>`.
pub fn update_revision_name(set: &Value) -> String {
    // Kubernetes hashes an absent collision count as 0, so writing `collisionCount: 0`
    // into the status never changes the revision name.
    let cc = Some(set["status"]["collisionCount"].as_i64().unwrap_or(0));
    format!(
        "{}-{}",
        util::name(set),
        util::template_hash(&set["spec"]["template"], cc)
    )
}

/// A ControllerRevision holding `set`'s template, as Kubernetes stores it: a patch that
/// replaces the template (so `kubectl rollout undo` can apply it back).
pub fn revision_object(set: &Value, number: i64) -> Value {
    let name = update_revision_name(set);
    let hash = name
        .rsplit_once('-')
        .map(|(_, h)| h.to_string())
        .unwrap_or_default();
    let mut labels = set["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), json!(hash));
    let mut template = set["spec"]["template"].clone();
    if template.is_object() {
        template["$patch"] = json!("replace");
    }
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": api::meta::namespace(set), "labels": labels,
            "ownerReferences": [util::owner_ref("apps/v1", "StatefulSet", set)]},
        "data": {"spec": {"template": template}},
        "revision": number,
    })
}

/// The template a ControllerRevision holds.
fn revision_template(rev: &Value) -> Value {
    let mut t = rev["data"]["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

fn claim_name(claim: &Value, pod_name: &str) -> String {
    format!("{}-{pod_name}", util::name(claim))
}

/// The pod of ordinal `ord` (`newVersionedStatefulSetPod`): the template of `revision`,
/// name `<set>-<ord>`, hostname and subdomain for stable DNS, identity and revision
/// labels, claim volumes and the controller reference.
pub fn pod_for(set: &Value, template: &Value, revision: &str, ord: usize) -> Value {
    let name = format!("{}-{ord}", util::name(set));
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if let Some(ns) = api::meta::namespace(set) {
        meta.insert("namespace".into(), json!(ns));
    }
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), json!(revision));
    labels.insert(POD_NAME_LABEL.into(), json!(name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ord.to_string()));
    meta.insert("labels".into(), Value::Object(labels));
    for f in ["annotations", "finalizers"] {
        if let Some(v) = template["metadata"].get(f).filter(|v| !v.is_null()) {
            meta.insert(f.into(), v.clone());
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([util::owner_ref("apps/v1", "StatefulSet", set)]),
    );
    let mut spec = template["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    spec["hostname"] = json!(name);
    if let Some(svc) = set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(svc);
    }
    if let Some(claims) = set["spec"]["volumeClaimTemplates"].as_array() {
        let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        for c in claims {
            volumes.retain(|v| v["name"].as_str() != Some(util::name(c)));
            volumes.push(json!({"name": util::name(c),
                "persistentVolumeClaim": {"claimName": claim_name(c, &name)}}));
        }
        spec["volumes"] = json!(volumes);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// The claims of pod `ord` from the volumeClaimTemplates (`<claim>-<set>-<ord>`,
/// labelled with the set's selector labels).
pub fn claims_for(set: &Value, ord: usize) -> Vec<Value> {
    let pod_name = format!("{}-{ord}", util::name(set));
    let selector = set["spec"]["selector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    set["spec"]["volumeClaimTemplates"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let mut labels = c["metadata"]["labels"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    labels.extend(selector.clone());
                    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim_name(c, &pod_name),
                            "namespace": api::meta::namespace(set), "labels": labels},
                        "spec": c["spec"].clone()})
                })
                .collect()
        })
        .unwrap_or_default()
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or_default()
}

/// Plans one sync of `set` given the pods and ControllerRevisions it controls.
pub fn plan(set: &Value, pods: &[Arc<Value>], revisions: &[Arc<Value>], now: Time) -> SetPlan {
    let mut out = SetPlan::default();
    let uid = util::uid(set);
    let ours = |o: &&Arc<Value>| controller_ref(o).and_then(|r| r["uid"].as_str()) == Some(uid);
    let revisions: Vec<&Arc<Value>> = revisions.iter().filter(ours).collect();
    let update_name = update_revision_name(set);
    if !revisions.iter().any(|r| util::name(r) == update_name) {
        let next = revisions
            .iter()
            .map(|r| int(&r["revision"]))
            .max()
            .unwrap_or(0)
            + 1;
        out.create_revision = Some(revision_object(set, next));
    }
    let stored_current = set["status"]["currentRevision"]
        .as_str()
        .unwrap_or_default();
    let current_rev = revisions
        .iter()
        .find(|r| util::name(r) == stored_current && stored_current != update_name);
    let (current_name, current_template) = match current_rev {
        Some(r) => (stored_current.to_string(), revision_template(r)),
        None => (update_name.clone(), set["spec"]["template"].clone()),
    };
    let replicas =
        usize::try_from(set["spec"]["replicas"].as_i64().unwrap_or(1).max(0)).unwrap_or(0);
    let monotonic = set["spec"]["podManagementPolicy"] != "Parallel";
    let min_ready = int(&set["spec"]["minReadySeconds"]);
    let rolling = set["spec"]["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition =
        usize::try_from(int(&set["spec"]["updateStrategy"]["rollingUpdate"]["partition"]).max(0))
            .unwrap_or(0);
    let healthy = |p: &Value| {
        phase(p) == "Running"
            && is_pod_ready(p)
            && !api::meta::is_deleting(p)
            && is_pod_available(p, min_ready, now)
    };

    let mut by_ord: BTreeMap<usize, &Arc<Value>> = BTreeMap::new();
    let mut owned: Vec<&Arc<Value>> = Vec::new();
    for p in pods.iter().filter(ours) {
        owned.push(p);
        match ordinal(set, p) {
            Some(o) => {
                by_ord.entry(o).or_insert(p);
            }
            // Not one of ours by name: it cannot keep an identity.
            None if !api::meta::is_deleting(p) => out.delete.push(p.clone()),
            None => {}
        }
    }
    let deleting_set = api::meta::is_deleting(set);
    'sync: {
        if deleting_set {
            break 'sync;
        }
        for ord in 0..replicas {
            match by_ord.get(&ord) {
                None => {
                    let (rev, template) = if rolling && ord < partition {
                        (&current_name, &current_template)
                    } else {
                        (&update_name, &set["spec"]["template"])
                    };
                    out.create_claims.extend(claims_for(set, ord));
                    out.create.push(pod_for(set, template, rev, ord));
                    if monotonic {
                        break 'sync;
                    }
                }
                // A failed or finished pod is deleted, then made again.
                Some(p) if matches!(phase(p), "Failed" | "Succeeded") => {
                    if !api::meta::is_deleting(p) {
                        out.notes.push(recreating_note(set, p));
                        out.delete.push((*p).clone());
                    }
                    if monotonic {
                        break 'sync;
                    }
                }
                Some(p) if monotonic && !healthy(p) => {
                    if is_pod_ready(p) && !api::meta::is_deleting(p) {
                        out.requeue_after = Some(wait_available(p, min_ready, now));
                    }
                    break 'sync;
                }
                Some(_) => {}
            }
        }
        // Scale down: the highest ordinal first, one at a time when ordered.
        for (_, p) in by_ord.range(replicas..).rev() {
            if api::meta::is_deleting(p) {
                if monotonic {
                    break 'sync;
                }
                continue;
            }
            out.delete.push((*p).clone());
            if monotonic {
                break 'sync;
            }
        }
        // Rolling update: from the highest ordinal down to the partition, one pod at a
        // time, each replaced only once the ones above are healthy again.
        if rolling {
            for ord in (partition..replicas).rev() {
                let Some(p) = by_ord.get(&ord) else { break };
                if revision_of(p) != update_name && !api::meta::is_deleting(p) {
                    out.delete.push((*p).clone());
                    break;
                }
                if !healthy(p) {
                    break;
                }
            }
        }
    }
    let gone: std::collections::HashSet<&str> = out.delete.iter().map(|p| util::uid(p)).collect();
    let live: Vec<&&Arc<Value>> = owned
        .iter()
        .filter(|p| !api::meta::is_deleting(p) && !gone.contains(util::uid(p)))
        .collect();
    let count = |f: &dyn Fn(&Value) -> bool| live.iter().filter(|p| f(p)).count();
    let ready = count(&|p| is_pod_ready(p));
    let available = count(&|p| is_pod_ready(p) && is_pod_available(p, min_ready, now));
    let mut current = count(&|p| revision_of(p) == current_name);
    let updated = count(&|p| revision_of(p) == update_name);
    let total = live.len();
    let mut current_revision = current_name.clone();
    // completeRollingUpdate: everything updated and ready makes the update current.
    if rolling && updated == total && ready == total && total == replicas {
        current = updated;
        current_revision = update_name.clone();
    }
    let mut status = json!({
        "observedGeneration": int(&set["metadata"]["generation"]),
        "replicas": total,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_name,
        "collisionCount": int(&set["status"]["collisionCount"]),
    });
    if let Some(c) = set["status"].get("conditions").filter(|v| !v.is_null()) {
        status["conditions"] = c.clone();
    }
    out.status = status;
    out
}

/// `RecreatingFailedPod` (Warning) for a failed pod, `RecreatingTerminatedPod` (Normal)
/// for a succeeded one, as Kubernetes up to 1.30 recorded them.
fn recreating_note(set: &Value, pod: &Value) -> Note {
    let ns = api::meta::namespace(set).unwrap_or_default();
    let (set, pod_name) = (util::name(set), util::name(pod));
    if phase(pod) == "Failed" {
        Note::warning(
            "RecreatingFailedPod",
            format!("StatefulSet {ns}/{set} is recreating failed Pod {pod_name}"),
        )
    } else {
        Note::normal(
            "RecreatingTerminatedPod",
            format!("StatefulSet {ns}/{set} is recreating terminated Pod {pod_name}"),
        )
    }
}

fn wait_available(p: &Value, min_ready: i64, now: Time) -> Duration {
    let since = util::ready_condition(p).and_then(|c| util::parse_time(&c["lastTransitionTime"]));
    let left = since
        .map(|s| (s + time::Duration::seconds(min_ready) - now).as_seconds_f64())
        .unwrap_or(0.0);
    Duration::from_secs_f64(left.max(0.0) + 1.0)
}

#[cfg(test)]
mod tests;
