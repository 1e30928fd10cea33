//! `kubectl port-forward`: SPDY/3.1 sessions in which kubectl opens, per forwarded connection, an
//! error stream and a data stream (headers `streamtype`, `port`, `requestid`). We connect to the
//! port, copy bytes both ways on the data stream, and report connect failures on the error stream.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::spdy::rst;
use crate::spdy::session::{IncomingStream, Session};
use crate::ws;

/// SPDY stream protocol of port-forward (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// Websocket sub-protocol of SPDY tunnelled in websocket messages.
pub const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How connect failures are handled.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Write connect errors on the error stream, as the kubelet does (default). kubectl 1.32 then
    /// prints the error **and ends the whole port-forward** ("error: lost connection to pod").
    /// When false the forwarded connection is just closed and kubectl keeps forwarding.
    pub report_connect_errors: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            report_connect_errors: true,
        }
    }
}

/// Upgrades (websocket-tunnelled SPDY, or native SPDY) and, for each data stream kubectl opens,
/// calls `connect(port)` and copies bytes both ways; connect errors are written to the paired error
/// stream (kubectl prints them). Returns the response to send: 101, or 400 with a `Status` body when
/// the request is not an upgrade kubectl understands. Must be called inside a Tokio runtime.
///
/// The error text sent to kubectl is `error forwarding port <port> to pod: <io error>`; put pod
/// details into the `io::Error` message if they are wanted.
pub fn serve<B, C, Fut, S>(req: http::Request<B>, connect: C) -> http::Response<Full<Bytes>>
where
    C: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    serve_with(req, connect, Settings::default())
}

/// [`serve`] with explicit [`Settings`].
pub fn serve_with<B, C, Fut, S>(
    req: http::Request<B>,
    connect: C,
    settings: Settings,
) -> http::Response<Full<Bytes>>
where
    C: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut req = req;
    let connect = Arc::new(connect);
    let headers = req.headers();
    if ws::is_websocket_upgrade(headers) {
        let offered = ws::websocket_protocols(headers);
        if !offered.iter().any(|p| p == WEBSOCKET_PROTOCOL) {
            return ws::bad_request(&format!(
                "port-forward over websocket needs the sub-protocol {WEBSOCKET_PROTOCOL} (offered: {offered:?})"
            ));
        }
        let resp = ws::websocket_accept(headers, WEBSOCKET_PROTOCOL);
        if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            return resp;
        }
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on.await {
                Ok(up) => {
                    let socket = ws::server_websocket(TokioIo::new(up)).await;
                    run(ws::tunnel(socket), connect, settings).await;
                }
                Err(e) => tracing::warn!("port-forward websocket upgrade failed: {e}"),
            }
        });
        return resp;
    }
    if ws::is_spdy_upgrade(headers) {
        let offered = ws::stream_protocols(headers);
        if !offered.is_empty() && !offered.iter().any(|p| p == PROTOCOL) {
            return ws::bad_request(&format!(
                "unable to negotiate a port-forward protocol: client offers {offered:?}, server supports [{PROTOCOL}]"
            ));
        }
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on.await {
                Ok(up) => run(TokioIo::new(up), connect, settings).await,
                Err(e) => tracing::warn!("port-forward SPDY upgrade failed: {e}"),
            }
        });
        return ws::spdy_accept(PROTOCOL);
    }
    ws::bad_request(
        "port-forward needs an upgrade: websocket with sub-protocol SPDY/3.1+portforward.k8s.io, or SPDY/3.1",
    )
}

#[derive(Default)]
struct Pair {
    error: Option<IncomingStream>,
    data: Option<IncomingStream>,
}

/// Serves one port-forward SPDY session until the client goes away.
pub async fn run<T, C, Fut, S>(io: T, connect: Arc<C>, settings: Settings)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    C: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (session, mut incoming) = match Session::start(io) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("port-forward session could not start: {e}");
            return;
        }
    };
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = incoming.recv().await {
        let kind = stream.header("streamtype").unwrap_or("").to_owned();
        // Clients older than requestID pair error stream N with data stream N+2.
        let request_id = match stream.header("requestid") {
            Some(r) => r.to_owned(),
            None if kind == "data" => stream.id.saturating_sub(2).to_string(),
            None => stream.id.to_string(),
        };
        let slot = pending.entry(request_id.clone()).or_default();
        let replaced = match kind.as_str() {
            "error" => slot.error.replace(stream),
            "data" => slot.data.replace(stream),
            _ => {
                tracing::debug!("port-forward stream with unknown streamtype {kind:?}");
                stream.writer.reset(rst::PROTOCOL_ERROR);
                continue;
            }
        };
        if let Some(old) = replaced {
            old.writer.reset(rst::PROTOCOL_ERROR);
        }
        if slot.error.is_some()
            && slot.data.is_some()
            && let Some(Pair {
                error: Some(error),
                data: Some(data),
            }) = pending.remove(&request_id)
        {
            tokio::spawn(forward(error, data, connect.clone(), settings));
        }
    }
    drop(session);
}

async fn forward<C, Fut, S>(
    error: IncomingStream,
    data: IncomingStream,
    connect: Arc<C>,
    settings: Settings,
) where
    C: Fn(u16) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let port_text = data.header("port").unwrap_or("").to_owned();
    let port = match port_text.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            let msg = format!("invalid port {port_text:?} in port-forward request");
            fail(&error, &data, &msg).await;
            return;
        }
    };
    let conn = match connect(port).await {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod: {e}");
            tracing::debug!("{msg}");
            if settings.report_connect_errors {
                fail(&error, &data, &msg).await;
            } else {
                let _ = data.writer.finish().await;
                let _ = error.writer.finish().await;
            }
            return;
        }
    };
    let (mut target_r, mut target_w) = tokio::io::split(conn);
    let IncomingStream {
        reader: mut data_r,
        writer: data_w,
        ..
    } = data;
    let error_w = error.writer.clone();
    let up = async move {
        while let Some(chunk) = data_r.read().await {
            if target_w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // kubectl finished sending (its local connection closed): half-close towards the target.
        let _ = target_w.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match target_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if data_w.write(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = data_w.finish().await;
        // kubectl waits for the error stream to end before closing the local connection.
        let _ = error_w.finish().await;
    };
    tokio::join!(up, down);
    drop(error);
}

async fn fail(error: &IncomingStream, data: &IncomingStream, msg: &str) {
    let _ = error.writer.write(msg.as_bytes()).await;
    let _ = error.writer.finish().await;
    let _ = data.writer.finish().await;
}
