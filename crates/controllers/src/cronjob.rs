//! The CronJob reconcile logic, pure (Kubernetes' `pkg/controller/cronjob`, v2): which
//! Job to start for the most recent due schedule time (`<cronjob>-<minutes since
//! epoch>`), honouring suspend, startingDeadlineSeconds and the concurrency policy,
//! which finished Jobs the history limits remove, and the status (`active`,
//! `lastScheduleTime`, `lastSuccessfulTime`). Time is passed in.

use crate::cron::Schedule;
use crate::events::{self, Note};
use crate::util::{self, Time, controller_ref};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The annotation recording which schedule time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Default `successfulJobsHistoryLimit`.
pub const DEFAULT_SUCCESSFUL_HISTORY: usize = 3;
/// Default `failedJobsHistoryLimit`.
pub const DEFAULT_FAILED_HISTORY: usize = 1;

/// What one CronJob sync must do.
#[derive(Clone, Debug, Default)]
pub struct CronPlan {
    /// Finished Jobs beyond the history limits, and active ones a Replace policy stops
    /// (delete with background propagation: their pods go too).
    pub delete: Vec<Arc<Value>>,
    /// The Job to start now, if a schedule time is due.
    pub create: Option<Value>,
    /// The new status (without the Job about to be created: see [`record_active`]).
    pub status: Value,
    /// When the next schedule time comes (None when suspended or unschedulable).
    pub requeue_after: Option<Duration>,
    /// Events about the CronJob to record once the status is written: `SawCompletedJob`,
    /// and why nothing was started although a time was due (`MissSchedule`,
    /// `JobAlreadyActive`, `UnparseableSchedule`, `UnknownTimeZone`). The Job creations
    /// and deletions are recorded by whoever makes them.
    pub notes: Vec<Note>,
    /// Unfinished Jobs of ours that `status.active` does not list. Kubernetes warns about
    /// them (`UnexpectedJob`) after re-reading the CronJob: a cache may simply not show
    /// our own status write yet.
    pub unexpected: Vec<String>,
    /// References in `status.active` to Jobs the cache does not hold (left out of
    /// [`CronPlan::status`]). The Job may just not be in the cache yet: Kubernetes asks
    /// the API, keeps the reference if the Job exists and records `MissingJob` if not.
    pub missing: Vec<Value>,
}

fn finished(job: &Value) -> Option<&'static str> {
    let conds = job["status"]["conditions"].as_array()?;
    conds
        .iter()
        .filter(|c| c["status"] == "True")
        .find_map(|c| match c["type"].as_str() {
            Some("Complete") => Some("Complete"),
            Some("Failed") => Some("Failed"),
            _ => None,
        })
}

/// The Job name for a schedule time: `<cronjob>-<minutes since the epoch>`
/// (`getJobName`), so a retried sync never starts the same run twice.
pub fn job_name(cj: &Value, scheduled: Time) -> String {
    format!(
        "{}-{}",
        util::name(cj),
        scheduled.unix_timestamp().div_euclid(60)
    )
}

/// The Job of one run (`getJobFromTemplate2`): the jobTemplate's metadata and spec, the
/// scheduled-timestamp annotation and the CronJob's controller reference.
pub fn job_from_template(cj: &Value, scheduled: Time) -> Value {
    let t = &cj["spec"]["jobTemplate"];
    let mut meta = Map::new();
    meta.insert("name".into(), json!(job_name(cj, scheduled)));
    if let Some(ns) = api::meta::namespace(cj) {
        meta.insert("namespace".into(), json!(ns));
    }
    if let Some(l) = t["metadata"].get("labels").filter(|v| !v.is_null()) {
        meta.insert("labels".into(), l.clone());
    }
    let mut annotations = t["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        json!(util::format_time(scheduled)),
    );
    meta.insert("annotations".into(), Value::Object(annotations));
    meta.insert(
        "ownerReferences".into(),
        json!([util::owner_ref("batch/v1", "CronJob", cj)]),
    );
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": t["spec"].clone()})
}

/// Adds a just-created Job to `status.active`.
pub fn record_active(status: &mut Value, job: &Value) {
    if !status.is_object() {
        *status = json!({});
    }
    let mut active = status["active"].as_array().cloned().unwrap_or_default();
    if !active.iter().any(|r| r["uid"] == job["metadata"]["uid"]) {
        active.push(crate::workloads::object_reference(job));
    }
    status["active"] = json!(active);
}

fn started(job: &Value) -> Option<Time> {
    util::parse_time(&job["status"]["startTime"]).or_else(|| util::created(job))
}

/// Plans one sync of `cj` given the Jobs it controls, at `now`.
pub fn plan(cj: &Value, jobs: &[Arc<Value>], now: Time) -> CronPlan {
    let mut out = CronPlan::default();
    let uid = util::uid(cj);
    let jobs: Vec<&Arc<Value>> = jobs
        .iter()
        .filter(|j| controller_ref(j).and_then(|r| r["uid"].as_str()) == Some(uid))
        .collect();
    let mut status = match cj["status"].as_object() {
        Some(m) => Value::Object(m.clone()),
        None => json!({}),
    };
    let old_active = status["active"].as_array().cloned().unwrap_or_default();
    let listed = |j: &Value| old_active.iter().any(|r| r["uid"] == j["metadata"]["uid"]);
    // status.active: the Jobs that exist and are not finished.
    let mut active: Vec<Value> = Vec::new();
    let mut last_success = util::parse_time(&status["lastSuccessfulTime"]);
    for j in &jobs {
        let state = finished(j);
        match state {
            None if !api::meta::is_deleting(j) => {
                active.push(crate::workloads::object_reference(j));
                if !listed(j) {
                    out.unexpected.push(util::name(j).to_string());
                }
            }
            Some("Complete") => {
                let done = util::parse_time(&j["status"]["completionTime"]);
                if done > last_success {
                    last_success = done;
                }
            }
            _ => {}
        }
        if let Some(condition) = state
            && listed(j)
        {
            out.notes.push(Note::normal(
                "SawCompletedJob",
                format!(
                    "Saw completed job: {}, condition: {condition}",
                    util::name(j)
                ),
            ));
        }
    }
    out.missing = old_active
        .iter()
        .filter(|r| !jobs.iter().any(|j| j["metadata"]["uid"] == r["uid"]))
        .cloned()
        .collect();
    active.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    // Keep the stored references' fields (resourceVersion) stable when nothing changed.
    for r in &mut active {
        if let Some(old) = old_active.iter().find(|o| o["uid"] == r["uid"]) {
            *r = old.clone();
        }
    }
    if active.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("active");
        }
    } else {
        status["active"] = json!(active);
    }
    if let Some(t) = last_success {
        status["lastSuccessfulTime"] = json!(util::format_time(t));
    }
    // History limits: the newest N successful and M failed finished Jobs stay.
    for (kind, field, default) in [
        (
            "Complete",
            "successfulJobsHistoryLimit",
            DEFAULT_SUCCESSFUL_HISTORY,
        ),
        ("Failed", "failedJobsHistoryLimit", DEFAULT_FAILED_HISTORY),
    ] {
        let limit = cj["spec"][field]
            .as_i64()
            .map_or(default, |n| usize::try_from(n).unwrap_or(0));
        let mut done: Vec<&Arc<Value>> = jobs
            .iter()
            .copied()
            .filter(|j| finished(j) == Some(kind) && !api::meta::is_deleting(j))
            .collect();
        done.sort_by(|a, b| {
            started(b)
                .cmp(&started(a))
                .then_with(|| util::name(b).cmp(util::name(a)))
        });
        out.delete.extend(done.into_iter().skip(limit).cloned());
    }
    out.status = status;
    if api::meta::is_deleting(cj) || cj["spec"]["suspend"].as_bool() == Some(true) {
        return out;
    }
    if let Some(tz) = cj["spec"]["timeZone"].as_str()
        && !matches!(tz, "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT")
    {
        // Drover knows only UTC: to it, every other zone is unknown.
        out.notes.push(Note::warning(
            "UnknownTimeZone",
            format!("invalid timeZone: {tz:?}: unknown time zone {tz} (only UTC is supported)"),
        ));
        return out;
    }
    let spec_schedule = cj["spec"]["schedule"].as_str().unwrap_or_default();
    let schedule = match Schedule::parse(spec_schedule) {
        Ok(s) => s,
        Err(e) => {
            out.notes.push(Note::warning(
                "UnparseableSchedule",
                format!("unparseable schedule: {spec_schedule:?} : {e}"),
            ));
            return out;
        }
    };
    if let Some(next) = schedule.next_after(now) {
        let d = (next - now).as_seconds_f64().max(0.0);
        out.requeue_after = Some(Duration::from_secs_f64(d) + Duration::from_millis(100));
    }
    // The most recent schedule time after the last one handled (or the creation).
    let mut earliest = util::parse_time(&out.status["lastScheduleTime"])
        .or_else(|| util::created(cj))
        .unwrap_or(now);
    let deadline = cj["spec"]["startingDeadlineSeconds"].as_i64();
    if let Some(sds) = deadline {
        earliest = earliest.max(now - time::Duration::seconds(sds));
    }
    let Some(scheduled) = schedule.prev_at_or_before(now).filter(|t| *t > earliest) else {
        return out;
    };
    // As in Kubernetes' controller v2, `earliest` already excludes times past the
    // deadline, so this MissSchedule guard only matters if that clamping changes.
    if let Some(sds) = deadline
        && scheduled + time::Duration::seconds(sds) < now
    {
        out.notes.push(Note::warning(
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                events::rfc1123z(scheduled)
            ),
        ));
        return out;
    }
    let name = job_name(cj, scheduled);
    if jobs.iter().any(|j| util::name(j) == name) {
        // Already started for this time (a status write was lost): just record it.
        out.status["lastScheduleTime"] = json!(util::format_time(scheduled));
        return out;
    }
    let running: Vec<&Arc<Value>> = jobs
        .iter()
        .copied()
        .filter(|j| finished(j).is_none() && !api::meta::is_deleting(j))
        .collect();
    match cj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow") {
        "Forbid" if !running.is_empty() => {
            // The time stays due: it runs later if still within the deadline.
            out.notes.push(Note::normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            ));
            return out;
        }
        "Replace" => {
            out.delete.extend(running.iter().map(|j| (*j).clone()));
            if let Some(m) = out.status.as_object_mut() {
                m.remove("active");
            }
        }
        _ => {}
    }
    out.status["lastScheduleTime"] = json!(util::format_time(scheduled));
    out.create = Some(job_from_template(cj, scheduled));
    out
}

#[cfg(test)]
mod tests;
