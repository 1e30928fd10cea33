//! End to end with a real node agent: probes, restarts with back-off, OOM kills,
//! graceful deletion with preStop hooks, and an agent restart with pods running.

mod common;

use common::node::{BUSYBOX, http_get};
use common::{Server, wait_for};
use serde_json::Value;
use std::time::Duration;

fn apply(s: &Server, yaml: &str) {
    s.kubectl_stdin(&["apply", "-f", "-"], yaml);
}

fn events(s: &Server, pod: &str) -> String {
    s.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn readiness_probes_of_every_kind_drive_the_ready_condition() {
    let s = Server::start_with_node(&[]);
    // httpGet: ready only while /www/ok exists; tcpSocket on the same port; exec on a file.
    apply(
        &s,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  containers:
  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && touch /www/ok /tmp/ready && exec httpd -f -p 8080 -h /www"]
    readinessProbe: {{httpGet: {{path: /ok, port: 8080}}, periodSeconds: 1, failureThreshold: 1}}
  - name: tcp
    image: {BUSYBOX}
    command: ["sh", "-c", "sleep 2; exec httpd -f -p 9090"]
    readinessProbe: {{tcpSocket: {{port: 9090}}, periodSeconds: 1}}
  - name: exec
    image: {BUSYBOX}
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 3600"]
    readinessProbe: {{exec: {{command: ["cat", "/tmp/ready"]}}, periodSeconds: 1, failureThreshold: 1}}
"#
        ),
    );
    s.wait_pod("probed", "Ready", Duration::from_secs(60), ready);
    s.kubectl(&["exec", "probed", "-c", "web", "--", "rm", "/www/ok"]);
    s.wait_pod(
        "probed",
        "not Ready after the http probe fails",
        Duration::from_secs(30),
        |p| !ready(p) && p["status"]["phase"] == "Running",
    );
    let p = s.pod("probed").unwrap();
    let web = p["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web["ready"], false);
    assert_eq!(web["restartCount"], 0, "readiness failures never restart");
    s.kubectl(&["exec", "probed", "-c", "web", "--", "touch", "/www/ok"]);
    s.wait_pod("probed", "Ready again", Duration::from_secs(30), ready);
    s.kubectl(&["exec", "probed", "-c", "exec", "--", "rm", "/tmp/ready"]);
    s.wait_pod(
        "probed",
        "not Ready after the exec probe fails",
        Duration::from_secs(30),
        |p| !ready(p),
    );
    assert!(events(&s, "probed").contains("Readiness probe failed"));
}

#[test]
fn a_failing_liveness_probe_restarts_the_container_with_an_event() {
    let s = Server::start_with_node(&[]);
    apply(
        &s,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "touch /tmp/alive; exec sleep 3600"]
    livenessProbe: {{exec: {{command: ["test", "-f", "/tmp/alive"]}}, periodSeconds: 1, failureThreshold: 2}}
"#
        ),
    );
    s.wait_pod_ready("live");
    s.kubectl(&["exec", "live", "--", "rm", "/tmp/alive"]);
    s.wait_pod(
        "live",
        "restarted by its liveness probe",
        Duration::from_secs(60),
        |p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1) && ready(p),
    );
    let ev = events(&s, "live");
    assert!(ev.contains("Liveness probe failed"), "{ev}");
    assert!(
        ev.contains("failed liveness probe, will be restarted"),
        "{ev}"
    );
}

#[test]
fn crashing_containers_back_off_and_keep_previous_logs() {
    let s = Server::start_with_node(&[]);
    apply(
        &s,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "echo run-$(date +%s%N); exit 2"]
"#
        ),
    );
    let p = s.wait_pod(
        "crash",
        "in CrashLoopBackOff",
        Duration::from_secs(60),
        |p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff",
    );
    let cs = &p["status"]["containerStatuses"][0];
    assert!(cs["restartCount"].as_u64().unwrap() >= 1);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 2);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(p["status"]["phase"], "Running");
    let previous = s.kubectl(&["logs", "crash", "--previous"]);
    assert!(previous.starts_with("run-"), "{previous}");
    assert!(events(&s, "crash").contains("Back-off restarting failed container"));
    let get = s.kubectl(&["get", "pod", "crash"]);
    assert!(get.contains("CrashLoopBackOff"), "{get}");
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let s = Server::start_with_node(&[]);
    apply(
        &s,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' 'x'); echo survived"]
    resources: {{limits: {{memory: 32Mi}}}}
"#
        ),
    );
    let p = s.wait_pod("hog", "Failed", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Failed"
    });
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
}

#[test]
fn delete_runs_pre_stop_then_sigterm_within_the_grace_period() {
    let s = Server::start_with_node(&[]);
    let marks = s.dir.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    apply(
        &s,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  volumes: [{{name: marks, hostPath: {{path: {marks}}}}}]
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sh", "-c", "trap 'echo term >> /marks/log; exit 0' TERM; echo started >> /marks/log; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: marks, mountPath: /marks}}]
    lifecycle: {{preStop: {{exec: {{command: ["sh", "-c", "echo prestop >> /marks/log"]}}}}}}
  - name: stubborn
    image: {BUSYBOX}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
"#,
            marks = marks.display()
        ),
    );
    s.wait_pod_ready("graceful");
    s.kubectl(&[
        "delete",
        "pod",
        "graceful",
        "--grace-period=3",
        "--wait=true",
        "--timeout=60s",
    ]);
    let log = std::fs::read_to_string(marks.join("log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["started", "prestop", "term"],
        "{log}"
    );
    assert!(s.pod("graceful").is_none());
    let ev = events(&s, "graceful");
    assert!(
        ev.contains("Stopping container app") && ev.contains("Stopping container stubborn"),
        "{ev}"
    );
    // Nothing of the pod is left on the node: no container, no network namespace.
    let node = s.node.as_ref().unwrap();
    let runc = std::process::Command::new("runc")
        .args(["--root"])
        .arg(s.dir.path().join("agent/runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&runc.stdout).trim(),
        "",
        "containers left behind"
    );
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &node.bridge])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&links.stdout).trim(),
        "",
        "veths left on the bridge"
    );
}

#[test]
fn an_agent_restart_readopts_running_containers() {
    let mut s = Server::start_with_node(&[]);
    apply(
        &s,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: survivor}}
spec:
  containers:
  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c", "echo $$ > /tmp/pid; exec httpd -f -p 8080 -h /etc"]
  - name: victim
    image: {BUSYBOX}
    command: ["sleep", "3600"]
"#
        ),
    );
    let before = s.wait_pod_ready("survivor");
    let ip = before["status"]["podIP"].as_str().unwrap().to_string();
    let ids: Vec<String> = before["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["containerID"].as_str().unwrap().to_string())
        .collect();
    // Kill the whole server (and its agent) with SIGKILL, and a container while it is down.
    s.kill9();
    let victim = ids
        .iter()
        .find(|i| i.contains("victim"))
        .unwrap()
        .trim_start_matches("runc://")
        .to_string();
    let state = std::process::Command::new("runc")
        .args(["--root"])
        .arg(s.dir.path().join("agent/runc"))
        .args(["state", &victim])
        .output()
        .unwrap();
    let state: Value = serde_json::from_slice(&state.stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        http_get(&format!("{ip}:8080"), "/hostname").is_some(),
        "the pod keeps serving while the agent is down"
    );
    s.restart();
    s.wait_node_ready();
    let after = s.wait_pod(
        "survivor",
        "with the victim restarted",
        Duration::from_secs(60),
        |p| {
            let cs = p["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            cs.iter().any(|c| {
                c["name"] == "victim" && c["restartCount"] == 1 && c["state"]["running"].is_object()
            }) && ready(p)
        },
    );
    let web = after["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(
        web["restartCount"], 0,
        "the running container was adopted, not restarted"
    );
    assert_eq!(
        web["containerID"].as_str(),
        ids.iter().find(|i| i.contains("web")).map(String::as_str)
    );
    assert_eq!(after["status"]["podIP"].as_str(), Some(ip.as_str()));
    let runc = std::process::Command::new("runc")
        .args(["--root"])
        .arg(s.dir.path().join("agent/runc"))
        .args(["list", "-q"])
        .output()
        .unwrap();
    let running: Vec<String> = String::from_utf8_lossy(&runc.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        running.iter().filter(|l| l.contains("-web-")).count(),
        1,
        "no duplicate: {running:?}"
    );
    wait_for("the pod still answers", Duration::from_secs(10), || {
        http_get(&format!("{ip}:8080"), "/hostname")
    });
}
