//! End to end: `drover compose` on a real cluster with a real runc node. A web front end
//! that calls a back end by service name, a healthcheck with `depends_on:
//! service_healthy`, a config file, a one-shot job the front end waits for, a published
//! port on 127.0.0.1; then edit + `up` (only the changed Deployment rolls, a removed
//! service is pruned), `scale`, `restart`, `exec`, `logs`, `ps`, `config`, and `down`
//! leaving nothing with the project label.

mod common;

use common::node::{BUSYBOX, http_get, unique};
use common::{Server, wait_for};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `drover compose ARGS` against `s` from `dir`.
fn compose(s: &Server, dir: &Path, args: &[&str]) -> Output {
    Command::new(common::drover_bin())
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", s.kubeconfig())
        .env("DROVER_COMPOSE_WAIT_IMAGE", BUSYBOX)
        .stdin(Stdio::null())
        .output()
        .expect("run drover compose")
}

fn compose_ok(s: &Server, dir: &Path, args: &[&str]) -> String {
    let out = compose(s, dir, args);
    assert!(
        out.status.success(),
        "drover compose {args:?} failed:\nstdout: {}\nstderr: {}\npods:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.kubectl(&["get", "pods", "-o", "wide"]),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn app(node_port: u16, front_env: &str, with_sidecar: bool) -> String {
    let host_port = node_port - 30000 + 20000;
    // The sidecar has no ports (a headless Service) and depends on the back end in the
    // short form (service_started); the front end waits for it to have started.
    let (sidecar, front_dep) = if with_sidecar {
        (
            format!(
                "  sidecar:\n    image: {BUSYBOX}\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n    depends_on: [backend]\n"
            ),
            "      sidecar:\n        condition: service_started\n",
        )
    } else {
        (String::new(), "")
    };
    format!(
        r#"services:
  front:
    image: ${{IMAGE}}
    command:
      - sh
      - -c
      - |
        mkdir -p /www
        echo waiting > /www/index.html
        (while true; do timeout 5 wget -qO /www/next http://backend:8080/ && mv /www/next /www/index.html; sleep 1; done) &
        exec httpd -f -p 80 -h /www
    environment:
      GREETING: "{front_env}"
    ports:
      - "{node_port}:80"
      - "{host_port}:80"
    stop_grace_period: 1s
    depends_on:
      backend:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
{front_dep}  backend:
    image: ${{IMAGE}}
    command: sh -c 'echo backend starting; mkdir -p /www && cp /etc/greeting /www/index.html && exec httpd -f -p 8080 -h /www'
    expose: ["8080"]
    stop_grace_period: 1s
    configs:
      - source: greeting
        target: /etc/greeting
    healthcheck:
      test: ["CMD-SHELL", "wget -qO- http://127.0.0.1:8080/ | grep -q hello"]
      interval: 1s
      timeout: 3s
      retries: 2
    volumes:
      - data:/data
  migrate:
    image: ${{IMAGE}}
    command: ["sh", "-c", "echo migrated {front_env} > /data/migrated"]
    volumes:
      - data:/data
{sidecar}configs:
  greeting:
    content: "hello from ${{WHO:-the backend}}\n"
volumes:
  data: {{}}
"#
    )
}

fn json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&s.kubectl(args)).expect("kubectl json")
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
        .collect();
    n.sort();
    n
}

#[test]
fn a_compose_application_runs_updates_scales_and_goes_away() {
    let s = Server::start_with_node(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let u = unique();
    let project = format!("shop{:06x}", u & 0xff_ffff);
    let node_port = 30000 + (u % 2700) as u16;
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, app(node_port, "v1", true)).expect("write compose file");
    std::fs::write(dir.path().join(".env"), format!("IMAGE={BUSYBOX}\n")).expect("write .env");
    let vol_dir = dir.path().join("volumes");
    let vol = vol_dir.to_str().expect("utf-8 path");
    let sel = format!("com.docker.compose.project={project}");

    // config: the objects up would apply, as YAML kubectl accepts.
    let yaml = compose_ok(
        &s,
        dir.path(),
        &["-p", &project, "config", "--volume-dir", vol],
    );
    for kind in [
        "kind: Deployment",
        "kind: Service",
        "kind: ConfigMap",
        "kind: Job",
    ] {
        assert!(yaml.contains(kind), "config lacks {kind}:\n{yaml}");
    }
    assert!(yaml.contains(&format!("nodePort: {node_port}")), "{yaml}");
    s.kubectl_stdin(&["apply", "--dry-run=client", "-f", "-"], &yaml);

    // up: returns once everything runs and the back end is healthy.
    let out = compose(
        &s,
        dir.path(),
        &[
            "-p",
            &project,
            "up",
            "--volume-dir",
            vol,
            "--wait-timeout",
            "180",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "up failed:\n{stderr}\n{}",
        s.kubectl(&["get", "pods", "-o", "wide"])
    );
    for svc in ["front", "backend", "sidecar"] {
        assert!(
            stderr.contains(&format!("{svc}: running")),
            "no progress line for {svc}:\n{stderr}"
        );
    }
    assert!(stderr.contains("migrate: completed"), "{stderr}");

    // The job ran, the config reached the back end, the front end reached it by name, and
    // the published port answers on loopback.
    assert!(vol_dir.join(format!("{project}_data/migrated")).is_file());
    let body = wait_for(
        "the front end serving the back end's page",
        Duration::from_secs(60),
        || {
            http_get(&format!("127.0.0.1:{node_port}"), "/")
                .filter(|b| b.contains("hello from the backend"))
        },
    );
    assert_eq!(body.trim(), "hello from the backend");
    let host_port = node_port - 30000 + 20000;
    // A port published outside the NodePort range is a hostPort, also on loopback.
    let hp = wait_for("the hostPort answering", Duration::from_secs(30), || {
        http_get(&format!("127.0.0.1:{host_port}"), "/")
    });
    assert_eq!(hp.trim(), "hello from the backend");

    // Every object carries the project and service labels.
    let deploys = json(&s, &["get", "deploy", "-l", &sel, "-o", "json"]);
    assert_eq!(names(&deploys), ["backend", "front", "sidecar"]);
    for d in deploys["items"].as_array().expect("items") {
        let name = d["metadata"]["name"].as_str().expect("name");
        assert_eq!(d["metadata"]["labels"]["com.docker.compose.service"], name);
    }
    assert_eq!(
        names(&json(&s, &["get", "svc", "-l", &sel, "-o", "json"])),
        ["backend", "front", "sidecar"]
    );
    assert_eq!(
        names(&json(&s, &["get", "jobs", "-l", &sel, "-o", "json"])),
        ["migrate"]
    );
    assert_eq!(
        names(&json(&s, &["get", "cm", "-l", &sel, "-o", "json"])),
        [format!("{project}-greeting")]
    );
    let front = json(&s, &["get", "deploy", "front", "-o", "json"]);
    let inits: Vec<&str> = front["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("init containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(inits, ["wait-for-backend", "wait-for-sidecar"]);
    let sidecar = json(&s, &["get", "svc", "sidecar", "-o", "json"]);
    assert_eq!(sidecar["spec"]["clusterIP"], "None");
    let backend = json(&s, &["get", "deploy", "backend", "-o", "json"]);
    let probe = &backend["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["exec"]["command"][0], "/bin/sh", "{probe}");

    // ps lists every container of the project.
    let ps = compose_ok(&s, dir.path(), &["-p", &project, "ps"]);
    assert!(ps.starts_with("NAME"), "{ps}");
    for svc in ["front", "backend", "sidecar", "migrate"] {
        assert!(
            ps.lines().any(|l| l.split_whitespace().nth(1) == Some(svc)),
            "{svc} missing from ps:\n{ps}"
        );
    }
    assert!(ps.contains("running (ready)"), "{ps}");

    // exec and logs.
    let page = compose_ok(
        &s,
        dir.path(),
        &[
            "-p",
            &project,
            "exec",
            "-T",
            "backend",
            "cat",
            "/www/index.html",
        ],
    );
    assert_eq!(page.trim(), "hello from the backend");
    let mut child = Command::new(common::drover_bin())
        .args([
            "compose",
            "-p",
            &project,
            "exec",
            "-T",
            "backend",
            "sh",
            "-c",
            "tr a-z A-Z",
        ])
        .current_dir(dir.path())
        .env("KUBECONFIG", s.kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run drover compose exec");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"piped in\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("exec output");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PIPED IN");
    let logs = compose_ok(&s, dir.path(), &["-p", &project, "logs", "backend"]);
    assert!(logs.contains("backend starting"), "{logs}");

    // Edit: the front end's environment changes and the sidecar goes. `up` again rolls
    // the front end only; the back end keeps its pods; the sidecar is pruned.
    let backend_pods = names(&json(
        &s,
        &[
            "get",
            "pods",
            "-l",
            &format!("{sel},com.docker.compose.service=backend"),
            "-o",
            "json",
        ],
    ));
    let backend_gen = backend["metadata"]["generation"].clone();
    let front_gen = front["metadata"]["generation"]
        .as_u64()
        .expect("generation");
    let job_uid = json(&s, &["get", "job", "migrate", "-o", "json"])["metadata"]["uid"].clone();
    std::fs::write(&file, app(node_port, "v2", false)).expect("rewrite compose file");
    compose_ok(
        &s,
        dir.path(),
        &[
            "-p",
            &project,
            "up",
            "--volume-dir",
            vol,
            "--wait-timeout",
            "180",
        ],
    );
    let front = json(&s, &["get", "deploy", "front", "-o", "json"]);
    assert!(
        front["metadata"]["generation"]
            .as_u64()
            .expect("generation")
            > front_gen
    );
    assert_eq!(
        front["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "v2"
    );
    // The job's template changed: it was replaced and ran again.
    let job = json(&s, &["get", "job", "migrate", "-o", "json"]);
    assert_ne!(job["metadata"]["uid"], job_uid);
    assert_eq!(
        std::fs::read_to_string(vol_dir.join(format!("{project}_data/migrated")))
            .expect("migrated")
            .trim(),
        "migrated v2"
    );
    let backend = json(&s, &["get", "deploy", "backend", "-o", "json"]);
    assert_eq!(
        backend["metadata"]["generation"], backend_gen,
        "the unchanged back end was rolled"
    );
    let backend_pods_after = names(&json(
        &s,
        &[
            "get",
            "pods",
            "-l",
            &format!("{sel},com.docker.compose.service=backend"),
            "-o",
            "json",
        ],
    ));
    assert_eq!(backend_pods_after, backend_pods);
    assert_eq!(
        names(&json(&s, &["get", "deploy", "-l", &sel, "-o", "json"])),
        ["backend", "front"]
    );
    assert_eq!(
        names(&json(&s, &["get", "svc", "-l", &sel, "-o", "json"])),
        ["backend", "front"]
    );
    // Running `up` again unchanged changes nothing.
    compose_ok(&s, dir.path(), &["-p", &project, "up", "--volume-dir", vol]);
    let again = json(&s, &["get", "deploy", "front", "-o", "json"]);
    assert_eq!(
        again["metadata"]["generation"],
        front["metadata"]["generation"]
    );

    // scale: three back ends, all behind the name the front end uses.
    compose_ok(&s, dir.path(), &["-p", &project, "scale", "backend=3"]);
    wait_for("three ready back ends", Duration::from_secs(120), || {
        let d = json(&s, &["get", "deploy", "backend", "-o", "json"]);
        (d["status"]["readyReplicas"] == 3).then_some(())
    });
    let ps = compose_ok(&s, dir.path(), &["-p", &project, "ps", "-q", "backend"]);
    assert_eq!(ps.lines().count(), 3, "{ps}");

    // restart: the front end gets a new pod.
    let front_pods = names(&json(
        &s,
        &[
            "get",
            "pods",
            "-l",
            &format!("{sel},com.docker.compose.service=front"),
            "-o",
            "json",
        ],
    ));
    compose_ok(&s, dir.path(), &["-p", &project, "restart", "front"]);
    wait_for("a restarted front end", Duration::from_secs(120), || {
        let now = names(&json(
            &s,
            &[
                "get",
                "pods",
                "-l",
                &format!("{sel},com.docker.compose.service=front"),
                "-o",
                "json",
            ],
        ));
        (now.len() == 1 && now != front_pods).then_some(())
    });

    // down: nothing with the project label is left; the named volume stays without -v.
    compose_ok(
        &s,
        dir.path(),
        &["-p", &project, "down", "--volume-dir", vol],
    );
    let left = s.kubectl(&[
        "get",
        "deploy,rs,pods,svc,jobs,daemonsets,cm,secrets",
        "-l",
        &sel,
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "left behind by down:\n{left}");
    assert!(vol_dir.join(format!("{project}_data")).is_dir());
    compose_ok(
        &s,
        dir.path(),
        &["-p", &project, "down", "-v", "--volume-dir", vol],
    );
    assert!(!vol_dir.join(format!("{project}_data")).exists());
}

#[test]
fn invalid_files_fail_with_line_and_column_before_touching_the_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: busybox\n    ports:\n      - \"80:http\"\n",
    )
    .expect("write");
    let out = Command::new(common::drover_bin())
        .args(["compose", "config"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("compose.yaml:5:9"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::write(&file, "services:\n  web:\n    image: ${TAG:?set TAG}\n").expect("write");
    let out = Command::new(common::drover_bin())
        .args(["compose", "-f", "compose.yaml", "config"])
        .current_dir(dir.path())
        .env_remove("TAG")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("compose.yaml:3:12") && err.contains("set TAG"),
        "{err}"
    );
}

/// `service_healthy` really waits: for a dependency with a port (a TCP connection through
/// its Service, which the proxy sends to ready pods only) and for one without ports (its
/// headless name resolves only while a ready pod backs it).
#[test]
fn depends_on_service_healthy_holds_dependants_until_the_healthcheck_passes() {
    let s = Server::start_with_node(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let project = format!("gate{:06x}", unique() & 0xff_ffff);
    let file = format!(
        r#"services:
  gate-tcp:
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www"]
    expose: [8080]
    stop_grace_period: 1s
    healthcheck: {{test: "test -f /ready", interval: 1s, retries: 1}}
  gate-dns:
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    healthcheck: {{test: "test -f /ready", interval: 1s, retries: 1}}
  waiter:
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    depends_on:
      gate-tcp: {{condition: service_healthy}}
      gate-dns: {{condition: service_healthy}}
"#
    );
    std::fs::write(dir.path().join("compose.yaml"), file).expect("write");
    let vol = dir.path().join("volumes");
    let vol = vol.to_str().expect("utf-8");
    compose_ok(
        &s,
        dir.path(),
        &["-p", &project, "up", "-d", "--volume-dir", vol],
    );
    let sel = |svc: &str| {
        format!("com.docker.compose.project={project},com.docker.compose.service={svc}")
    };
    let pod_of = |svc: &str| {
        wait_for(&format!("a pod of {svc}"), Duration::from_secs(60), || {
            names(&json(&s, &["get", "pods", "-l", &sel(svc), "-o", "json"])).pop()
        })
    };
    let waiter = pod_of("waiter");
    let init_log = |c: &str| {
        let out = s.kubectl_output(&["logs", &waiter, "-c", c]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The first wait loops while gate-tcp runs but is not healthy.
    wait_for(
        "wait-for-gate-tcp to retry",
        Duration::from_secs(90),
        || {
            (init_log("wait-for-gate-tcp")
                .matches("waiting for gate-tcp to be healthy")
                .count()
                >= 3)
                .then_some(())
        },
    );
    let tcp = pod_of("gate-tcp");
    let p = s.pod(&tcp).expect("gate-tcp pod");
    assert_eq!(p["status"]["phase"], "Running", "{}", p["status"]);
    assert!(init_log("wait-for-gate-dns").is_empty());
    s.kubectl(&["exec", &tcp, "--", "touch", "/ready"]);
    // Then the second one loops while gate-dns is not healthy.
    wait_for(
        "wait-for-gate-dns to retry",
        Duration::from_secs(90),
        || {
            (init_log("wait-for-gate-dns")
                .matches("waiting for gate-dns to be healthy")
                .count()
                >= 3)
                .then_some(())
        },
    );
    let w = s.pod(&waiter).expect("waiter pod");
    assert_ne!(w["status"]["phase"], "Running", "{}", w["status"]);
    let dns = pod_of("gate-dns");
    s.kubectl(&["exec", &dns, "--", "touch", "/ready"]);
    s.wait_pod_ready(&waiter);
    compose_ok(&s, dir.path(), &["-p", &project, "down"]);
    let left = s.kubectl(&[
        "get",
        "deploy,rs,pods,svc",
        "-l",
        &format!("com.docker.compose.project={project}"),
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "");
}
