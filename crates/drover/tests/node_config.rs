//! End to end with a real node agent: configuration reaching containers (ConfigMaps,
//! Secrets, the downward API, service links), init containers, security contexts,
//! resource limits in the cgroup, `kubectl top`, `kubectl attach`, and a Deployment.

mod common;

use common::node::BUSYBOX;
use common::{Server, wait_for};
use std::time::Duration;

#[test]
fn config_maps_secrets_and_the_downward_api_reach_the_container() {
    let s = Server::start_with_node(&[]);
    s.kubectl(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=mode=fast",
        "--from-literal=app.conf=port=80",
    ]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ]);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: v1
kind: Service
metadata: {name: backend-db}
spec: {ports: [{name: sql, port: 5432}]}
"#,
    );
    s.kubectl_stdin(&["apply", "-f", "-"], &format!(r#"apiVersion: v1
kind: Pod
metadata: {{name: configured, labels: {{tier: web}}}}
spec:
  initContainers:
  - name: prepare
    image: {BUSYBOX}
    command: ["sh", "-c", "echo prepared-by-init > /work/init.txt"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    env:
    - {{name: MODE, valueFrom: {{configMapKeyRef: {{name: cfg, key: mode}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: MY_POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: MY_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: MEM_LIMIT_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    - {{name: GREETING, value: "mode is $(MODE)"}}
    envFrom: [{{prefix: CFG_, configMapRef: {{name: cfg}}}}]
    resources: {{limits: {{memory: 48Mi, cpu: 250m}}}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: creds, mountPath: /etc/creds}}
    - {{name: info, mountPath: /etc/info}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: creds, secret: {{secretName: creds}}}}
  - name: info
    downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}
"#));
    let pod = s.wait_pod_ready("configured");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    let env = s.kubectl(&["exec", "configured", "--", "env"]);
    for want in [
        "MODE=fast",
        "PASSWORD=hunter2",
        "MY_POD=configured",
        &format!("MY_IP={ip}"),
        "MEM_LIMIT_MI=48",
        "GREETING=mode is fast",
        "CFG_mode=fast",
        "BACKEND_DB_SERVICE_PORT=5432",
        "BACKEND_DB_SERVICE_PORT_SQL=5432",
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "{want} missing from:\n{env}"
        );
    }
    assert!(
        env.lines()
            .any(|l| l.starts_with("BACKEND_DB_SERVICE_HOST=")),
        "{env}"
    );
    let exec = |cmd: &str| s.kubectl(&["exec", "configured", "--", "sh", "-c", cmd]);
    assert_eq!(exec("cat /work/init.txt").trim(), "prepared-by-init");
    assert_eq!(exec("cat /etc/cfg/app.conf"), "port=80");
    assert_eq!(exec("cat /etc/creds/password"), "hunter2");
    assert_eq!(exec("cat /etc/info/labels"), "tier=\"web\"");
    assert!(
        exec("touch /etc/cfg/x 2>&1; echo rc=$?").contains("rc=1"),
        "configMap volumes are read-only"
    );
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    // The limits are in the container's cgroup.
    let id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("runc://")
        .to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let cg = format!(
        "/sys/fs/cgroup/memory/drover/{}/pod{uid}/{id}/memory.limit_in_bytes",
        s.node_name()
    );
    let unified = format!(
        "/sys/fs/cgroup/drover/{}/pod{uid}/{id}/memory.max",
        s.node_name()
    );
    let limit = std::fs::read_to_string(&cg)
        .or_else(|_| std::fs::read_to_string(&unified))
        .expect("memory cgroup of the container");
    assert_eq!(limit.trim(), (48u64 << 20).to_string());
    // A changed ConfigMap reaches the mounted file (the kubelet refreshes volumes periodically).
    s.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {mode: slow, app.conf: port=81}\n");
    wait_for(
        "the configMap volume to refresh",
        Duration::from_secs(90),
        || (exec("cat /etc/cfg/app.conf") == "port=81").then_some(()),
    );
}

#[test]
fn security_context_users_and_read_only_root() {
    let s = Server::start_with_node(&[]);
    s.kubectl_stdin(&["apply", "-f", "-"], &format!(r#"apiVersion: v1
kind: Pod
metadata: {{name: locked}}
spec:
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}}
  containers:
  - name: app
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{drop: ["ALL"]}}}}
"#));
    s.wait_pod_ready("locked");
    let id = s.kubectl(&["exec", "locked", "--", "id"]);
    assert!(
        id.contains("uid=1000") && id.contains("gid=3000") && id.contains("2000"),
        "{id}"
    );
    let out = s.kubectl_output(&["exec", "locked", "--", "touch", "/newfile"]);
    assert!(!out.status.success(), "the root filesystem is read-only");
    let caps = s.kubectl(&[
        "exec",
        "locked",
        "--",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(caps.contains("0000000000000000"), "{caps}");
}

#[test]
fn top_attach_and_a_deployment_on_a_real_node() {
    let s = Server::start_with_node(&[]);
    s.kubectl(&[
        "create",
        "deployment",
        "web",
        &format!("--image={BUSYBOX}"),
        "--replicas=3",
        "--",
        "sh",
        "-c",
        "while true; do echo tick; sleep 1; done",
    ]);
    s.kubectl(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let pods = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.status.podIP}{\" \"}{end}",
    ]);
    let ips: std::collections::BTreeSet<&str> = pods.split_whitespace().collect();
    assert_eq!(ips.len(), 3, "three pods with three IPs: {pods}");
    // A replica deleted by hand is replaced.
    let first = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    s.kubectl(&["delete", "pod", &first, "--wait=false"]);
    wait_for(
        "three ready replicas again",
        Duration::from_secs(90),
        || {
            let ready = s.kubectl(&[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.status.readyReplicas}",
            ]);
            let names = s.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"]);
            (ready == "3" && !names.contains(&first)).then_some(())
        },
    );
    // attach streams the running process's output.
    let pod = s.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let mut attach = s
        .kubectl_cmd(&["attach", &pod])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = attach.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let mut acc = String::new();
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            acc.push_str(&String::from_utf8_lossy(&buf[..n]));
            if acc.contains("tick") {
                return true;
            }
        }
        false
    });
    wait_for("attach to show output", Duration::from_secs(20), || {
        reader.is_finished().then_some(())
    });
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(reader.join().unwrap(), "kubectl attach showed no output");
    // kubectl top reads the agents' cgroup figures.
    let top = wait_for("kubectl top pod figures", Duration::from_secs(60), || {
        let out = s.kubectl_output(&["top", "pod", "-l", "app=web"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && text.lines().count() == 4).then_some(text)
    });
    assert!(top.contains("Mi"), "{top}");
    let node = wait_for("kubectl top node", Duration::from_secs(60), || {
        let out = s.kubectl_output(&["top", "node"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    });
    assert!(node.contains(s.node_name()) && node.contains('%'), "{node}");
}

#[test]
fn host_network_pods_serve_on_the_node_address() {
    let s = Server::start_with_node(&[]);
    let port = 20000 + (common::node::unique() % 9000) as u16;
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  containers:
  - name: web
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "127.0.0.1:{port}", "-h", "/etc"]
    readinessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}
"#
        ),
    );
    let pod = s.wait_pod_ready("hostnet");
    assert_eq!(pod["status"]["podIP"], pod["status"]["hostIP"]);
    let body = wait_for(
        "httpd on the host's loopback",
        Duration::from_secs(20),
        || common::node::http_get(&format!("127.0.0.1:{port}"), "/hostname"),
    );
    assert!(!body.is_empty());
    s.kubectl(&["delete", "pod", "hostnet", "--grace-period=1"]);
    assert!(
        common::node::http_get(&format!("127.0.0.1:{port}"), "/hostname").is_none(),
        "stopped with the pod"
    );
}

#[test]
fn an_agent_configuration_file_sets_labels_taints_and_capacity() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("agent.yaml");
    std::fs::write(&cfg, "nodeLabels: {zone: eu-1, disk: ssd}\nregisterWithTaints:\n- {key: dedicated, value: infra, effect: NoSchedule}\nmaxPods: 7\ncontainerLogMaxSize: 1Mi\n").unwrap();
    let s = Server::start_with_node(&["--config", cfg.to_str().unwrap()]);
    let node: serde_json::Value =
        serde_json::from_str(&s.kubectl(&["get", "node", s.node_name(), "-o", "json"])).unwrap();
    assert_eq!(node["metadata"]["labels"]["zone"], "eu-1");
    assert_eq!(node["metadata"]["labels"]["disk"], "ssd");
    assert_eq!(node["status"]["capacity"]["pods"], "7");
    assert_eq!(node["spec"]["taints"][0]["key"], "dedicated");
    // The taint keeps ordinary pods off; a toleration lets one in.
    s.kubectl(&[
        "run",
        "plain",
        &format!("--image={BUSYBOX}"),
        "--",
        "sleep",
        "3600",
    ]);
    wait_for(
        "a FailedScheduling event naming the taint",
        Duration::from_secs(30),
        || {
            let ev = s.kubectl(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=plain",
            ]);
            ev.contains("untolerated taint").then_some(())
        },
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: tolerant}}
spec:
  tolerations: [{{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}}]
  containers: [{{name: c, image: {BUSYBOX}, command: ["sleep", "3600"]}}]
"#
        ),
    );
    s.wait_pod_ready("tolerant");
    // A file with an unknown key is refused with its name.
    let bad = cfg_dir.path().join("bad.yaml");
    std::fs::write(&bad, "nodeLabel: {zone: x}\n").unwrap();
    let out = std::process::Command::new(common::drover_bin())
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--no-scheduler",
            "--no-controllers",
            "--config",
            bad.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(cfg_dir.path().join("srv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("nodeLabel"),
        "{err}"
    );
}
