//! End-to-end: the Endpoints/EndpointSlice controller and the Events of the workload
//! controllers, against the real `drover server` (built beforehand with
//! `cargo build -p drover`) and the real kubectl. The test plays the node agent by
//! writing pod statuses itself.

mod common;

use client::{ListParams, Patch, PatchParams, PostParams, Resource};
use common::{Server, eventually};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);
/// Endpoints must follow a pod change within about a second (2 s of slack for a
/// loaded 2-core test machine).
const QUICK: Duration = Duration::from_secs(3);

/// kubectl against the test server, which must succeed (the shared harness's).
async fn kubectl(server: &Server, args: &[&str]) -> String {
    server.kubectl(args).await
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

async fn make_pod(c: &client::Client, name: &str, app: &str, ip: &str) {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                 "ports": [{"name": "http", "containerPort": 8080}]}]},
    });
    c.create(&Resource::PODS, Some(NS), &pod, &PostParams::default())
        .await
        .unwrap();
    set_ready(c, name, ip, true).await;
}

/// Plays the agent: Running with `ip`, Ready as given.
async fn set_ready(c: &client::Client, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status}]}});
    c.patch_status(
        &Resource::PODS,
        Some(NS),
        name,
        &Patch::Merge(patch),
        &PatchParams::default(),
    )
    .await
    .unwrap();
}

fn ips(subsets: &Value, field: &str) -> Vec<String> {
    let mut v: Vec<String> = subsets
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

async fn endpoints(c: &client::Client, name: &str) -> Option<Value> {
    c.get(&Resource::ENDPOINTS, Some(NS), name).await.ok()
}

async fn slices(c: &client::Client, svc: &str) -> Vec<Value> {
    let lp = ListParams::default().labels(format!("kubernetes.io/service-name={svc}"));
    c.list(&Resource::ENDPOINTSLICES, Some(NS), &lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// (ip, ready) of every endpoint of the service's slices, sorted.
async fn slice_endpoints(c: &client::Client, svc: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = slices(c, svc)
        .await
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or_default().to_string(),
                e["conditions"]["ready"] == true,
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_ready_pods() {
    let server = Server::start();
    let c = server.client();
    let controllers = start(&server);
    kubectl(
        &server,
        &["create", "service", "clusterip", "web", "--tcp=80:http"],
    )
    .await;
    make_pod(&c, "web-1", "web", "10.1.0.1").await;
    make_pod(&c, "web-2", "web", "10.1.0.2").await;

    // `kubectl get ep` shows the ready pods, the named targetPort resolved.
    eventually("kubectl get ep shows both pods", WAIT, || async {
        let out = kubectl(&server, &["get", "ep", "web"]).await;
        (out.contains("10.1.0.1:8080") && out.contains("10.1.0.2:8080")).then_some(())
    })
    .await;
    let s = slices(&c, "web").await;
    assert_eq!(s.len(), 1, "{s:?}");
    let slice = &s[0];
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let svc = c.get(&Resource::SERVICES, Some(NS), "web").await.unwrap();
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Service");
    assert_eq!(owner["uid"], svc["metadata"]["uid"]);
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["endpoints"][0]["targetRef"]["kind"], "Pod");
    assert_eq!(slice["endpoints"][0]["nodeName"], "n1");
    assert_eq!(
        slice_endpoints(&c, "web").await,
        [
            ("10.1.0.1".to_string(), true),
            ("10.1.0.2".to_string(), true)
        ]
    );

    // A pod failing readiness moves to notReadyAddresses / ready=false, quickly.
    let t = Instant::now();
    set_ready(&c, "web-2", "10.1.0.2", false).await;
    eventually("web-2 not ready in the Endpoints", QUICK, || async {
        let ep = endpoints(&c, "web").await?;
        (ips(&ep["subsets"], "addresses") == ["10.1.0.1"]
            && ips(&ep["subsets"], "notReadyAddresses") == ["10.1.0.2"])
        .then_some(())
    })
    .await;
    eventually("web-2 not ready in the slice", QUICK, || async {
        (slice_endpoints(&c, "web").await
            == [
                ("10.1.0.1".to_string(), true),
                ("10.1.0.2".to_string(), false),
            ])
        .then_some(())
    })
    .await;
    eprintln!("endpoints followed readiness in {:?}", t.elapsed());
    set_ready(&c, "web-2", "10.1.0.2", true).await;
    eventually("web-2 ready again", QUICK, || async {
        let ep = endpoints(&c, "web").await?;
        (ips(&ep["subsets"], "addresses") == ["10.1.0.1", "10.1.0.2"]).then_some(())
    })
    .await;

    // A pod whose label is removed leaves the endpoints (it keeps running).
    kubectl(&server, &["label", "pod", "web-1", "app-"]).await;
    eventually("web-1 out of Endpoints and slice", QUICK, || async {
        let ep = endpoints(&c, "web").await?;
        (ips(&ep["subsets"], "addresses") == ["10.1.0.2"]
            && slice_endpoints(&c, "web").await == [("10.1.0.2".to_string(), true)])
        .then_some(())
    })
    .await;

    // A deleted pod leaves at once.
    kubectl(
        &server,
        &["delete", "pod", "web-2", "--grace-period=0", "--force"],
    )
    .await;
    eventually("no endpoints left", QUICK, || async {
        let ep = endpoints(&c, "web").await?;
        (ips(&ep["subsets"], "addresses").is_empty() && slice_endpoints(&c, "web").await.is_empty())
            .then_some(())
    })
    .await;

    // A headless service without ports publishes bare pod IPs.
    make_pod(&c, "db-1", "db", "10.1.0.3").await;
    let headless = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}}});
    c.create(
        &Resource::SERVICES,
        Some(NS),
        &headless,
        &PostParams::default(),
    )
    .await
    .unwrap();
    eventually("headless endpoints", WAIT, || async {
        let ep = endpoints(&c, "db").await?;
        let s = slices(&c, "db").await;
        (ips(&ep["subsets"], "addresses") == ["10.1.0.3"]
            && s.len() == 1
            && s[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == "")
            .then_some(())
    })
    .await;

    // Losing its selector removes what the controller wrote; so does deleting.
    kubectl(
        &server,
        &[
            "patch",
            "svc",
            "db",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/selector"}]"#,
        ],
    )
    .await;
    eventually("db endpoints removed", WAIT, || async {
        (endpoints(&c, "db").await.is_none() && slices(&c, "db").await.is_empty()).then_some(())
    })
    .await;
    kubectl(&server, &["delete", "svc", "web"]).await;
    eventually("web endpoints removed", WAIT, || async {
        (endpoints(&c, "web").await.is_none() && slices(&c, "web").await.is_empty()).then_some(())
    })
    .await;

    controllers.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_the_controllers_events() {
    let server = Server::start();
    let controllers = start(&server);
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
    let out = eventually("ScalingReplicaSet in describe deploy", WAIT, || async {
        let out = kubectl(&server, &["describe", "deploy", "web"]).await;
        out.contains("ScalingReplicaSet").then_some(out)
    })
    .await;
    assert!(out.contains("Scaled up replica set web-"), "{out}");
    assert!(out.contains("from 0 to 3"), "{out}");
    assert!(out.contains("deployment-controller"), "{out}");
    let out = eventually("SuccessfulCreate in describe rs", WAIT, || async {
        let out = kubectl(&server, &["describe", "rs", "-l", "app=web"]).await;
        (out.matches("SuccessfulCreate").count() == 3).then_some(out)
    })
    .await;
    assert!(out.contains("Created pod: web-"), "{out}");
    assert!(out.contains("replicaset-controller"), "{out}");

    kubectl(&server, &["scale", "deploy", "web", "--replicas=1"]).await;
    eventually("scaled down events", WAIT, || async {
        let d = kubectl(&server, &["describe", "deploy", "web"]).await;
        let rs = kubectl(&server, &["describe", "rs", "-l", "app=web"]).await;
        (d.contains("Scaled down replica set web-")
            && d.contains("from 3 to 1")
            && rs.matches("SuccessfulDelete").count() == 2)
            .then_some(())
    })
    .await;
    // The Events are real core/v1 objects with counts and timestamps.
    let evs = server
        .client()
        .list(&Resource::EVENTS, Some(NS), &ListParams::default())
        .await
        .unwrap()
        .items;
    let e = evs
        .iter()
        .find(|e| e["reason"] == "ScalingReplicaSet")
        .expect("a ScalingReplicaSet event");
    assert_eq!(e["involvedObject"]["kind"], "Deployment");
    assert!(
        e["involvedObject"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    assert_eq!(e["count"], 1);
    assert!(e["firstTimestamp"].is_string() && e["lastTimestamp"].is_string());
    controllers.abort();
}
