//! End-to-end: node lifecycle against the real `drover server` (built beforehand with
//! `cargo build -p drover`), with hollow nodes, the scheduler and the controllers
//! in-process. A node whose agent goes silent turns Unknown, gets the unreachable
//! taints, its pods are evicted and recreated on the other nodes, and it recovers.

mod common;

use client::{ListParams, Resource};
use common::{Server, eventually};
use serde_json::Value;
use std::time::Duration;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

/// kubectl against the test server, which must succeed (the shared harness's).
async fn kubectl(server: &Server, args: &[&str]) -> String {
    server.kubectl(args).await
}

fn hollow(i: u32) -> agent::hollow::HollowOptions {
    agent::hollow::HollowOptions {
        // Renewed every second (a quarter of the duration).
        lease_duration_seconds: 4,
        status_interval: Duration::from_secs(1),
        ..Default::default()
    }
    .for_index("node", i)
}

fn ready_status(node: &Value) -> Option<&Value> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

fn taint_keys(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap_or(""),
                        t["effect"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn pods(c: &client::Client) -> Vec<Value> {
    c.list(&Resource::PODS, Some(NS), &ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn live_running_on(pods: &[Value], node: &str) -> usize {
    pods.iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["spec"]["nodeName"] == node && p["status"]["phase"] == "Running")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_unknown_is_tainted_and_its_pods_move() {
    let server = Server::start();
    let c = server.client();
    let mut agents: Vec<tokio::task::JoinHandle<()>> = (0..3)
        .map(|i| tokio::spawn(agent::hollow::run(server.client(), hollow(i))))
        .collect();
    let sched = tokio::spawn(scheduler::runner::run(
        server.client(),
        scheduler::Config::default(),
    ));
    let controllers = tokio::spawn(controllers::run(
        server.client(),
        controllers::Options {
            workers: 2,
            resync: Duration::from_secs(5),
            node_monitor_grace: Duration::from_secs(3),
            pod_eviction_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    ));
    eventually("3 ready nodes", WAIT, || async {
        let l = c
            .list(&Resource::NODES, None, &ListParams::default())
            .await
            .ok()?;
        (l.items
            .iter()
            .filter(|n| ready_status(n).is_some_and(|r| r["status"] == "True"))
            .count()
            == 3)
            .then_some(())
    })
    .await;
    kubectl(
        &server,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=6",
        ],
    )
    .await;
    eventually("6 running pods, some on node-2", WAIT, || async {
        let ps = pods(&c).await;
        let total: usize = (0..3)
            .map(|i| live_running_on(&ps, &format!("node-{i}")))
            .sum();
        (total == 6 && live_running_on(&ps, "node-2") > 0).then_some(())
    })
    .await;

    // node-2's agent goes silent.
    agents[2].abort();
    let node = eventually("node-2 Unknown with unreachable taints", WAIT, || async {
        let n = c.get(&Resource::NODES, None, "node-2").await.ok()?;
        let taints = taint_keys(&n);
        (ready_status(&n)?["status"] == "Unknown"
            && taints.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
            && taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()))
        .then_some(n)
    })
    .await;
    let ready = ready_status(&node).unwrap();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    // The live nodes, silent for no longer than a lease renewal, stay Ready untainted.
    for live in ["node-0", "node-1"] {
        let n = c.get(&Resource::NODES, None, live).await.unwrap();
        assert_eq!(ready_status(&n).unwrap()["status"], "True", "{live}");
        assert!(taint_keys(&n).is_empty(), "{live}: {:?}", taint_keys(&n));
    }

    // Its pods are evicted after the (shortened) default toleration and replaced on
    // the two live nodes.
    eventually("6 running pods on node-0 and node-1", WAIT, || async {
        let ps = pods(&c).await;
        let ok = live_running_on(&ps, "node-0") + live_running_on(&ps, "node-1") == 6
            && ps
                .iter()
                .filter(|p| p["spec"]["nodeName"] == "node-2")
                .all(|p| !p["metadata"]["deletionTimestamp"].is_null());
        ok.then_some(())
    })
    .await;
    // Before going they were marked not ready (MarkPodsNotReady).
    for p in pods(&c)
        .await
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "node-2")
    {
        let ready = p["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone());
        assert_eq!(ready, Some(Value::from("False")), "{p}");
    }
    let out = kubectl(&server, &["get", "events", "-A"]).await;
    assert!(out.contains("TaintManagerEviction"), "{out}");
    assert!(out.contains("NodeNotReady"), "{out}");
    let out = kubectl(&server, &["describe", "node", "node-2"]).await;
    assert!(
        out.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{out}"
    );

    // The agent comes back: Ready again, the taints go.
    agents[2] = tokio::spawn(agent::hollow::run(server.client(), hollow(2)));
    eventually("node-2 Ready without taints", WAIT, || async {
        let n = c.get(&Resource::NODES, None, "node-2").await.ok()?;
        (ready_status(&n)?["status"] == "True" && taint_keys(&n).is_empty()).then_some(())
    })
    .await;

    for a in agents {
        a.abort();
    }
    sched.abort();
    controllers.abort();
}
