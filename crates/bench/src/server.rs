//! A `drover server` child process in a temporary data directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Why the benchmark's server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Starting the process failed.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server exited before it was ready.
    #[error("the benchmark's server exited before it was ready")]
    NotReady,
    /// I/O on the temporary directory or /proc failed.
    #[error("benchmark I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The client could not be made from the server's kubeconfig.
    #[error("cannot connect to the benchmark's server: {0}")]
    Client(#[from] client::Error),
}

/// A running server, killed by PID when dropped.
pub struct BenchServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// The kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
}

impl BenchServer {
    /// Starts `exe server --no-agent` on a free loopback port and waits until it serves.
    pub fn start(exe: &Path) -> Result<BenchServer, ServerError> {
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(exe)
            .args([
                "server",
                "--no-agent",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("DROVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ServerError::Spawn {
                exe: exe.into(),
                source,
            })?;
        let stderr = child.stderr.take().ok_or(ServerError::NotReady)?;
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let _ = child.kill();
                return Err(ServerError::NotReady);
            }
            if line.starts_with("drover: serving the Kubernetes API on https://") {
                break;
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        let kubeconfig = dir.path().join("kubeconfig");
        Ok(BenchServer {
            child,
            _dir: dir,
            kubeconfig,
        })
    }

    /// A client for the server.
    pub fn client(&self) -> Result<client::Client, ServerError> {
        Ok(client::Client::from_kubeconfig_file(&self.kubeconfig)?)
    }

    /// The server's resident set size in MiB (from /proc).
    pub fn rss_mb(&self) -> Result<f64, ServerError> {
        self.proc_status_mb("VmRSS:")
    }

    /// The server's peak resident set size so far in MiB.
    pub fn peak_rss_mb(&self) -> Result<f64, ServerError> {
        self.proc_status_mb("VmHWM:")
    }

    fn proc_status_mb(&self, field: &str) -> Result<f64, ServerError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Ok(kb / 1024.0)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
