//! `drover server` schedules pods onto nodes that `drover agent --simulate` runs.

mod common;
use common::{Server, wait_for};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn join(s: &Server, name: &str, count: u32, extra: &[&str]) -> Agent {
    let token = std::fs::read_to_string(s.dir.path().join("join-token")).unwrap();
    let child = Command::new(common::drover_bin())
        .args([
            "agent",
            "--simulate",
            "--server",
            &s.url,
            "--token",
            token.trim(),
            "--name",
            name,
        ])
        .arg("--ca-file")
        .arg(s.dir.path().join("ca.crt"))
        .args(["--count", &count.to_string()])
        .args(extra)
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Agent(child)
}

#[test]
fn pods_are_scheduled_onto_hollow_nodes_and_spread() {
    let s = Server::start_cluster();
    let _agents = join(&s, "hollow", 3, &[]);
    wait_for("3 Ready nodes", Duration::from_secs(30), || {
        let out = s.kubectl(&["get", "nodes", "--no-headers"]);
        (out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .count()
            == 3)
            .then_some(())
    });
    for i in 0..6 {
        s.kubectl(&["run", &format!("p{i}"), "--image=busybox"]);
    }
    let placed = wait_for("6 Running pods", Duration::from_secs(30), || {
        let out = s.kubectl(&[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.status.phase} {.spec.nodeName}{\"\\n\"}{end}",
        ]);
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        (lines.len() == 6 && lines.iter().all(|l| l.starts_with("Running "))).then_some(lines)
    });
    for node in ["hollow-0", "hollow-1", "hollow-2"] {
        assert_eq!(
            placed.iter().filter(|l| l.ends_with(node)).count(),
            2,
            "spread: {placed:?}"
        );
    }
    let describe = s.kubectl(&["describe", "pod", "p0"]);
    assert!(
        describe.contains("Successfully assigned default/p0 to hollow-"),
        "{describe}"
    );
}

#[test]
fn an_unplaceable_pod_says_why_and_runs_once_a_node_fits() {
    let s = Server::start_cluster();
    let _a = join(&s, "plain", 1, &[]);
    s.kubectl(&[
        "run",
        "picky",
        "--image=busybox",
        "--overrides",
        r#"{"spec":{"nodeSelector":{"disk":"ssd"}}}"#,
    ]);
    let message = wait_for("a FailedScheduling event", Duration::from_secs(30), || {
        let out = s.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=picky,reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        (!out.is_empty()).then_some(out)
    });
    assert!(
        message.contains("didn't match Pod's node affinity/selector"),
        "{message}"
    );
    assert_eq!(
        s.kubectl(&["get", "pod", "picky", "-o", "jsonpath={.status.phase}"]),
        "Pending"
    );
    s.kubectl(&["label", "node", "plain", "disk=ssd"]);
    wait_for("picky Running on plain", Duration::from_secs(30), || {
        (s.kubectl(&[
            "get",
            "pod",
            "picky",
            "-o",
            "jsonpath={.status.phase}/{.spec.nodeName}",
        ]) == "Running/plain")
            .then_some(())
    });
}

#[test]
fn agent_without_simulate_or_with_a_bad_token_fails_clearly() {
    let s = Server::start_cluster();
    let out = Command::new(common::drover_bin())
        .args([
            "agent",
            "--server",
            &s.url,
            "--token",
            "x",
            "--ca-file",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the CA file"));
    let _good = join(&s, "intruder", 1, &[]);
    // An agent with a wrong token keeps retrying; its node must never appear.
    let bad_token = Command::new(common::drover_bin())
        .args([
            "agent",
            "--simulate",
            "--server",
            &s.url,
            "--token",
            "wrong",
            "--name",
            "intruder2",
        ])
        .arg("--ca-file")
        .arg(s.dir.path().join("ca.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _bad_token = Agent(bad_token);
    wait_for("the good agent's node", Duration::from_secs(30), || {
        s.kubectl(&["get", "nodes", "-o", "name"])
            .contains("node/intruder")
            .then_some(())
    });
    assert!(
        !s.kubectl(&["get", "nodes", "-o", "name"])
            .contains("intruder2")
    );
}

#[test]
fn a_deployment_runs_on_hollow_nodes_scales_and_heals() {
    let s = Server::start_cluster();
    let _agents = join(&s, "node", 2, &[]);
    s.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=3",
    ]);
    s.kubectl(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    let running = |n: usize| {
        move |s: &Server| {
            let out = s.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "--field-selector",
                "status.phase=Running",
                "-o",
                "name",
            ]);
            (out.lines().count() == n).then_some(out)
        }
    };
    let pods = wait_for("3 running pods", Duration::from_secs(60), || running(3)(&s));
    // Self-healing: a deleted replica is replaced.
    let victim = pods.lines().next().unwrap().to_string();
    s.kubectl(&["delete", &victim]);
    wait_for("a replacement", Duration::from_secs(60), || {
        let now = running(3)(&s)?;
        (!now.contains(&victim)).then_some(())
    });
    s.kubectl(&["scale", "deploy/web", "--replicas=6"]);
    s.kubectl(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    wait_for("6 running pods", Duration::from_secs(60), || running(6)(&s));
    // A rolling update to a new image finishes, with a new ReplicaSet.
    s.kubectl(&["set", "image", "deploy/web", "busybox=busybox:1.36"]);
    s.kubectl(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    let images = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert!(
        images.split_whitespace().all(|i| i == "busybox:1.36"),
        "{images}"
    );
    assert_eq!(
        s.kubectl(&["get", "rs", "-l", "app=web", "-o", "name"])
            .lines()
            .count(),
        2
    );
}

#[test]
fn a_silent_node_turns_not_ready_after_the_server_flag_and_its_pods_move() {
    // The grace must exceed the hollow nodes' 5 s lease renewal, or healthy nodes flap.
    let s =
        Server::launch_cluster_with(&["--node-monitor-grace", "10", "--pod-eviction-timeout", "2"]);
    let stays = join(&s, "stays", 1, &[]);
    let goes = join(&s, "goes", 1, &[]);
    wait_for("2 Ready nodes", Duration::from_secs(30), || {
        let out = s.kubectl(&["get", "nodes", "--no-headers"]);
        (out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .count()
            == 2)
            .then_some(())
    });
    s.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=4",
    ]);
    s.kubectl(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    drop(goes); // kill -9 the agent: its node goes silent
    wait_for("goes NotReady", Duration::from_secs(60), || {
        let out = s.kubectl(&["get", "node", "goes", "--no-headers"]);
        out.contains("NotReady").then_some(())
    });
    let taints = s.kubectl(&[
        "get",
        "node",
        "goes",
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    wait_for(
        "all 4 replicas Running on the surviving node",
        Duration::from_secs(90),
        || {
            let out = s.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.spec.nodeName}/{.status.phase} {end}",
            ]);
            let running: Vec<&str> = out
                .split_whitespace()
                .filter(|p| p.ends_with("/Running"))
                .collect();
            (running.len() == 4 && running.iter().all(|p| p.starts_with("stays/"))).then_some(())
        },
    );
    drop(stays);
}
