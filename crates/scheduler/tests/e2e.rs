//! End to end: the real `drover server` (run `cargo build -p drover` first), hollow
//! nodes and the scheduler loop in this process, checked with the real kubectl.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use agent::hollow::{self, HollowOptions};
use common::{Server, eventually};
use scheduler::Config;
use scheduler::runner::{self, RunnerOptions};
use serde_json::Value;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);

/// Aborts background tasks when a test ends (pass or fail).
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Tasks {
    fn hollow(&mut self, s: &Server, count: u32, prefix: &str, opts: HollowOptions) {
        self.0.push(tokio::spawn(hollow::run_many(
            s.client(),
            count,
            prefix,
            opts,
        )));
    }

    fn scheduler(&mut self, s: &Server, instance: &str) {
        let opts = RunnerOptions {
            instance: instance.to_string(),
            ..RunnerOptions::default()
        };
        self.0.push(tokio::spawn(runner::run_with(
            s.client(),
            Config::default(),
            opts,
        )));
    }
}

/// `kubectl get nodes`: name → STATUS column.
async fn node_statuses(s: &Server) -> BTreeMap<String, String> {
    s.kubectl(&["get", "nodes", "--no-headers"])
        .await
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some((cols.next()?.to_string(), cols.next()?.to_string()))
        })
        .collect()
}

async fn wait_nodes_ready(s: &Server, names: &[&str]) {
    eventually("nodes Ready in kubectl get nodes", WAIT, || async {
        let st = node_statuses(s).await;
        names
            .iter()
            .all(|n| st.get(*n).is_some_and(|s| s.starts_with("Ready")))
            .then_some(())
    })
    .await;
}

async fn pods_json(s: &Server) -> Vec<Value> {
    let out = s.kubectl(&["get", "pods", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).expect("pod list json");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the named pods are all Running; returns name → node.
async fn wait_running(s: &Server, names: &[String]) -> BTreeMap<String, String> {
    eventually("pods Running", WAIT, || async {
        let pods = pods_json(s).await;
        let running: BTreeMap<String, String> = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter_map(|p| {
                Some((
                    p["metadata"]["name"].as_str()?.to_string(),
                    p["spec"]["nodeName"].as_str()?.to_string(),
                ))
            })
            .filter(|(n, _)| names.contains(n))
            .collect();
        (running.len() == names.len()).then_some(running)
    })
    .await
}

async fn run_pods(s: &Server, prefix: &str, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i}");
        s.kubectl(&[
            "run",
            &name,
            "--image=registry.local/busybox",
            "--restart=Never",
        ])
        .await;
        names.push(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_are_bound_running_and_spread_over_hollow_nodes() {
    let s = Server::start();
    let mut t = Tasks(Vec::new());
    t.hollow(&s, 3, "node", HollowOptions::default());
    t.scheduler(&s, "sched-a");
    wait_nodes_ready(&s, &["node-0", "node-1", "node-2"]).await;

    let names = run_pods(&s, "web", 6).await;
    let placed = wait_running(&s, &names).await;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in placed.values() {
        *per_node.entry(node.as_str()).or_default() += 1;
    }
    // Six identical pods on three identical, empty nodes: LeastAllocated (with the
    // non-zero default requests of 100m / 200Mi) puts two on each.
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|&c| c == 2), "{per_node:?}");

    // `kubectl get pod -o wide` shows the IP from the node's range and the node.
    let wide = s
        .kubectl(&["get", "pod", "web0", "-o", "wide", "--no-headers"])
        .await;
    assert!(wide.contains("Running"), "{wide}");
    assert!(wide.contains("10.244."), "{wide}");
    assert!(wide.contains(&placed["web0"]), "{wide}");

    // `kubectl describe` explains the decision.
    let node = placed["web0"].clone();
    let want = format!("Successfully assigned default/web0 to {node}");
    let d = eventually("Scheduled event", WAIT, || async {
        let d = s.kubectl(&["describe", "pod", "web0"]).await;
        d.contains(&want).then_some(d)
    })
    .await;
    assert!(d.contains("Scheduled"), "{d}");
    assert!(d.contains("default-scheduler"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn impossible_selector_stays_pending_until_a_matching_node_joins() {
    let s = Server::start();
    let mut t = Tasks(Vec::new());
    t.hollow(&s, 2, "plain", HollowOptions::default());
    t.scheduler(&s, "sched-a");
    wait_nodes_ready(&s, &["plain-0", "plain-1"]).await;

    let manifest = r#"{"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"disk": "ssd"},
                 "containers": [{"name": "c", "image": "registry.local/busybox"}]}}"#;
    s.kubectl_stdin(&["create", "-f", "-"], manifest).await;

    // Kubernetes' FitError wording for NodeAffinity's nodeSelector failure.
    let reason = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.";
    let d = eventually("FailedScheduling event", WAIT, || async {
        let d = s.kubectl(&["describe", "pod", "picky"]).await;
        d.contains("FailedScheduling").then_some(d)
    })
    .await;
    assert!(d.contains(reason), "{d}");
    assert!(d.contains("Pending"), "{d}");
    let cond = s
        .kubectl(&[
            "get",
            "pod",
            "picky",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")]}",
        ])
        .await;
    let cond: Value = serde_json::from_str(&cond).expect("condition json");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or_default()
            .contains("didn't match")
    );
    let node = s
        .kubectl(&["get", "pod", "picky", "-o", "jsonpath={.spec.nodeName}"])
        .await;
    assert_eq!(node, "");

    // A node with the label joins: the cluster change retries the pod at once
    // (well within the 5 minutes an unchanged cluster waits).
    let mut ssd = HollowOptions::default();
    ssd.labels.insert("disk".into(), "ssd".into());
    ssd.internal_ip = std::net::Ipv4Addr::new(10, 241, 0, 1);
    ssd.pod_cidr_base = std::net::Ipv4Addr::new(10, 245, 0, 0);
    t.hollow(&s, 1, "fast", ssd);
    let placed = wait_running(&s, &["picky".to_string()]).await;
    assert_eq!(placed["picky"], "fast-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cordoned_node_gets_nothing() {
    let s = Server::start();
    let mut t = Tasks(Vec::new());
    t.hollow(&s, 2, "node", HollowOptions::default());
    wait_nodes_ready(&s, &["node-0", "node-1"]).await;
    s.kubectl(&["cordon", "node-0"]).await;
    let st = node_statuses(&s).await;
    assert_eq!(st["node-0"], "Ready,SchedulingDisabled");
    t.scheduler(&s, "sched-a");

    let names = run_pods(&s, "c", 4).await;
    let placed = wait_running(&s, &names).await;
    assert!(placed.values().all(|n| n == "node-1"), "{placed:?}");

    // Uncordoning is a cluster change: new pods may use node-0 again.
    s.kubectl(&["uncordon", "node-0"]).await;
    let names = run_pods(&s, "d", 4).await;
    let placed = wait_running(&s, &names).await;
    assert!(placed.values().any(|n| n == "node-0"), "{placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_racing_schedulers_bind_each_pod_once() {
    let s = Server::start();
    let mut t = Tasks(Vec::new());
    t.hollow(&s, 3, "node", HollowOptions::default());
    wait_nodes_ready(&s, &["node-0", "node-1", "node-2"]).await;
    t.scheduler(&s, "sched-a");
    t.scheduler(&s, "sched-b");

    let items: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "race{i}"}},
                   "spec": {{"containers": [{{"name": "c", "image": "registry.local/busybox"}}]}}}}"#
            )
        })
        .collect();
    let list = format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [{}]}}"#,
        items.join(",")
    );
    s.kubectl_stdin(&["create", "-f", "-"], &list).await;
    let names: Vec<String> = (0..20).map(|i| format!("race{i}")).collect();
    let placed = wait_running(&s, &names).await;

    // The binding subresource is a compare-and-swap: exactly one scheduler's binding
    // succeeds per pod, so each pod has exactly one Scheduled event naming its node.
    let events = eventually("20 Scheduled events", WAIT, || async {
        let out = s
            .kubectl(&[
                "get",
                "events",
                "--field-selector",
                "reason=Scheduled",
                "-o",
                "json",
            ])
            .await;
        let v: Value = serde_json::from_str(&out).expect("events json");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= 20).then_some(items)
    })
    .await;
    let mut per_pod: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        per_pod
            .entry(
                e["involvedObject"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default()
            .push(e["message"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(per_pod.len(), 20, "{per_pod:?}");
    for (pod, msgs) in &per_pod {
        assert_eq!(msgs.len(), 1, "{pod}: {msgs:?}");
        assert_eq!(
            msgs[0],
            format!("Successfully assigned default/{pod} to {}", placed[pod])
        );
    }
    // Neither scheduler overcommitted pod slots or reported a failure.
    let failed = s
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
            "--no-headers",
        ])
        .await;
    assert!(
        failed.trim().is_empty() || failed.contains("No resources"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn higher_priority_pod_preempts_a_lower_one() {
    let s = Server::start();
    let mut t = Tasks(Vec::new());
    let small = HollowOptions {
        cpu: "1".into(),
        ..HollowOptions::default()
    };
    t.hollow(&s, 1, "small", small);
    t.scheduler(&s, "sched-a");
    wait_nodes_ready(&s, &["small-0"]).await;

    let pod = |name: &str, prio: i64| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
               "spec": {{"priority": {prio}, "containers": [{{"name": "c", "image": "registry.local/busybox",
                         "resources": {{"requests": {{"cpu": "700m"}}}}}}]}}}}"#
        )
    };
    s.kubectl_stdin(&["create", "-f", "-"], &pod("low", 0))
        .await;
    wait_running(&s, &["low".to_string()]).await;
    // Two 700m pods do not fit on one CPU: the important one evicts the other
    // (Kubernetes' DefaultPreemption), is nominated to the node, then bound there.
    s.kubectl_stdin(&["create", "-f", "-"], &pod("high", 1000))
        .await;
    let placed = wait_running(&s, &["high".to_string()]).await;
    assert_eq!(placed["high"], "small-0");
    eventually("low pod gone", WAIT, || async {
        let pods = pods_json(&s).await;
        (!pods.iter().any(|p| p["metadata"]["name"] == "low")).then_some(())
    })
    .await;
    let high = s
        .kubectl(&[
            "get",
            "pod",
            "high",
            "-o",
            "jsonpath={.status.nominatedNodeName}",
        ])
        .await;
    assert_eq!(high, "small-0");
    let out = s
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=Preempted",
            "-o",
            "json",
        ])
        .await;
    let v: Value = serde_json::from_str(&out).expect("events json");
    let e = &v["items"][0];
    assert_eq!(e["involvedObject"]["name"], "low", "{v}");
    assert_eq!(e["message"], "Preempted by default/high on node small-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_pods_on_many_hollow_nodes_never_overcommit() {
    let s = Server::start();
    let mut t = Tasks(Vec::new());
    // 20 nodes of 10 pod slots: 200 pods fill every slot exactly, which only works if
    // every placement already counts the ones before it (assume before bind).
    let opts = HollowOptions {
        pods: 10,
        ..HollowOptions::default()
    };
    t.hollow(&s, 20, "n", opts);
    t.scheduler(&s, "sched-a");
    let names: Vec<String> = (0..20).map(|i| format!("n-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_nodes_ready(&s, &refs).await;

    let c = s.client();
    let start = std::time::Instant::now();
    let creates = (0..200).map(|i| {
        let c = c.clone();
        async move {
            let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("bulk{i}"), "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "registry.local/busybox"}]}});
            c.create(
                &client::Resource::PODS,
                Some("default"),
                &pod,
                &Default::default(),
            )
            .await
            .expect("create pod");
        }
    });
    futures::future::join_all(creates).await;
    let pods: Vec<String> = (0..200).map(|i| format!("bulk{i}")).collect();
    let placed = wait_running(&s, &pods).await;
    eprintln!(
        "200 pods created, bound and Running in {:?}",
        start.elapsed()
    );
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in placed.values() {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 20, "{per_node:?}");
    assert!(per_node.values().all(|&c| c == 10), "{per_node:?}");

    // One more pod finds no slot: Kubernetes' "Too many pods".
    s.kubectl(&[
        "run",
        "extra",
        "--image=registry.local/busybox",
        "--restart=Never",
    ])
    .await;
    let d = eventually("FailedScheduling for extra", WAIT, || async {
        let d = s.kubectl(&["describe", "pod", "extra"]).await;
        d.contains("FailedScheduling").then_some(d)
    })
    .await;
    assert!(
        d.contains("0/20 nodes are available: 20 Too many pods."),
        "{d}"
    );
    // Deleting a pod frees a slot: a cluster change that retries the pending one.
    let freed = placed["bulk0"].clone();
    s.kubectl(&["delete", "pod", "bulk0"]).await;
    let again = wait_running(&s, &["extra".to_string()]).await;
    assert_eq!(again["extra"], freed);
}
