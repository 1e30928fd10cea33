//! `runc exec`: interactive sessions (pipes or a pty) and run-to-completion probes.

use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::unix::pipe;

use crate::runtime::send_signal;
use crate::{BoxRead, BoxWrite, Runtime, RuntimeError, Status};

/// Most bytes of stdout and of stderr [`Runtime::exec_sync`] keeps (like the CRI's limit).
pub const EXEC_SYNC_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// A command to run in a running container (as its main process's user, cwd and environment).
#[derive(Clone, Debug, Default)]
pub struct ExecRequest {
    /// Command and arguments.
    pub args: Vec<String>,
    /// Extra `K=V` environment entries.
    pub env: Vec<String>,
    /// Run on a terminal (stdout and stderr merged, [`ExecSession::resize`] works).
    pub tty: bool,
    /// Give the process a stdin stream; otherwise it reads /dev/null.
    pub stdin: bool,
}

/// Result of [`Runtime::exec_sync`].
#[derive(Clone, Debug)]
pub struct ExecOutput {
    /// Exit code (128+N when killed by signal N).
    pub exit_code: i32,
    /// Captured stdout (at most [`EXEC_SYNC_OUTPUT_LIMIT`] bytes).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most [`EXEC_SYNC_OUTPUT_LIMIT`] bytes).
    pub stderr: Vec<u8>,
}

/// A running `runc exec`. Take the streams (`session.stdout.take()`) to pump them from separate
/// tasks; call [`ExecSession::wait`] for the exit code. Dropping an unfinished session kills the
/// process. Shutting down (or dropping) `stdin` closes the process's stdin (pipes only; on a tty
/// send ^D instead).
pub struct ExecSession {
    /// The process's stdin (None unless requested).
    pub stdin: Option<BoxWrite>,
    /// The process's stdout (the terminal's output with a tty).
    pub stdout: Option<BoxRead>,
    /// The process's stderr (None with a tty).
    pub stderr: Option<BoxRead>,
    child: tokio::process::Child,
    resizer: ExecResizer,
    pid_file: PathBuf,
    finished: bool,
}

/// Resizes an exec's terminal; cloneable so a websocket task can own one.
#[derive(Clone, Debug)]
pub struct ExecResizer {
    master: Option<Arc<OwnedFd>>,
    runc_pid: Option<u32>,
}

impl ExecResizer {
    /// Sets the terminal size (no-op without a tty).
    pub fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let Some(master) = &self.master else {
            return Ok(());
        };
        let ws = rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(master.as_ref(), ws)
            .map_err(|e| RuntimeError::io("resizing exec terminal", e.into()))?;
        // runc copies our terminal's size to the container's on SIGWINCH.
        if let Some(pid) = self.runc_pid {
            let _ = send_signal(pid, 28);
        }
        Ok(())
    }
}

impl ExecSession {
    /// Sets the terminal size (no-op without a tty).
    pub fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.resizer.resize(width, height)
    }

    /// A handle that resizes this session's terminal from another task.
    pub fn resizer(&self) -> ExecResizer {
        self.resizer.clone()
    }

    /// Host pid of the exec'd process, once runc has started it.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills the exec'd process (SIGKILL).
    pub fn kill(&self) {
        if let Some(pid) = self.pid() {
            let _ = send_signal(pid, 9);
        }
    }

    /// Waits for the process to exit; returns its exit code (128+N when killed by signal N).
    pub async fn wait(&mut self) -> Result<i32, RuntimeError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| RuntimeError::io("waiting for runc exec", e))?;
        self.finished = true;
        let _ = std::fs::remove_file(&self.pid_file);
        Ok(exit_code(status))
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        if !self.finished
            && let Ok(None) = self.child.try_wait()
        {
            self.kill();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Reads a pty master, treating EIO (all slave ends closed) as end of file.
struct PtyReader(pipe::Receiver);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

static EXEC_SEQ: AtomicU64 = AtomicU64::new(0);

/// A pty pair: (master, slave).
fn open_pty() -> Result<(OwnedFd, std::fs::File), RuntimeError> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let err = |e: rustix::io::Errno| RuntimeError::io("allocating a pseudo-terminal", e.into());
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(err)?;
    grantpt(&master).map_err(err)?;
    unlockpt(&master).map_err(err)?;
    let name = ptsname(&master, Vec::new()).map_err(err)?;
    let path = PathBuf::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.as_bytes()),
    );
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(&path)
        .map_err(|e| RuntimeError::io(format!("opening {}", path.display()), e))?;
    rustix::fs::fcntl_setfl(
        &master,
        rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::RDWR,
    )
    .map_err(err)?;
    Ok((master, slave))
}

impl Runtime {
    /// Starts `req.args` in the running container with `runc exec` and returns its streams.
    pub async fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecSession, RuntimeError> {
        if req.args.is_empty() {
            return Err(RuntimeError::InvalidSpec("exec needs a command".into()));
        }
        let info = self
            .info(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        if info.status != Status::Running {
            return Err(RuntimeError::NotRunning(id.to_string()));
        }
        let cfg = &self.inner.cfg;
        let seq = EXEC_SEQ.fetch_add(1, Ordering::Relaxed);
        let pid_file = self
            .dir(id)
            .join(format!("exec-{}-{seq}.pid", std::process::id()));
        let mut cmd = tokio::process::Command::new(&cfg.runtime);
        cmd.arg("--root")
            .arg(&cfg.runtime_root)
            .arg("exec")
            .arg("--pid-file")
            .arg(&pid_file);
        if req.tty {
            cmd.arg("--tty");
        }
        for e in &req.env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg(id).args(&req.args);
        let spawn_err = |e| RuntimeError::io(format!("running {} exec", cfg.runtime.display()), e);

        if req.tty {
            let (master, slave) = open_pty()?;
            let dup = |f: &std::fs::File| {
                f.try_clone()
                    .map_err(|e| RuntimeError::io("duplicating pty", e))
            };
            cmd.stdin(Stdio::from(dup(&slave)?))
                .stdout(Stdio::from(dup(&slave)?))
                .stderr(Stdio::from(slave));
            let child = cmd.spawn().map_err(spawn_err)?;
            drop(cmd); // closes our copies of the slave so EOF arrives when runc exits
            let runc_pid = child.id();
            let dupm = |m: &OwnedFd| {
                m.try_clone()
                    .map_err(|e| RuntimeError::io("duplicating pty", e))
            };
            let reader = pipe::Receiver::from_owned_fd_unchecked(dupm(&master)?)
                .map_err(|e| RuntimeError::io("registering pty", e))?;
            let stdin: Option<BoxWrite> = if req.stdin {
                let w = pipe::Sender::from_owned_fd_unchecked(dupm(&master)?)
                    .map_err(|e| RuntimeError::io("registering pty", e))?;
                Some(Box::new(w))
            } else {
                None
            };
            Ok(ExecSession {
                stdin,
                stdout: Some(Box::new(PtyReader(reader))),
                stderr: None,
                child,
                resizer: ExecResizer {
                    master: Some(Arc::new(master)),
                    runc_pid,
                },
                pid_file,
                finished: false,
            })
        } else {
            cmd.stdin(if req.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut child = cmd.spawn().map_err(spawn_err)?;
            let stdin = child.stdin.take().map(|s| Box::new(s) as BoxWrite);
            let stdout = child.stdout.take().map(|s| Box::new(s) as BoxRead);
            let stderr = child.stderr.take().map(|s| Box::new(s) as BoxRead);
            Ok(ExecSession {
                stdin,
                stdout,
                stderr,
                child,
                resizer: ExecResizer {
                    master: None,
                    runc_pid: None,
                },
                pid_file,
                finished: false,
            })
        }
    }

    /// Runs `args` in the container to completion (exec probes). On timeout the process is killed
    /// and `RuntimeError::Timeout` returned.
    pub async fn exec_sync(
        &self,
        id: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let mut session = self
            .exec(
                id,
                ExecRequest {
                    args: args.to_vec(),
                    env: vec![],
                    tty: false,
                    stdin: false,
                },
            )
            .await?;
        let out = session.stdout.take();
        let err = session.stderr.take();
        let collect = |r: Option<BoxRead>| async move {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let room = EXEC_SYNC_OUTPUT_LIMIT.saturating_sub(buf.len());
                            buf.extend_from_slice(&chunk[..n.min(room)]);
                        }
                    }
                }
            }
            buf
        };
        let run = async {
            let (stdout, stderr, code) = tokio::join!(collect(out), collect(err), session.wait());
            code.map(|exit_code| ExecOutput {
                exit_code,
                stdout,
                stderr,
            })
        };
        let result = tokio::time::timeout(timeout, run).await;
        match result {
            Ok(r) => r,
            Err(_) => {
                // Kill the exec'd process itself: killing runc would leave it running in the container.
                session.kill();
                if session.pid().is_none() {
                    let _ = session.child.start_kill();
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), session.wait()).await;
                Err(RuntimeError::Timeout(format!(
                    "exec {:?} in container {id} after {timeout:?}",
                    args
                )))
            }
        }
    }
}

const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<ExecSession>();
};
