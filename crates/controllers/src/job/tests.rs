use super::*;
use serde_json::json;

fn t(s: &str) -> Time {
    util::parse_time(&json!(s)).unwrap()
}

fn now() -> Time {
    t("2024-01-01T00:10:00Z")
}

fn job(spec: Value) -> Value {
    let mut s = json!({"template": {"metadata": {"labels": {"app": "batch"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "ns", "uid": "job-uid", "generation": 1},
        "spec": s, "status": {"startTime": "2024-01-01T00:00:00Z"}})
}

fn pod(name: &str, phase: &str) -> Arc<Value> {
    Arc::new(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {}, "status": {"phase": phase}
    }))
}

fn indexed_pod(name: &str, i: i64, phase: &str) -> Arc<Value> {
    let mut p = (*pod(name, phase)).clone();
    p["metadata"]["annotations"] = json!({COMPLETION_INDEX: i.to_string()});
    Arc::new(p)
}

fn cond<'a>(s: &'a Value, ty: &str) -> Option<&'a Value> {
    s["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty && c["status"] == "True")
}

#[test]
fn defaults_run_one_pod_to_one_completion() {
    let p = plan(&job(json!({})), &[], true, now());
    assert_eq!(p.create.len(), 1);
    let pod = &p.create[0];
    assert_eq!(pod["metadata"]["generateName"], "pi-");
    let l = &pod["metadata"]["labels"];
    assert_eq!(l["app"], "batch");
    assert_eq!(l[CONTROLLER_UID_LABEL], "job-uid");
    assert_eq!(l[JOB_NAME_LABEL], "pi");
    assert_eq!(l["job-name"], "pi");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);

    let done = plan(&job(json!({})), &[pod_done("a")], true, now());
    let s = done.status.unwrap();
    assert!(cond(&s, "Complete").is_some());
    assert_eq!(s["succeeded"], 1);
    assert_eq!(s["active"], 0);
    assert_eq!(s["completionTime"], "2024-01-01T00:10:00Z");
    assert!(done.create.is_empty());
}

fn pod_done(name: &str) -> Arc<Value> {
    pod(name, "Succeeded")
}

#[test]
fn parallelism_caps_active_pods_and_completions_caps_the_total() {
    let j = job(json!({"completions": 5, "parallelism": 2}));
    assert_eq!(plan(&j, &[], true, now()).create.len(), 2);
    // 4 succeeded: only one more is needed, even though 2 may run at once.
    let pods: Vec<_> = (0..4).map(|i| pod_done(&format!("s{i}"))).collect();
    let p = plan(&j, &pods, true, now());
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.status.unwrap()["succeeded"], 4);
    // Too many active pods (parallelism lowered): the extra ones go, newest first.
    let mut newer = (*pod("new", "Running")).clone();
    newer["metadata"]["creationTimestamp"] = json!("2024-01-01T00:05:00Z");
    let pods = vec![pod("old", "Running"), Arc::new(newer), pod("x", "Running")];
    let j1 = job(json!({"completions": 5, "parallelism": 1}));
    let p = plan(&j1, &pods, true, now());
    assert_eq!(p.delete.len(), 2);
    assert!(p.delete.iter().any(|d| util::name(d) == "new"));
    assert_eq!(p.status.unwrap()["active"], 1);
}

#[test]
fn a_work_queue_is_done_once_a_pod_succeeded_and_none_runs() {
    // parallelism without completions: Kubernetes' work-queue pattern.
    let j = job(json!({"parallelism": 3}));
    assert_eq!(completions(&j), None);
    assert_eq!(plan(&j, &[], true, now()).create.len(), 3);
    let p = plan(&j, &[pod_done("a"), pod("b", "Running")], true, now());
    assert!(p.create.is_empty(), "no new pods once one succeeded");
    assert!(cond(p.status.as_ref().unwrap(), "Complete").is_none());
    let p = plan(
        &j,
        &[pod_done("a"), pod("b", "Failed")],
        true,
        now() + time::Duration::hours(1),
    );
    assert!(cond(p.status.as_ref().unwrap(), "Complete").is_some());
}

#[test]
fn backoff_limit_fails_the_job() {
    let j = job(json!({"backoffLimit": 1}));
    let later = now() + time::Duration::hours(1);
    // One failure is within the limit: a replacement is created after the back-off.
    let p = plan(&j, &[pod("f1", "Failed")], true, later);
    assert_eq!(p.create.len(), 1);
    assert!(cond(p.status.as_ref().unwrap(), "Failed").is_none());
    // Two failures exceed backoffLimit 1.
    let p = plan(
        &j,
        &[
            pod("f1", "Failed"),
            pod("f2", "Failed"),
            pod("r", "Running"),
        ],
        true,
        later,
    );
    let s = p.status.unwrap();
    let c = cond(&s, "Failed").unwrap();
    assert_eq!(c["reason"], "BackoffLimitExceeded");
    assert_eq!(s["failed"], 2);
    assert_eq!(s["active"], 0);
    assert!(p.create.is_empty());
    assert_eq!(names(&p.delete), ["r"]);
}

fn names(v: &[Arc<Value>]) -> Vec<&str> {
    v.iter().map(|p| util::name(p)).collect()
}

#[test]
fn restarts_count_as_failures_with_restart_policy_on_failure() {
    let mut j = job(json!({"backoffLimit": 2}));
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let mut p = (*pod("a", "Running")).clone();
    p["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 3}]);
    let plan = plan(&j, &[Arc::new(p)], true, now());
    assert_eq!(
        cond(plan.status.as_ref().unwrap(), "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
}

#[test]
fn failed_pods_are_replaced_only_after_an_exponential_backoff() {
    let j = job(json!({"backoffLimit": 6}));
    let mut f = (*pod("f1", "Failed")).clone();
    f["status"]["containerStatuses"] = json!([{"name": "c", "state": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:09:55Z"}}}]);
    let p = plan(&j, &[Arc::new(f.clone())], true, now());
    // First failure: 10 s back-off from 00:09:55, i.e. 5 s left.
    assert!(p.create.is_empty());
    let r = p.requeue_after.unwrap();
    assert!(
        r >= Duration::from_secs(5) && r < Duration::from_secs(6),
        "{r:?}"
    );
    assert_eq!(
        plan(&j, &[Arc::new(f)], true, now() + time::Duration::seconds(6))
            .create
            .len(),
        1
    );
    assert_eq!(backoff(1), Duration::from_secs(10));
    assert_eq!(backoff(3), Duration::from_secs(40));
    assert_eq!(backoff(20), BACKOFF_MAX);
}

#[test]
fn active_deadline_fails_the_job_and_stops_its_pods() {
    let j = job(json!({"activeDeadlineSeconds": 60, "completions": 3}));
    // Started 00:00:00, deadline 00:01:00, now 00:10:00.
    let p = plan(&j, &[pod("a", "Running")], true, now());
    let s = p.status.unwrap();
    assert_eq!(cond(&s, "Failed").unwrap()["reason"], "DeadlineExceeded");
    assert_eq!(names(&p.delete), ["a"]);
    // Before the deadline: a requeue for when it comes.
    let j = job(json!({"activeDeadlineSeconds": 900}));
    let p = plan(&j, &[pod("a", "Running")], true, now());
    assert!(p.status.is_none_or(|s| cond(&s, "Failed").is_none()));
    let r = p.requeue_after.unwrap();
    assert!(
        r >= Duration::from_secs(300) && r < Duration::from_secs(301),
        "{r:?}"
    );
}

#[test]
fn a_new_job_gets_a_start_time() {
    let mut j = job(json!({}));
    j["status"] = json!({});
    let s = plan(&j, &[], true, now()).status.unwrap();
    assert_eq!(s["startTime"], "2024-01-01T00:10:00Z");
    assert_eq!(s["active"], 0);
}

#[test]
fn finished_jobs_are_left_alone_until_their_ttl_expires() {
    let mut j = job(json!({"ttlSecondsAfterFinished": 100}));
    j["status"] = json!({"completionTime": "2024-01-01T00:09:00Z", "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True"}]});
    let p = plan(&j, &[pod_done("a")], true, now());
    assert!(!p.delete_job && p.create.is_empty() && p.status.is_none());
    let r = p.requeue_after.unwrap();
    assert!(
        r >= Duration::from_secs(40) && r < Duration::from_secs(41),
        "{r:?}"
    );
    let p = plan(&j, &[], true, now() + time::Duration::seconds(40));
    assert!(p.delete_job);
    // Without a TTL a finished Job stays.
    j["spec"]["ttlSecondsAfterFinished"] = Value::Null;
    assert!(!plan(&j, &[], true, now() + time::Duration::days(9)).delete_job);
}

#[test]
fn succeeded_counts_never_go_down_when_pods_disappear() {
    let mut j = job(json!({"completions": 3}));
    j["status"]["succeeded"] = json!(2);
    let p = plan(&j, &[], true, now());
    assert_eq!(p.create.len(), 1);
    // The stored count stands: no status write lowers it.
    assert!(p.status.is_none());
    j["status"]["succeeded"] = json!(0);
    assert_eq!(
        plan(&j, &[pod_done("a"), pod_done("b")], true, now())
            .status
            .unwrap()["succeeded"],
        2
    );
}

#[test]
fn indexed_jobs_run_each_index_once() {
    let j = job(json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}));
    let p = plan(&j, &[], true, now());
    let idx: Vec<Option<i64>> = p.create.iter().map(pod_index).collect();
    assert_eq!(idx, [Some(0), Some(1)]);
    assert_eq!(p.create[0]["metadata"]["generateName"], "pi-0-");
    assert_eq!(p.create[1]["spec"]["hostname"], "pi-1");
    assert_eq!(p.create[0]["metadata"]["labels"][COMPLETION_INDEX], "0");
    assert_eq!(
        p.create[0]["spec"]["containers"][0]["env"][0]["name"],
        "JOB_COMPLETION_INDEX"
    );
    // 0 done, 2 running (plus a duplicate of 2): start 1, delete the duplicate.
    let mut dup = (*indexed_pod("dup2", 2, "Running")).clone();
    dup["metadata"]["creationTimestamp"] = json!("2024-01-01T00:05:00Z");
    let pods = vec![
        indexed_pod("a", 0, "Succeeded"),
        indexed_pod("b", 2, "Running"),
        Arc::new(dup),
    ];
    let p = plan(&j, &pods, true, now());
    assert_eq!(
        p.create.iter().map(pod_index).collect::<Vec<_>>(),
        [Some(1)]
    );
    assert_eq!(names(&p.delete), ["dup2"]);
    assert_eq!(p.status.unwrap()["completedIndexes"], "0");
    // All indexes done.
    let pods: Vec<_> = (0..4)
        .map(|i| indexed_pod(&format!("p{i}"), i, "Succeeded"))
        .collect();
    let s = plan(&j, &pods, true, now()).status.unwrap();
    assert_eq!(s["completedIndexes"], "0-3");
    assert!(cond(&s, "Complete").is_some());
}

#[test]
fn completed_indexes_round_trip() {
    let s = parse_indexes("1,3-5,7");
    assert_eq!(s.iter().copied().collect::<Vec<_>>(), [1, 3, 4, 5, 7]);
    assert_eq!(format_indexes(&s), "1,3-5,7");
    assert_eq!(format_indexes(&BTreeSet::new()), "");
}

#[test]
fn suspended_jobs_stop_their_pods() {
    let j = job(json!({"suspend": true, "parallelism": 2, "completions": 2}));
    let p = plan(&j, &[pod("a", "Running")], true, now());
    assert!(p.create.is_empty());
    assert_eq!(names(&p.delete), ["a"]);
    let s = p.status.unwrap();
    assert_eq!(cond(&s, "Suspended").unwrap()["reason"], "JobSuspended");
    assert_eq!(s["active"], 0);
}

#[test]
fn unsatisfied_expectations_block_pod_writes() {
    let p = plan(
        &job(json!({"parallelism": 3, "completions": 3})),
        &[],
        false,
        now(),
    );
    assert!(p.create.is_empty());
}

#[test]
fn finishing_transitions_are_noted_with_kubernetes_wording() {
    // Completion: Normal Completed "Job completed", once (a finished Job plans nothing).
    let j = job(json!({"completions": 2}));
    let p = plan(&j, &[pod_done("a"), pod_done("b")], true, now());
    assert_eq!(p.notes, [Note::normal("Completed", "Job completed")]);
    let mut finished = j.clone();
    finished["status"] = p.status.unwrap();
    assert!(
        plan(&finished, &[pod_done("a"), pod_done("b")], true, now())
            .notes
            .is_empty()
    );
    // More successes than completions: Kubernetes warns first.
    let p = plan(
        &j,
        &[pod_done("a"), pod_done("b"), pod_done("c")],
        true,
        now(),
    );
    assert_eq!(
        p.notes,
        [
            Note::warning(
                "TooManySucceededPods",
                "Too many succeeded pods running after completion count reached"
            ),
            Note::normal("Completed", "Job completed"),
        ]
    );
    // Failure: the Failed condition's reason and message as a Warning.
    let p = plan(
        &job(json!({"backoffLimit": 0})),
        &[pod("f", "Failed")],
        true,
        now(),
    );
    assert_eq!(
        p.notes,
        [Note::warning(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit"
        )]
    );
    let p = plan(
        &job(json!({"activeDeadlineSeconds": 60})),
        &[pod("a", "Running")],
        true,
        now(),
    );
    assert_eq!(
        p.notes,
        [Note::warning(
            "DeadlineExceeded",
            "Job was active longer than specified deadline"
        )]
    );
    // Running along makes no events.
    let p = plan(
        &job(json!({"completions": 2})),
        &[pod("a", "Running")],
        true,
        now(),
    );
    assert!(p.notes.is_empty());
}

#[test]
fn suspending_and_resuming_are_noted_once() {
    let j = job(json!({"suspend": true}));
    let p = plan(&j, &[], true, now());
    assert_eq!(p.notes, [Note::normal("Suspended", "Job suspended")]);
    let mut suspended = j.clone();
    suspended["status"] = p.status.unwrap();
    assert!(plan(&suspended, &[], true, now()).notes.is_empty());
    suspended["spec"]["suspend"] = json!(false);
    let p = plan(&suspended, &[], true, now());
    assert_eq!(p.notes, [Note::normal("Resumed", "Job resumed")]);
}
