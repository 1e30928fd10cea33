//! port-forward driven by the real kubectl against a fake API server: websocket-tunnelled SPDY and
//! native SPDY, concurrent connections with MBs each way, and a connection to a closed port.

mod support;

use std::time::Duration;

use support::{ApiServer, Config, closed_port, echo_server, payload};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

/// A running `kubectl port-forward` and the local ports it listens on, in argument order.
struct Forward {
    child: Child,
    local_ports: Vec<u16>,
    stderr_lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

async fn start_forward(api: &ApiServer, remote_ports: &[u16]) -> Forward {
    let mut args = vec!["port-forward".to_owned(), "p".to_owned()];
    args.extend(remote_ports.iter().map(|p| format!(":{p}")));
    args.extend(["--address".to_owned(), "127.0.0.1".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = api
        .kubectl(&args)
        .spawn()
        .expect("kubectl must be installed");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, stderr_lines) = tokio::sync::mpsc::unbounded_channel();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = err.next_line().await {
            let _ = tx.send(l);
        }
    });
    let mut local_ports = Vec::new();
    while local_ports.len() < remote_ports.len() {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("kubectl port-forward did not report its listener")
            .unwrap()
            .expect("kubectl port-forward exited before listening");
        // "Forwarding from 127.0.0.1:43567 -> 8080"
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            let (local, remote) = rest.split_once(" -> ").unwrap();
            let remote: u16 = remote.trim().parse().unwrap();
            assert_eq!(remote, remote_ports[local_ports.len()]);
            local_ports.push(local.parse().unwrap());
        }
    }
    // Keep draining stdout ("Handling connection for ...") so kubectl never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Forward {
        child,
        local_ports,
        stderr_lines,
    }
}

/// Sends `data` through the forward and checks the echo comes back whole.
async fn echo_through(port: u16, data: Vec<u8>) {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let send = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&send).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    tokio::time::timeout(Duration::from_secs(120), r.read_to_end(&mut back))
        .await
        .expect("echo through port-forward timed out")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
}

async fn concurrent_echo(port: u16, conns: usize, size: usize) {
    let tasks: Vec<_> = (0..conns)
        .map(|i| tokio::spawn(echo_through(port, payload(size + i, 100 + i as u64))))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Connects to the forward of a closed port; returns once kubectl closed our connection.
async fn poke_closed(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut sink))
        .await
        .expect("kubectl kept the connection to a closed port open")
        .ok();
}

/// MBs through concurrent connections, then a connection to a closed port: kubectl prints the
/// error we report and (kubectl 1.32's own behaviour) ends the port-forward.
async fn forward_scenario(config: Config) -> ApiServer {
    let api = ApiServer::start(config).await;
    let (echo_port, echo_task) = echo_server().await;
    let dead_port = closed_port().await;
    let mut fwd = start_forward(&api, &[echo_port, dead_port]).await;

    concurrent_echo(fwd.local_ports[0], 4, 3 * 1024 * 1024).await;
    concurrent_echo(fwd.local_ports[0], 3, 100).await;

    poke_closed(fwd.local_ports[1]).await;
    let wanted = format!("error forwarding port {dead_port} to pod");
    let line = loop {
        let l = tokio::time::timeout(Duration::from_secs(60), fwd.stderr_lines.recv())
            .await
            .expect("kubectl printed no error for the closed port")
            .expect("kubectl stderr closed without the error");
        if l.contains(&wanted) {
            break l;
        }
    };
    assert!(line.contains("an error occurred forwarding"), "{line}");
    assert!(line.contains("refused"), "{line}");
    let status = tokio::time::timeout(Duration::from_secs(60), fwd.child.wait())
        .await
        .expect("kubectl 1.32 ends port-forward after an error-stream message")
        .unwrap();
    assert!(!status.success());
    echo_task.abort();
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_over_websocket_tunnel() {
    let api = forward_scenario(Config::default()).await;
    assert_eq!(api.upgrades("/portforward"), vec!["GET websocket"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_over_native_spdy() {
    let api = forward_scenario(Config {
        refuse_websocket: true,
        ..Config::default()
    })
    .await;
    assert_eq!(
        api.upgrades("/portforward"),
        vec!["GET websocket", "POST SPDY/3.1"]
    );
}

/// With connect errors not reported, a closed port just closes that connection and kubectl keeps
/// forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_keeps_running_with_silent_connect_errors() {
    let api = ApiServer::start(Config {
        silent_connect_errors: true,
        ..Config::default()
    })
    .await;
    let (echo_port, echo_task) = echo_server().await;
    let dead_port = closed_port().await;
    let mut fwd = start_forward(&api, &[echo_port, dead_port]).await;
    concurrent_echo(fwd.local_ports[0], 2, 512 * 1024).await;
    poke_closed(fwd.local_ports[1]).await;
    poke_closed(fwd.local_ports[1]).await;
    concurrent_echo(fwd.local_ports[0], 3, 1024 * 1024).await;
    assert!(
        fwd.child.try_wait().unwrap().is_none(),
        "kubectl port-forward exited"
    );
    fwd.child.kill().await.unwrap();
    echo_task.abort();
}
