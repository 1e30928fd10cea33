//! End to end: hollow nodes in this process against the real `drover server` (run
//! `cargo build -p drover` first), checked with the real kubectl.

mod common;

use std::time::Duration;

use agent::hollow::{self, HollowOptions};
use common::{Server, eventually};
use serde_json::Value;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);

struct Abort(JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn fast() -> HollowOptions {
    HollowOptions {
        lease_duration_seconds: 4,
        status_interval: Duration::from_secs(1),
        ..HollowOptions::default()
    }
}

async fn json(s: &Server, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl(&a).await).expect("kubectl json")
}

async fn wait_ready(s: &Server, names: &[&str]) {
    eventually("nodes Ready", WAIT, || async {
        let out = s.kubectl(&["get", "nodes", "--no-headers"]).await;
        names
            .iter()
            .all(|n| {
                out.lines().any(|l| {
                    let c: Vec<&str> = l.split_whitespace().collect();
                    c.first() == Some(n) && c.get(1) == Some(&"Ready")
                })
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_register_ready_and_keep_heartbeating() {
    let s = Server::start();
    let _h = Abort(tokio::spawn(hollow::run_many(
        s.client(),
        3,
        "node",
        fast(),
    )));
    wait_ready(&s, &["node-0", "node-1", "node-2"]).await;

    let n = json(&s, &["get", "node", "node-1"]).await;
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "node-1");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(n["status"]["allocatable"]["cpu"], "4");
    assert_eq!(n["status"]["allocatable"]["memory"], "8Gi");
    assert_eq!(n["status"]["allocatable"]["pods"], "110");
    assert_eq!(n["status"]["capacity"]["ephemeral-storage"], "100Gi");
    assert_eq!(n["status"]["addresses"][0]["address"], "10.240.0.2");
    assert_eq!(n["spec"]["podCIDR"], "10.244.1.0/24");
    assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.33.0");
    let wide = s
        .kubectl(&["get", "node", "node-1", "-o", "wide", "--no-headers"])
        .await;
    assert!(wide.contains("10.240.0.2"), "{wide}");

    // The Lease in kube-node-lease is renewed (every quarter of its 4 s duration),
    // and the Ready condition's heartbeat moves on.
    let lease = json(&s, &["get", "lease", "-n", "kube-node-lease", "node-0"]).await;
    assert_eq!(lease["spec"]["holderIdentity"], "node-0");
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
    let first = lease["spec"]["renewTime"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eventually("lease renewal", WAIT, || async {
        let l = json(&s, &["get", "lease", "-n", "kube-node-lease", "node-0"]).await;
        (l["spec"]["renewTime"].as_str() != Some(first.as_str())).then_some(())
    })
    .await;
    let ready_beat = |n: &Value| {
        n["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["lastHeartbeatTime"].clone())
    };
    let beat = ready_beat(&n);
    eventually("node status heartbeat", WAIT, || async {
        let n = json(&s, &["get", "node", "node-1"]).await;
        (ready_beat(&n) != beat).then_some(())
    })
    .await;

    // A deleted Node registers again, as a kubelet does.
    s.kubectl(&["delete", "node", "node-2"]).await;
    wait_ready(&s, &["node-2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_bound_to_a_hollow_node_run_with_an_ip() {
    let s = Server::start();
    let _h = Abort(tokio::spawn(hollow::run(
        s.client(),
        HollowOptions {
            name: "solo".into(),
            ..fast()
        },
    )));
    wait_ready(&s, &["solo"]).await;

    // One pod created already bound (spec.nodeName), one bound through pods/binding.
    let bound = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "direct"},
        "spec": {"nodeName": "solo", "containers": [
            {"name": "a", "image": "registry.local/busybox"},
            {"name": "b", "image": "registry.local/busybox"}]}}"#;
    s.kubectl_stdin(&["create", "-f", "-"], bound).await;
    let unbound = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "later"},
        "spec": {"containers": [{"name": "c", "image": "registry.local/busybox"}]}}"#;
    s.kubectl_stdin(&["create", "-f", "-"], unbound).await;
    // A pod for another node is none of this agent's business.
    let other = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere"},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "registry.local/busybox"}]}}"#;
    s.kubectl_stdin(&["create", "-f", "-"], other).await;
    s.client()
        .bind("default", "later", "solo")
        .await
        .expect("bind");

    for name in ["direct", "later"] {
        let p = eventually("pod Running", WAIT, || async {
            let p = json(&s, &["get", "pod", name]).await;
            (p["status"]["phase"] == "Running").then_some(p)
        })
        .await;
        let ip = p["status"]["podIP"].as_str().unwrap_or_default();
        assert!(ip.starts_with("10.244.0."), "{name}: {ip}");
        assert_eq!(p["status"]["hostIP"], "10.240.0.1");
        assert!(p["status"]["startTime"].is_string());
        for t in ["Initialized", "ContainersReady", "Ready", "PodScheduled"] {
            let c = p["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == t))
                .unwrap_or_else(|| panic!("{name}: no {t} condition"));
            assert_eq!(c["status"], "True", "{name}: {t}");
        }
    }
    let wide = s
        .kubectl(&["get", "pods", "-o", "wide", "--no-headers"])
        .await;
    let direct = wide
        .lines()
        .find(|l| l.starts_with("direct"))
        .unwrap_or_default();
    assert!(
        direct.contains("2/2") && direct.contains("Running") && direct.contains("solo"),
        "{wide}"
    );
    // Distinct IPs for distinct pods.
    let a = json(&s, &["get", "pod", "direct"]).await["status"]["podIP"].clone();
    let b = json(&s, &["get", "pod", "later"]).await["status"]["podIP"].clone();
    assert_ne!(a, b);
    let e = json(&s, &["get", "pod", "elsewhere"]).await;
    assert!(e["status"]["phase"] != "Running", "{e}");

    s.kubectl(&["delete", "pod", "direct", "--wait=true", "--timeout=60s"])
        .await;
    let left = s.kubectl(&["get", "pods", "--no-headers"]).await;
    assert!(!left.contains("direct"), "{left}");
}
