//! End-to-end: the DaemonSet, Job, CronJob and StatefulSet controllers in-process
//! against the real `drover server` (built beforehand with `cargo build -p drover`),
//! driven by the real kubectl. The test plays the node agent: it reports pod status
//! through the status subresource.

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

/// kubectl against the test server, which must succeed (the shared harness's).
async fn kubectl(server: &Server, args: &[&str]) -> String {
    server.kubectl(args).await
}

/// `kubectl apply -f` of a manifest written into the server's directory.
async fn apply(server: &Server, name: &str, manifest: &str) {
    let path = server.dir.path().join(name);
    std::fs::write(&path, manifest).unwrap();
    kubectl(server, &["apply", "-f", path.to_str().unwrap()]).await;
}

async fn pods(c: &client::Client) -> Vec<Value> {
    c.list(&Resource::PODS, Some(NS), &ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
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

async fn set_pod_status(c: &client::Client, name: &str, status: Value) {
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

fn running_ready() -> Value {
    let now = controllers::util::format_time(time::OffsetDateTime::now_utc());
    json!({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}]})
}

/// Plays the node agent for pods whose controller is `kind`: not-yet-ready pods are
/// reported Running and Ready.
fn mark_ready(c: client::Client, kind: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for p in pods(&c).await {
                if owner_kind(&p) == Some(kind) && !is_ready(&p) {
                    let name = p["metadata"]["name"].as_str().unwrap_or_default();
                    set_pod_status(&c, name, running_ready()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn target(p: &Value) -> String {
    p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn ds_pods(c: &client::Client) -> Vec<Value> {
    pods(c)
        .await
        .into_iter()
        .filter(|p| owner_kind(p) == Some("DaemonSet"))
        .collect()
}

async fn wait_ds_nodes(c: &client::Client, what: &str, want: &[&str]) -> Vec<Value> {
    eventually(what, WAIT, || async {
        let ps = ds_pods(c).await;
        let mut nodes: Vec<String> = ps.iter().map(target).collect();
        nodes.sort();
        (nodes == want).then_some(ps)
    })
    .await
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

fn hollow(prefix: &str, i: u32) -> agent::hollow::HollowOptions {
    agent::hollow::HollowOptions {
        lease_duration_seconds: 8,
        status_interval: Duration::from_secs(2),
        ..Default::default()
    }
    .for_index(prefix, i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_covers_every_node_follows_changes_and_rolls_out() {
    let server = Server::start();
    let c = server.client();
    // Hollow nodes heartbeat (so the node lifecycle controller keeps them Ready) and
    // report bound pods Running and Ready; the scheduler binds the pinned daemon pods.
    let nodes: Vec<_> = (0..2)
        .map(|i| tokio::spawn(agent::hollow::run(server.client(), hollow("node", i))))
        .collect();
    let sched = tokio::spawn(scheduler::runner::run(
        server.client(),
        scheduler::Config::default(),
    ));
    let ctl = tokio::spawn(controllers::run(server.client(), options()));
    eventually("2 nodes registered", WAIT, || async {
        let l = c
            .list(&Resource::NODES, None, &ListParams::default())
            .await
            .ok()?;
        (l.items.len() == 2).then_some(())
    })
    .await;
    apply(&server, "ds.yaml", DAEMONSET).await;
    let first = wait_ds_nodes(&c, "a pod on node-0 and node-1", &["node-0", "node-1"]).await;
    for p in &first {
        assert!(p["metadata"]["labels"]["controller-revision-hash"].is_string());
    }
    kubectl(&server, &["rollout", "status", "ds/agent", "--timeout=60s"]).await;
    let ds = c
        .get(&Resource::DAEMONSETS, Some(NS), "agent")
        .await
        .unwrap();
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
    assert_eq!(ds["status"]["numberReady"], 2);
    assert_eq!(ds["status"]["numberAvailable"], 2);
    // The scheduler bound each pod to the node its affinity names.
    for p in ds_pods(&c).await {
        assert_eq!(p["spec"]["nodeName"].as_str(), Some(target(&p).as_str()));
    }

    // A node that joins later gets its pod.
    let late = tokio::spawn(agent::hollow::run(server.client(), hollow("late", 0)));
    wait_ds_nodes(&c, "a pod on late-0", &["late-0", "node-0", "node-1"]).await;
    kubectl(&server, &["rollout", "status", "ds/agent", "--timeout=60s"]).await;

    // An untolerated NoExecute taint removes the pod from node-0.
    kubectl(
        &server,
        &["taint", "node", "node-0", "dedicated=db:NoExecute"],
    )
    .await;
    wait_ds_nodes(&c, "node-0's pod removed", &["late-0", "node-1"]).await;

    // A new image rolls out node by node to the end.
    let old: Vec<String> = ds_pods(&c)
        .await
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    kubectl(&server, &["set", "image", "ds/agent", "c=busybox:1.36"]).await;
    kubectl(&server, &["rollout", "status", "ds/agent", "--timeout=60s"]).await;
    let now = wait_ds_nodes(&c, "updated pods", &["late-0", "node-1"]).await;
    for p in &now {
        assert_eq!(p["spec"]["containers"][0]["image"], "busybox:1.36");
        assert!(!old.contains(&p["metadata"]["name"].as_str().unwrap().to_string()));
    }
    let ds = c
        .get(&Resource::DAEMONSETS, Some(NS), "agent")
        .await
        .unwrap();
    assert_eq!(ds["status"]["updatedNumberScheduled"], 2);
    assert_eq!(
        ds["status"]["observedGeneration"],
        ds["metadata"]["generation"]
    );
    for t in nodes.into_iter().chain([late, sched, ctl]) {
        t.abort();
    }
}

/// Plays the node agent for Job pods: each new pod runs, then ends in `phase`.
fn finish_job_pods(
    c: client::Client,
    job: &'static str,
    phase: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for p in pods(&c).await {
                let of = &p["metadata"]["labels"]["batch.kubernetes.io/job-name"];
                // An empty name plays the agent for every Job's pods.
                if !of.is_string() || (!job.is_empty() && *of != job) {
                    continue;
                }
                let cur = p["status"]["phase"].as_str().unwrap_or_default();
                if cur == "Succeeded" || cur == "Failed" {
                    continue;
                }
                let name = p["metadata"]["name"].as_str().unwrap_or_default();
                let now = controllers::util::format_time(time::OffsetDateTime::now_utc());
                set_pod_status(
                    &c,
                    name,
                    json!({"phase": phase, "containerStatuses": [{"name": "c", "ready": false,
                        "restartCount": 0, "image": "busybox", "imageID": "",
                        "state": {"terminated": {"exitCode": if phase == "Failed" {1} else {0},
                            "finishedAt": now}}}]}),
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: batch
spec:
  completions: 3
  parallelism: 2
  ttlSecondsAfterFinished: 3
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_runs_to_completions_with_parallelism_then_expires() {
    let server = Server::start();
    let c = server.client();
    let ctl = tokio::spawn(controllers::run(server.client(), options()));
    apply(&server, "job.yaml", JOB).await;
    // Two pods at once (parallelism), none finished yet.
    let first = eventually("2 job pods", WAIT, || async {
        let ps: Vec<Value> = pods(&c)
            .await
            .into_iter()
            .filter(|p| owner_kind(p) == Some("Job"))
            .collect();
        (ps.len() == 2).then_some(ps)
    })
    .await;
    let job = c.get(&Resource::JOBS, Some(NS), "batch").await.unwrap();
    let uid = job["metadata"]["uid"].as_str().unwrap();
    for p in &first {
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(p["metadata"]["labels"]["job-name"], "batch");
    }
    eventually("status.active 2 and a start time", WAIT, || async {
        let j = c.get(&Resource::JOBS, Some(NS), "batch").await.ok()?;
        (j["status"]["active"] == 2 && j["status"]["startTime"].is_string()).then_some(())
    })
    .await;
    let agent = finish_job_pods(server.client(), "batch", "Succeeded");
    kubectl(
        &server,
        &[
            "wait",
            "--for=condition=complete",
            "job/batch",
            "--timeout=60s",
        ],
    )
    .await;
    let job = c.get(&Resource::JOBS, Some(NS), "batch").await.unwrap();
    assert_eq!(job["status"]["succeeded"], 3);
    assert!(job["status"]["completionTime"].is_string());
    let done: Vec<Value> = pods(&c)
        .await
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["job-name"] == "batch")
        .collect();
    assert_eq!(done.len(), 3, "exactly `completions` pods ran");
    // ttlSecondsAfterFinished: the Job and (through the garbage collector) its pods go.
    eventually("the finished Job deleted by its TTL", WAIT, || async {
        match c.get(&Resource::JOBS, Some(NS), "batch").await {
            Err(e) if e.is_not_found() => Some(()),
            _ => None,
        }
    })
    .await;
    agent.abort();
    ctl.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_fails_after_its_backoff_limit() {
    let server = Server::start();
    let c = server.client();
    let ctl = tokio::spawn(controllers::run(server.client(), options()));
    // Created with backoffLimit 1 from the start: patching it afterwards would race the
    // controller's first pod.
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "crash"},
        "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "crash", "image": "busybox", "command": ["false"]}]}}}});
    c.create(&Resource::JOBS, Some(NS), &job, &Default::default())
        .await
        .unwrap();
    let agent = finish_job_pods(server.client(), "crash", "Failed");
    // Two failures (the second after a 10 s back-off) exceed backoffLimit 1.
    kubectl(
        &server,
        &[
            "wait",
            "--for=condition=failed",
            "job/crash",
            "--timeout=60s",
        ],
    )
    .await;
    let job = c.get(&Resource::JOBS, Some(NS), "crash").await.unwrap();
    assert_eq!(job["status"]["failed"], 2);
    let cond = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(cond["reason"], "BackoffLimitExceeded");
    let all = pods(&c).await;
    assert_eq!(
        all.iter()
            .filter(|p| p["metadata"]["labels"]["job-name"] == "crash")
            .count(),
        2
    );
    agent.abort();
    ctl.abort();
}

const CRONJOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    metadata:
      labels: {app: tick}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: c
            image: busybox
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_starts_a_job_on_schedule() {
    let server = Server::start();
    let c = server.client();
    let ctl = tokio::spawn(controllers::run(server.client(), options()));
    apply(&server, "cj.yaml", CRONJOB).await;
    // Every minute: the first run comes at the next minute boundary.
    let job = eventually(
        "a Job from the CronJob",
        Duration::from_secs(90),
        || async {
            let l = c
                .list(&Resource::JOBS, Some(NS), &ListParams::default())
                .await
                .ok()?;
            l.items.into_iter().next()
        },
    )
    .await;
    let name = job["metadata"]["name"].as_str().unwrap();
    let minutes: i64 = name.strip_prefix("tick-").unwrap().parse().unwrap();
    let scheduled =
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .unwrap();
    let t = time::OffsetDateTime::parse(scheduled, &time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(t.unix_timestamp() / 60, minutes);
    assert_eq!(job["metadata"]["labels"]["app"], "tick");
    assert_eq!(owner_kind(&job), Some("CronJob"));
    let cj = eventually("status.active and lastScheduleTime", WAIT, || async {
        let cj = c.get(&Resource::CRONJOBS, Some(NS), "tick").await.ok()?;
        (cj["status"]["active"][0]["name"] == name && cj["status"]["lastScheduleTime"] == scheduled)
            .then_some(cj)
    })
    .await;
    assert_eq!(cj["status"]["active"].as_array().unwrap().len(), 1);
    // The Job controller runs it; once it succeeds it leaves status.active.
    let agent = finish_job_pods(server.client(), "", "Succeeded");
    eventually("the run recorded as successful", WAIT, || async {
        let cj = c.get(&Resource::CRONJOBS, Some(NS), "tick").await.ok()?;
        (cj["status"]["active"].is_null() && cj["status"]["lastSuccessfulTime"].is_string())
            .then_some(())
    })
    .await;
    agent.abort();
    ctl.abort();
}

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 3
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

async fn sts_pods(c: &client::Client) -> Vec<String> {
    let mut v: Vec<String> = pods(c)
        .await
        .into_iter()
        .filter(|p| owner_kind(p) == Some("StatefulSet"))
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_starts_pods_in_order_scales_and_rolls_out() {
    let server = Server::start();
    let c = server.client();
    let ctl = tokio::spawn(controllers::run(server.client(), options()));
    apply(&server, "sts.yaml", STATEFULSET).await;
    // OrderedReady: web-0 alone until it is Ready.
    eventually("web-0 reported in status", WAIT, || async {
        let s = c.get(&Resource::STATEFULSETS, Some(NS), "web").await.ok()?;
        (s["status"]["replicas"] == 1).then_some(())
    })
    .await;
    assert_eq!(sts_pods(&c).await, ["web-0"]);
    let agent = mark_ready(server.client(), "StatefulSet");
    kubectl(&server, &["rollout", "status", "sts/web", "--timeout=60s"]).await;
    assert_eq!(sts_pods(&c).await, ["web-0", "web-1", "web-2"]);
    let created = |p: &Value| {
        p["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let all = pods(&c).await;
    let at = |n: &str| created(all.iter().find(|p| p["metadata"]["name"] == n).unwrap());
    assert!(
        at("web-0") <= at("web-1") && at("web-1") <= at("web-2"),
        "{:#}",
        json!(
            all.iter()
                .map(|p| (
                    &p["metadata"]["name"],
                    &p["metadata"]["creationTimestamp"],
                    &p["status"]
                ))
                .collect::<Vec<_>>()
        )
    );
    let p0 = all
        .iter()
        .find(|p| p["metadata"]["name"] == "web-0")
        .unwrap();
    assert_eq!(p0["spec"]["hostname"], "web-0");
    assert_eq!(p0["spec"]["subdomain"], "web");

    // A new image: every pod is replaced, and `rollout status` follows it.
    kubectl(&server, &["set", "image", "sts/web", "c=nginx:2"]).await;
    kubectl(&server, &["rollout", "status", "sts/web", "--timeout=60s"]).await;
    let s = c
        .get(&Resource::STATEFULSETS, Some(NS), "web")
        .await
        .unwrap();
    assert_eq!(
        s["status"]["currentRevision"],
        s["status"]["updateRevision"]
    );
    for p in pods(&c)
        .await
        .iter()
        .filter(|p| owner_kind(p) == Some("StatefulSet"))
    {
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx:2");
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"],
            s["status"]["updateRevision"]
        );
    }
    let revs = c
        .list(
            &Resource::CONTROLLERREVISIONS,
            Some(NS),
            &ListParams::default(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(revs.len(), 2);

    // Scale down: from the highest ordinal.
    kubectl(&server, &["scale", "sts/web", "--replicas=1"]).await;
    eventually("only web-0 left", WAIT, || async {
        (sts_pods(&c).await == ["web-0"]).then_some(())
    })
    .await;
    agent.abort();
    ctl.abort();
}
