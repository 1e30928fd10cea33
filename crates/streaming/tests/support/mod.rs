//! A tiny API server for the real kubectl: discovery, one Running pod `default/p` with container
//! `c`, and the exec/attach/portforward subresources served by the `streaming` crate with handlers
//! that run real local processes and connect to loopback ports.
#![allow(dead_code)]

use std::convert::Infallible;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use streaming::remotecommand::{self, Options, Outcome, Streams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the fake server treats upgrade requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// Answer websocket upgrades with 400 so kubectl falls back to SPDY.
    pub refuse_websocket: bool,
    /// Close port-forward connections to closed ports silently instead of reporting the error.
    pub silent_connect_errors: bool,
}

/// One recorded streaming request: path and the upgrade it asked for.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub upgrade: String,
}

pub struct ApiServer {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    pub async fn start(config: Config) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(route(req, config, port, seen)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        ApiServer { port, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The upgrade kinds used for `path_suffix` requests, in order.
    pub fn upgrades(&self, path_suffix: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.ends_with(path_suffix))
            .map(|s| format!("{} {}", s.method, s.upgrade))
            .collect()
    }

    /// A kubectl command against this server, killed when dropped.
    pub fn kubectl(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("kubectl");
        c.arg("--server")
            .arg(self.url())
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl to completion, feeding `stdin`, with a generous deadline.
    pub async fn run(&self, args: &[&str], stdin: Option<Vec<u8>>) -> std::process::Output {
        let mut cmd = self.kubectl(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .expect("kubectl must be installed (kubectl 1.32)");
        if let Some(data) = stdin {
            let mut w = child.stdin.take().unwrap();
            tokio::spawn(async move {
                let _ = w.write_all(&data).await;
                let _ = w.shutdown().await;
            });
        }
        match tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await {
            Ok(out) => out.unwrap(),
            Err(_) => panic!("kubectl {args:?} did not finish within 120s"),
        }
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn pod() -> serde_json::Value {
    serde_json::json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "p", "namespace": "default", "uid": "0b6f2c3e-1111-2222-3333-444455556666",
                     "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "stdin": true}], "nodeName": "n1"},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "c", "ready": true, "started": true, "restartCount": 0,
                     "image": "busybox", "imageID": "", "containerID": "runc://c",
                     "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]}
    })
}

fn route(
    req: Request<Incoming>,
    config: Config,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let upgrade = req
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let pod_base = "/api/v1/namespaces/default/pods/p";
    if let Some(sub) = path
        .strip_prefix(pod_base)
        .and_then(|s| s.strip_prefix('/'))
    {
        seen.lock().unwrap().push(Seen {
            method: req.method().to_string(),
            path: path.clone(),
            upgrade: upgrade.clone(),
        });
        if config.refuse_websocket && upgrade.eq_ignore_ascii_case("websocket") {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "message": "websocket refused by test", "reason": "BadRequest", "code": 400}),
            );
        }
        return match sub {
            "exec" => match Options::from_query(&query) {
                Ok(opts) => {
                    let o2 = opts.clone();
                    remotecommand::serve(req, opts, move |s| exec_handler(o2, s))
                }
                Err(e) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"kind": "Status", "status": "Failure", "message": e.to_string(), "code": 400}),
                ),
            },
            "attach" => match Options::from_query(&query) {
                Ok(opts) => {
                    let o2 = opts.clone();
                    remotecommand::serve(req, opts, move |s| attach_handler(o2, s))
                }
                Err(e) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"kind": "Status", "status": "Failure", "message": e.to_string(), "code": 400}),
                ),
            },
            "portforward" => {
                let connect = |port| async move { TcpStream::connect(("127.0.0.1", port)).await };
                if config.silent_connect_errors {
                    let settings = streaming::portforward::Settings {
                        report_connect_errors: false,
                    };
                    streaming::portforward::serve_with(req, connect, settings)
                } else {
                    streaming::portforward::serve(req, connect)
                }
            }
            _ => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"kind": "Status", "status": "Failure", "code": 404}),
            ),
        };
    }
    match path.as_str() {
        "/version" => json(
            StatusCode::OK,
            serde_json::json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "0000000000000000000000000000000000000000",
                               "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.23.0",
                               "compiler": "gc", "platform": "linux/amd64"}),
        ),
        "/api" => json(
            StatusCode::OK,
            serde_json::json!({"kind": "APIVersions", "versions": ["v1"],
                               "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}]}),
        ),
        "/apis" => json(
            StatusCode::OK,
            serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        "/api/v1" => json(
            StatusCode::OK,
            serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["po"], "categories": ["all"]},
                {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
                {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}
            ]}),
        ),
        p if p == pod_base => json(StatusCode::OK, pod()),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
        ),
    }
}

/// Runs the command as a local process, wiring the streams to its pipes.
async fn exec_handler(opts: Options, streams: Streams) -> Outcome {
    if opts.tty {
        return tty_handler(streams).await;
    }
    let Some((prog, args)) = opts.command.split_first() else {
        return Outcome::Error("no command given".into());
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(if streams.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Error(format!("starting {prog:?} failed: {e}")),
    };
    let stdin_task = match (streams.stdin, child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        })),
        _ => None,
    };
    let mut child_out = child.stdout.take().unwrap();
    let mut child_err = child.stderr.take().unwrap();
    let out = async move {
        match streams.stdout {
            Some(mut w) => {
                let _ = tokio::io::copy(&mut child_out, &mut w).await;
                let _ = w.shutdown().await;
            }
            None => {
                let _ = tokio::io::copy(&mut child_out, &mut tokio::io::sink()).await;
            }
        }
    };
    let err = async move {
        match streams.stderr {
            Some(mut w) => {
                let _ = tokio::io::copy(&mut child_err, &mut w).await;
                let _ = w.shutdown().await;
            }
            None => {
                let _ = tokio::io::copy(&mut child_err, &mut tokio::io::sink()).await;
            }
        }
    };
    tokio::join!(out, err);
    let status = child.wait().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
    match status {
        Ok(s) => Outcome::Exited(s.code().unwrap_or(255)),
        Err(e) => Outcome::Error(format!("waiting for {prog:?} failed: {e}")),
    }
}

/// A pretend terminal program: reports the first terminal size, echoes input until `q`.
async fn tty_handler(streams: Streams) -> Outcome {
    let (Some(mut out), Some(mut input)) = (streams.stdout, streams.stdin) else {
        return Outcome::Error("tty test needs stdin and stdout".into());
    };
    let mut resize = streams.resize.expect("tty streams carry resize events");
    let Some(size) = resize.recv().await else {
        return Outcome::Error("no terminal size arrived".into());
    };
    let _ = out
        .write_all(format!("size={}x{}\r\n", size.width, size.height).as_bytes())
        .await;
    let _ = out.flush().await;
    let mut buf = [0u8; 1024];
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = out.write_all(&buf[..n]).await;
        if buf[..n].contains(&b'q') {
            break;
        }
    }
    let _ = out.write_all(b"\r\nbye\r\n").await;
    Outcome::Exited(0)
}

/// Attach to the "main process": says hello, then echoes stdin (if attached) until EOF.
async fn attach_handler(_opts: Options, streams: Streams) -> Outcome {
    if let Some(mut out) = streams.stdout {
        let _ = out.write_all(b"attached to c\n").await;
        if let Some(mut input) = streams.stdin {
            let _ = tokio::io::copy(&mut input, &mut out).await;
        }
        let _ = out.shutdown().await;
    }
    Outcome::Exited(0)
}

/// A TCP echo server on loopback; returns its port.
pub async fn echo_server() -> (u16, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (port, task)
}

/// A loopback port with nothing listening.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
