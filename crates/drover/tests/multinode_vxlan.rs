//! Three "hosts" (network namespaces on one bridge) run their agents with
//! `--pod-network vxlan`: each makes a vxlan device and publishes its VTEP MAC on its
//! Node, the routes to the other pod ranges go through that device, pods on different
//! hosts reach each other by pod IP, and a deleted node's entries and a reset host's
//! device go away.

mod common;
mod multinode_common;

use common::node::BUSYBOX;
use multinode_common::Cluster;
use std::process::Command;
use std::time::Duration;

const VTEP_MAC: &str = "drover.dev/vtep-mac";

fn web_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
"#
    )
}

fn client_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "3600"]
"#
    )
}

fn in_ns(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip netns exec {netns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The vxlan devices in a host's namespace.
fn vxlan_devices(netns: &str) -> Vec<String> {
    in_ns(netns, &["ip", "-o", "link", "show", "type", "vxlan"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The route line to `cidr` in a host's namespace, if any.
fn route_to(netns: &str, cidr: &str) -> Option<String> {
    in_ns(netns, &["ip", "route"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(cidr))
        .map(str::to_string)
}

#[test]
fn vxlan_pod_network_across_hosts() {
    let mut c = Cluster::start(3);
    c.agent_args = vec!["--pod-network".into(), "vxlan".into()];
    let token = c.node_token();
    for i in 0..3 {
        c.join(i, &token);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    let names: Vec<String> = c.hosts.iter().map(|h| h.node.clone()).collect();

    // Every node has a range and publishes its VTEP MAC.
    let mut cidrs = Vec::new();
    for n in &names {
        let node = c.wait(
            &format!("node {n} to publish its VTEP MAC"),
            Duration::from_secs(60),
            || {
                let node = c.get(&["node", n])?;
                (node["metadata"]["annotations"][VTEP_MAC].is_string()
                    && node["spec"]["podCIDR"].is_string())
                .then_some(node)
            },
        );
        cidrs.push(node["spec"]["podCIDR"].as_str().unwrap().to_string());
    }

    // Each host has one vxlan device, and routes to the other ranges through it.
    let mut devices = Vec::new();
    for (i, h) in c.hosts.iter().enumerate() {
        let devs = vxlan_devices(&h.netns);
        assert_eq!(devs.len(), 1, "host {i}: {devs:?}\n{}", c.diagnose());
        let dev = devs[0].clone();
        assert!(dev.starts_with("dv"), "{dev}");
        let details = in_ns(&h.netns, &["ip", "-d", "link", "show", "dev", &dev]);
        assert!(
            details.contains("dstport 8472") && details.contains(&format!("local {}", h.ip)),
            "{details}"
        );
        for (j, cidr) in cidrs.iter().enumerate() {
            if j == i {
                continue;
            }
            let route = c.wait(
                &format!("host {i}: a route to {cidr} over vxlan"),
                Duration::from_secs(60),
                || route_to(&h.netns, cidr).filter(|r| r.contains(&format!("dev {dev}"))),
            );
            let gw = cidr.split('/').next().unwrap();
            assert!(route.contains(&format!("via {gw} ")), "{route}");
            assert!(route.contains("onlink"), "{route}");
        }
        devices.push(dev);
    }

    // Pod to pod across hosts, by pod IP.
    c.apply(&web_pod("web", &names[1]));
    c.apply(&client_pod("client0", &names[0]));
    c.apply(&client_pod("client2", &names[2]));
    let web_ip = c.wait_pod_ready("web")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    c.wait_pod_ready("client0");
    c.wait_pod_ready("client2");
    for client in ["client0", "client2"] {
        let body = c.wait(
            &format!("{client} reaching web on another host over vxlan"),
            Duration::from_secs(60),
            || c.fetch_from(client, &format!("http://{web_ip}:8080/")),
        );
        assert_eq!(body.trim(), "hello-from-web");
    }

    // Host 2 goes: its agent stops, `drover reset` removes its device, its Node is
    // deleted, and the others drop their entries for it.
    c.kill_agent(2);
    c.reset(2);
    assert!(
        vxlan_devices(&c.hosts[2].netns).is_empty(),
        "reset left a vxlan device on host 2"
    );
    assert!(route_to(&c.hosts[2].netns, &cidrs[0]).is_none());
    c.kubectl(&["delete", "node", &names[2], "--wait=false"]);
    let gone_gw = cidrs[2].split('/').next().unwrap().to_string();
    for (i, (h, dev)) in c.hosts.iter().zip(&devices).take(2).enumerate() {
        c.wait(
            &format!("host {i} to drop its overlay entries for the deleted node"),
            Duration::from_secs(60),
            || {
                let neigh = in_ns(&h.netns, &["ip", "neigh", "show", "dev", dev]);
                (route_to(&h.netns, &cidrs[2]).is_none() && !neigh.contains(&gone_gw)).then_some(())
            },
        );
    }
    // The remaining hosts still talk.
    c.apply(&client_pod("client1", &names[0]));
    c.wait_pod_ready("client1");
    let body = c.wait(
        "client1 reaching web after a node left",
        Duration::from_secs(60),
        || c.fetch_from("client1", &format!("http://{web_ip}:8080/")),
    );
    assert_eq!(body.trim(), "hello-from-web");

    // Reset removes the device (and so every overlay route) on the others too.
    for i in 0..2 {
        c.kill_agent(i);
        c.reset(i);
        assert!(
            vxlan_devices(&c.hosts[i].netns).is_empty(),
            "reset left a vxlan device on host {i}"
        );
        assert!(route_to(&c.hosts[i].netns, &cidrs[1 - i]).is_none());
    }
}
