//! The Kubernetes-compatible API server: HTTPS with bearer-token authentication,
//! discovery and OpenAPI, and one generic REST handler for every registered resource
//! (get, list, watch, create, update, patch, delete, deletecollection, status, scale,
//! binding), over the revisioned [`store`].
#![forbid(unsafe_code)]

mod agents;
mod auth;
mod discovery;
mod gc;
pub mod http;
pub mod join;
mod metrics;
mod nodeport;
pub mod pki;
mod printing;
mod proxy;
mod read;
mod route;
mod schemas;
mod state;
mod watch;
mod write;

use crate::http::{Body, Want};
use crate::route::{Route, Target};
use crate::state::{State, parse_query};
use crate::write::{DeleteOpts, FieldValidation, PatchKind, WriteOpts};
use ::http::{HeaderValue, Method, Request, Response, header};
use api::{ApiError, Registry};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use store::SharedStore;
use tokio::net::TcpListener;

/// The largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How the server is started.
pub struct Config {
    /// Where certificates, tokens and the kubeconfig live.
    pub data_dir: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The store.
    pub store: SharedStore,
    /// How many revisions of history the compactor keeps (watchers further behind get 410).
    pub history_revisions: i64,
    /// How often the compactor runs.
    pub compaction_interval: std::time::Duration,
    /// The range ClusterIPs are allocated from (`10.96.0.0/12` by default).
    pub service_cidr: String,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--service-cidr` is not an IPv4 range.
    #[error("invalid service CIDR {0:?}: use an IPv4 range such as 10.96.0.0/12")]
    ServiceCidr(String),
    /// Credentials could not be made or loaded.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another server running there?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store failed during start-up.
    #[error("the store failed during start-up: {0}")]
    Store(String),
    /// The TLS client for node agents could not be set up.
    #[error("cannot set up the TLS client for node agents: {0}")]
    AgentClient(#[from] rustls::Error),
}

/// A started server.
pub struct Running {
    /// The address actually bound (the port may have been 0).
    pub addr: SocketAddr,
    /// The admin kubeconfig.
    pub kubeconfig: String,
    /// The default join token (`DIR/node-token`).
    pub node_token: String,
    /// The command that joins another machine: `drover agent --server URL --token T`.
    pub join_command: String,
    /// Completes when the accept loop ends.
    pub task: tokio::task::JoinHandle<()>,
}

/// An IPv4 CIDR as (network address, number of addresses); at least 4 addresses.
pub fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, len) = cidr.trim().split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| (1..=30).contains(l))?;
    let size = 1u32 << (32 - len);
    Some((u32::from(ip) & !(size - 1), size))
}

async fn ensure_namespace(state: &State, name: &str) -> Result<(), ApiError> {
    let key = format!("/core/namespaces/{name}");
    if state
        .store
        .get(&key)
        .await
        .map_err(state::store_error)?
        .is_some()
    {
        return Ok(());
    }
    let obj = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": state::now(),
                     "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    match state.store.create(&key, state::encode(&obj)?).await {
        Ok(_) | Err(store::StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(state::store_error(e)),
    }
}

/// Starts the server: makes credentials, writes the kubeconfig, binds, and serves.
pub async fn start(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| pki::PkiError::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    // Listening on every address: the certificate names every local address, so
    // agents on other machines can reach the server by whichever one they use.
    let mut names = vec![host.clone()];
    if addr.ip().is_unspecified()
        && let Ok(ifaddrs) = nix::ifaddrs::getifaddrs()
    {
        for ifa in ifaddrs {
            let ip = ifa.address.as_ref().and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| std::net::IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
            });
            if let Some(ip) = ip.filter(|ip| !ip.is_loopback()).map(|ip| ip.to_string())
                && !names.contains(&ip)
            {
                names.push(ip);
            }
        }
    }
    let creds = pki::load_or_create(&config.data_dir, &names)?;
    let url_host = if addr.ip().is_ipv6() && !addr.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let address = format!("{url_host}:{}", addr.port());
    let kubeconfig = pki::kubeconfig(
        &format!("https://{address}"),
        &creds.ca_pem,
        &creds.admin_token,
    );
    pki::write_private(&config.data_dir.join("kubeconfig"), &kubeconfig)?;

    let store_for_agents = config.store.clone();
    let service_range = parse_cidr(&config.service_cidr)
        .ok_or_else(|| StartError::ServiceCidr(config.service_cidr.clone()))?;
    let state = Arc::new(State {
        service_range,
        store: config.store,
        registry: RwLock::new(Arc::new(Registry::default())),
        crds: RwLock::new(Vec::new()),
        admin_token: creds.admin_token.clone(),
        join_token: creds.join_token.clone(),
        ca_pem: creds.ca_pem.clone(),
        address: address.clone(),
        agents: agents::AgentClient::new(&creds.join_token, store_for_agents)?,
        watch_lines: watch::LineCache::default(),
    });
    state
        .reload_crds()
        .await
        .map_err(|e| StartError::Store(e.message))?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure_namespace(&state, ns)
            .await
            .map_err(|e| StartError::Store(e.message))?;
    }
    let ca_hash = join::ca_hash(&creds.ca_pem).map_err(|e| pki::PkiError::Tls(e.to_string()))?;
    let node_token = auth::ensure_default_token(&state, &config.data_dir, &ca_hash)
        .await
        .map_err(|e| StartError::Store(e.message))?;
    // Other machines cannot use loopback: name the first other address when there is one.
    let join_address = match names
        .iter()
        .skip(1)
        .find(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
    {
        Some(ip) if addr.ip().is_unspecified() => format!("{ip}:{}", addr.port()),
        _ => address.clone(),
    };
    let join_command = format!("drover agent --server https://{join_address} --token {node_token}");
    tracing::info!("join other machines with: {join_command}");
    gc::resume(state.clone())
        .await
        .map_err(|e| StartError::Store(e.message))?;
    spawn_compactor(
        state.clone(),
        config.history_revisions,
        config.compaction_interval,
    );

    let acceptor = tokio_rustls::TlsAcceptor::from(creds.tls.clone());
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                // With upgrades: exec, attach and port-forward switch protocols.
                if let Err(e) = builder
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
    });
    Ok(Running {
        addr,
        kubeconfig,
        node_token,
        join_command,
        task,
    })
}

/// Compacts the store's history every `interval`, keeping the last `keep` revisions
/// (enough for watchers to resume after a short disconnect, as Kubernetes' 5-minute
/// window does).
fn spawn_compactor(state: Arc<State>, keep: i64, interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let target = state.store.current_revision() - keep;
            if target > state.store.compacted_revision()
                && let Err(e) = state.store.compact(target).await
            {
                tracing::warn!(error = %e, "compaction failed");
            }
        }
    });
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match route_and_serve(state, req).await {
        Ok(r) => r,
        Err(e) => http::error(&e),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn route_and_serve(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let registry = state.registry();
    let route = route::parse(&path, &registry);
    // /version and health checks are public, as Kubernetes' system:public-info-viewer allows.
    match &route {
        Route::Version => return Ok(http::json(200, &discovery::version())),
        Route::Health => return Ok(http::text(200, "ok")),
        _ => {}
    }
    if path == join::CA_PATH && req.method() == Method::GET {
        let mut resp = http::text(200, &state.ca_pem);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        );
        return Ok(resp);
    }
    let identity = auth::authenticate(&state, &req).await?;
    if path == join::JOIN_PATH {
        return auth::join(&state, &identity, req).await;
    }
    let constraints = auth::authorize(
        &state,
        &identity,
        req.method(),
        &route,
        &parse_query(req.uri().query()),
    )
    .await?;
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let want = http::negotiate(accept.as_deref());
    if req.method() != Method::GET && !matches!(route, Route::Resource(_) | Route::NotFound) {
        if let Route::Metrics(_) = route {
            return Err(ApiError::method_not_allowed(format!(
                "{} is not supported on the metrics.k8s.io resources: they are read-only (get, list)",
                req.method()
            )));
        }
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({path})"
        )));
    }
    match route {
        Route::Version | Route::Health => unreachable!("answered above"),
        Route::CoreVersions => Ok(if want == Want::AggregatedDiscovery {
            http::json_with(
                200,
                &discovery::aggregated(&registry, true),
                http::DISCOVERY_CONTENT_TYPE,
            )
        } else {
            http::json(200, &discovery::core_versions(&state.address))
        }),
        Route::Groups => Ok(if want == Want::AggregatedDiscovery {
            http::json_with(
                200,
                &discovery::aggregated(&registry, false),
                http::DISCOVERY_CONTENT_TYPE,
            )
        } else {
            http::json(200, &discovery::group_list(&registry))
        }),
        Route::Group(g) => discovery::group(&registry, &g)
            .map(|v| http::json(200, &v))
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::ResourceList(g, v) => discovery::resource_list(&registry, &g, &v)
            .map(|v| http::json(200, &v))
            .ok_or_else(|| ApiError::no_route(&path)),
        Route::OpenApiIndex => Ok(http::json(200, &discovery::openapi_index(&registry))),
        Route::OpenApiGroupVersion(g, v) => {
            let crd_schema = |r: &api::ResourceInfo| {
                state.crd_version(r).and_then(|v| {
                    v.get("schema")
                        .and_then(|s| s.get("openAPIV3Schema"))
                        .cloned()
                })
            };
            discovery::openapi_group_version(&registry, &g, &v, &crd_schema)
                .map(|v| http::json(200, &v))
                .ok_or_else(|| ApiError::no_route(&path))
        }
        // An empty OpenAPI v2 document (the empty protobuf message): kubectl asks for v2 when a
        // kind is missing from v3 and, given a document, reports the kind as unknown rather than
        // failing to download OpenAPI. Everything real is in v3.
        Route::OpenApiV2 => {
            let mut resp = ::http::Response::new(http::full(bytes::Bytes::new()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                ),
            );
            Ok(resp)
        }
        Route::NotFound => Err(ApiError::no_route(&path)),
        Route::Metrics(t) => {
            let q = parse_query(req.uri().query());
            metrics::serve(&state, t, &q).await
        }
        Route::Resource(t) => serve_resource(state, *t, req, want, constraints).await,
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes.
async fn read_body(req: Request<Incoming>) -> Result<(String, bytes::Bytes), ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > MAX_BODY
    {
        return Err(ApiError::too_large(MAX_BODY));
    }
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::too_large(MAX_BODY)
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?
        .to_bytes();
    Ok((ct, bytes))
}

/// Reads and parses a body that must hold an object.
async fn read_object(req: Request<Incoming>) -> Result<Value, ApiError> {
    let (ct, bytes) = read_body(req).await?;
    parse_body(&ct, &bytes)
}

/// Parses a body by its content type: JSON, YAML or Kubernetes protobuf.
fn parse_body(ct: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            "the request body is empty; it must hold an object",
        ));
    }
    if base == "application/vnd.kubernetes.protobuf" {
        return k8s_protobuf::decode(bytes)
            .map_err(|e| ApiError::bad_request(format!("cannot decode the protobuf body: {e}")));
    }
    let is_yaml = base.ends_with("yaml");
    let is_json = base.ends_with("json") || base.is_empty() || base == "*/*";
    if !is_yaml && !is_json {
        return Err(ApiError::unsupported_media_type(ct));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(e) if !is_yaml => Err(ApiError::bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
        Err(_) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
            })
        }
    }
}

fn write_opts(
    q: &std::collections::HashMap<String, String>,
    req_agent: &str,
    default_manager: &str,
) -> Result<WriteOpts, ApiError> {
    let validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {other:?}"
            )));
        }
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun must be \"All\", not {other:?}"
            )));
        }
    };
    let field_manager = match q.get("fieldManager") {
        Some(m) if !m.is_empty() => {
            if m.len() > 128 {
                return Err(ApiError::bad_request(
                    "fieldManager must not be longer than 128 characters",
                ));
            }
            m.clone()
        }
        _ if default_manager.is_empty() => String::new(),
        _ => {
            let agent = req_agent.split('/').next().unwrap_or("").trim();
            if agent.is_empty() {
                default_manager.to_string()
            } else {
                agent.to_string()
            }
        }
    };
    Ok(WriteOpts {
        field_manager,
        dry_run,
        validation,
    })
}

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

/// A DELETE's optional DeleteOptions body: JSON, or protobuf from kubectl 1.32+.
fn delete_body(ct: &str, bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let protobuf = ct
        .split(';')
        .next()
        .is_some_and(|b| b.trim() == "application/vnd.kubernetes.protobuf");
    parse_body(if protobuf { ct } else { "application/json" }, bytes).map(Some)
}

fn delete_opts(
    q: &std::collections::HashMap<String, String>,
    body: Option<&Value>,
) -> Result<DeleteOpts, ApiError> {
    let mut o = DeleteOpts::default();
    if let Some(b) = body {
        o.grace = b.get("gracePeriodSeconds").and_then(Value::as_i64);
        o.propagation = b
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        if o.propagation.is_none()
            && let Some(orphan) = b.get("orphanDependents").and_then(Value::as_bool)
        {
            o.propagation = Some(if orphan { "Orphan" } else { "Background" }.into());
        }
        o.uid = b["preconditions"]
            .get("uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.resource_version = b["preconditions"]
            .get("resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.dry_run = b
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        o.grace = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = q.get("propagationPolicy") {
        o.propagation = Some(p.clone());
    }
    if q.get("dryRun").is_some_and(|d| d == "All") {
        o.dry_run = true;
    }
    Ok(o)
}

async fn serve_resource(
    state: Arc<State>,
    t: Target,
    req: Request<Incoming>,
    want: Want,
    constraints: auth::Constraints,
) -> Result<Response<Body>, ApiError> {
    let q = parse_query(req.uri().query());
    let method = req.method().clone();
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let name = t.name.clone();
    let sub = t.sub.clone();
    let is_pod = t.info.group.is_empty() && t.info.plural == "pods";
    let is_watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let unsupported = |what: &str| {
        Err(ApiError::method_not_allowed(format!(
            "{what} is not supported on {}",
            t.info.group_resource()
        )))
    };
    match (method, name.as_deref(), sub.as_deref()) {
        (Method::GET, None, None) if is_watch => watch::watch(state, t, want, q).await,
        (Method::GET, None, None) => read::list(&state, &t, want, &q).await,
        (Method::GET, Some(n), None | Some("status")) => read::get(&state, &t, n, want, &q).await,
        (Method::GET, Some(n), Some("scale")) => {
            let obj = read::get_object(&state, &t, n).await?;
            Ok(http::json(200, &read::scale_of(&t.info, &obj)))
        }
        (Method::GET, Some(n), Some("log")) if is_pod => proxy::logs(&state, &t, n, req).await,
        (Method::GET | Method::POST, Some(n), Some(s @ ("exec" | "attach" | "portforward")))
            if is_pod =>
        {
            proxy::upgrade(&state, &t, n, s, req).await
        }
        (Method::GET, Some(n), Some("ephemeralcontainers")) => {
            read::get(&state, &t, n, want, &q).await
        }
        (Method::GET, Some(_), Some(s)) => unsupported(&format!("GET of the {s} subresource")),
        (Method::POST, None, None) => {
            let opts = write_opts(&q, &agent, "unknown")?;
            let body = read_object(req).await?;
            if let Some(want) = &constraints.create_name
                && api::meta::name(&body) != Some(want.as_str())
            {
                return Err(ApiError::forbidden(format!(
                    "User \"system:node:{want}\" cannot create {} named {:?}: a node may only create its own",
                    t.info.plural,
                    api::meta::name(&body).unwrap_or("")
                )));
            }
            let w = write::create(&state, &t, body, &opts).await?;
            Ok(with_warnings(http::json(201, &w.object), &w.warnings))
        }
        (Method::POST, Some(n), Some("binding")) => {
            let opts = write_opts(&q, &agent, "unknown")?;
            let body = read_object(req).await?;
            let s = write::bind(&state, &t, n, &body, &opts).await?;
            Ok(http::json(201, &s))
        }
        (Method::POST, Some(n), Some("eviction")) => {
            let (ct, bytes) = read_body(req).await?;
            let body = parse_body(&ct, &bytes).ok();
            let opts = delete_opts(&q, body.as_ref().and_then(|b| b.get("deleteOptions")))?;
            write::evict(&state, &t, n, &opts).await?;
            Ok(http::json(201, &api::status::success(None)))
        }
        (Method::PUT, Some(n), None | Some("status")) => {
            let opts = write_opts(&q, &agent, "unknown")?;
            let body = read_object(req).await?;
            let w = write::update(&state, &t, n, body, &opts, sub.as_deref()).await?;
            Ok(with_warnings(http::json(200, &w.object), &w.warnings))
        }
        (Method::PUT, Some(n), Some("scale")) => {
            let opts = write_opts(&q, &agent, "unknown")?;
            let body = read_object(req).await?;
            let scale = write::update_scale(&state, &t, n, &opts, |_| Ok(body.clone())).await?;
            Ok(http::json(200, &scale))
        }
        (Method::PUT, Some(n), Some("finalize")) => {
            let opts = write_opts(&q, &agent, "unknown")?;
            let body = read_object(req).await?;
            let spec = body.get("spec").cloned();
            let w = write::update_with(&state, &t, n, &opts, Some("finalize"), |cur| {
                let mut o = cur.clone();
                if let Some(s) = &spec {
                    o["spec"] = s.clone();
                }
                Ok(o)
            })
            .await?;
            Ok(http::json(200, &w.object))
        }
        (Method::PATCH, Some(n), None | Some("status") | Some("scale")) => {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let kind = PatchKind::from_content_type(&ct).ok_or_else(|| {
                ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"))
            })?;
            let default_manager = if kind == PatchKind::Apply {
                ""
            } else {
                "unknown"
            };
            let opts = write_opts(&q, &agent, default_manager)?;
            let force = q.get("force").is_some_and(|f| f == "true");
            if force && kind != PatchKind::Apply {
                return Err(ApiError::bad_request(
                    "force may only be set for apply patches",
                ));
            }
            let (_, bytes) = read_body(req).await?;
            let body_ct = if kind == PatchKind::Apply {
                "application/yaml"
            } else {
                "application/json"
            };
            let body = parse_body(body_ct, &bytes)?;
            let w = write::patch(&state, &t, n, kind, body, &opts, sub.as_deref(), force).await?;
            let status = if w.created { 201 } else { 200 };
            Ok(with_warnings(http::json(status, &w.object), &w.warnings))
        }
        (Method::DELETE, Some(n), None) => {
            let (ct, bytes) = read_body(req).await?;
            let body = delete_body(&ct, &bytes)?;
            let opts = delete_opts(&q, body.as_ref())?;
            let obj = write::delete(&state, &t, n, &opts).await?;
            let code = if api::meta::is_deleting(&obj) && !opts.dry_run {
                202
            } else {
                200
            };
            Ok(http::json(code, &obj))
        }
        (Method::DELETE, None, None) => {
            let (ct, bytes) = read_body(req).await?;
            let body = delete_body(&ct, &bytes)?;
            let opts = delete_opts(&q, body.as_ref())?;
            let (items, rev, _) = read::list_objects(&state, &t, &q).await?;
            let mut deleted = Vec::new();
            for obj in items {
                let Some(n) = api::meta::name(&obj).map(str::to_string) else {
                    continue;
                };
                let mut ot = t.clone();
                ot.namespace = api::meta::namespace(&obj).map(str::to_string);
                match write::delete(&state, &ot, &n, &opts).await {
                    Ok(o) => deleted.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(http::json(
                200,
                &json!({
                    "kind": t.info.list_kind(), "apiVersion": t.info.api_version(),
                    "metadata": {"resourceVersion": rev.to_string()}, "items": deleted,
                }),
            ))
        }
        (m, _, _) => unsupported(&format!("{m}")),
    }
}

#[cfg(test)]
mod cidr_tests {
    #[test]
    fn service_ranges() {
        assert_eq!(
            super::parse_cidr("10.96.0.0/12"),
            Some((0x0a60_0000, 1 << 20))
        );
        assert_eq!(
            super::parse_cidr("10.123.45.7/24"),
            Some((0x0a7b_2d00, 256))
        );
        assert_eq!(super::parse_cidr("10.0.0.0/31"), None);
        assert_eq!(super::parse_cidr("nonsense"), None);
    }
}
