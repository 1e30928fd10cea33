//! Attaching to a container's main process through conmon's attach socket.
//!
//! conmon listens on `<bundle>/attach` (SOCK_SEQPACKET). Each packet it sends is one chunk of output
//! prefixed by a byte naming the stream (2 = stdout, 3 = stderr); bytes we send go to the process's
//! stdin; shutting down our write side (or disconnecting, unless the container was created with
//! stdin kept open) closes that stdin. Terminal resizes go to the `<bundle>/ctl` fifo as
//! "1 <height> <width>\n".

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_seqpacket::UnixSeqpacket;

use crate::{BoxRead, BoxWrite, Runtime, RuntimeError};

/// conmon reads stdin from attach clients in chunks of this size; bigger packets would be truncated.
const CONMON_BUF: usize = 8192;

/// An attachment to a container's main process. Take the streams to pump them from separate
/// tasks. The connection closes when every part (streams and session) is dropped.
pub struct AttachSession {
    /// Writes to the process's stdin (None if the container was created without stdin).
    /// `shutdown()` closes the process's stdin.
    pub stdin: Option<BoxWrite>,
    /// The process's stdout (its terminal with a tty); ends when the container exits.
    pub stdout: Option<BoxRead>,
    /// The process's stderr (None with a tty).
    pub stderr: Option<BoxRead>,
    resizer: AttachResizer,
}

/// Resizes an attached container's terminal; cloneable so a websocket task can own one.
#[derive(Clone, Debug)]
pub struct AttachResizer {
    ctl: Option<PathBuf>,
}

impl AttachResizer {
    /// Sets the terminal size (no-op without a tty).
    pub fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let Some(ctl) = &self.ctl else { return Ok(()) };
        // Non-blocking open: fails with ENXIO instead of hanging when conmon is gone.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(ctl)
            .map_err(|e| {
                RuntimeError::io(format!("opening conmon control fifo {}", ctl.display()), e)
            })?;
        f.write_all(format!("1 {height} {width}\n").as_bytes())
            .map_err(|e| RuntimeError::io("writing resize to conmon", e))
    }
}

impl AttachSession {
    /// Sets the terminal size (no-op without a tty).
    pub fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.resizer.resize(width, height)
    }

    /// A handle that resizes this session's terminal from another task.
    pub fn resizer(&self) -> AttachResizer {
        self.resizer.clone()
    }
}

/// AsyncRead over a channel of chunks.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.buf.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(b)) => self.buf = b,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.buf.len().min(out.remaining());
        let chunk = self.buf.split_to(n);
        out.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// AsyncWrite sending packets of at most [`CONMON_BUF`] bytes.
struct SocketWriter(Arc<UnixSeqpacket>);

impl AsyncWrite for SocketWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(CONMON_BUF);
        self.0.poll_send(cx, &buf[..n])
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.0.shutdown(std::net::Shutdown::Write))
    }
}

impl Runtime {
    /// Attaches to the container's main process stdio through conmon (output from now on; the log
    /// file has the past). Works for created and running containers.
    pub async fn attach(&self, id: &str) -> Result<AttachSession, RuntimeError> {
        let meta = self.meta(id).await?;
        let bundle = self.dir(id);
        // The socket path may exceed sun_path's 108 bytes; connect through a short /proc/self/fd path.
        let dir = std::fs::File::open(&bundle)
            .map_err(|e| RuntimeError::io(format!("opening {}", bundle.display()), e))?;
        let path = format!("/proc/self/fd/{}/attach", dir.as_raw_fd());
        let sock = UnixSeqpacket::connect(&path).await.map_err(|e| {
            RuntimeError::io(
                format!(
                    "connecting to conmon's attach socket in {} (is the container running?)",
                    bundle.display()
                ),
                e,
            )
        })?;
        drop(dir);
        let sock = Arc::new(sock);
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
        let (err_tx, err_rx) = mpsc::channel::<Bytes>(64);
        let reader = sock.clone();
        tokio::spawn(async move {
            let mut out_tx = Some(out_tx);
            let mut err_tx = Some(err_tx);
            let mut buf = vec![0u8; CONMON_BUF + 2];
            loop {
                let recv = tokio::select! {
                    r = reader.recv(&mut buf) => r,
                    // Stop once nobody reads any more.
                    _ = async {
                        match (&out_tx, &err_tx) {
                            (Some(o), Some(e)) => { tokio::join!(o.closed(), e.closed()); }
                            (Some(o), None) => o.closed().await,
                            (None, Some(e)) => e.closed().await,
                            (None, None) => {}
                        }
                    } => break,
                };
                let n = match recv {
                    Ok(info) if info.bytes_read() > 0 => info.bytes_read(),
                    _ => break,
                };
                let data = Bytes::copy_from_slice(&buf[1..n]);
                let tx = match buf[0] {
                    2 => &mut out_tx,
                    3 => &mut err_tx,
                    _ => continue,
                };
                if let Some(t) = tx
                    && t.send(data).await.is_err()
                {
                    *tx = None;
                }
            }
        });
        let stdin: Option<BoxWrite> = meta
            .stdin
            .then(|| Box::new(SocketWriter(sock.clone())) as BoxWrite);
        drop(sock);
        let stdout: BoxRead = Box::new(ChannelReader {
            rx: out_rx,
            buf: Bytes::new(),
        });
        let stderr: Option<BoxRead> = (!meta.tty).then(|| {
            Box::new(ChannelReader {
                rx: err_rx,
                buf: Bytes::new(),
            }) as BoxRead
        });
        Ok(AttachSession {
            stdin,
            stdout: Some(stdout),
            stderr,
            resizer: AttachResizer {
                ctl: meta.tty.then(|| bundle.join("ctl")),
            },
        })
    }
}
