//! HTTP upgrade helpers shared by exec and port-forward: websocket handshake (RFC 6455), SPDY
//! upgrade detection, `Status` error responses, and the websocket ⇄ byte-stream tunnel.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, Response, StatusCode, header};
use http_body_util::Full;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Header listing the SPDY sub-protocols the client offers.
pub(crate) const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

fn header_tokens(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the request asks to upgrade to websocket.
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    header_tokens(headers, header::UPGRADE.as_str())
        .iter()
        .any(|t| t.eq_ignore_ascii_case("websocket"))
}

/// Whether the request asks to upgrade to SPDY/3.1.
pub(crate) fn is_spdy_upgrade(headers: &HeaderMap) -> bool {
    header_tokens(headers, header::UPGRADE.as_str())
        .iter()
        .any(|t| t.eq_ignore_ascii_case("SPDY/3.1"))
}

/// The websocket sub-protocols the client offers, in its order.
pub(crate) fn websocket_protocols(headers: &HeaderMap) -> Vec<String> {
    header_tokens(headers, header::SEC_WEBSOCKET_PROTOCOL.as_str())
}

/// The SPDY stream protocols the client offers (`X-Stream-Protocol-Version`), in its order.
pub(crate) fn stream_protocols(headers: &HeaderMap) -> Vec<String> {
    header_tokens(headers, STREAM_PROTOCOL_HEADER)
}

/// A `Status` failure response; kubectl prints its message.
pub(crate) fn status_response(
    code: StatusCode,
    reason: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// 400 Bad Request with a `Status` body.
pub(crate) fn bad_request(message: &str) -> Response<Full<Bytes>> {
    status_response(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The 101 response accepting a websocket upgrade with `protocol`, or a 400 when the handshake
/// headers are unusable.
pub(crate) fn websocket_accept(headers: &HeaderMap, protocol: &str) -> Response<Full<Bytes>> {
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad_request("websocket upgrade without a Sec-WebSocket-Key header");
    };
    if let Some(v) = headers.get(header::SEC_WEBSOCKET_VERSION)
        && v.as_bytes() != b"13"
    {
        return bad_request("unsupported Sec-WebSocket-Version: only version 13 is supported");
    }
    let accept = derive_accept_key(key.as_bytes());
    let mut b = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if !protocol.is_empty() {
        b = b.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    b.body(Full::new(Bytes::new())).unwrap_or_else(|e| {
        status_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("building the websocket response failed: {e}"),
        )
    })
}

/// The 101 response accepting a SPDY/3.1 upgrade with stream protocol `protocol`.
pub(crate) fn spdy_accept(protocol: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, http::HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = http::HeaderValue::from_str(protocol) {
        h.insert(STREAM_PROTOCOL_HEADER, v);
    }
    resp
}

/// Wraps an upgraded connection as the server end of a websocket.
pub(crate) async fn server_websocket<S>(io: S) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

/// Turns a websocket whose binary messages carry a byte stream (kubectl's SPDY tunnelling) into a
/// plain byte stream: message boundaries mean nothing, frames may span or split messages.
pub(crate) fn tunnel<S>(ws: WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (app, pump) = tokio::io::duplex(256 * 1024);
    let (mut pr, mut pw) = tokio::io::split(pump);
    let (mut sink, mut source) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let go_on = match msg {
                Message::Binary(b) => pw.write_all(&b).await.is_ok(),
                Message::Close(_) => false,
                _ => true,
            };
            if !go_on {
                break;
            }
        }
        let _ = pw.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    app
}
