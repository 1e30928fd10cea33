//! A multi-host cluster on one machine: a bridge in the root namespace (random
//! 10.2xx.yy.0/24), one network namespace per "host" wired to it by a veth pair, the
//! server in the root namespace listening on the bridge's address, and real agents run
//! in the host namespaces (`nsenter --net`, so they keep the machine's mount namespace
//! and `drover reset` in the same context sees their mounts). Everything is removed on
//! drop: agents killed by PID and reset, namespaces, veths and the bridge deleted, the
//! server killed.
#![allow(dead_code)]

use crate::common::node::{BUSYBOX, unique};
use crate::common::{drover_bin, wait_for};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn must(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One simulated machine.
pub struct Host {
    /// Its network namespace.
    pub netns: String,
    /// Its address on the shared bridge.
    pub ip: String,
    /// The node name its agent uses.
    pub node: String,
    /// Its pod bridge (inside its namespace).
    pub pod_bridge: String,
    /// The agent's data directory.
    pub data_dir: PathBuf,
    /// The running agent (the PID is the agent's: nsenter execs it).
    pub agent: Option<Child>,
    /// Where the agent's stderr goes.
    pub log: PathBuf,
}

/// The whole test cluster.
pub struct Cluster {
    /// Temp dir holding the server's and agents' data.
    pub dir: tempfile::TempDir,
    /// The shared bridge in the root namespace.
    pub bridge: String,
    /// The bridge's address (the server listens there).
    pub gateway: String,
    /// The server process.
    server: Option<Child>,
    /// `https://GATEWAY:PORT`.
    pub url: String,
    /// The hosts.
    pub hosts: Vec<Host>,
    /// The busybox archive imported into every host.
    archive: PathBuf,
    /// Extra flags every agent is started with (e.g. `--pod-network vxlan`).
    pub agent_args: Vec<String>,
}

impl Cluster {
    /// Makes the network and `n` hosts, and starts the server (no local agent).
    pub fn start(n: usize) -> Cluster {
        for tool in ["ip", "nsenter", "kubectl", "runc", "conmon"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .is_ok_and(|o| o.status.success()),
                "{tool} is required for the multi-node tests (apt-get install iproute2 util-linux runc conmon kubectl)"
            );
        }
        let u = unique();
        let dir = tempfile::tempdir().expect("tempdir");
        let a = 200 + (u % 50);
        let b = (u >> 8) % 256;
        let tag = format!("{:06x}", (u >> 16) & 0xff_ffff);
        let mut c = Cluster {
            dir,
            bridge: format!("mnb{tag}"),
            gateway: format!("10.{a}.{b}.1"),
            server: None,
            url: String::new(),
            hosts: Vec::new(),
            archive: PathBuf::new(),
            agent_args: Vec::new(),
        };
        must(&["ip", "link", "add", &c.bridge, "type", "bridge"]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", c.gateway),
            "dev",
            &c.bridge,
        ]);
        must(&["ip", "link", "set", &c.bridge, "up"]);
        for i in 0..n {
            let netns = format!("mnh{tag}-{i}");
            let veth = format!("mnv{tag}{i}");
            let ip = format!("10.{a}.{b}.{}", 10 + i);
            // Registered before it exists, so a failure below still removes it.
            c.hosts.push(Host {
                netns: netns.clone(),
                ip: ip.clone(),
                node: format!("mn{tag}-{i}"),
                pod_bridge: format!("mnp{tag}{i}"),
                data_dir: c.dir.path().join(format!("host{i}")),
                agent: None,
                log: c.dir.path().join(format!("agent{i}.log")),
            });
            must(&["ip", "netns", "add", &netns]);
            must(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ]);
            must(&["ip", "link", "set", &veth, "master", &c.bridge, "up"]);
            must(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
            must(&[
                "ip",
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &netns, "link", "set", "eth0", "up"]);
        }
        // The busybox image, built once and imported into every host.
        c.archive = c.dir.path().join("busybox.tar");
        must(&[
            drover_bin(),
            "image",
            "build-busybox",
            "--tag",
            BUSYBOX,
            "--output",
            c.archive.to_str().unwrap(),
        ]);
        c.start_server();
        c
    }

    fn start_server(&mut self) {
        let data = self.dir.path().join("server");
        let mut child = Command::new(drover_bin())
            .args(["server", "--no-agent", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("{}:0", self.gateway)])
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start drover server");
        let stderr = child.stderr.take().expect("stderr");
        self.server = Some(child);
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap_or(0) > 0,
                "drover server exited before it was ready"
            );
            if let Some(rest) = line
                .trim()
                .strip_prefix("drover: serving the Kubernetes API on https://")
            {
                break rest.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "drover server did not become ready"
            );
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        self.url = format!("https://{addr}");
    }

    /// The server's data directory.
    pub fn server_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// The default join token the server made.
    pub fn node_token(&self) -> String {
        std::fs::read_to_string(self.server_dir().join("node-token"))
            .expect("node-token")
            .trim()
            .to_string()
    }

    /// `drover agent` for host `i` (not started), joining with `token`.
    pub fn agent_cmd(&self, i: usize, token: &str) -> Command {
        self.agent_cmd_in(i, token, &self.hosts[i].data_dir)
    }

    /// `drover agent` for host `i` with another data directory.
    pub fn agent_cmd_in(&self, i: usize, token: &str, data_dir: &Path) -> Command {
        let h = &self.hosts[i];
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", h.netns))
            .arg(drover_bin())
            .args([
                "agent",
                "--server",
                &self.url,
                "--name",
                &h.node,
                "--data-dir",
            ])
            .arg(data_dir)
            .args([
                "--node-ip",
                &h.ip,
                "--bridge",
                &h.pod_bridge,
                "--agent-port",
                "10250",
                // Tests never send DNS beyond the cluster.
                "--no-dns-upstream",
            ]);
        c.args(&self.agent_args);
        if !token.is_empty() {
            c.args(["--token", token]);
        }
        c.env("DROVER_LOG", "info").stdin(Stdio::null());
        c
    }

    /// Starts host `i`'s agent (importing the image first) and leaves it running.
    pub fn join(&mut self, i: usize, token: &str) {
        let h = &self.hosts[i];
        std::fs::create_dir_all(&h.data_dir).unwrap();
        if !h.data_dir.join("agent/images").exists() {
            must(&[
                drover_bin(),
                "image",
                "import",
                "--data-dir",
                h.data_dir.to_str().unwrap(),
                self.archive.to_str().unwrap(),
            ]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&h.log)
            .unwrap();
        let child = self
            .agent_cmd(i, token)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        self.hosts[i].agent = Some(child);
    }

    /// Runs an agent for host `i` that must fail to join; returns its stderr.
    pub fn join_fails(&self, i: usize, token: &str, data_dir: &Path) -> String {
        let mut c = self.agent_cmd_in(i, token, data_dir);
        let mut child = c
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_for("the refused agent to exit", Duration::from_secs(60), || {
            child.try_wait().ok().flatten()
        });
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            !status.success(),
            "the agent should have been refused:\n{err}"
        );
        err
    }

    /// kill -9 of host `i`'s agent (its containers keep running).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut c) = self.hosts[i].agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `drover reset` in host `i`'s context: kills its containers, removes its networks.
    pub fn reset(&self, i: usize) {
        let h = &self.hosts[i];
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.netns))
            .arg(drover_bin())
            .args(["reset", "--data-dir"])
            .arg(&h.data_dir)
            .args(["--node-name", &h.node, "--bridge", &h.pod_bridge])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "drover reset of {} failed: {}",
                h.node,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("drover reset of {}: {e}", h.node),
        }
    }

    /// The tail of host `i`'s agent log (for failure messages).
    pub fn agent_log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.hosts[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A kubectl command with the admin kubeconfig.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", self.server_dir().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// kubectl, whatever the result.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// kubectl, which must succeed; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl apply of a manifest.
    pub fn apply(&self, manifest: &str) {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An object as JSON, or None.
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl_output(&a);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("json"))
    }

    /// Waits until host `i`'s node is Ready.
    pub fn wait_ready(&self, i: usize) {
        let node = self.hosts[i].node.clone();
        let found = crate::common::try_wait_for(Duration::from_secs(90), || {
            let n = self.get(&["node", &node])?;
            n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                .then_some(())
        });
        assert!(
            found.is_some(),
            "node {node} did not become Ready; its agent log:\n{}",
            self.agent_log(i)
        );
    }

    /// Waits until pod `name` runs Ready; returns it.
    pub fn wait_pod_ready(&self, name: &str) -> Value {
        let found = crate::common::try_wait_for(Duration::from_secs(90), || {
            let p = self.get(&["pod", name])?;
            (p["status"]["phase"] == "Running"
                && p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }))
            .then_some(p)
        });
        found.unwrap_or_else(|| {
            panic!(
                "pod {name} did not become Ready: {}\nevents:\n{}",
                self.get(&["pod", name])
                    .map(|p| p["status"].to_string())
                    .unwrap_or_default(),
                self.kubectl(&["get", "events", "-A"])
            )
        })
    }

    /// Routes and agent logs of every host, for failure messages.
    pub fn diagnose(&self) -> String {
        let mut out = String::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let routes = sh(&["ip", "-n", &h.netns, "route"]);
            out += &format!(
                "--- host {i} ({}, {}) routes:\n{}\n--- agent log:\n{}\n",
                h.node,
                h.ip,
                String::from_utf8_lossy(&routes.stdout),
                self.agent_log(i)
            );
        }
        out
    }

    /// Polls `f` for up to `timeout`; panics with `what` and [`Cluster::diagnose`].
    pub fn wait<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        crate::common::try_wait_for(timeout, f)
            .unwrap_or_else(|| panic!("timed out waiting for {what}\n{}", self.diagnose()))
    }

    /// `kubectl exec POD -- wget -qO- URL`: the body, or None.
    pub fn fetch_from(&self, pod: &str, url: &str) -> Option<String> {
        let out = self.kubectl_output(&["exec", pod, "--", "timeout", "5", "wget", "-qO-", url]);
        if !out.status.success() && std::env::var_os("DROVER_TEST_LOG").is_some() {
            eprintln!(
                "exec {pod} wget {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.hosts.len() {
            self.kill_agent(i);
            if self.hosts[i].data_dir.exists() {
                self.reset(i);
            }
        }
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        for h in &self.hosts {
            let _ = sh(&["ip", "netns", "del", &h.netns]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge]);
    }
}
