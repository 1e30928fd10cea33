//! End to end with a real node agent: Services — ClusterIP balancing over ready pods,
//! readiness and label quarantine, cluster DNS from inside pods, NodePort on loopback.

mod common;

use common::node::{BUSYBOX, http_get};
use common::{Server, wait_for};
use std::collections::BTreeMap;
use std::time::Duration;

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: {BUSYBOX}
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /www/ready && exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 1, failureThreshold: 1}}
"#
    )
}

/// Counts which pod answered `n` GETs of http://addr/.
fn spread(addr: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        if let Some(body) = http_get(addr, "/") {
            *seen.entry(body.trim().to_string()).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn a_cluster_ip_balances_over_ready_pods_and_skips_quarantined_ones() {
    let s = Server::start_with_node(&[]);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("web", 3));
    s.kubectl(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    s.kubectl(&["expose", "deploy/web", "--port=80", "--target-port=8080"]);
    let ip = s.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let addr = format!("{ip}:80");
    let pods: Vec<String> = s
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(pods.len(), 3);
    let seen = wait_for(
        "all three replicas behind the ClusterIP",
        Duration::from_secs(30),
        || {
            let seen = spread(&addr, 150);
            (seen.len() == 3).then_some(seen)
        },
    );
    for (pod, count) in &seen {
        assert!(pods.contains(pod), "unknown backend {pod}");
        assert!(*count >= 20, "unfair share for {pod}: {seen:?}");
    }
    // A pod failing readiness gets no traffic, and gets it back once ready.
    let sick = &pods[0];
    s.kubectl(&["exec", sick, "--", "rm", "/www/ready"]);
    wait_for(
        "the unready pod out of rotation",
        Duration::from_secs(30),
        || (!spread(&addr, 60).contains_key(sick)).then_some(()),
    );
    s.kubectl(&["exec", sick, "--", "touch", "/www/ready"]);
    wait_for("the pod back in rotation", Duration::from_secs(30), || {
        spread(&addr, 60).contains_key(sick).then_some(())
    });
    // Quarantine: removing the label takes the pod out of the service and the ReplicaSet;
    // it keeps running for debugging and a replacement takes its place.
    let quarantined = &pods[1];
    s.kubectl(&["label", "pod", quarantined, "app-"]);
    wait_for(
        "the quarantined pod out of rotation with 3 backends again",
        Duration::from_secs(60),
        || {
            let seen = spread(&addr, 90);
            (!seen.contains_key(quarantined) && seen.len() == 3).then_some(())
        },
    );
    let phase = s.kubectl(&["get", "pod", quarantined, "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Running");
}

#[test]
fn pods_reach_services_by_dns_name_and_node_ports_answer_on_loopback() {
    let s = Server::start_with_node(&[]);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("api", 2));
    s.kubectl(&["rollout", "status", "deploy/api", "--timeout=120s"]);
    s.kubectl(&[
        "expose",
        "deploy/api",
        "--port=80",
        "--target-port=8080",
        "--type=NodePort",
    ]);
    s.kubectl(&[
        "run",
        "client",
        &format!("--image={BUSYBOX}"),
        "--",
        "sleep",
        "3600",
    ]);
    s.wait_pod_ready("client");
    let pods = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=api",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    for name in [
        "api",
        "api.default",
        "api.default.svc",
        "api.default.svc.cluster.local",
    ] {
        let body = wait_for(
            &format!("wget http://{name}/ from a pod"),
            Duration::from_secs(30),
            || {
                let out = s.kubectl_output(&[
                    "exec",
                    "client",
                    "--",
                    "timeout",
                    "5",
                    "wget",
                    "-qO-",
                    &format!("http://{name}/"),
                ]);
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (out.status.success() && !text.is_empty()).then_some(text)
            },
        );
        assert!(
            pods.split_whitespace().any(|p| p == body),
            "{name} answered {body}, not one of {pods}"
        );
    }
    let lookup = s.kubectl(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "api.default.svc.cluster.local",
    ]);
    let ip = s.kubectl(&["get", "svc", "api", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(lookup.contains(&ip), "{lookup}");
    let missing = s.kubectl_output(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "nosuch.default.svc.cluster.local",
    ]);
    assert!(
        !missing.status.success() || String::from_utf8_lossy(&missing.stdout).contains("NXDOMAIN")
    );
    // NodePort on the node's loopback address.
    let port = s.kubectl(&[
        "get",
        "svc",
        "api",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let n: u16 = port.parse().unwrap();
    assert!((30000..=32767).contains(&n), "{port}");
    let body = wait_for(
        "the NodePort answers on 127.0.0.1",
        Duration::from_secs(30),
        || http_get(&format!("127.0.0.1:{n}"), "/"),
    );
    assert!(pods.split_whitespace().any(|p| p == body.trim()), "{body}");
    // Deleting the service removes its rules: the ClusterIP stops answering.
    s.kubectl(&[
        "delete",
        "svc",
        "api",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    wait_for(
        "the deleted service to stop answering",
        Duration::from_secs(30),
        || http_get(&format!("{ip}:80"), "/").is_none().then_some(()),
    );
}

#[test]
fn traffic_keeps_flowing_through_a_rolling_update() {
    let s = Server::start_with_node(&[]);
    // What a user sets for zero-downtime updates: a readiness probe, and a preStop pause
    // so the proxy drops the endpoint before the server stops.
    let manifest = deployment("roll", 2).replace(
        "        readinessProbe:",
        "        lifecycle: {preStop: {exec: {command: [\"sleep\", \"5\"]}}}\n        env: [{name: VERSION, value: \"1\"}]\n        readinessProbe:",
    ).replace("terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds: 10");
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    s.kubectl(&["rollout", "status", "deploy/roll", "--timeout=120s"]);
    s.kubectl(&["expose", "deploy/roll", "--port=80", "--target-port=8080"]);
    s.kubectl(&["run", "load", &format!("--image={BUSYBOX}"), "--", "sh", "-c",
        "while true; do if out=$(timeout 3 wget -qO /dev/null http://roll/ 2>&1); then echo OK; else echo \"FAIL $? $out\"; fi; sleep 0.1; done"]);
    s.wait_pod_ready("load");
    let count = |what: &str| {
        s.kubectl(&["logs", "load"])
            .lines()
            .filter(|l| l.split(' ').next() == Some(what))
            .count()
    };
    wait_for(
        "the load loop to get answers",
        Duration::from_secs(30),
        || (count("OK") >= 10).then_some(()),
    );
    let before_fail = count("FAIL");
    s.kubectl(&["set", "env", "deploy/roll", "VERSION=2"]);
    s.kubectl(&["rollout", "status", "deploy/roll", "--timeout=180s"]);
    // Old pods finish terminating (preStop, SIGTERM) while the loop keeps asking.
    let versions = || {
        s.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=roll",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].env[0].value}{\" \"}{end}",
        ])
    };
    wait_for("only the new pods left", Duration::from_secs(60), || {
        let v = versions();
        (v.split_whitespace().count() == 2 && v.split_whitespace().all(|x| x == "2")).then_some(())
    });
    let ok_at_end = count("OK");
    wait_for(
        "more answers after the rollout",
        Duration::from_secs(30),
        || (count("OK") >= ok_at_end + 10).then_some(()),
    );
    assert_eq!(
        count("FAIL"),
        before_fail,
        "requests failed during the rolling update:\n{}",
        s.kubectl(&["logs", "load"])
    );
}
