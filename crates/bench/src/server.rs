//! A `drover server` child process in a temporary data directory.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// How many of the server's last stderr lines are kept for error messages.
const LOG_TAIL: usize = 40;

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
    #[error("the benchmark's server exited before it was ready:\n{log}")]
    NotReady {
        /// The server's last stderr lines.
        log: String,
    },
    /// I/O on the temporary directory or /proc failed.
    #[error("benchmark I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The client could not be made from the server's kubeconfig.
    #[error("cannot connect to the benchmark's server: {0}")]
    Client(#[from] client::Error),
}

/// A running server, killed by PID when dropped.
pub struct BenchServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    log: Arc<Mutex<VecDeque<String>>>,
    /// The kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
}

impl BenchServer {
    /// Starts `exe server --no-agent` on a free loopback port and waits until it serves.
    pub fn start(exe: &Path) -> Result<BenchServer, ServerError> {
        Self::start_in(exe, tempfile::tempdir()?, &["--no-agent".to_string()])
    }

    /// Starts `exe server` with `extra` flags on a free loopback port, with `dir` as its
    /// data directory (prepared beforehand, e.g. with an imported image), and waits until
    /// it serves the API.
    pub fn start_in(
        exe: &Path,
        dir: tempfile::TempDir,
        extra: &[String],
    ) -> Result<BenchServer, ServerError> {
        let mut child = Command::new(exe)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("DROVER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ServerError::Spawn {
                exe: exe.into(),
                source,
            })?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let keep = |log: &Arc<Mutex<VecDeque<String>>>, line: &str| {
            if let Ok(mut l) = log.lock() {
                if l.len() == LOG_TAIL {
                    l.pop_front();
                }
                l.push_back(line.trim_end().to_string());
            }
        };
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ServerError::NotReady { log: String::new() });
        };
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ServerError::NotReady { log: tail(&log) });
            }
            keep(&log, &line);
            if line.starts_with("drover: serving the Kubernetes API on https://") {
                break;
            }
        }
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                keep(&sink, &line);
                line.clear();
            }
        });
        let kubeconfig = dir.path().join("kubeconfig");
        Ok(BenchServer {
            child: Some(child),
            dir,
            log,
            kubeconfig,
        })
    }

    /// A client for the server.
    pub fn client(&self) -> Result<client::Client, ServerError> {
        Ok(client::Client::from_kubeconfig_file(&self.kubeconfig)?)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The server's last stderr lines, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// The server's resident set size in MiB (from /proc).
    pub fn rss_mb(&self) -> Result<f64, ServerError> {
        Ok(crate::procs::status_kb(self.pid(), "VmRSS:")? as f64 / 1024.0)
    }

    /// The server's peak resident set size so far in MiB.
    pub fn peak_rss_mb(&self) -> Result<f64, ServerError> {
        Ok(crate::procs::status_kb(self.pid(), "VmHWM:")? as f64 / 1024.0)
    }

    /// Kills the server (SIGKILL) and reaps it; the data directory stays until drop.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    log.lock()
        .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        self.kill();
    }
}
