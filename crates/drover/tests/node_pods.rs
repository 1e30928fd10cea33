//! End to end with a real node agent: pods as runc containers on a CNI bridge, driven
//! by the real kubectl. Each test has its own cluster, bridge and pod range, and
//! removes everything it made (`drover reset`) when its server is dropped.

mod common;

use common::node::{BUSYBOX, http_get};
use common::{Server, wait_for};
use std::time::Duration;

fn web_pod(name: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
{extra_spec}"#
    )
}

#[test]
fn kubectl_run_gives_a_running_pod_with_an_ip_that_answers() {
    let s = Server::start_with_node(&[]);
    s.kubectl(&[
        "run",
        "web",
        &format!("--image={BUSYBOX}"),
        "--",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/etc",
    ]);
    let pod = s.wait_pod_ready("web");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(pod["spec"]["nodeName"], s.node_name());
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(
        pod["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .unwrap()
            .starts_with("runc://")
    );
    let body = wait_for(
        "httpd answers on the pod IP",
        Duration::from_secs(20),
        || http_get(&format!("{ip}:8080"), "/hostname"),
    );
    assert_eq!(body.trim(), "web");
    let wide = s.kubectl(&["get", "pod", "web", "-o", "wide"]);
    assert!(wide.contains(&ip) && wide.contains(s.node_name()), "{wide}");
    // The node reports the machine.
    let node: serde_json::Value =
        serde_json::from_str(&s.kubectl(&["get", "node", s.node_name(), "-o", "json"])).unwrap();
    assert!(
        node["status"]["capacity"]["cpu"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("runc://")
    );
    assert_eq!(
        node["spec"]["podCIDR"],
        s.node.as_ref().unwrap().pod_cidr.as_str()
    );
}

#[test]
fn two_containers_share_localhost_and_an_empty_dir() {
    let s = Server::start_with_node(&[]);
    let manifest = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: pair}}
spec:
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: server
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "8080", "-h", "/data"]
    volumeMounts: [{{name: shared, mountPath: /data}}]
  - name: client
    image: {BUSYBOX}
    command: ["sh", "-c", "echo written-by-client > /shared/page.txt; while true; do wget -qO- http://localhost:8080/page.txt; sleep 1; done"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
"#
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    s.wait_pod_ready("pair");
    wait_for(
        "the client reads the server's page over localhost",
        Duration::from_secs(30),
        || {
            let out = s.kubectl_output(&["logs", "pair", "-c", "client"]);
            String::from_utf8_lossy(&out.stdout)
                .contains("written-by-client")
                .then_some(())
        },
    );
}

#[test]
fn logs_exec_cp_and_port_forward_through_kubectl() {
    let s = Server::start_with_node(&[]);
    let extra = "    env: [{name: GREETING, value: hi-there}, {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]\n";
    s.kubectl_stdin(&["apply", "-f", "-"], &web_pod("tools", extra));
    s.wait_pod_ready("tools");
    // exec: output, exit codes, stdin, env.
    assert_eq!(
        s.kubectl(&["exec", "tools", "--", "sh", "-c", "echo $GREETING"])
            .trim(),
        "hi-there"
    );
    // The downward API gives the pod's own IP even to the first container started.
    let ip = s.pod_ip("tools");
    assert_eq!(
        s.kubectl(&["exec", "tools", "--", "sh", "-c", "echo $MY_IP"])
            .trim(),
        ip
    );
    let out = s.kubectl_output(&["exec", "tools", "--", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_eq!(
        s.kubectl_stdin(
            &["exec", "-i", "tools", "--", "tr", "a-z", "A-Z"],
            "shout\n"
        )
        .trim(),
        "SHOUT"
    );
    // cp both ways.
    let local = s.dir.path().join("up.txt");
    std::fs::write(&local, "copied up\n").unwrap();
    s.kubectl(&["cp", local.to_str().unwrap(), "tools:/tmp/up.txt"]);
    assert_eq!(
        s.kubectl(&["exec", "tools", "--", "cat", "/tmp/up.txt"]),
        "copied up\n"
    );
    let down = s.dir.path().join("down.txt");
    s.kubectl(&["cp", "tools:/www/index.html", down.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&down).unwrap().trim(),
        "hello-tools"
    );
    // logs with --tail and --timestamps.
    s.kubectl(&[
        "exec",
        "tools",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line-$i > /proc/1/fd/1; done",
    ]);
    let logs = wait_for("three log lines", Duration::from_secs(10), || {
        let l = s.kubectl(&["logs", "tools"]);
        l.contains("line-3").then_some(l)
    });
    assert!(logs.contains("line-1"), "{logs}");
    assert_eq!(
        s.kubectl(&["logs", "tools", "--tail", "1"]).trim(),
        "line-3"
    );
    let ts = s.kubectl(&["logs", "tools", "--tail", "1", "--timestamps"]);
    assert!(ts.starts_with("20") && ts.contains("Z line-3"), "{ts}");
    assert!(
        s.kubectl(&["logs", "tools", "--since", "1h"])
            .contains("line-2")
    );
    // logs -f follows new lines.
    let mut follow = s
        .kubectl_cmd(&["logs", "-f", "tools"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    s.kubectl(&[
        "exec",
        "tools",
        "--",
        "sh",
        "-c",
        "echo followed-line > /proc/1/fd/1",
    ]);
    let mut stdout = follow.stdout.take().unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::Read;
        let mut acc = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            acc.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&acc).contains("followed-line") {
                return true;
            }
        }
        false
    });
    wait_for(
        "logs -f shows the new line",
        Duration::from_secs(20),
        || seen.is_finished().then_some(()),
    );
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.join().unwrap(), "logs -f never showed the new line");
    // port-forward to the pod's httpd.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut pf = s
        .kubectl_cmd(&["port-forward", "pod/tools", &format!("{port}:8080")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = common::try_wait_for(Duration::from_secs(20), || {
        http_get(&format!("127.0.0.1:{port}"), "/index.html")
    });
    let _ = pf.kill();
    let out = pf.wait_with_output().unwrap();
    assert_eq!(
        body.as_deref().map(str::trim),
        Some("hello-tools"),
        "port-forward: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn container_logs_rotate_by_size_and_stay_readable() {
    let s = Server::start_with_node(&["--container-log-max-size", "64Ki"]);
    s.kubectl(&["run", "chatty", &format!("--image={BUSYBOX}"), "--", "sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; usleep 2000; done"]);
    let pod = s.wait_pod_ready("chatty");
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let log = s
        .dir
        .path()
        .join("agent/pods")
        .join(uid)
        .join("logs/chatty/0.log");
    let rotated = s
        .dir
        .path()
        .join("agent/pods")
        .join(uid)
        .join("logs/chatty/0.log.1");
    wait_for("a rotated log file", Duration::from_secs(60), || {
        rotated.exists().then_some(())
    });
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < 1 << 20, "the live log was truncated: {size} bytes");
    let tail = s.kubectl(&["logs", "chatty", "--tail", "2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("line-")), "{tail}");
}

#[test]
fn exec_with_a_terminal() {
    let s = Server::start_with_node(&[]);
    s.kubectl(&[
        "run",
        "term",
        &format!("--image={BUSYBOX}"),
        "--",
        "sleep",
        "3600",
    ]);
    s.wait_pod_ready("term");
    // `script` gives kubectl the terminal that `-it` requires.
    let cmd = format!(
        "KUBECONFIG={} kubectl exec -it term -- sh -c 'tty; stty size; exit 5'",
        s.kubeconfig().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("/dev/pts/"),
        "the command runs on a terminal: {text}"
    );
    assert_eq!(out.status.code(), Some(5), "{text}");
}
