//! End-to-end: the Events of the DaemonSet, Job, CronJob and StatefulSet controllers as
//! the real kubectl describe shows them, against the real `drover server` (built
//! beforehand with `cargo build -p drover`), with hollow nodes for the DaemonSet to
//! cover. Nothing binds pods (no scheduler runs): the test plays the node agent for the
//! Job and StatefulSet pods by writing their statuses itself.

mod common;

use client::{ListParams, Patch, PatchParams, Resource};
use common::{Server, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

fn options() -> controllers::Options {
    controllers::Options {
        workers: 2,
        resync: Duration::from_secs(5),
        ..Default::default()
    }
}

fn hollow(prefix: &str, i: u32) -> agent::hollow::HollowOptions {
    agent::hollow::HollowOptions {
        lease_duration_seconds: 8,
        status_interval: Duration::from_secs(2),
        ..Default::default()
    }
    .for_index(prefix, i)
}

/// `kubectl apply -f` of a manifest written into the server's directory.
async fn apply(server: &Server, name: &str, manifest: &str) {
    let path = server.dir.path().join(name);
    std::fs::write(&path, manifest).unwrap();
    server
        .kubectl(&["apply", "-f", path.to_str().unwrap()])
        .await;
}

async fn describe(server: &Server, what: &str) -> String {
    server.kubectl(&["describe", what]).await
}

fn now_string() -> String {
    controllers::util::format_time(time::OffsetDateTime::now_utc())
}

fn owner_kind(p: &Value) -> Option<&str> {
    p["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["kind"]
        .as_str()
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The pod status a node agent reports for a container that ended in `phase`.
fn terminated(phase: &str) -> Value {
    let code = if phase == "Failed" { 1 } else { 0 };
    json!({"phase": phase, "containerStatuses": [{"name": "c", "ready": false,
        "restartCount": 0, "image": "busybox", "imageID": "",
        "state": {"terminated": {"exitCode": code, "finishedAt": now_string()}}}]})
}

/// Plays the node agent: pods of the Job `crash` fail, other Job pods succeed,
/// StatefulSet pods run and become Ready. DaemonSet pods stay Pending (unbound).
fn play_agent(c: client::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pods = c
                .list(&Resource::PODS, Some(NS), &ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for p in pods {
                if !p["metadata"]["deletionTimestamp"].is_null() {
                    continue;
                }
                let phase = p["status"]["phase"].as_str().unwrap_or_default();
                if matches!(phase, "Succeeded" | "Failed") {
                    continue;
                }
                let status = match (
                    owner_kind(&p),
                    p["metadata"]["labels"]["batch.kubernetes.io/job-name"].as_str(),
                ) {
                    (Some("Job"), Some("crash")) => terminated("Failed"),
                    (Some("Job"), Some(_)) => terminated("Succeeded"),
                    (Some("StatefulSet"), _) if !is_ready(&p) => {
                        json!({"phase": "Running", "conditions": [
                            {"type": "Ready", "status": "True", "lastTransitionTime": now_string()}]})
                    }
                    _ => continue,
                };
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                let _ = c
                    .patch_status(
                        &Resource::PODS,
                        Some(NS),
                        name,
                        &Patch::Merge(json!({ "status": status })),
                        &PatchParams::default(),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

const DAEMONSET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: c
        image: busybox
"#;

const JOBS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: work
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
---
apiVersion: batch/v1
kind: Job
metadata:
  name: crash
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["false"]
"#;

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 2
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1
"#;

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 0
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: busybox
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_the_workload_controllers_events() {
    let server = Server::start();
    let c = server.client();
    let nodes: Vec<_> = (0..2)
        .map(|i| tokio::spawn(agent::hollow::run(server.client(), hollow("node", i))))
        .collect();
    let ctl = tokio::spawn(controllers::run(server.client(), options()));
    let agent = play_agent(server.client());
    eventually("2 nodes registered", WAIT, || async {
        let l = c
            .list(&Resource::NODES, None, &ListParams::default())
            .await
            .ok()?;
        (l.items.len() == 2).then_some(())
    })
    .await;
    apply(&server, "ds.yaml", DAEMONSET).await;
    apply(&server, "jobs.yaml", JOBS).await;
    apply(&server, "sts.yaml", STATEFULSET).await;
    apply(&server, "cj.yaml", CRONJOB).await;

    // DaemonSet: one SuccessfulCreate per node's pod.
    let out = eventually("2 SuccessfulCreate in describe ds", WAIT, || async {
        let out = describe(&server, "ds/agent").await;
        (out.matches("Created pod: agent-").count() == 2).then_some(out)
    })
    .await;
    assert_eq!(out.matches("SuccessfulCreate").count(), 2, "{out}");
    assert!(out.contains("daemonset-controller"), "{out}");

    // Job with completions 2: both pods, then Completed.
    let out = eventually("Completed in describe job/work", WAIT, || async {
        let out = describe(&server, "job/work").await;
        out.contains("Job completed").then_some(out)
    })
    .await;
    assert_eq!(out.matches("Created pod: work-").count(), 2, "{out}");
    assert!(out.contains("Completed"), "{out}");
    assert!(out.contains("job-controller"), "{out}");

    // A Job whose pod fails with backoffLimit 0.
    let out = eventually(
        "BackoffLimitExceeded in describe job/crash",
        WAIT,
        || async {
            let out = describe(&server, "job/crash").await;
            out.contains("BackoffLimitExceeded").then_some(out)
        },
    )
    .await;
    assert!(
        out.contains("Job has reached the specified backoff limit"),
        "{out}"
    );
    assert!(out.contains("Created pod: crash-"), "{out}");
    let evs = c
        .list(&Resource::EVENTS, Some(NS), &ListParams::default())
        .await
        .unwrap()
        .items;
    let e = evs
        .iter()
        .find(|e| e["reason"] == "BackoffLimitExceeded")
        .expect("a BackoffLimitExceeded event");
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["involvedObject"]["kind"], "Job");
    assert_eq!(e["involvedObject"]["name"], "crash");
    assert_eq!(e["source"]["component"], "job-controller");

    // StatefulSet: the pods' creations in order, then the scale-down's deletion.
    let create0 = "create Pod web-0 in StatefulSet web successful";
    let create1 = "create Pod web-1 in StatefulSet web successful";
    let out = eventually("both creations in describe sts", WAIT, || async {
        let out = describe(&server, "sts/web").await;
        (out.contains(create0) && out.contains(create1)).then_some(out)
    })
    .await;
    let at = |s: &str| out.find(s).unwrap();
    assert!(at(create0) < at(create1), "{out}");
    assert!(out.contains("statefulset-controller"), "{out}");
    // Scaling down needs the remaining pod Ready (OrderedReady): wait for the rollout.
    server
        .kubectl(&["rollout", "status", "sts/web", "--timeout=60s"])
        .await;
    server.kubectl(&["scale", "sts/web", "--replicas=1"]).await;
    eventually("the deletion in describe sts", WAIT, || async {
        let out = describe(&server, "sts/web").await;
        out.contains("delete Pod web-1 in StatefulSet web successful")
            .then_some(())
    })
    .await;

    // CronJob: a run made due at once by an earlier lastScheduleTime (as if the last
    // run were ten minutes ago), which the agent completes and the history limit 0
    // removes.
    let job = eventually("a Job from the CronJob", WAIT, || async {
        let jobs = c
            .list(&Resource::JOBS, Some(NS), &ListParams::default())
            .await
            .ok()?
            .items;
        if let Some(j) = jobs.into_iter().find(|j| owner_kind(j) == Some("CronJob")) {
            return j["metadata"]["name"].as_str().map(str::to_string);
        }
        let cj = c.get(&Resource::CRONJOBS, Some(NS), "tick").await.ok()?;
        if cj["status"]["lastScheduleTime"].is_null() {
            // Again if the controller's own status write replaced it.
            let earlier = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
            let patch = json!({"status": {
                "lastScheduleTime": controllers::util::format_time(earlier)}});
            let _ = c
                .patch_status(
                    &Resource::CRONJOBS,
                    Some(NS),
                    "tick",
                    &Patch::Merge(patch),
                    &PatchParams::default(),
                )
                .await;
        }
        None
    })
    .await;
    let out = eventually("the run's events in describe cronjob", WAIT, || async {
        let out = describe(&server, "cronjob/tick").await;
        out.contains(&format!("Deleted job {job}")).then_some(out)
    })
    .await;
    assert!(out.contains(&format!("Created job {job}")), "{out}");
    assert!(
        out.contains(&format!("Saw completed job: {job}, condition: Complete")),
        "{out}"
    );
    assert!(out.contains("cronjob-controller"), "{out}");
    assert!(!out.contains("UnexpectedJob"), "{out}");

    agent.abort();
    ctl.abort();
    for n in nodes {
        n.abort();
    }
    // The server (killed by PID) and its directory go with `server`.
}
