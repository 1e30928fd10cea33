//! The exec websocket protocols driven by a tungstenite client, to check details kubectl does not
//! exercise: v4 and the base64 variant, the v5 close signal, resize messages, refusals.

mod support;

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use support::{ApiServer, Config};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    api: &ApiServer,
    query: &str,
    protocol: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "ws://127.0.0.1:{}/api/v1/namespaces/default/pods/p/exec?{query}",
        api.port
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        protocol
    );
    Ok(ws)
}

/// Collects (channel, bytes) until the server closes.
async fn collect(ws: &mut Ws, base64: bool) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("server went quiet");
        let Some(Ok(msg)) = msg else { break };
        let (ch, data) = match msg {
            Message::Binary(b) if !base64 => (b[0], b[1..].to_vec()),
            Message::Text(t) if base64 => (
                t.as_bytes()[0] - b'0',
                base64::engine::general_purpose::STANDARD
                    .decode(&t.as_str()[1..])
                    .unwrap(),
            ),
            Message::Close(_) => break,
            other => panic!("unexpected message {other:?}"),
        };
        match out.last_mut() {
            Some((c, d)) if *c == ch => d.extend_from_slice(&data),
            _ => out.push((ch, data)),
        }
    }
    out
}

fn channel(out: &[(u8, Vec<u8>)], ch: u8) -> String {
    out.iter()
        .filter(|(c, _)| *c == ch)
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_close_signal_ends_stdin_and_status_carries_exit_code() {
    let api = ApiServer::start(Config::default()).await;
    let mut ws = connect(
        &api,
        "command=sh&command=-c&command=cat%3B+exit+5&stdin=true&stdout=true&stderr=true",
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00abc")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
        .await
        .unwrap();
    let out = collect(&mut ws, false).await;
    assert_eq!(channel(&out, 1), "abc");
    // Status last, after all output.
    assert_eq!(out.last().unwrap().0, 3);
    let status: serde_json::Value = serde_json::from_str(&channel(&out, 3)).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "5");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("command terminated with non-zero exit code")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_binary_and_base64_variants() {
    let api = ApiServer::start(Config::default()).await;
    let q = "command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262&stdout=true&stderr=true";
    let mut ws = connect(&api, q, "v4.channel.k8s.io").await.unwrap();
    let out = collect(&mut ws, false).await;
    assert_eq!(channel(&out, 1), "out\n");
    assert_eq!(channel(&out, 2), "err\n");
    assert_eq!(channel(&out, 3), r#"{"metadata":{},"status":"Success"}"#);

    let mut ws = connect(&api, q, "v4.base64.channel.k8s.io").await.unwrap();
    let out = collect(&mut ws, true).await;
    assert_eq!(channel(&out, 1), "out\n");
    assert_eq!(channel(&out, 2), "err\n");
    assert_eq!(channel(&out, 3), r#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_messages_reach_the_handler() {
    let api = ApiServer::start(Config::default()).await;
    let mut ws = connect(
        &api,
        "command=fake-terminal&stdin=true&stdout=true&tty=true",
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    // One size split over two messages, as a byte stream would allow.
    ws.send(Message::Binary(Bytes::from_static(b"\x04{\"Width\":120,")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x04\"Height\":50}\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00typed q")))
        .await
        .unwrap();
    let out = collect(&mut ws, false).await;
    let stdout = channel(&out, 1);
    assert!(stdout.starts_with("size=120x50\r\n"), "{stdout}");
    assert!(stdout.contains("typed q"), "{stdout}");
    assert_eq!(channel(&out, 2), "", "no stderr channel with a tty");
    assert_eq!(channel(&out, 3), r#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_status_documents() {
    let api = ApiServer::start(Config::default()).await;
    // Unknown sub-protocol: 400, so kubectl would fall back to SPDY.
    match connect(&api, "command=true&stdout=true", "v9.channel.k8s.io").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_ref().unwrap()).unwrap();
            assert_eq!(body["kind"], "Status");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("v5.channel.k8s.io")
            );
        }
        other => panic!("expected a 400, got {:?}", other.map(|_| ())),
    }
    // Not an upgrade at all.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", api.port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"GET /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("\"kind\":\"Status\""), "{resp}");
}
