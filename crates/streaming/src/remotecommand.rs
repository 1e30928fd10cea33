//! exec / attach: the remote command protocols kubectl speaks with the kubelet.
//!
//! Websocket (kubectl's default since 1.30): every binary message starts with a channel byte —
//! 0 stdin, 1 stdout, 2 stderr, 3 error/status (a JSON `metav1.Status`), 4 resize
//! (`{"Width":..,"Height":..}`), 255 close (v5: `[255, 0]` closes stdin). The base64 variant sends
//! text messages whose first character is the channel digit and the rest base64.
//!
//! SPDY/3.1 (kubectl's fallback when the websocket upgrade is refused): one SPDY stream per
//! channel, named by the `streamtype` header (`error`, `stdin`, `stdout`, `stderr`, `resize`).

use std::future::Future;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::spdy::rst;
use crate::spdy::session::{IncomingStream, Session, StreamReader, StreamWriter};
use crate::{StreamError, ws};

/// Channel numbers of the websocket protocols.
pub mod channel {
    /// Client → server standard input.
    pub const STDIN: u8 = 0;
    /// Server → client standard output.
    pub const STDOUT: u8 = 1;
    /// Server → client standard error.
    pub const STDERR: u8 = 2;
    /// Server → client final status (JSON `metav1.Status` from v4 on).
    pub const ERROR: u8 = 3;
    /// Client → server terminal size changes.
    pub const RESIZE: u8 = 4;
    /// v5 close signal: `[255, channel]` half-closes that channel.
    pub const CLOSE: u8 = 255;
}

/// Websocket sub-protocol v5 (adds the close signal).
pub const V5: &str = "v5.channel.k8s.io";
/// Websocket / SPDY sub-protocol v4 (JSON status on the error channel).
pub const V4: &str = "v4.channel.k8s.io";
/// Base64 text variant of v4.
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";

/// Time to wait for the client's side of a closing handshake before dropping the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Time kubectl has to open all SPDY streams of an exec (the kubelet's default too).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest output chunk per message/frame.
const CHUNK: usize = 32 * 1024;

/// What the client asked for, from the exec/attach query string.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// argv of the command (exec); empty for attach.
    pub command: Vec<String>,
    /// Container name (may be empty when the client omitted it).
    pub container: String,
    /// The client sends standard input.
    pub stdin: bool,
    /// The client wants standard output.
    pub stdout: bool,
    /// The client wants standard error (always false with a tty: the terminal merges it).
    pub stderr: bool,
    /// Allocate a terminal; resize events arrive.
    pub tty: bool,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, StreamError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        _ => Err(StreamError::InvalidQuery {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: "expected true/false or 1/0".to_owned(),
        }),
    }
}

impl Options {
    /// Parses the query string of an exec/attach request (`command` repeated, booleans
    /// `true`/`1`). Fails when no stream is requested, as the kubelet does.
    pub fn from_query(query: &str) -> Result<Options, StreamError> {
        let mut o = Options::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "container" => o.container = v.into_owned(),
                "stdin" | "input" => o.stdin = parse_bool(&k, &v)?,
                "stdout" | "output" => o.stdout = parse_bool(&k, &v)?,
                "stderr" => o.stderr = parse_bool(&k, &v)?,
                "tty" => o.tty = parse_bool(&k, &v)?,
                _ => {}
            }
        }
        if o.tty {
            o.stderr = false;
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(StreamError::NoStreams);
        }
        Ok(o)
    }
}

/// A terminal size the client reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

#[derive(Deserialize)]
struct WireSize {
    #[serde(rename = "Width", alias = "width", default)]
    width: u16,
    #[serde(rename = "Height", alias = "height", default)]
    height: u16,
}

/// The command's standard streams, handed to the handler. Dropping a writer (or returning from the
/// handler, which drops them) ends that output stream.
pub struct Streams {
    /// Client's standard input; EOF when the client closes stdin (or disconnects).
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Standard output to the client.
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Standard error to the client (`None` with a tty).
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Terminal size changes; `Some` when a tty was requested.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// How the command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code (0 = success). Codes outside 1..=255 other than 0 are reported as 255.
    Exited(i32),
    /// The command could not run; the message is shown to the user.
    Error(String),
}

/// The JSON `metav1.Status` reporting `outcome` on the error channel (v4 and later).
pub fn status_json(opts: &Options, outcome: &Outcome) -> String {
    let v = match outcome {
        Outcome::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => {
            let code = if (1..=255).contains(code) { *code } else { 255 };
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                    opts.command
                ),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
        Outcome::Error(msg) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": msg,
            "reason": "InternalError",
            "code": 500,
        }),
    };
    v.to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WsProtocol {
    V5,
    V4,
    V4Base64,
}

impl WsProtocol {
    fn name(self) -> &'static str {
        match self {
            WsProtocol::V5 => V5,
            WsProtocol::V4 => V4,
            WsProtocol::V4Base64 => V4_BASE64,
        }
    }

    fn encode(self, ch: u8, data: &[u8]) -> Message {
        match self {
            WsProtocol::V4Base64 => {
                let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
                s.push(char::from(b'0' + ch));
                base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
                Message::Text(s.into())
            }
            _ => {
                let mut v = Vec::with_capacity(1 + data.len());
                v.push(ch);
                v.extend_from_slice(data);
                Message::Binary(Bytes::from(v))
            }
        }
    }

    fn decode(self, msg: Message) -> Option<(u8, Bytes)> {
        match (self, msg) {
            (WsProtocol::V4Base64, Message::Text(t)) => {
                let s = t.as_str();
                let ch = s.as_bytes().first()?.checked_sub(b'0')?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(s.get(1..)?.trim_end())
                    .ok()?;
                Some((ch, Bytes::from(data)))
            }
            (WsProtocol::V5 | WsProtocol::V4, Message::Binary(b)) if !b.is_empty() => {
                Some((b[0], b.slice(1..)))
            }
            _ => None,
        }
    }
}

/// Upgrades the request (websocket v5/v4/v4.base64 channels, or SPDY/3.1) and runs `handler` with
/// the streams; when the handler returns, flushes output, sends the status on the error channel and
/// closes. Returns the response to send (101, or 400 with a Status JSON body when the request is
/// not an upgrade kubectl understands — kubectl then falls back). Must be called inside a Tokio
/// runtime; the handler runs in a spawned task.
pub fn serve<B, F, Fut>(
    req: http::Request<B>,
    opts: Options,
    handler: F,
) -> http::Response<Full<Bytes>>
where
    B: hyper::body::Body + Send + 'static,
    F: FnOnce(Streams) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let mut req = req;
    let headers = req.headers();
    if ws::is_websocket_upgrade(headers) {
        let offered = ws::websocket_protocols(headers);
        let Some(proto) = [WsProtocol::V5, WsProtocol::V4, WsProtocol::V4Base64]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p.name()))
        else {
            return ws::bad_request(&format!(
                "none of the offered websocket sub-protocols {offered:?} is supported; supported: [{V5}, {V4}, {V4_BASE64}]"
            ));
        };
        let resp = ws::websocket_accept(headers, proto.name());
        if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            return resp;
        }
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on.await {
                Ok(up) => run_websocket(TokioIo::new(up), proto, opts, handler).await,
                Err(e) => tracing::warn!("exec websocket upgrade failed: {e}"),
            }
        });
        return resp;
    }
    if ws::is_spdy_upgrade(headers) {
        let offered = ws::stream_protocols(headers);
        let Some(proto) = [V4, V5]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p))
        else {
            return ws::bad_request(&format!(
                "unable to negotiate a remote command protocol: client offers {offered:?}, server supports [{V4}, {V5}]"
            ));
        };
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on.await {
                Ok(up) => run_spdy(TokioIo::new(up), opts, handler).await,
                Err(e) => tracing::warn!("exec SPDY upgrade failed: {e}"),
            }
        });
        return ws::spdy_accept(proto);
    }
    ws::bad_request(
        "exec/attach needs an upgrade: websocket with sub-protocol v5.channel.k8s.io, or SPDY/3.1",
    )
}

/// Parses complete JSON terminal sizes out of `buf`, leaving an incomplete tail.
fn parse_sizes(buf: &mut Vec<u8>, out: &mut Vec<TerminalSize>) {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<WireSize>();
    let consumed = loop {
        match it.next() {
            Some(Ok(s)) => out.push(TerminalSize {
                width: s.width,
                height: s.height,
            }),
            Some(Err(e)) if e.is_eof() => break it.byte_offset(),
            Some(Err(_)) => break buf.len(),
            None => break it.byte_offset(),
        }
    };
    buf.drain(..consumed);
}

/// The handler side and the transport side of the standard streams.
struct Plumbing {
    streams: Streams,
    stdin_feed: Option<DuplexStream>,
    stdout_drain: Option<DuplexStream>,
    stderr_drain: Option<DuplexStream>,
    resize_tx: Option<mpsc::Sender<TerminalSize>>,
}

fn plumbing(opts: &Options) -> Plumbing {
    let pipe = |on: bool| on.then(|| tokio::io::duplex(64 * 1024));
    let stdin = pipe(opts.stdin);
    let stdout = pipe(opts.stdout);
    let stderr = pipe(opts.stderr && !opts.tty);
    let (resize_tx, resize_rx) = if opts.tty {
        let (t, r) = mpsc::channel(16);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let (stdin_app, stdin_feed) = stdin.unzip();
    let (stdout_app, stdout_drain) = stdout.unzip();
    let (stderr_app, stderr_drain) = stderr.unzip();
    Plumbing {
        streams: Streams {
            stdin: stdin_app.map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            stdout: stdout_app.map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>),
            stderr: stderr_app.map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>),
            resize: resize_rx,
        },
        stdin_feed,
        stdout_drain,
        stderr_drain,
        resize_tx,
    }
}

fn deliver_sizes(buf: &mut Vec<u8>, data: &[u8], tx: &mpsc::Sender<TerminalSize>) {
    buf.extend_from_slice(data);
    let mut sizes = Vec::new();
    parse_sizes(buf, &mut sizes);
    for s in sizes {
        // A full queue means the handler is not listening; dropping sizes is harmless.
        let _ = tx.try_send(s);
    }
}

async fn run_websocket<S, F, Fut>(io: S, proto: WsProtocol, opts: Options, handler: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(Streams) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let socket = ws::server_websocket(io).await;
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let last = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || last {
                break;
            }
        }
    });
    let Plumbing {
        streams,
        stdin_feed,
        stdout_drain,
        stderr_drain,
        resize_tx,
    } = plumbing(&opts);

    let mut pumps = Vec::new();
    for (drain, ch) in [
        (stdout_drain, channel::STDOUT),
        (stderr_drain, channel::STDERR),
    ] {
        let Some(mut drain) = drain else { continue };
        let tx = out_tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match drain.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(proto.encode(ch, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }

    let mut reader = tokio::spawn(async move {
        let mut stdin = stdin_feed;
        let mut resize_buf = Vec::new();
        while let Some(Ok(msg)) = source.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            let Some((ch, data)) = proto.decode(msg) else {
                continue;
            };
            match ch {
                channel::STDIN => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                channel::RESIZE => {
                    if let Some(tx) = &resize_tx {
                        deliver_sizes(&mut resize_buf, &data, tx);
                    }
                }
                channel::CLOSE => {
                    if data.first() == Some(&channel::STDIN)
                        && let Some(mut w) = stdin.take()
                    {
                        let _ = w.shutdown().await;
                    }
                }
                _ => {}
            }
        }
    });

    let outcome = handler(streams).await;
    for p in pumps {
        let _ = p.await;
    }
    let status = status_json(&opts, &outcome);
    let _ = out_tx
        .send(proto.encode(channel::ERROR, status.as_bytes()))
        .await;
    let _ = out_tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    drop(out_tx);
    let _ = writer.await;
    // Let the client answer the close handshake, but do not wait forever.
    if tokio::time::timeout(CLOSE_GRACE, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
}

async fn run_spdy<T, F, Fut>(io: T, opts: Options, handler: F)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    F: FnOnce(Streams) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let (session, mut incoming) = match Session::start(io) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("exec SPDY session could not start: {e}");
            return;
        }
    };
    let mut error: Option<IncomingStream> = None;
    let mut stdin: Option<IncomingStream> = None;
    let mut stdout: Option<IncomingStream> = None;
    let mut stderr: Option<IncomingStream> = None;
    let mut resize: Option<IncomingStream> = None;
    let want_stderr = opts.stderr && !opts.tty;
    let complete = |e: &Option<IncomingStream>,
                    i: &Option<IncomingStream>,
                    o: &Option<IncomingStream>,
                    r2: &Option<IncomingStream>,
                    z: &Option<IncomingStream>| {
        e.is_some()
            && i.is_some() == opts.stdin
            && o.is_some() == opts.stdout
            && r2.is_some() == want_stderr
            && (z.is_some() || !opts.tty)
    };
    let collected = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        while !complete(&error, &stdin, &stdout, &stderr, &resize) {
            let Some(s) = incoming.recv().await else {
                return false;
            };
            let slot = match s.header("streamtype").unwrap_or("") {
                "error" => &mut error,
                "stdin" => &mut stdin,
                "stdout" => &mut stdout,
                "stderr" => &mut stderr,
                "resize" => &mut resize,
                other => {
                    tracing::debug!("exec: unexpected SPDY stream type {other:?}");
                    s.writer.reset(rst::PROTOCOL_ERROR);
                    continue;
                }
            };
            if let Some(old) = slot.replace(s) {
                old.writer.reset(rst::PROTOCOL_ERROR);
            }
        }
        true
    })
    .await;
    if collected != Ok(true) {
        tracing::warn!("exec over SPDY: the client did not open the expected streams in time");
        session.shutdown().await;
        return;
    }
    // Refuse any stream opened later, without blocking the session.
    tokio::spawn(async move {
        while let Some(s) = incoming.recv().await {
            s.writer.reset(rst::REFUSED_STREAM);
        }
    });

    let Plumbing {
        streams,
        stdin_feed,
        stdout_drain,
        stderr_drain,
        resize_tx,
    } = plumbing(&opts);

    let mut keep: Vec<StreamReader> = Vec::new();
    if let (Some(s), Some(mut feed)) = (stdin, stdin_feed) {
        let mut r = s.reader;
        tokio::spawn(async move {
            while let Some(chunk) = r.read().await {
                if feed.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = feed.shutdown().await;
        });
    }
    if let (Some(s), Some(tx)) = (resize, resize_tx) {
        let mut r = s.reader;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(chunk) = r.read().await {
                deliver_sizes(&mut buf, &chunk, &tx);
            }
        });
    }
    let mut pumps = Vec::new();
    for (stream, drain) in [(stdout, stdout_drain), (stderr, stderr_drain)] {
        let (Some(stream), Some(drain)) = (stream, drain) else {
            continue;
        };
        keep.push(stream.reader);
        pumps.push(tokio::spawn(pump_spdy(drain, stream.writer)));
    }

    let outcome = handler(streams).await;
    for p in pumps {
        let _ = p.await;
    }
    if let Some(error) = error {
        let status = status_json(&opts, &outcome);
        let _ = error.writer.write(status.as_bytes()).await;
        let _ = error.writer.finish().await;
    }
    drop(keep);
    session.shutdown().await;
    let _ = tokio::time::timeout(CLOSE_GRACE, session.closed()).await;
}

async fn pump_spdy(mut drain: DuplexStream, w: StreamWriter) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match drain.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = w.finish().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let o = Options::from_query(
            "command=sh&command=-c&command=echo+a%26b&container=c&stderr=true&stdout=1&stdin=false",
        )
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo a&b"]);
        assert_eq!(o.container, "c");
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        let o = Options::from_query("stdin=true&stdout=true&stderr=true&tty=true").unwrap();
        assert!(o.tty && !o.stderr, "tty merges stderr");
        assert!(matches!(
            Options::from_query("command=ls"),
            Err(StreamError::NoStreams)
        ));
        assert!(matches!(
            Options::from_query("stdout=yes"),
            Err(StreamError::InvalidQuery { .. })
        ));
    }

    #[test]
    fn status_documents() {
        let o = Options {
            command: vec!["sh".into()],
            ..Default::default()
        };
        assert_eq!(
            status_json(&o, &Outcome::Exited(0)),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&status_json(&o, &Outcome::Exited(3))).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let v: serde_json::Value =
            serde_json::from_str(&status_json(&o, &Outcome::Error("boom".into()))).unwrap();
        assert_eq!(v["message"], "boom");
    }

    #[test]
    fn resize_stream_parsing() {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        buf.extend_from_slice(br#"{"Width":80,"Height":24}{"Width":1"#);
        parse_sizes(&mut buf, &mut out);
        assert_eq!(
            out,
            vec![TerminalSize {
                width: 80,
                height: 24
            }]
        );
        buf.extend_from_slice(b"00,\"Height\":40}\n");
        parse_sizes(&mut buf, &mut out);
        assert_eq!(
            out[1],
            TerminalSize {
                width: 100,
                height: 40
            }
        );
        assert!(buf.iter().all(|b| b.is_ascii_whitespace()));
    }

    #[test]
    fn base64_channel_encoding() {
        let m = WsProtocol::V4Base64.encode(1, b"hi");
        assert_eq!(m, Message::Text("1aGk=".into()));
        assert_eq!(
            WsProtocol::V4Base64.decode(Message::Text("0aGk=".into())),
            Some((0, Bytes::from_static(b"hi")))
        );
        assert_eq!(WsProtocol::V4Base64.decode(Message::Text("é".into())), None);
        assert_eq!(WsProtocol::V5.decode(Message::Binary(Bytes::new())), None);
        assert_eq!(
            WsProtocol::V5.decode(Message::Binary(Bytes::from_static(&[255, 0]))),
            Some((255, Bytes::from_static(&[0])))
        );
    }
}
