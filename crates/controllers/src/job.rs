//! The Job reconcile logic, pure (Kubernetes' `pkg/controller/job`): how many pods to
//! start (parallelism, completions, NonIndexed or Indexed), when the Job has failed
//! (backoffLimit, activeDeadlineSeconds) or completed, the status to write and when a
//! finished Job's TTL expires.

use crate::events::Note;
use crate::util::{self, Time, int, is_pod_active, is_pod_ready, phase};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The label (and, for the legacy name, the selector key) tying pods to their Job.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label naming the Job of a pod.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The annotation and label carrying an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Kubernetes' default `backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i64 = 6;
/// The first pod-failure back-off (`DefaultJobPodFailureBackOff`), doubled per failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest pod-failure back-off (`MaxJobPodFailureBackOff`).
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// What one Job sync must do.
#[derive(Clone, Debug, Default)]
pub struct JobPlan {
    /// Pods to create, complete objects ([`pod_for_job`]).
    pub create: Vec<Value>,
    /// Pods to delete: extra ones, or every active one once the Job finished.
    pub delete: Vec<Arc<Value>>,
    /// The new status, when it differs from the stored one.
    pub status: Option<Value>,
    /// The Job's TTL after finishing expired: delete it (and, by GC, its pods).
    pub delete_job: bool,
    /// When to sync again (back-off end, deadline, TTL).
    pub requeue_after: Option<Duration>,
    /// Events about the Job to record once [`JobPlan::status`] is written (`Completed`,
    /// `BackoffLimitExceeded`, `DeadlineExceeded`, `Suspended`, `Resumed`); pod
    /// creations and deletions are recorded by whoever makes them.
    pub notes: Vec<Note>,
}

fn condition<'a>(job: &'a Value, t: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t && c["status"] == "True")
}

/// Whether the Job has a True Complete or Failed condition.
pub fn is_finished(job: &Value) -> bool {
    condition(job, "Complete").is_some() || condition(job, "Failed").is_some()
}

/// `spec.completions` after Kubernetes' defaulting: both unset means one completion;
/// parallelism without completions is a work queue (None: done when any pod succeeds).
pub fn completions(job: &Value) -> Option<i64> {
    let s = &job["spec"];
    match (s["completions"].as_i64(), s["parallelism"].as_i64()) {
        (Some(c), _) => Some(c.max(0)),
        (None, None) => Some(1),
        (None, Some(_)) => None,
    }
}

fn indexed(job: &Value) -> bool {
    job["spec"]["completionMode"] == "Indexed"
}

/// The completion index of a pod of an Indexed Job.
pub fn pod_index(pod: &Value) -> Option<i64> {
    util::annotation(pod, COMPLETION_INDEX)
        .or_else(|| pod["metadata"]["labels"][COMPLETION_INDEX].as_str())
        .and_then(|s| s.parse().ok())
}

/// Parses `status.completedIndexes` (`"1,3-5"`).
pub fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    out.extend(a..=b.min(a + 1_000_000));
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Formats indexes as Kubernetes does: ascending, consecutive runs as `a-b`.
pub fn format_indexes(set: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    for &i in set {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some((a, b)) => {
                parts.push(range(a, b));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        parts.push(range(a, b));
    }
    parts.join(",")
}

fn range(a: i64, b: i64) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// A new pod of `job` (`GetPodFromTemplate` plus the Job labels): template labels with
/// the controller-uid and job-name labels (the API server adds them to the template in
/// Kubernetes), `generateName: <job>-` (`<job>-<index>-` for Indexed Jobs, which also get
/// the completion-index annotation, label, `JOB_COMPLETION_INDEX` env and hostname).
pub fn pod_for_job(job: &Value, index: Option<i64>) -> Value {
    let t = &job["spec"]["template"];
    let name = util::name(job);
    let mut meta = Map::new();
    meta.insert(
        "generateName".into(),
        json!(match index {
            Some(i) => format!("{name}-{i}-"),
            None => format!("{name}-"),
        }),
    );
    if let Some(ns) = api::meta::namespace(job) {
        meta.insert("namespace".into(), json!(ns));
    }
    if let Some(v) = t["metadata"].get("finalizers").filter(|v| !v.is_null()) {
        meta.insert("finalizers".into(), v.clone());
    }
    let mut labels = t["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let uid = util::uid(job);
    labels.insert(CONTROLLER_UID_LABEL.into(), json!(uid));
    labels.insert(JOB_NAME_LABEL.into(), json!(name));
    labels.insert("controller-uid".into(), json!(uid));
    labels.insert("job-name".into(), json!(name));
    let mut annotations = t["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut spec = t["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    if let Some(i) = index {
        labels.insert(COMPLETION_INDEX.into(), json!(i.to_string()));
        annotations.insert(COMPLETION_INDEX.into(), json!(i.to_string()));
        if spec["hostname"].is_null() {
            spec["hostname"] = json!(format!("{name}-{i}"));
        }
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec[list].as_array_mut() {
                for c in cs {
                    let env = c["env"].as_array().cloned().unwrap_or_default();
                    if env.iter().any(|e| e["name"] == "JOB_COMPLETION_INDEX") {
                        continue;
                    }
                    let mut env = env;
                    env.push(
                        json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                        "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']")}}}),
                    );
                    c["env"] = json!(env);
                }
            }
        }
    }
    meta.insert("labels".into(), Value::Object(labels));
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    meta.insert(
        "ownerReferences".into(),
        json!([util::owner_ref("batch/v1", "Job", job)]),
    );
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// When a pod terminated: the latest container `finishedAt`, else its creation.
fn finished_at(pod: &Value) -> Option<Time> {
    let statuses = pod["status"]["containerStatuses"].as_array();
    statuses
        .into_iter()
        .flatten()
        .filter_map(|c| util::parse_time(&c["state"]["terminated"]["finishedAt"]))
        .max()
        .or_else(|| util::created(pod))
}

/// The pod-failure back-off after `failures` failures: 10 s doubled per further failure,
/// at most 6 minutes (`getBackoff`).
pub fn backoff(failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(16);
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

fn secs(d: time::Duration) -> Duration {
    Duration::from_secs_f64(d.as_seconds_f64().max(0.0))
}

fn finish_condition(t: &str, reason: &str, message: &str, now: Time) -> Value {
    json!({"type": t, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": util::format_time(now), "lastTransitionTime": util::format_time(now)})
}

/// Plans one sync of `job`, given the pods it controls (terminal ones included) and
/// `may_manage` (false while earlier creations or deletions are not yet in the cache).
pub fn plan(job: &Value, pods: &[Arc<Value>], may_manage: bool, now: Time) -> JobPlan {
    let mut out = JobPlan::default();
    let old = &job["status"];
    if is_finished(job) {
        // A finished Job keeps its status; only its TTL runs.
        if let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_i64() {
            let done = util::parse_time(&old["completionTime"]).or_else(|| {
                condition(job, "Complete")
                    .or_else(|| condition(job, "Failed"))
                    .and_then(|c| util::parse_time(&c["lastTransitionTime"]))
            });
            if let Some(done) = done {
                let expires = done + time::Duration::seconds(ttl.max(0));
                if expires <= now {
                    out.delete_job = true;
                } else {
                    out.requeue_after = Some(secs(expires - now) + Duration::from_millis(500));
                }
            }
        }
        out.delete = pods.iter().filter(|p| is_pod_active(p)).cloned().collect();
        if !may_manage {
            out.delete.clear();
        }
        return out;
    }
    if api::meta::is_deleting(job) {
        return out;
    }
    let active: Vec<&Arc<Value>> = pods.iter().filter(|p| is_pod_active(p)).collect();
    let succeeded_pods: Vec<&Arc<Value>> =
        pods.iter().filter(|p| phase(p) == "Succeeded").collect();
    let failed_pods: Vec<&Arc<Value>> = pods.iter().filter(|p| phase(p) == "Failed").collect();
    // Counts never go down: a terminated pod deleted by someone stays counted.
    let mut succeeded = (succeeded_pods.len() as i64).max(int(&old["succeeded"]));
    let failed = (failed_pods.len() as i64).max(int(&old["failed"]));
    let mut completed_indexes = parse_indexes(old["completedIndexes"].as_str().unwrap_or(""));
    let want_completions = completions(job);
    let is_indexed = indexed(job) && want_completions.is_some();
    if is_indexed {
        let total = want_completions.unwrap_or(0);
        completed_indexes.extend(
            succeeded_pods
                .iter()
                .filter_map(|p| pod_index(p))
                .filter(|i| (0..total).contains(i)),
        );
        succeeded = completed_indexes.len() as i64;
    }
    let suspended = job["spec"]["suspend"].as_bool() == Some(true);
    let start_time = match util::parse_time(&old["startTime"]) {
        Some(t) => Some(t),
        None if !suspended => Some(now),
        None => None,
    };
    let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1).max(0);
    let backoff_limit = job["spec"]["backoffLimit"]
        .as_i64()
        .unwrap_or(DEFAULT_BACKOFF_LIMIT);
    // With restartPolicy OnFailure, container restarts are the failures.
    let restarts: i64 = if job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure" {
        active
            .iter()
            .flat_map(|p| {
                p["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .map(|c| int(&c["restartCount"]))
            .sum()
    } else {
        0
    };
    let mut failure: Option<(&'static str, String)> = None;
    if failed + restarts > backoff_limit {
        failure = Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ));
    } else if let (Some(ads), Some(start)) =
        (job["spec"]["activeDeadlineSeconds"].as_i64(), start_time)
        && !suspended
    {
        let deadline = start + time::Duration::seconds(ads);
        if deadline <= now {
            failure = Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".into(),
            ));
        } else {
            out.requeue_after = Some(secs(deadline - now) + Duration::from_millis(500));
        }
    }
    let complete = failure.is_none()
        && match want_completions {
            Some(c) => succeeded >= c,
            // A work queue is done when some pod succeeded and none is left running.
            None => succeeded > 0 && active.is_empty(),
        };
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let mut completion_time = old["completionTime"].clone();
    let mut delete: Vec<Arc<Value>> = Vec::new();
    let mut create: Vec<Value> = Vec::new();
    if let Some((reason, message)) = &failure {
        conditions.push(finish_condition("Failed", reason, message, now));
        // Kubernetes' event repeats the Failed condition's reason and message.
        out.notes.push(Note::warning(reason, message.clone()));
        delete = active.iter().map(|p| (*p).clone()).collect();
    } else if complete {
        conditions.push(finish_condition(
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            now,
        ));
        if want_completions.is_some_and(|c| succeeded > c) {
            out.notes.push(Note::warning(
                "TooManySucceededPods",
                "Too many succeeded pods running after completion count reached",
            ));
        }
        out.notes.push(Note::normal("Completed", "Job completed"));
        completion_time = json!(util::format_time(now));
        delete = active.iter().map(|p| (*p).clone()).collect();
    } else if suspended {
        delete = active.iter().map(|p| (*p).clone()).collect();
    } else {
        // Pod-failure back-off: no new pods until it has passed since the last failure.
        let last_failure = failed_pods.iter().filter_map(|p| finished_at(p)).max();
        let wait = last_failure
            .map(|t| t + time::Duration::seconds_f64(backoff(failed).as_secs_f64()) - now)
            .filter(|d| d.is_positive());
        if is_indexed {
            let total = want_completions.unwrap_or(0);
            let mut running: BTreeSet<i64> = BTreeSet::new();
            let mut by_index: Vec<&Arc<Value>> = active.clone();
            by_index.sort_by_key(|p| util::created(p));
            for p in by_index {
                match pod_index(p) {
                    Some(i)
                        if (0..total).contains(&i)
                            && !completed_indexes.contains(&i)
                            && running.insert(i) => {}
                    // Duplicates, out-of-range and already-completed indexes go.
                    _ => delete.push(p.clone()),
                }
            }
            let slots = parallelism - running.len() as i64;
            let pending = (0..total)
                .filter(|i| !completed_indexes.contains(i) && !running.contains(i))
                .take(usize::try_from(slots.max(0)).unwrap_or(0));
            if wait.is_none() {
                create.extend(pending.map(|i| pod_for_job(job, Some(i))));
            }
        } else {
            let want_active = match want_completions {
                Some(c) => parallelism.min((c - succeeded).max(0)),
                None if succeeded > 0 => 0,
                None => parallelism,
            };
            let have = active.len() as i64;
            if have < want_active && wait.is_none() {
                let n = usize::try_from(want_active - have).unwrap_or(0);
                create.extend(
                    (0..n.min(crate::replicaset::BURST_REPLICAS)).map(|_| pod_for_job(job, None)),
                );
            } else if have > want_active {
                // Delete the pods least far along: unscheduled, not ready, newest.
                let mut ranked = active.clone();
                ranked.sort_by(|a, b| {
                    let assigned = |p: &Value| {
                        p["spec"]["nodeName"]
                            .as_str()
                            .is_some_and(|s| !s.is_empty())
                    };
                    assigned(a)
                        .cmp(&assigned(b))
                        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
                        .then_with(|| util::created(b).cmp(&util::created(a)))
                });
                let n = usize::try_from(have - want_active).unwrap_or(0);
                delete.extend(ranked.into_iter().take(n).cloned());
            }
        }
        if let Some(w) = wait {
            let w = secs(w) + Duration::from_millis(200);
            out.requeue_after = Some(out.requeue_after.map_or(w, |r| r.min(w)));
        }
    }
    if !may_manage {
        create.clear();
        delete.clear();
    }
    let deleting: BTreeSet<&str> = delete.iter().map(|p| util::uid(p)).collect();
    let still_active = if failure.is_some() || complete || suspended {
        0
    } else {
        active.len() as i64
            - active
                .iter()
                .filter(|p| deleting.contains(util::uid(p)))
                .count() as i64
    };
    let ready = active
        .iter()
        .filter(|p| is_pod_ready(p) && !deleting.contains(util::uid(p)))
        .count() as i64;
    if suspended && condition(job, "Suspended").is_none() {
        conditions.retain(|c| c["type"] != "Suspended");
        conditions.push(finish_condition(
            "Suspended",
            "JobSuspended",
            "Job suspended",
            now,
        ));
        out.notes.push(Note::normal("Suspended", "Job suspended"));
    } else if !suspended && condition(job, "Suspended").is_some() {
        for c in conditions.iter_mut().filter(|c| c["type"] == "Suspended") {
            c["status"] = json!("False");
            c["reason"] = json!("JobResumed");
            c["message"] = json!("Job resumed");
            c["lastTransitionTime"] = json!(util::format_time(now));
        }
        out.notes.push(Note::normal("Resumed", "Job resumed"));
    }
    let mut status = json!({
        "active": still_active,
        "succeeded": succeeded,
        "failed": failed,
        "ready": ready,
        "terminating": pods.iter().filter(|p| api::meta::is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed")).count(),
        "uncountedTerminatedPods": {},
    });
    if let Some(t) = start_time {
        status["startTime"] = json!(util::format_time(t));
    }
    if !completion_time.is_null() {
        status["completionTime"] = completion_time;
    }
    if is_indexed {
        status["completedIndexes"] = json!(format_indexes(&completed_indexes));
    }
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    if crate::replicaset::status_differs(job, &status) {
        out.status = Some(status);
    }
    out.create = create;
    out.delete = delete;
    out
}

#[cfg(test)]
mod tests;
