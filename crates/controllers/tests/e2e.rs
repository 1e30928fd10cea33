//! End-to-end: the controllers in-process against the real `drover server` (built
//! beforehand with `cargo build -p drover`), driven by the real kubectl.

mod common;

use client::{ListParams, Patch, PatchParams, Resource};
use common::{Server, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

/// kubectl against the test server, which must succeed (the shared harness's).
async fn kubectl(server: &Server, args: &[&str]) -> String {
    server.kubectl(args).await
}

async fn list(c: &client::Client, r: &Resource) -> Vec<Value> {
    c.list(r, Some(NS), &ListParams::default())
        .await
        .unwrap()
        .items
}

fn active(pods: &[Value]) -> Vec<&Value> {
    pods.iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn owner_uid(o: &Value) -> Option<&str> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

/// Plays the node agent: every pod not yet Ready is reported Running and Ready through
/// the status subresource.
fn mark_pods_ready(c: client::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(l) = c
                .list(&Resource::PODS, Some(NS), &ListParams::default())
                .await
            {
                for p in l.items {
                    let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    if ready || !p["metadata"]["deletionTimestamp"].is_null() {
                        continue;
                    }
                    let now = controllers::util::format_time(time::OffsetDateTime::now_utc());
                    let patch = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let name = p["metadata"]["name"].as_str().unwrap_or_default();
                    let _ = c
                        .patch_status(
                            &Resource::PODS,
                            Some(NS),
                            name,
                            &Patch::Merge(patch),
                            &PatchParams::default(),
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn wait_pods(c: &client::Client, what: &str, n: usize) -> Vec<Value> {
    eventually(what, WAIT, || async {
        let pods = list(c, &Resource::PODS).await;
        let owned: Vec<Value> = active(&pods)
            .into_iter()
            .filter(|p| owner_uid(p).is_some())
            .cloned()
            .collect();
        (owned.len() == n).then_some(owned)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_lifecycle_with_kubectl() {
    let server = Server::start();
    let c = server.client();
    let controllers = tokio::spawn(controllers::run(
        server.client(),
        controllers::Options {
            workers: 2,
            resync: Duration::from_secs(10),
            ..Default::default()
        },
    ));

    kubectl(
        &server,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=3",
        ],
    )
    .await;
    let pods = wait_pods(&c, "3 pods", 3).await;
    let rss = list(&c, &Resource::REPLICASETS).await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let d = c
        .get(&Resource::DEPLOYMENTS, Some(NS), "web")
        .await
        .unwrap();
    assert_eq!(owner_uid(rs), d["metadata"]["uid"].as_str());
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    for p in &pods {
        assert_eq!(owner_uid(p), rs["metadata"]["uid"].as_str());
        let r = &p["metadata"]["ownerReferences"][0];
        assert_eq!(r["blockOwnerDeletion"], true);
        let name = p["metadata"]["name"].as_str().unwrap();
        // generateName `<rs>-` plus five random characters.
        assert_eq!(name.len(), format!("web-{hash}-").len() + 5, "{name}");
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
    }

    // Not ready yet: no availability; the agent stand-in makes them Ready.
    let agent = mark_pods_ready(server.client());
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;
    let d = c
        .get(&Resource::DEPLOYMENTS, Some(NS), "web")
        .await
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 3);
    let conds = d["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable")
    );

    // Scale up and down.
    kubectl(&server, &["scale", "deploy", "web", "--replicas=10"]).await;
    wait_pods(&c, "10 pods", 10).await;
    kubectl(&server, &["scale", "deploy", "web", "--replicas=2"]).await;
    let pods = wait_pods(&c, "2 pods", 2).await;
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;

    // A deleted pod is replaced.
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    kubectl(&server, &["delete", "pod", &victim, "--wait=false"]).await;
    eventually("a replacement pod", WAIT, || async {
        let pods = list(&c, &Resource::PODS).await;
        let owned: Vec<&Value> = active(&pods)
            .into_iter()
            .filter(|p| owner_uid(p).is_some())
            .collect();
        (owned.len() == 2
            && owned
                .iter()
                .all(|p| p["metadata"]["name"] != victim.as_str()))
        .then_some(())
    })
    .await;

    // Quarantine: removing the label releases the pod, which keeps running; a replacement appears.
    let pods = wait_pods(&c, "2 pods", 2).await;
    let quarantined = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    kubectl(&server, &["label", "pod", &quarantined, "app-"]).await;
    eventually(
        "the quarantined pod released and replaced",
        WAIT,
        || async {
            let p = c.get(&Resource::PODS, Some(NS), &quarantined).await.ok()?;
            if owner_uid(&p).is_some() {
                return None;
            }
            let pods = list(&c, &Resource::PODS).await;
            let owned = active(&pods)
                .into_iter()
                .filter(|p| owner_uid(p).is_some())
                .count();
            (owned == 2).then_some(())
        },
    )
    .await;

    // A new image: a second ReplicaSet takes over, the first is scaled to zero.
    kubectl(
        &server,
        &["set", "image", "deploy/web", "busybox=busybox:1.36"],
    )
    .await;
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;
    let rss = list(&c, &Resource::REPLICASETS).await;
    assert_eq!(rss.len(), 2, "{rss:#?}");
    let old = rss
        .iter()
        .find(|r| r["metadata"]["name"] == format!("web-{hash}"))
        .unwrap();
    let new = rss
        .iter()
        .find(|r| r["metadata"]["name"] != format!("web-{hash}"))
        .unwrap();
    assert_eq!(old["spec"]["replicas"], 0);
    assert_eq!(new["spec"]["replicas"], 2);
    assert_eq!(
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        new["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.36"
    );
    let pods = wait_pods(&c, "2 new pods", 2).await;
    assert!(
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "busybox:1.36")
    );

    let history = kubectl(&server, &["rollout", "history", "deploy/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // Undo: kubectl copies revision 1's template back; that ReplicaSet becomes revision 3.
    kubectl(&server, &["rollout", "undo", "deploy/web"]).await;
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;
    let first = c
        .get(&Resource::REPLICASETS, Some(NS), &format!("web-{hash}"))
        .await
        .unwrap();
    assert_eq!(first["spec"]["replicas"], 2);
    assert_eq!(
        first["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        first["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    let d = c
        .get(&Resource::DEPLOYMENTS, Some(NS), "web")
        .await
        .unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(list(&c, &Resource::REPLICASETS).await.len(), 2);

    agent.abort();
    controllers.abort();
}

async fn apply(server: &Server, name: &str, manifest: &Value) {
    let path = server.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, manifest.to_string()).unwrap();
    kubectl(server, &["apply", "-f", path.to_str().unwrap()]).await;
}

/// kubectl's exit status and combined output, for commands expected to fail.
async fn kubectl_status(server: &Server, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", server.kubeconfig())
        .env("HOME", server.dir.path())
        .output()
        .await
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn start(server: &Server) -> tokio::task::JoinHandle<()> {
    tokio::spawn(controllers::run(
        server.client(),
        controllers::Options {
            workers: 2,
            resync: Duration::from_secs(10),
            ..Default::default()
        },
    ))
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_set_adopts_orphans_and_reports_status() {
    let server = Server::start();
    let c = server.client();
    // An orphan pod that matches the selector exists first.
    let orphan = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "cache"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    apply(&server, "orphan", &orphan).await;
    let controllers = start(&server);
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "cache"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "cache"}},
                 "template": {"metadata": {"labels": {"app": "cache", "extra": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    apply(&server, "rs", &rs).await;
    let pods = wait_pods(&c, "3 pods including the adopted orphan", 3).await;
    assert!(pods.iter().any(|p| p["metadata"]["name"] == "orphan"));
    let created: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["name"] != "orphan")
        .collect();
    assert!(
        created
            .iter()
            .all(|p| p["metadata"]["generateName"] == "cache-")
    );
    let agent = mark_pods_ready(server.client());
    let status = eventually("RS status", WAIT, || async {
        let rs = c
            .get(&Resource::REPLICASETS, Some(NS), "cache")
            .await
            .ok()?;
        (rs["status"]["availableReplicas"] == 3).then(|| rs["status"].clone())
    })
    .await;
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["readyReplicas"], 3);
    // The orphan lacks the template's `extra` label.
    assert_eq!(status["fullyLabeledReplicas"], 2);
    assert_eq!(status["observedGeneration"], 1);
    kubectl(&server, &["scale", "rs", "cache", "--replicas=1"]).await;
    wait_pods(&c, "1 pod", 1).await;
    eventually("observedGeneration 2", WAIT, || async {
        let rs = c
            .get(&Resource::REPLICASETS, Some(NS), "cache")
            .await
            .ok()?;
        (rs["status"]["observedGeneration"] == 2 && rs["status"]["replicas"] == 1).then_some(())
    })
    .await;
    agent.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_honours_surge_and_unavailability_across_a_controller_restart() {
    let server = Server::start();
    let c = server.client();
    let mut controllers = start(&server);
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    apply(&server, "d", &d).await;
    let agent = mark_pods_ready(server.client());
    kubectl(
        &server,
        &["rollout", "status", "deploy/api", "--timeout=60s"],
    )
    .await;
    agent.abort();

    kubectl(&server, &["set", "image", "deploy/api", "c=busybox:1.36"]).await;
    // Readiness arrives one pod at a time; watch that at most 5 pods exist and at least
    // 4 are ready throughout, and restart the controllers in the middle.
    let mut max_total = 0;
    let mut min_ready = usize::MAX;
    let mut rounds = 0;
    loop {
        let pods = list(&c, &Resource::PODS).await;
        let act = active(&pods);
        max_total = max_total.max(act.len());
        min_ready = min_ready.min(act.iter().filter(|p| is_ready(p)).count());
        let d = c
            .get(&Resource::DEPLOYMENTS, Some(NS), "api")
            .await
            .unwrap();
        let s = &d["status"];
        if s["observedGeneration"] == d["metadata"]["generation"]
            && s["updatedReplicas"] == 4
            && s["availableReplicas"] == 4
            && s["replicas"] == 4
        {
            break;
        }
        if let Some(p) = act.iter().find(|p| !is_ready(p)) {
            let now = controllers::util::format_time(time::OffsetDateTime::now_utc());
            let patch = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
            let name = p["metadata"]["name"].as_str().unwrap();
            let _ = c
                .patch_status(
                    &Resource::PODS,
                    Some(NS),
                    name,
                    &Patch::Merge(patch),
                    &PatchParams::default(),
                )
                .await;
        }
        rounds += 1;
        if rounds == 3 {
            controllers.abort();
            let _ = controllers.await;
            controllers = start(&server);
        }
        assert!(rounds < 300, "the rollout did not finish");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(max_total <= 5, "maxSurge 1 exceeded: {max_total} pods");
    assert!(
        min_ready >= 4,
        "maxUnavailable 0 violated: {min_ready} ready"
    );
    kubectl(
        &server,
        &["rollout", "status", "deploy/api", "--timeout=60s"],
    )
    .await;
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_restart_undo_history_limit_and_deadline() {
    let server = Server::start();
    let c = server.client();
    let controllers = start(&server);
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "revisionHistoryLimit": 1, "progressDeadlineSeconds": 3,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    apply(&server, "d", &d).await;
    // Nobody makes the pods ready: the rollout is reported stuck after 3 s.
    let (ok, out) = kubectl_status(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;
    assert!(
        !ok && out.contains("exceeded its progress deadline"),
        "{out}"
    );
    let d = c
        .get(&Resource::DEPLOYMENTS, Some(NS), "web")
        .await
        .unwrap();
    let cond = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(cond["reason"], "ProgressDeadlineExceeded");

    let agent = mark_pods_ready(server.client());
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;

    // Paused: a template change makes no new ReplicaSet until resumed.
    kubectl(&server, &["rollout", "pause", "deploy/web"]).await;
    kubectl(&server, &["set", "image", "deploy/web", "c=busybox:1.35"]).await;
    eventually("the paused condition", WAIT, || async {
        let d = c.get(&Resource::DEPLOYMENTS, Some(NS), "web").await.ok()?;
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["reason"] == "DeploymentPaused")
            .then_some(())
    })
    .await;
    assert_eq!(list(&c, &Resource::REPLICASETS).await.len(), 1);
    kubectl(&server, &["rollout", "resume", "deploy/web"]).await;
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;

    // restart: a template annotation change rolls out a third template.
    kubectl(&server, &["rollout", "restart", "deploy/web"]).await;
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;
    let rss = eventually("history trimmed to 1 old ReplicaSet", WAIT, || async {
        let rss = list(&c, &Resource::REPLICASETS).await;
        (rss.len() == 2).then_some(rss)
    })
    .await;
    let newest = rss.iter().find(|r| r["spec"]["replicas"] == 2).unwrap();
    assert!(
        newest["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    assert_eq!(
        newest["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // undo --to-revision=2 brings back busybox:1.35 under revision 4.
    kubectl(
        &server,
        &["rollout", "undo", "deploy/web", "--to-revision=2"],
    )
    .await;
    kubectl(
        &server,
        &["rollout", "status", "deploy/web", "--timeout=60s"],
    )
    .await;
    let pods = wait_pods(&c, "2 pods of revision 4", 2).await;
    assert!(
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "busybox:1.35"),
        "{pods:#?}"
    );
    let d = c
        .get(&Resource::DEPLOYMENTS, Some(NS), "web")
        .await
        .unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    agent.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_old_and_new_pods_together() {
    let server = Server::start();
    let c = server.client();
    let controllers = start(&server);
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    apply(&server, "d", &d).await;
    let agent = mark_pods_ready(server.client());
    kubectl(
        &server,
        &["rollout", "status", "deploy/db", "--timeout=60s"],
    )
    .await;
    kubectl(&server, &["set", "image", "deploy/db", "c=busybox:1.36"]).await;
    let mut rounds = 0;
    loop {
        let pods = list(&c, &Resource::PODS).await;
        let images: std::collections::HashSet<&str> = active(&pods)
            .iter()
            .filter_map(|p| p["spec"]["containers"][0]["image"].as_str())
            .collect();
        assert!(images.len() <= 1, "old and new pods together: {images:?}");
        let d = c.get(&Resource::DEPLOYMENTS, Some(NS), "db").await.unwrap();
        if d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["updatedReplicas"] == 2
            && d["status"]["availableReplicas"] == 2
            && d["status"]["replicas"] == 2
        {
            break;
        }
        rounds += 1;
        assert!(rounds < 600, "the Recreate rollout did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kubectl(
        &server,
        &["rollout", "status", "deploy/db", "--timeout=60s"],
    )
    .await;
    agent.abort();
    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_keeps_its_replicas() {
    let server = Server::start();
    let c = server.client();
    let controllers = start(&server);
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"},
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    apply(&server, "rc", &rc).await;
    let pods = wait_pods(&c, "2 RC pods", 2).await;
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController")
    );
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    kubectl(&server, &["delete", "pod", &victim, "--wait=false"]).await;
    eventually("the RC pod replaced", WAIT, || async {
        let pods = list(&c, &Resource::PODS).await;
        let owned: Vec<&Value> = active(&pods)
            .into_iter()
            .filter(|p| owner_uid(p).is_some())
            .collect();
        (owned.len() == 2
            && owned
                .iter()
                .all(|p| p["metadata"]["name"] != victim.as_str()))
        .then_some(())
    })
    .await;
    eventually("RC status", WAIT, || async {
        let rc = c
            .get(
                &Resource::new(
                    "",
                    "v1",
                    "replicationcontrollers",
                    "ReplicationController",
                    true,
                ),
                Some(NS),
                "legacy",
            )
            .await
            .ok()?;
        (rc["status"]["replicas"] == 2).then_some(())
    })
    .await;
    controllers.abort();
}
