//! Pod logs, exec and `kubectl top` through the real API server and the real kubectl,
//! against a fake node agent (HTTPS with a self-signed certificate on 127.0.0.1) that
//! checks the join token and serves canned logs, a WebSocket echo and fixed usage.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn status_json(code: u16, reason: &str, message: &str) -> Response<Body> {
    let s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code});
    let mut r = Response::new(full(serde_json::to_vec(&s).unwrap()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// The fake node agent.
struct Agent {
    addr: SocketAddr,
    token: String,
    /// Every request's path and query, in order.
    seen: Mutex<Vec<String>>,
    /// Requests that did not carry `Bearer <join token>`.
    bad_auth: Mutex<Vec<String>>,
    /// Lets a followed log stream go on past its first line.
    release: tokio::sync::Notify,
}

const LINES: [&str; 3] = ["line 1", "line 2", "line 3"];

impl Agent {
    async fn start(token: String) -> Arc<Agent> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let chain = vec![rustls::pki_types::CertificateDer::from(
            cert.cert.der().to_vec(),
        )];
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent = Arc::new(Agent {
            addr: listener.local_addr().unwrap(),
            token,
            seen: Mutex::new(Vec::new()),
            bad_auth: Mutex::new(Vec::new()),
            release: tokio::sync::Notify::new(),
        });
        let a = agent.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, a) = (acceptor.clone(), a.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let a = a.clone();
                        async move { Ok::<_, Infallible>(a.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        agent
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    async fn serve(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(pq.clone());
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", self.token) {
            self.bad_auth.lock().unwrap().push(pq);
            return status_json(401, "Unauthorized", "Unauthorized");
        }
        let query = req.uri().query().unwrap_or("").to_string();
        let has = |kv: &str| query.split('&').any(|p| p == kv);
        let segs: Vec<String> = req
            .uri()
            .path()
            .split('/')
            .skip(1)
            .map(str::to_string)
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["containerLogs", _, pod, "side"] | ["exec", _, pod, "side"] => status_json(
                400,
                "BadRequest",
                &format!(
                    "container \"side\" in pod \"{pod}\" is waiting to start: ContainerCreating"
                ),
            ),
            ["containerLogs", _, _, c] => {
                let lines: Vec<String> = LINES.iter().map(|l| format!("{c} {l}\n")).collect();
                if has("follow=true") {
                    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
                    let a = self.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(Bytes::from(lines[0].clone())).await;
                        a.release.notified().await;
                        let _ = tx.send(Bytes::from(lines[1].clone())).await;
                    });
                    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
                    }));
                    let mut r = Response::new(BodyExt::boxed(body));
                    r.headers_mut()
                        .insert("content-type", "text/plain".parse().unwrap());
                    return r;
                }
                let tail = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("tailLines="))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(lines.len());
                let text = lines[lines.len() - tail.min(lines.len())..].concat();
                let mut r = Response::new(full(text));
                r.headers_mut()
                    .insert("content-type", "text/plain".parse().unwrap());
                r
            }
            ["exec" | "attach", _, _, _] | ["portForward", _, _] => websocket_echo(req),
            ["stats", "summary"] => {
                let t = "2026-11-23T10:00:00Z";
                let c = |name: &str, cpu: u64, mem: u64| {
                    json!({"name": name, "cpu": {"time": t, "usageNanoCores": cpu, "usageCoreNanoSeconds": 1},
                           "memory": {"time": t, "workingSetBytes": mem, "usageBytes": mem}})
                };
                let summary = json!({
                    "node": {"nodeName": "n1", "cpu": {"time": t, "usageNanoCores": 500_000_000u64, "usageCoreNanoSeconds": 1},
                             "memory": {"time": t, "workingSetBytes": 1_073_741_824u64, "usageBytes": 1_073_741_824u64}},
                    "pods": [
                        {"podRef": {"name": "p", "namespace": "default", "uid": ""},
                         "cpu": {"time": t, "usageNanoCores": 250_000_000u64}, "memory": {"time": t, "workingSetBytes": 104_857_600u64},
                         "containers": [c("main", 250_000_000, 104_857_600)]},
                        {"podRef": {"name": "multi", "namespace": "default", "uid": ""},
                         "containers": [c("main", 100_000_000, 52_428_800), c("side", 50_000_000, 20_971_520)]},
                        {"podRef": {"name": "q", "namespace": "other", "uid": ""},
                         "containers": [c("app", 75_000_000, 31_457_280)]},
                    ],
                });
                let mut r = Response::new(full(serde_json::to_vec(&summary).unwrap()));
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                r
            }
            _ => status_json(404, "NotFound", "no such agent path"),
        }
    }
}

/// Answers a WebSocket upgrade with 101, then either echoes every message back as it
/// is (`command=raw-echo`, attach, port-forward), or plays `cat` in the
/// `v5.channel.k8s.io` protocol: stdin (channel 0) comes back on stdout (channel 1), and
/// when the client closes stdin, a Success status (channel 3) ends the session.
fn websocket_echo(mut req: Request<Incoming>) -> Response<Body> {
    let cat = req.uri().path().starts_with("/exec/")
        && !req.uri().query().unwrap_or("").contains("command=raw-echo");
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return status_json(400, "BadRequest", "the fake agent only speaks WebSocket");
    };
    let protocol = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_string());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if !cat {
                if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                    break;
                }
                continue;
            }
            let data = msg.into_data();
            match data.first() {
                Some(0) => {
                    let mut out = vec![1u8];
                    out.extend_from_slice(&data[1..]);
                    if ws.send(Message::binary(out)).await.is_err() {
                        break;
                    }
                }
                Some(255) if data.get(1) == Some(&0) => {
                    let mut out = vec![3u8];
                    out.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
                    let _ = ws.send(Message::binary(out)).await;
                    // client-go takes only a Normal close as the end of its streams.
                    let normal = tungstenite::protocol::CloseFrame {
                        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = ws.close(Some(normal)).await;
                    break;
                }
                _ => {}
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("connection", "Upgrade".parse().unwrap());
    h.insert(
        "sec-websocket-accept",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
            .parse()
            .unwrap(),
    );
    if let Some(p) = protocol {
        h.insert("sec-websocket-protocol", p.parse().unwrap());
    }
    r
}

/// The real API server in this process, over a temporary SQLite store.
struct Cluster {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    admin: String,
    tls: tokio_rustls::TlsConnector,
    agent: Arc<Agent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read_token(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .trim()
        .to_string()
}

impl Cluster {
    /// Starts the server and the fake agent, registers node n1 (the agent) and the pods:
    /// p (one container), multi (main, side, init container init), pending (unscheduled),
    /// orphan (bound to a node that does not exist), q in namespace other.
    async fn start() -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let store: store::SharedStore =
            Arc::new(store::SqliteStore::open(dir.path().join("state.db")).unwrap());
        let running = apiserver::start(apiserver::Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            store,
            history_revisions: 1000,
            compaction_interval: Duration::from_secs(3600),
            service_cidr: "10.96.0.0/12".into(),
        })
        .await
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
        for c in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let agent = Agent::start(read_token(dir.path(), "join-token")).await;
        let c = Cluster {
            admin: read_token(dir.path(), "admin-token"),
            addr: running.addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            task: running.task,
            dir,
            agent,
        };
        c.create("/api/v1/namespaces", json!({"metadata": {"name": "other"}}))
            .await;
        let ready = json!([{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]);
        let node = |name: &str, port: u16| {
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                   "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                              "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                              "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                              "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                              "conditions": ready}})
        };
        let n1 = node("n1", c.agent.addr.port());
        c.create("/api/v1/nodes", n1.clone()).await;
        // Whatever create keeps of the status, set it as an agent would.
        let (code, body) = c
            .request(
                "PUT",
                "/api/v1/nodes/n1/status",
                Some(c.get("/api/v1/nodes/n1").await).map(|mut cur| {
                    cur["status"] = n1["status"].clone();
                    cur
                }),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let pod = |ns: &str, name: &str, node: Option<&str>, containers: &[&str], init: &[&str]| {
            let cs: Vec<Value> = containers
                .iter()
                .map(|c| json!({"name": c, "image": "busybox"}))
                .collect();
            let is: Vec<Value> = init
                .iter()
                .map(|c| json!({"name": c, "image": "busybox"}))
                .collect();
            let mut p = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                "spec": {"containers": cs}});
            if !is.is_empty() {
                p["spec"]["initContainers"] = Value::Array(is);
            }
            if let Some(n) = node {
                p["spec"]["nodeName"] = json!(n);
            }
            p
        };
        for (ns, name, node, cs, init) in [
            ("default", "p", Some("n1"), &["main"][..], &[][..]),
            ("default", "multi", Some("n1"), &["main", "side"], &["init"]),
            ("default", "pending", None, &["main"], &[]),
            ("default", "orphan", Some("gone"), &["main"], &[]),
            ("other", "q", Some("n1"), &["app"], &[]),
        ] {
            c.create(
                &format!("/api/v1/namespaces/{ns}/pods"),
                pod(ns, name, node, cs, init),
            )
            .await;
        }
        c
    }

    async fn connect(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        self.tls
            .connect(
                rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                tcp,
            )
            .await
            .unwrap()
    }

    /// One API request with the admin token; returns the status and the JSON body (or
    /// the text as a JSON string).
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(self.connect().await))
                .await
                .unwrap();
        tokio::spawn(conn);
        let body = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.admin))
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (code, v)
    }

    async fn get(&self, path: &str) -> Value {
        let (code, v) = self.request("GET", path, None).await;
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    async fn create(&self, path: &str, obj: Value) {
        let (code, v) = self.request("POST", path, Some(obj)).await;
        assert_eq!(code, 201, "POST {path}: {v}");
    }

    fn kubectl_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("kubectl");
        c.env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("kubectl-cache")
    }

    async fn kubectl_output(&self, args: &[&str]) -> std::process::Output {
        let out = self.kubectl_cmd(args).output();
        tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"))
            .expect("run kubectl (is it installed?)")
    }

    /// Opens a WebSocket to `path` through the API server (offering `protocol`), checks
    /// the agent's echo of a few messages, and closes it.
    async fn websocket_echo(&self, path: &str, protocol: &str) {
        let mut req = format!("wss://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.admin).parse().unwrap(),
        );
        req.headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::client_async(req, self.connect().await)
            .await
            .unwrap_or_else(|e| panic!("the WebSocket upgrade of {path} failed: {e}"));
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        for payload in [
            &b"\x00hello"[..],
            &b"\x00second message"[..],
            &[7u8; 70_000][..],
        ] {
            ws.send(Message::binary(payload.to_vec())).await.unwrap();
            let back = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("no echo")
                .expect("the stream ended")
                .unwrap();
            assert_eq!(back.into_data().as_ref(), payload);
        }
        ws.close(None).await.unwrap();
    }

    /// Runs kubectl, which must succeed; returns stdout.
    async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with `input` on stdin, which must succeed; returns stdout.
    async fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .kubectl_cmd(args)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl (is it installed?)");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"))
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, which must fail; returns stderr.
    async fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The whitespace-separated cells of the output line that starts with `first`.
fn row<'a>(out: &'a str, first: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_through_the_agent() {
    let c = Cluster::start().await;

    assert_eq!(
        c.kubectl(&["logs", "p"]).await,
        "main line 1\nmain line 2\nmain line 3\n"
    );
    assert_eq!(
        c.kubectl(&["logs", "multi", "-c", "main"]).await,
        "main line 1\nmain line 2\nmain line 3\n"
    );
    // Init containers are valid by name.
    assert_eq!(
        c.kubectl(&["logs", "multi", "-c", "init"]).await,
        "init line 1\ninit line 2\ninit line 3\n"
    );
    assert_eq!(
        c.kubectl(&["logs", "p", "--tail", "1"]).await,
        "main line 3\n"
    );
    assert!(
        c.agent
            .seen()
            .iter()
            .any(|p| p.starts_with("/containerLogs/default/p/main?") && p.contains("tailLines=1")),
        "the agent never saw tailLines: {:?}",
        c.agent.seen()
    );

    // -f: the first line arrives while the agent holds the stream open.
    let mut follow = c.kubectl_cmd(&["logs", "-f", "p"]).spawn().unwrap();
    let stdout = follow.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the first followed line never came")
        .unwrap();
    assert_eq!(first.as_deref(), Some("main line 1"));
    c.agent.release.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the second followed line never came")
        .unwrap();
    assert_eq!(second.as_deref(), Some("main line 2"));
    let end = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the followed stream never ended")
        .unwrap();
    assert_eq!(end, None);
    let status = follow.wait().await.unwrap();
    assert!(status.success(), "kubectl logs -f exited with {status}");

    // The agent's Status errors pass through.
    let err = c.kubectl_err(&["logs", "multi", "-c", "side"]).await;
    assert!(
        err.contains("container \"side\" in pod \"multi\" is waiting to start: ContainerCreating"),
        "{err}"
    );
    // The server's own checks, with kube-apiserver's messages.
    let err = c.kubectl_err(&["logs", "multi", "-c", "nope"]).await;
    assert!(
        err.contains("container nope is not valid for pod multi"),
        "{err}"
    );
    let err = c.kubectl_err(&["logs", "pending"]).await;
    assert!(
        err.contains("pod pending does not have a host assigned"),
        "{err}"
    );
    let err = c.kubectl_err(&["logs", "nothere"]).await;
    assert!(err.contains("pods \"nothere\" not found"), "{err}");
    let err = c.kubectl_err(&["logs", "orphan"]).await;
    assert!(err.contains("node gone does not exist"), "{err}");

    // Nodes that cannot be reached: no address, or nobody listening.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    c.create("/api/v1/nodes", json!({"metadata": {"name": "bare"}}))
        .await;
    c.create(
        "/api/v1/nodes",
        json!({"metadata": {"name": "dead"},
               "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": dead_port}}}}),
    )
    .await;
    for (pod, node) in [("stray", "bare"), ("lost", "dead")] {
        c.create(
            "/api/v1/namespaces/default/pods",
            json!({"metadata": {"name": pod},
                   "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .await;
    }
    let err = c.kubectl_err(&["logs", "stray"]).await;
    assert!(err.contains("node bare reports no address"), "{err}");
    let err = c.kubectl_err(&["logs", "lost"]).await;
    assert!(
        err.contains(&format!(
            "cannot reach the agent of node dead at https://127.0.0.1:{dead_port}"
        )),
        "{err}"
    );

    let (code, v) = c
        .request("GET", "/api/v1/namespaces/default/pods/multi/log", None)
        .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "a container name must be specified for pod multi, choose one of: [main side] or one of the init containers: [init]"
    );
    let (code, v) = c
        .request(
            "GET",
            "/api/v1/namespaces/default/pods/p/log?tailLines=-1",
            None,
        )
        .await;
    assert_eq!((code, v["reason"].as_str()), (422, Some("Invalid")), "{v}");

    assert!(
        c.agent.bad_auth.lock().unwrap().is_empty(),
        "requests without the join token: {:?}",
        c.agent.bad_auth.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_upgrades_are_spliced_to_the_agent() {
    let c = Cluster::start().await;

    // A WebSocket through the API server reaches the agent's echo, both ways.
    c.websocket_echo(
        "/api/v1/namespaces/default/pods/p/exec?command=raw-echo&stdin=true&stdout=true",
        "v5.channel.k8s.io",
    )
    .await;
    c.websocket_echo(
        "/api/v1/namespaces/default/pods/multi/attach?container=main&stdin=true&stdout=true",
        "v5.channel.k8s.io",
    )
    .await;
    c.websocket_echo(
        "/api/v1/namespaces/default/pods/p/portforward?ports=80",
        "SPDY/3.1+portforward.k8s.io",
    )
    .await;
    let seen = c.agent.seen();
    for want in [
        "/exec/default/p/main?command=raw-echo&stdin=true&stdout=true",
        "/attach/default/multi/main?container=main&stdin=true&stdout=true",
        "/portForward/default/p?ports=80",
    ] {
        assert!(seen.iter().any(|p| p == want), "{want} not in {seen:?}");
    }

    // kubectl exec -i, end to end: stdin goes to the agent, stdout comes back, and the
    // agent's Success status ends the command.
    let out = c
        .kubectl_stdin(
            &["exec", "-i", "p", "--", "cat"],
            "hello through the proxy\n",
        )
        .await;
    assert_eq!(out, "hello through the proxy\n");

    // The agent refuses: kubectl prints its Status.
    let err = c
        .kubectl_err(&["exec", "multi", "-c", "side", "--", "ls"])
        .await;
    assert!(
        err.contains("container \"side\" in pod \"multi\" is waiting to start: ContainerCreating"),
        "{err}"
    );
    let err = c.kubectl_err(&["exec", "pending", "--", "ls"]).await;
    assert!(
        err.contains("pod pending does not have a host assigned"),
        "{err}"
    );
    let err = c
        .kubectl_err(&["exec", "multi", "-c", "nope", "--", "ls"])
        .await;
    assert!(
        err.contains("container nope is not valid for pod multi"),
        "{err}"
    );

    // Discovery lists the subresources with kube's verbs.
    let core = c.get("/api/v1").await;
    let verbs = |name: &str| {
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["verbs"].clone())
            .unwrap_or_else(|| panic!("no {name} in {core}"))
    };
    assert_eq!(verbs("pods/log"), json!(["get"]));
    for sub in ["pods/exec", "pods/attach", "pods/portforward"] {
        assert_eq!(verbs(sub), json!(["create", "get"]));
    }

    // Without an upgrade there is nothing to proxy.
    let (code, v) = c
        .request(
            "POST",
            "/api/v1/namespaces/default/pods/p/exec?command=ls",
            None,
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(c.agent.bad_auth.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_reads_the_agents_summaries() {
    let c = Cluster::start().await;

    let resources = c
        .kubectl(&[
            "api-resources",
            "--api-group=metrics.k8s.io",
            "--no-headers",
        ])
        .await;
    // Legacy discovery too.
    let groups = c.get("/apis").await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "metrics.k8s.io"),
        "{groups}"
    );
    let list = c.get("/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(list["resources"][0]["kind"], "NodeMetrics", "{list}");
    assert_eq!(
        list["resources"][1]["verbs"],
        json!(["get", "list"]),
        "{list}"
    );
    assert!(
        resources.contains("nodes") && resources.contains("pods"),
        "{resources}"
    );

    let out = c.kubectl(&["top", "node"]).await;
    // 500m of 2 cores, 1Gi of 4Gi.
    assert_eq!(
        row(&out, "n1")[1..],
        ["500m", "25%", "1024Mi", "25%"],
        "{out}"
    );

    let out = c.kubectl(&["top", "pod"]).await;
    assert_eq!(row(&out, "p")[1..], ["250m", "100Mi"], "{out}");
    // multi: 100m + 50m, 50Mi + 20Mi.
    assert_eq!(row(&out, "multi")[1..], ["150m", "70Mi"], "{out}");
    assert!(!out.contains("pending") && !out.contains(" q "), "{out}");

    let out = c.kubectl(&["top", "pod", "-A"]).await;
    assert_eq!(row(&out, "other")[1..], ["q", "75m", "30Mi"], "{out}");
    assert_eq!(row(&out, "default").len(), 4, "{out}");

    let out = c.kubectl(&["top", "pod", "--containers"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["p", "main", "250m", "100Mi"]), "{out}");
    assert!(
        rows.contains(&vec!["multi", "side", "50m", "20Mi"]),
        "{out}"
    );

    let out = c.kubectl(&["top", "pod", "-l", "app=multi"]).await;
    assert_eq!(row(&out, "multi")[1..], ["150m", "70Mi"], "{out}");
    assert!(!out.contains("\np "), "{out}");

    let out = c.kubectl(&["top", "pod", "p"]).await;
    assert_eq!(row(&out, "p")[1..], ["250m", "100Mi"], "{out}");

    let (code, v) = c
        .request(
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/pending",
            None,
        )
        .await;
    assert_eq!(code, 404, "{v}");
    assert_eq!(
        v["message"],
        "podmetrics.metrics.k8s.io \"default/pending\" not found"
    );
    let v = c.get("/apis/metrics.k8s.io/v1beta1/nodes/n1").await;
    assert_eq!(
        (
            &v["kind"],
            &v["usage"]["cpu"],
            &v["usage"]["memory"],
            &v["window"]
        ),
        (
            &json!("NodeMetrics"),
            &json!("500m"),
            &json!("1Gi"),
            &json!("10s")
        )
    );
    let (code, _) = c
        .request("DELETE", "/apis/metrics.k8s.io/v1beta1/nodes/n1", None)
        .await;
    assert_eq!(code, 405);

    // An agent that does not answer is skipped, as metrics-server does.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    c.create(
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"},
               "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": dead_port}},
                          "allocatable": {"cpu": "1", "memory": "1Gi"},
                          "conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .await;
    let v = c.get("/apis/metrics.k8s.io/v1beta1/nodes").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["n1"], "{v}");
    assert!(c.agent.bad_auth.lock().unwrap().is_empty());
}
