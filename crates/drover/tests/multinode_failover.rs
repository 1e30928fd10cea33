//! Three hosts: a DaemonSet runs on each, cordon marks a node, and when one
//! host's agent dies (kill -9) its replicas come back on the others; when it returns it
//! rejoins with its saved credentials and stops the containers of the pods moved away.

mod common;
mod multinode_common;

use common::node::BUSYBOX;
use multinode_common::Cluster;
use serde_json::Value;
use std::time::Duration;

fn pods_by_node(c: &Cluster, selector: &str) -> Vec<(String, String, bool)> {
    let list = c.get(&["pods", "-l", selector]).unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|p| {
                    let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    }) && p["metadata"]["deletionTimestamp"].is_null();
                    (
                        p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                        ready,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn runc_ids(c: &Cluster, i: usize) -> String {
    let h = &c.hosts[i];
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(h.data_dir.join("agent/runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn daemonsets_cordon_node_loss_and_return() {
    let mut c = Cluster::start(3);
    let token = c.node_token();
    for i in 0..3 {
        c.join(i, &token);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    let names: Vec<String> = c.hosts.iter().map(|h| h.node.clone()).collect();

    c.apply(&format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agentd}}
spec:
  selector: {{matchLabels: {{app: agentd}}}}
  template:
    metadata: {{labels: {{app: agentd}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: c, image: {BUSYBOX}, command: ["sleep", "3600"]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: c, image: {BUSYBOX}, command: ["sleep", "3600"]}}
"#
    ));
    c.wait(
        "a DaemonSet pod Ready on every host",
        Duration::from_secs(90),
        || {
            let pods = pods_by_node(&c, "app=agentd");
            names
                .iter()
                .all(|n| pods.iter().any(|(_, node, ready)| node == n && *ready))
                .then_some(())
        },
    );
    c.wait("3 web replicas Ready", Duration::from_secs(90), || {
        (pods_by_node(&c, "app=web").iter().filter(|p| p.2).count() == 3).then_some(())
    });

    // Cordon marks a node unschedulable (drain is not covered yet: the eviction
    // subresource refuses kubectl's request body, see the report).
    c.kubectl(&["cordon", &names[0]]);
    let node0 = c.get(&["node", &names[0]]).unwrap();
    assert_eq!(node0["spec"]["unschedulable"], true);
    c.kubectl(&["uncordon", &names[0]]);

    // Node loss: host 2's agent dies; its containers keep running meanwhile.
    // Container ids start with the pod uid's first 12 hex digits.
    let before: Vec<String> = pods_by_node(&c, "app=web")
        .into_iter()
        .filter(|p| p.1 == names[2])
        .filter_map(|p| c.get(&["pod", &p.0]))
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .map(|u| u.chars().filter(|c| *c != '-').take(12).collect())
        .collect();
    assert!(
        !before.is_empty(),
        "the spread put no web replica on host 2"
    );
    assert!(before.iter().all(|u| runc_ids(&c, 2).contains(u.as_str())));
    c.kill_agent(2);
    c.wait(
        "every web replica Ready on the remaining hosts",
        Duration::from_secs(180),
        || {
            let pods = pods_by_node(&c, "app=web");
            let live: Vec<_> = pods.iter().filter(|p| p.2 && p.1 != names[2]).collect();
            (live.len() == 3).then_some(())
        },
    );
    let node2 = c.get(&["node", &names[2]]).unwrap();
    let ready = node2["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_ne!(ready["status"], "True", "{ready}");

    // The host returns: same credentials, Ready again, the moved pods' containers gone.
    c.join(2, "");
    c.wait_ready(2);
    c.wait(
        "the returned host to stop the containers of pods moved away",
        Duration::from_secs(120),
        || {
            let ids = runc_ids(&c, 2);
            let stale = before.iter().any(|u| ids.contains(u.as_str()));
            let mine = pods_by_node(&c, "app=web")
                .iter()
                .filter(|p| p.1 == names[2])
                .count();
            (!stale && mine == 0).then_some(())
        },
    );
    c.wait(
        "the DaemonSet pod Ready again on the returned host",
        Duration::from_secs(90),
        || {
            pods_by_node(&c, "app=agentd")
                .iter()
                .any(|(_, n, ready)| *n == names[2] && *ready)
                .then_some(())
        },
    );
}
