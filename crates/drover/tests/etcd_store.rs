//! `drover server --store etcd://...` end to end: a real etcd (Debian's `etcd-server`) on
//! loopback, the real binary, the real kubectl; the state lives in etcd, so it survives a
//! restart of drover and a second server with another data directory sees it.

mod common;

use common::etcd::{Etcd, free_port};
use common::{Server, wait_for};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

const APP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: web, image: nginx}
"#;

fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.kubectl(&all)).unwrap()
}

/// Spawns a long-running kubectl and returns its stdout lines through a channel.
fn spawn_lines(s: &Server, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = s
        .kubectl_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn kubectl_works_on_an_etcd_store_and_the_state_outlives_drover() {
    let etcd = Etcd::start();
    let flag = etcd.store_flag();
    let mut s = Server::start_with(&["--store", &flag]);
    assert!(
        !s.dir.path().join("state.db").exists(),
        "with --store etcd:// nothing may go to the embedded SQLite store"
    );

    // create + apply (twice, with a change: the second is a patch of the stored object).
    s.kubectl(&["create", "namespace", "team"]);
    s.kubectl_stdin(&["apply", "-f", "-"], APP);
    let changed = APP.replace("replicas: 2", "replicas: 3");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &changed);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    let deploy = json(&s, &["get", "deploy", "web", "-n", "team"]);
    assert_eq!(deploy["spec"]["replicas"], 3);
    let rv: i64 = deploy["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > 1, "resourceVersion is etcd's mod revision: {rv}");

    // watch: events of later changes arrive, with their types.
    let (mut watch, rx) = spawn_lines(
        &s,
        &[
            "get",
            "cm",
            "-n",
            "team",
            "-w",
            "--watch-only",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.name}{\"\\n\"}",
        ],
    );
    let mut lines = Vec::new();
    let drain = |lines: &mut Vec<String>| {
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
    };
    // The watch starts asynchronously: touch an object until its event shows.
    wait_for("the watch to start", T, || {
        s.kubectl(&[
            "annotate",
            "cm",
            "settings",
            "-n",
            "team",
            "--overwrite",
            "ping=x",
        ]);
        drain(&mut lines);
        (!lines.is_empty()).then_some(())
    });
    s.kubectl(&[
        "create",
        "configmap",
        "extra",
        "-n",
        "team",
        "--from-literal=a=1",
    ]);
    s.kubectl(&["delete", "configmap", "extra", "-n", "team"]);
    wait_for("ADDED and DELETED of extra", T, || {
        drain(&mut lines);
        let added = lines.iter().any(|l| l == "ADDED extra");
        let deleted = lines.iter().any(|l| l == "DELETED extra");
        (added && deleted).then_some(())
    });
    let _ = watch.kill();
    let _ = watch.wait();

    // delete
    s.kubectl(&["delete", "configmap", "settings", "-n", "team"]);
    let err = s.kubectl_err(&["get", "configmap", "settings", "-n", "team"]);
    assert!(err.contains("NotFound"), "{err}");

    // A restart of drover (SIGKILL) finds everything in etcd.
    s.restart();
    let after = json(&s, &["get", "deploy", "web", "-n", "team"]);
    assert_eq!(after["spec"]["replicas"], 3);
    assert_eq!(after["metadata"]["uid"], deploy["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        deploy["metadata"]["resourceVersion"]
    );
    let err = s.kubectl_err(&["get", "configmap", "settings", "-n", "team"]);
    assert!(err.contains("NotFound"), "{err}");

    // A second server with its own, empty data directory sees the same state: it lives in
    // etcd, not in the data directory.
    let other = Server::start_with(&["--store", &flag]);
    let seen = json(&other, &["get", "deploy", "web", "-n", "team"]);
    assert_eq!(seen["metadata"]["uid"], deploy["metadata"]["uid"]);
    // A write through one server is visible through the other.
    other.kubectl(&["scale", "deploy", "web", "-n", "team", "--replicas=5"]);
    let scaled = json(&s, &["get", "deploy", "web", "-n", "team"]);
    assert_eq!(scaled["spec"]["replicas"], 5);
}

#[test]
fn an_unreachable_etcd_is_one_clear_error() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::drover_bin())
        .args([
            "server",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(["--store", &format!("etcd://127.0.0.1:{port}")])
        .env("DROVER_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach etcd at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
