//! Three "hosts" (network namespaces on one bridge) join a server with join tokens, and
//! pods on different hosts reach each other by pod IP and through a service (host-gw
//! routes). Bad, revoked and expired tokens are refused; node credentials are confined
//! by the Node authorizer.

mod common;
mod multinode_common;

use common::node::BUSYBOX;
use multinode_common::Cluster;
use std::time::Duration;

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

#[test]
fn hosts_join_with_tokens_and_pods_talk_across_nodes() {
    let mut c = Cluster::start(3);
    let token = c.node_token();
    assert!(token.starts_with("drv1."), "{token}");
    let scratch = c.dir.path().join("scratch");

    // Refusals: a made-up id, a wrong secret, a wrong CA hash, a revoked and an expired token.
    let parts: Vec<&str> = token.split('.').collect();
    let unknown = format!("drv1.zzzzzz.0123456789abcdef.{}", parts[3]);
    let err = c.join_fails(0, &unknown, &scratch);
    assert!(err.contains("not known to the server"), "{err}");
    let wrong_secret = format!("drv1.{}.0123456789abcdef.{}", parts[1], parts[3]);
    let err = c.join_fails(0, &wrong_secret, &scratch);
    assert!(err.contains("wrong secret"), "{err}");
    let wrong_hash = format!("drv1.{}.{}.{}", parts[1], parts[2], "0".repeat(64));
    let err = c.join_fails(0, &wrong_hash, &scratch);
    assert!(err.contains("does not match the join token"), "{err}");
    let server_dir = c.server_dir();
    let sd = server_dir.to_str().unwrap();
    let revoked = c.kubectl_output(&["version"]); // warm kubectl's cache
    assert!(revoked.status.success());
    let out = std::process::Command::new(common::drover_bin())
        .args([
            "token",
            "--data-dir",
            sd,
            "create",
            "--ttl",
            "1h",
            "--description",
            "to revoke",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let list = std::process::Command::new(common::drover_bin())
        .args(["token", "--data-dir", sd, "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let revoked_id = revoked.split('.').nth(1).unwrap().to_string();
    assert!(
        list.contains(&revoked_id) && list.contains("to revoke") && list.contains("never"),
        "{list}"
    );
    let out = std::process::Command::new(common::drover_bin())
        .args(["token", "--data-dir", sd, "revoke", &revoked_id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = c.join_fails(0, &revoked, &scratch);
    assert!(err.contains("not known to the server"), "{err}");
    // An expired one: a bootstrap token Secret whose expiration has passed.
    c.kubectl(&[
        "-n",
        "kube-system",
        "create",
        "secret",
        "generic",
        "bootstrap-token-exp123",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal",
        "token-id=exp123",
        "--from-literal",
        "token-secret=0123456789abcdef",
        "--from-literal",
        "usage-bootstrap-authentication=true",
        "--from-literal",
        "expiration=2020-01-01T00:00:00Z",
    ]);
    let err = c.join_fails(
        0,
        &format!("drv1.exp123.0123456789abcdef.{}", parts[3]),
        &scratch,
    );
    assert!(err.contains("expired"), "{err}");

    // The good token: three hosts join without any CA file.
    for i in 0..3 {
        c.join(i, &token);
    }
    for i in 0..3 {
        c.wait_ready(i);
    }
    let names: Vec<String> = c.hosts.iter().map(|h| h.node.clone()).collect();

    // Each agent uses its own credentials afterwards, confined by the Node authorizer.
    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.hosts[0].data_dir.join("node-credentials.json")).unwrap(),
    )
    .unwrap();
    let node_token = creds["token"].as_str().unwrap().to_string();
    assert!(node_token.starts_with(&format!("drvn.{}.", names[0])));
    let as_node = |args: &[&str]| {
        let mut a = vec!["--token", node_token.as_str()];
        a.extend_from_slice(args);
        c.kubectl_output(&a)
    };
    assert!(as_node(&["get", "nodes"]).status.success());
    let denied = as_node(&["label", "node", &names[1], "stolen=yes"]);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success() && err.to_lowercase().contains("forbidden"),
        "{err}"
    );
    let denied = as_node(&["-n", "kube-system", "get", "secrets"]);
    assert!(!denied.status.success());
    assert!(
        as_node(&["label", "node", &names[0], "mine=yes"])
            .status
            .success()
    );
    let boot = format!("{}.{}", parts[1], parts[2]);
    let denied = c.kubectl_output(&["--token", &boot, "get", "pods"]);
    assert!(!denied.status.success());

    // Every node got a range of its own, and routes to the others.
    for n in &names {
        let node = c.get(&["node", n]).unwrap();
        assert!(
            node["spec"]["podCIDR"]
                .as_str()
                .is_some_and(|s| s.starts_with("10.244.")),
            "{node}"
        );
    }

    // Pod to pod across hosts, and through a service.
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
            &format!("{client} reaching web on another host"),
            Duration::from_secs(60),
            || c.fetch_from(client, &format!("http://{web_ip}:8080/")),
        );
        assert_eq!(body.trim(), "hello-from-web");
    }
    c.kubectl(&[
        "expose",
        "pod",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let svc = c.get(&["service", "web"]).unwrap();
    let vip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    for client in ["client0", "client2"] {
        let body = c.wait(
            &format!("{client} reaching the web service"),
            Duration::from_secs(60),
            || c.fetch_from(client, &format!("http://{vip}/")),
        );
        assert_eq!(body.trim(), "hello-from-web");
    }
    // A NodePort answers on every host's address, whichever host runs the pod.
    c.kubectl(&[
        "expose",
        "pod",
        "web",
        "--name",
        "web-np",
        "--type",
        "NodePort",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let np = c.get(&["service", "web-np"]).unwrap()["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap();
    for h in 0..c.hosts.len() {
        let addr = format!("{}:{np}", c.hosts[h].ip);
        let body = c.wait(
            &format!("the NodePort on host {h}"),
            Duration::from_secs(60),
            || http_get(&addr),
        );
        assert_eq!(body.trim(), "hello-from-web", "host {h}");
    }
    // Logs come through the API server from the agent on the pod's host.
    let logs = c.kubectl_output(&["logs", "web"]);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );

    // A restarted agent comes back with its saved credentials, no token needed.
    c.kill_agent(2);
    c.join(2, "");
    c.wait_ready(2);
    let body = c.wait(
        "client2 after its agent restarted",
        Duration::from_secs(60),
        || c.fetch_from("client2", &format!("http://{web_ip}:8080/")),
    );
    assert_eq!(body.trim(), "hello-from-web");
}

/// One HTTP GET from the test's own namespace to a host of the test network.
fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.0 200")
        .then_some(())
        .or_else(|| out.starts_with("HTTP/1.1 200").then_some(()))?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}
