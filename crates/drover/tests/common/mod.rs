//! The end-to-end harness: starts the real `drover` binary on a free loopback port with a
//! temporary data directory, and drives it with the real kubectl.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `drover server`, killed (by PID) when dropped.
pub struct Server {
    child: Option<Child>,
    /// The temporary data directory (kept for restarts).
    pub dir: tempfile::TempDir,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The listen address.
    pub addr: String,
    /// kubectl's discovery cache for this server.
    cache: PathBuf,
    /// The extra `drover server` flags, repeated on restart (e.g. `--store etcd://...`).
    extra: Vec<String>,
    /// The local node agent, when the server runs one.
    pub node: Option<node::Node>,
}

/// The path of the drover binary cargo built for these tests.
pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

fn spawn(dir: &Path, listen: &str, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(drover_bin())
        .args(["server", "--data-dir"])
        .arg(dir)
        .args(["--listen", listen])
        .args(extra)
        .env("DROVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover server");
    let stderr = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            panic!("drover server exited before it was ready");
        }
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
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).unwrap_or(0) > 0 {
            if std::env::var_os("DROVER_TEST_LOG").is_some() {
                eprint!("[server] {sink}");
            }
            sink.clear();
        }
    });
    (child, addr)
}

impl Server {
    /// Starts the API server alone on a free port: no scheduler, no controllers, so that
    /// stored objects stay exactly as the test wrote them.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the API server alone with extra `drover server` flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let mut flags = vec!["--no-scheduler", "--no-controllers"];
        flags.extend_from_slice(extra);
        Self::launch(&flags)
    }

    /// Starts a whole control plane: API server, scheduler and controllers.
    pub fn start_cluster() -> Server {
        Self::launch(&[])
    }

    /// A whole control plane with extra `drover server` flags.
    pub fn launch_cluster_with(extra: &[&str]) -> Server {
        Self::launch(extra)
    }

    fn launch(extra: &[&str]) -> Server {
        let mut flags = vec!["--no-agent"];
        flags.extend_from_slice(extra);
        Self::launch_in(tempfile::tempdir().expect("tempdir"), &flags, None)
    }

    /// A whole cluster with a real node agent (runc, CNI) on a bridge, pod range and
    /// node name of its own, with the test busybox image imported. Everything the agent
    /// made is removed (`drover reset`) when the server is dropped.
    pub fn start_with_node(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = node::Node::prepare(dir.path());
        let mut flags: Vec<String> = node.flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let s = Self::launch_in(dir, &flags, Some(node));
        s.wait_node_ready();
        s
    }

    fn launch_in(dir: tempfile::TempDir, extra: &[&str], node: Option<node::Node>) -> Server {
        let (child, addr) = spawn(dir.path(), "127.0.0.1:0", extra);
        let cache = dir.path().join("kubectl-cache");
        Server {
            child: Some(child),
            url: format!("https://{addr}"),
            addr,
            dir,
            cache,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            node,
        }
    }

    /// The kubeconfig path.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir, address and flags.
    pub fn restart(&mut self) {
        self.kill9();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let (child, addr) = spawn(self.dir.path(), &self.addr, &extra);
        assert_eq!(addr, self.addr);
        self.child = Some(child);
    }

    /// The PID of the server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// A kubectl command for this server (the dispatcher at /usr/bin/kubectl by default).
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        self.kubectl_bin_cmd("kubectl", args)
    }

    /// A command for a specific kubectl binary.
    pub fn kubectl_bin_cmd(&self, bin: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs kubectl and returns its output, whatever the exit code.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// Runs kubectl, which must succeed; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with stdin, which must succeed; returns stdout.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin_output(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with stdin, whatever the exit code.
    pub fn kubectl_stdin_output(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait kubectl")
    }

    /// Runs kubectl, which must fail; returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The admin bearer token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("admin-token"))
            .expect("token")
            .trim()
            .to_string()
    }

    /// A kube-rs client for this server, from its kubeconfig.
    pub async fn kube_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("read kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(n) = &self.node {
            n.reset(self.dir.path());
        }
    }
}

pub mod etcd;
pub mod node;

/// Polls `f` until it returns Some, or gives None after `timeout`.
pub fn try_wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `f` until it returns Some, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
