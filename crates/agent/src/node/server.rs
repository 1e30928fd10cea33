//! The agent's HTTPS endpoint for the API server (kubelet paths): container logs,
//! exec, attach, port-forward and the Summary API. Only the API server calls it; it
//! presents the cluster's join token. The certificate is self-signed (the API server
//! does not verify agents yet: per-node credentials come with multi-node joining).

use super::{AgentConfig, AgentError, Ctx};
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A Kubernetes Status response.
fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Binds the agent's port on the node IP.
pub async fn bind(cfg: &AgentConfig) -> Result<tokio::net::TcpListener, AgentError> {
    tokio::net::TcpListener::bind((cfg.node_ip, cfg.port))
        .await
        .map_err(|e| {
            AgentError::Server(format!(
                "cannot listen on {}:{}: {e} (pick another port with --port)",
                cfg.node_ip, cfg.port
            ))
        })
}

fn tls_config(cfg: &AgentConfig) -> Result<Arc<rustls::ServerConfig>, AgentError> {
    let err = |e: String| AgentError::Server(format!("making the agent's certificate: {e}"));
    let mut names = vec![cfg.name.clone(), "localhost".to_string()];
    names.push(cfg.node_ip.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| err(e.to_string()))?;
    let params = rcgen::CertificateParams::new(names).map_err(|e| err(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| err(e.to_string()))?;
    let chain = vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())];
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| err(e.to_string()))?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(tls))
}

/// Serves until dropped.
pub async fn serve(ctx: Arc<Ctx>, listener: tokio::net::TcpListener) {
    let tls = match tls_config(&ctx.cfg) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(ctx, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

fn query_param<'a>(q: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
}

fn flag(q: &str, name: &str) -> bool {
    query_param(q, name).is_some_and(|v| v == "true" || v == "1")
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !ctx.cfg.server_token.is_empty() && t == ctx.cfg.server_token);
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return Response::new(full("ok"));
    }
    if !authorized {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["stats", "summary"] => {
            let doc = super::stats::summary(&ctx).await;
            let mut r = Response::new(full(doc.to_string()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        ["containerLogs", ns, pod, container] => {
            logs(&ctx, ns, pod, container, req.uri().query().unwrap_or("")).await
        }
        ["exec", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            exec(ctx, req, &ns, &pod, &container, false).await
        }
        ["attach", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            exec(ctx, req, &ns, &pod, &container, true).await
        }
        ["portForward", ns, pod] => {
            let key = format!("{ns}/{pod}");
            let ip = ctx
                .pods
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
                .and_then(|e| e.ip);
            let Some(ip) = ip else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pod {key} is not running on this node"),
                );
            };
            streaming::portforward::serve(req, move |port: u16| async move {
                tokio::net::TcpStream::connect((ip, port)).await
            })
            .map(|b| b.map_err(|never| match never {}).boxed_unsync())
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no such path {path}"),
        ),
    }
}

/// The current (or previous) instance of a container, or the error kubectl prints.
fn instance(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<(String, String, u32, bool), Box<Response<Body>>> {
    let pods = ctx
        .pods
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(entry) = pods.get(&format!("{ns}/{pod}")) else {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pod \"{pod}\" not found on this node"),
        )));
    };
    match entry.containers.get(container) {
        Some((id, attempt, running)) if !previous => {
            Ok((entry.uid.clone(), id.clone(), *attempt, *running))
        }
        Some((_, attempt, _)) if *attempt > 0 => {
            Ok((entry.uid.clone(), String::new(), attempt - 1, false))
        }
        Some(_) => Err(Box::new(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
        ))),
        None => {
            let reason = entry
                .waiting
                .get(container)
                .cloned()
                .unwrap_or_else(|| "ContainerCreating".into());
            Err(Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
                ),
            )))
        }
    }
}

async fn logs(ctx: &Arc<Ctx>, ns: &str, pod: &str, container: &str, q: &str) -> Response<Body> {
    let previous = flag(q, "previous");
    let (uid, id, attempt, running) = match instance(ctx, ns, pod, container, previous) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let since = query_param(q, "sinceSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| SystemTime::now() - Duration::from_secs(s))
        .or_else(|| {
            query_param(q, "sinceTime")
                .and_then(|t| {
                    time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(SystemTime::from)
        });
    let opts = oci_runtime::logs::LogOptions {
        tail_lines: query_param(q, "tailLines").and_then(|s| s.parse().ok()),
        since,
        timestamps: flag(q, "timestamps"),
        limit_bytes: query_param(q, "limitBytes").and_then(|s| s.parse().ok()),
        follow: flag(q, "follow") && !previous,
    };
    let path = ctx.log_path(&uid, container, attempt);
    let rt = ctx.runtime.clone();
    let stop = async move {
        if running && !id.is_empty() {
            let _ = rt.wait(&id).await;
        }
    };
    let stream = oci_runtime::logs::read(path, opts, stop).map(|r| r.map(Frame::data));
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

async fn exec(
    ctx: Arc<Ctx>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
    attach: bool,
) -> Response<Body> {
    let q = req.uri().query().unwrap_or("").to_string();
    let opts = match streaming::remotecommand::Options::from_query(&q) {
        Ok(o) => o,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
    };
    let (_, id, _, running) = match instance(&ctx, ns, pod, container, false) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if !running {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("container {container} is not running in pod {pod}"),
        );
    }
    let rt = ctx.runtime.clone();
    let command = opts.command.clone();
    let tty = opts.tty;
    let want_stdin = opts.stdin;
    let resp = streaming::remotecommand::serve(req, opts, move |streams| async move {
        use streaming::remotecommand::Outcome;
        if attach {
            match rt.attach(&id).await {
                Ok(mut a) => {
                    let r = a.resizer();
                    let io = Io {
                        stdin: a.stdin.take(),
                        stdout: a.stdout.take(),
                        stderr: a.stderr.take(),
                    };
                    pump(
                        io,
                        streams,
                        Box::new(move |w, h| {
                            let _ = r.resize(w, h);
                        }),
                        async { Ok(0) },
                    )
                    .await
                }
                Err(e) => Outcome::Error(e.to_string()),
            }
        } else {
            match rt
                .exec(
                    &id,
                    oci_runtime::ExecRequest {
                        args: command,
                        env: Vec::new(),
                        tty,
                        stdin: want_stdin,
                    },
                )
                .await
            {
                Ok(mut x) => {
                    let r = x.resizer();
                    let io = Io {
                        stdin: x.stdin.take(),
                        stdout: x.stdout.take(),
                        stderr: x.stderr.take(),
                    };
                    pump(
                        io,
                        streams,
                        Box::new(move |w, h| {
                            let _ = r.resize(w, h);
                        }),
                        async move { x.wait().await.map_err(|e| e.to_string()) },
                    )
                    .await
                }
                Err(e) => Outcome::Error(e.to_string()),
            }
        }
    });
    resp.map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

/// A process's stdio, as the runtime hands it out.
struct Io {
    stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
    stdout: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    stderr: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
}

/// Copies between the client's streams and the process until its output ends and
/// `wait` gives the exit code (attach: the container's output ending is the end).
async fn pump(
    io: Io,
    streams: streaming::remotecommand::Streams,
    resize: Box<dyn Fn(u16, u16) + Send + Sync>,
    wait: impl std::future::Future<Output = Result<i32, String>>,
) -> streaming::remotecommand::Outcome {
    use streaming::remotecommand::Outcome;
    let streaming::remotecommand::Streams {
        stdin,
        stdout,
        stderr,
        resize: resize_rx,
    } = streams;
    let mut background = Vec::new();
    if let (Some(mut from), Some(mut to)) = (stdin, io.stdin) {
        background.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut to).await;
        }));
    }
    if let Some(mut rx) = resize_rx {
        background.push(tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                resize(size.width, size.height);
            }
        }));
    }
    let mut outputs = Vec::new();
    for (from, to) in [(io.stdout, stdout), (io.stderr, stderr)] {
        if let (Some(mut from), Some(mut to)) = (from, to) {
            outputs.push(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut to).await;
                let _ = tokio::io::AsyncWriteExt::flush(&mut to).await;
            }));
        }
    }
    let result = wait.await;
    for o in outputs {
        let _ = o.await;
    }
    for t in background {
        t.abort();
    }
    match result {
        Ok(code) => Outcome::Exited(code),
        Err(e) => Outcome::Error(e),
    }
}
