use super::*;
use serde_json::json;

fn t(s: &str) -> Time {
    util::parse_time(&json!(s)).unwrap()
}

fn cj(spec: Value) -> Value {
    let mut s = json!({"schedule": "*/5 * * * *", "jobTemplate": {
        "metadata": {"labels": {"app": "report"}},
        "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "busybox"}]}}}}});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "ns", "uid": "cj-uid",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": s})
}

fn job(name: &str, state: Option<&str>, started: &str) -> Arc<Value> {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "resourceVersion": "7", "creationTimestamp": started,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report",
                                 "uid": "cj-uid", "controller": true}]},
        "status": {"startTime": started}});
    if let Some(s) = state {
        j["status"]["conditions"] = json!([{"type": s, "status": "True"}]);
        j["status"]["completionTime"] = json!(started);
    }
    Arc::new(j)
}

#[test]
fn starts_a_job_named_after_the_scheduled_minute() {
    let now = t("2024-01-01T00:07:30Z");
    let p = plan(&cj(json!({})), &[], now);
    let j = p.create.unwrap();
    // 00:05 UTC is 28401845 minutes after the epoch.
    assert_eq!(
        j["metadata"]["name"],
        format!("report-{}", 1_704_067_500 / 60)
    );
    assert_eq!(j["metadata"]["labels"]["app"], "report");
    assert_eq!(
        j["metadata"]["annotations"][SCHEDULED_TIMESTAMP],
        "2024-01-01T00:05:00Z"
    );
    assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(j["metadata"]["ownerReferences"][0]["uid"], "cj-uid");
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
    assert_eq!(p.status["lastScheduleTime"], "2024-01-01T00:05:00Z");
    // Next run at 00:10: 150 s away (+100 ms).
    assert_eq!(p.requeue_after, Some(Duration::from_millis(150_100)));
}

#[test]
fn nothing_is_due_before_the_first_time_after_creation() {
    let p = plan(&cj(json!({})), &[], t("2024-01-01T00:04:59Z"));
    assert!(p.create.is_none());
    assert_eq!(p.requeue_after, Some(Duration::from_millis(1_100)));
    // A time already handled is not run again.
    let mut c = cj(json!({}));
    c["status"] = json!({"lastScheduleTime": "2024-01-01T00:05:00Z"});
    assert!(plan(&c, &[], t("2024-01-01T00:09:00Z")).create.is_none());
}

#[test]
fn missed_times_run_once_for_the_most_recent() {
    let mut c = cj(json!({}));
    c["status"] = json!({"lastScheduleTime": "2024-01-01T00:05:00Z"});
    // Down for an hour: one Job, for 01:05, not eleven.
    let p = plan(&c, &[], t("2024-01-01T01:07:00Z"));
    assert_eq!(p.status["lastScheduleTime"], "2024-01-01T01:05:00Z");
    assert!(p.create.is_some());
}

#[test]
fn starting_deadline_skips_runs_that_are_too_late() {
    let c = cj(json!({"startingDeadlineSeconds": 60}));
    // 00:05 was due 2.5 min ago: more than 60 s late.
    let p = plan(&c, &[], t("2024-01-01T00:07:30Z"));
    assert!(p.create.is_none());
    // Silently, as in Kubernetes' CronJob controller v2: a time older than the deadline
    // is never the "most recent unmet" one, so its MissSchedule branch is not reached.
    assert!(p.notes.is_empty());
    // Within the deadline it runs.
    assert!(plan(&c, &[], t("2024-01-01T00:05:50Z")).create.is_some());
}

#[test]
fn suspended_cronjobs_start_nothing() {
    let p = plan(
        &cj(json!({"suspend": true})),
        &[],
        t("2024-01-01T00:07:30Z"),
    );
    assert!(p.create.is_none());
    assert!(p.requeue_after.is_none());
}

#[test]
fn forbid_waits_for_the_running_job_and_replace_stops_it() {
    let running = job("report-1", None, "2024-01-01T00:00:00Z");
    let now = t("2024-01-01T00:07:30Z");
    let p = plan(
        &cj(json!({"concurrencyPolicy": "Forbid"})),
        std::slice::from_ref(&running),
        now,
    );
    assert!(p.create.is_none());
    assert_eq!(
        p.notes,
        [Note::normal(
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
        )]
    );
    assert_eq!(p.status["active"][0]["name"], "report-1");
    assert!(
        p.status.get("lastScheduleTime").is_none(),
        "the time stays due"
    );

    let p = plan(
        &cj(json!({"concurrencyPolicy": "Replace"})),
        std::slice::from_ref(&running),
        now,
    );
    assert!(p.create.is_some());
    assert_eq!(p.delete.len(), 1);
    assert!(p.status.get("active").is_none());

    // Allow (the default) runs them side by side.
    let p = plan(&cj(json!({})), &[running], now);
    assert!(p.create.is_some() && p.delete.is_empty());
    let mut status = p.status.clone();
    record_active(
        &mut status,
        &json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "new", "namespace": "ns", "uid": "u-new", "resourceVersion": "9"}}),
    );
    let names: Vec<&str> = status["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["report-1", "new"]);
    assert_eq!(status["active"][1]["kind"], "Job");
    assert_eq!(status["active"][1]["uid"], "u-new");
}

#[test]
fn finished_jobs_leave_active_and_record_the_last_success() {
    let mut c = cj(json!({}));
    c["status"] = json!({"lastScheduleTime": "2024-01-01T00:05:00Z",
        "active": [{"kind": "Job", "name": "report-a", "uid": "uid-report-a"}]});
    let done = job("report-a", Some("Complete"), "2024-01-01T00:06:00Z");
    let p = plan(&c, &[done], t("2024-01-01T00:07:00Z"));
    assert!(p.status.get("active").is_none());
    assert_eq!(p.status["lastSuccessfulTime"], "2024-01-01T00:06:00Z");
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let jobs: Vec<Arc<Value>> = vec![
        job("s1", Some("Complete"), "2024-01-01T00:01:00Z"),
        job("s2", Some("Complete"), "2024-01-01T00:02:00Z"),
        job("s3", Some("Complete"), "2024-01-01T00:03:00Z"),
        job("s4", Some("Complete"), "2024-01-01T00:04:00Z"),
        job("f1", Some("Failed"), "2024-01-01T00:01:30Z"),
        job("f2", Some("Failed"), "2024-01-01T00:02:30Z"),
        job("run", None, "2024-01-01T00:00:00Z"),
    ];
    // Defaults: 3 successful, 1 failed.
    let p = plan(&cj(json!({})), &jobs, t("2024-01-01T00:04:30Z"));
    let mut gone: Vec<&str> = p.delete.iter().map(|j| util::name(j)).collect();
    gone.sort();
    assert_eq!(gone, ["f1", "s1"]);
    let p = plan(
        &cj(json!({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0})),
        &jobs,
        t("2024-01-01T00:04:30Z"),
    );
    assert_eq!(p.delete.len(), 6);
}

#[test]
fn a_job_already_made_for_the_time_is_not_made_again() {
    let now = t("2024-01-01T00:07:30Z");
    let name = job_name(&cj(json!({})), t("2024-01-01T00:05:00Z"));
    let existing = job(&name, None, "2024-01-01T00:05:00Z");
    let p = plan(&cj(json!({})), &[existing], now);
    assert!(p.create.is_none());
    assert_eq!(p.status["lastScheduleTime"], "2024-01-01T00:05:00Z");
}

#[test]
fn bad_schedules_and_unknown_time_zones_start_nothing() {
    let p = plan(
        &cj(json!({"schedule": "61 * * * *"})),
        &[],
        t("2024-01-01T00:07:30Z"),
    );
    assert!(p.create.is_none());
    assert_eq!(p.notes.len(), 1);
    assert_eq!(p.notes[0].reason, "UnparseableSchedule");
    assert!(
        p.notes[0]
            .message
            .starts_with("unparseable schedule: \"61 * * * *\" : "),
        "{:?}",
        p.notes
    );
    let p = plan(
        &cj(json!({"timeZone": "Europe/Paris"})),
        &[],
        t("2024-01-01T00:07:30Z"),
    );
    assert!(p.create.is_none());
    assert_eq!(p.notes.len(), 1);
    assert_eq!(
        (p.notes[0].type_, p.notes[0].reason),
        (events::WARNING, "UnknownTimeZone")
    );
    assert!(
        p.notes[0]
            .message
            .starts_with("invalid timeZone: \"Europe/Paris\": unknown time zone Europe/Paris")
    );
    assert!(
        plan(
            &cj(json!({"timeZone": "Etc/UTC"})),
            &[],
            t("2024-01-01T00:07:30Z")
        )
        .create
        .is_some()
    );
}

#[test]
fn jobs_of_other_owners_are_ignored() {
    let mut other = (*job("x", None, "2024-01-01T00:00:00Z")).clone();
    other["metadata"]["ownerReferences"][0]["uid"] = json!("someone");
    let p = plan(
        &cj(json!({"concurrencyPolicy": "Forbid"})),
        &[Arc::new(other)],
        t("2024-01-01T00:07:30Z"),
    );
    assert!(p.create.is_some());
}

#[test]
fn a_job_seen_finished_while_listed_active_is_noted_once() {
    let mut c = cj(json!({}));
    c["status"] = json!({"lastScheduleTime": "2024-01-01T00:05:00Z",
        "active": [{"kind": "Job", "name": "report-a", "uid": "uid-report-a"},
                   {"kind": "Job", "name": "report-b", "uid": "uid-report-b"}]});
    let jobs = [
        job("report-a", Some("Complete"), "2024-01-01T00:05:00Z"),
        job("report-b", Some("Failed"), "2024-01-01T00:05:00Z"),
    ];
    let now = t("2024-01-01T00:07:00Z");
    let p = plan(&c, &jobs, now);
    assert_eq!(
        p.notes,
        [
            Note::normal(
                "SawCompletedJob",
                "Saw completed job: report-a, condition: Complete"
            ),
            Note::normal(
                "SawCompletedJob",
                "Saw completed job: report-b, condition: Failed"
            ),
        ]
    );
    assert!(p.unexpected.is_empty() && p.missing.is_empty());
    // Once the status no longer lists them, nothing more is said.
    c["status"] = p.status;
    assert!(plan(&c, &jobs, now).notes.is_empty());
}

#[test]
fn unlisted_running_jobs_and_listed_missing_jobs_are_reported() {
    let mut c = cj(json!({}));
    c["status"] = json!({"lastScheduleTime": "2024-01-01T00:05:00Z",
        "active": [{"kind": "Job", "name": "report-a", "uid": "uid-report-a"},
                   {"kind": "Job", "name": "gone", "uid": "uid-gone"}]});
    let jobs = [
        job("report-a", None, "2024-01-01T00:05:00Z"),
        job("stray", None, "2024-01-01T00:05:00Z"),
    ];
    let p = plan(&c, &jobs, t("2024-01-01T00:07:00Z"));
    assert_eq!(p.unexpected, ["stray"]);
    assert_eq!(p.missing.len(), 1);
    assert_eq!(p.missing[0]["name"], "gone");
    // The missing one is out of the planned status (the I/O side puts it back if the
    // API still has it); the stray one is in, as it runs for us.
    let names: Vec<&str> = p.status["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["report-a", "stray"]);
    assert!(p.notes.is_empty());
}
