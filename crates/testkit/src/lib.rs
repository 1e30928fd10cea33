//! Test support shared by the crates whose end-to-end tests start the real `drover`
//! binary (built beforehand with `cargo build -p drover`) on a free loopback port with a
//! temporary data directory; the server is killed by PID when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `drover server`.
pub struct Server {
    child: Option<Child>,
    /// The data directory (kept across restarts).
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

/// The drover binary: `$CARGO_TARGET_DIR/debug/drover` or `<workspace>/target/debug/drover`.
pub fn drover_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("debug/drover");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p drover` first",
        bin.display()
    );
    bin
}

fn spawn(dir: &Path, listen: &str) -> (Child, String) {
    let mut child = Command::new(drover_bin())
        .args([
            "server",
            "--no-agent",
            "--no-scheduler",
            "--no-controllers",
            "--data-dir",
        ])
        .arg(dir)
        .args(["--listen", listen])
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
            let _ = child.wait();
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
            sink.clear();
        }
    });
    (child, addr)
}

impl Server {
    /// Starts a server on a free port.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, addr) = spawn(dir.path(), "127.0.0.1:0");
        Server {
            child: Some(child),
            dir,
            addr,
        }
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs kubectl against this server, which must succeed; returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args, None).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with `input` on stdin, which must succeed; returns stdout.
    pub async fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_output(args, Some(input)).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl (the real one on PATH), whatever the exit code; async so the
    /// in-process scheduler and hollow nodes keep running meanwhile.
    pub async fn kubectl_output(&self, args: &[&str], input: Option<&str>) -> std::process::Output {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(i) = input {
            stdin.write_all(i.as_bytes()).await.expect("write stdin");
        }
        drop(stdin);
        child.wait_with_output().await.expect("wait kubectl")
    }

    /// A client from that kubeconfig.
    pub fn client(&self) -> client::Client {
        client::Client::from_kubeconfig_file(self.kubeconfig()).expect("client")
    }

    /// Kills the server (SIGKILL, by PID).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again on the same data dir and address.
    pub fn restart(&mut self) {
        self.kill();
        let (child, addr) = spawn(self.dir.path(), &self.addr);
        assert_eq!(addr, self.addr);
        self.child = Some(child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Retries `f` until it returns Some, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
