//! End to end with a real node agent: the node-local cluster DNS keeps answering pods
//! while Deployments roll (pods, endpoints and the zone changing underneath).
//!
//! The pods' gateway (where the DNS server listens) is the bridge: its MAC must not
//! change as pods' veths join and leave it, or pods keep sending to the old MAC and
//! their packets are dropped until their ARP entry is refreshed; DNS over UDP, whose
//! stub resolvers retry only after 5 s, shows that as hanging lookups.

mod common;

use common::node::BUSYBOX;
use common::{Server, wait_for};
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
        env: [{{name: VERSION, value: "0"}}]
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /www/ready && exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 1, failureThreshold: 1}}
"#
    )
}

/// Lookups by name, each bounded well below the resolver's retry interval: any query the
/// server drops or answers late shows up as a FAIL line.
const LOOP: &str = r#"i=0
while [ ! -e /tmp/stop ] && [ $i -lt 5000 ]; do
  i=$((i+1))
  if out=$(timeout 2 nslookup roll.default.svc.cluster.local 2>&1); then :; else echo "FAIL nslookup $? $(echo $out)"; fi
  if out=$(timeout 2 wget -qO /dev/null http://roll/ 2>&1); then echo OK; else echo "FAIL wget $? $(echo $out)"; fi
done
echo DONE $i
exec sleep 3600"#;

#[test]
fn cluster_dns_answers_every_query_while_deployments_roll() {
    let s = Server::start_with_node(&[]);
    s.kubectl_stdin(&["apply", "-f", "-"], &deployment("roll", 2));
    s.kubectl(&["rollout", "status", "deploy/roll", "--timeout=120s"]);
    s.kubectl(&["expose", "deploy/roll", "--port=80", "--target-port=8080"]);
    s.kubectl(&[
        "run",
        "probe",
        &format!("--image={BUSYBOX}"),
        "--",
        "sh",
        "-c",
        LOOP,
    ]);
    s.wait_pod_ready("probe");
    let logs = || s.kubectl(&["logs", "probe"]);
    let count = |logs: &str, what: &str| {
        logs.lines()
            .filter(|l| l.split(' ').next() == Some(what))
            .count()
    };
    wait_for(
        "the probe loop to get answers",
        Duration::from_secs(60),
        || (count(&logs(), "OK") >= 10).then_some(()),
    );
    let bridge = &s.node.as_ref().expect("a node").bridge;
    let mac = || {
        std::fs::read_to_string(format!("/sys/class/net/{bridge}/address"))
            .expect("the node's bridge")
            .trim()
            .to_string()
    };
    let mut macs = vec![mac()];
    // Endpoints, pods and the zone churn: several rolling updates back to back.
    for version in 1..=4 {
        s.kubectl(&["set", "env", "deploy/roll", &format!("VERSION={version}")]);
        s.kubectl(&["rollout", "status", "deploy/roll", "--timeout=180s"]);
        macs.push(mac());
    }
    let ok_at_end = count(&logs(), "OK");
    wait_for(
        "more answers after the rollouts",
        Duration::from_secs(60),
        || (count(&logs(), "OK") >= ok_at_end + 10).then_some(()),
    );
    s.kubectl(&["exec", "probe", "--", "touch", "/tmp/stop"]);
    let out = wait_for("the probe loop to stop", Duration::from_secs(30), || {
        let l = logs();
        (count(&l, "DONE") == 1).then_some(l)
    });
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    eprintln!(
        "{} rounds answered, {} lookups failed",
        count(&out, "OK"),
        fails.len()
    );
    macs.dedup();
    assert!(
        fails.is_empty() && macs.len() == 1,
        "lookups failed:\n{}\nthe gateway's MAC went {macs:?} as pods came and went",
        fails.join("\n")
    );
}
