//! The HTTPS client: one pooled hyper connection (HTTP/2 when the server offers it over
//! ALPN, with keep-alive pings) shared by every clone, bearer-token authentication and the
//! cluster CA, exactly like kubectl.

use crate::params::Query;
use crate::{
    Config, DeleteParams, Error, ListParams, ObjectList, Patch, PatchParams, PostParams, Resource,
    Status, WatchEvent,
};
use bytes::Bytes;
use futures::Stream;
use http::{HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{Value, json};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long establishing a TCP+TLS connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An API client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    /// The server URL without a trailing slash (it may carry a path prefix).
    base: String,
    auth: Option<HeaderValue>,
    timeout: Duration,
    namespace: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config`. Fails on a non-https URL or an unusable CA.
    pub fn new(config: Config) -> Result<Client, Error> {
        let base = config.url.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .map_err(|e| Error::Config(format!("invalid server URL {base:?}: {e}")))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(Error::Config(format!(
                "server URL must be https://HOST[:PORT], got {base:?}"
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        let mut reader = config.ca_pem.as_slice();
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| Error::Config(format!("invalid CA PEM: {e}")))?;
            roots.add(cert).map_err(Error::Tls)?;
        }
        if roots.is_empty() {
            return Err(Error::Config("no CA certificate in the CA PEM".into()));
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        };
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // Pings find a dead peer (a server killed without closing its sockets) so
            // that watches fail over instead of hanging forever.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .http2_keep_alive_while_idle(true)
            .build(connector);
        let auth = match config.token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                timeout: config.timeout,
                namespace: config.namespace,
            }),
        })
    }

    /// A client from a server URL, its CA PEM and a bearer token.
    pub fn from_parts(
        url: impl Into<String>,
        ca_pem: impl Into<Vec<u8>>,
        token: impl Into<String>,
    ) -> Result<Client, Error> {
        Client::new(Config::new(url, ca_pem, Some(token.into())))
    }

    /// A client from a kubeconfig file (its current context).
    pub fn from_kubeconfig_file(path: impl AsRef<std::path::Path>) -> Result<Client, Error> {
        Client::new(Config::from_kubeconfig_file(path)?)
    }

    /// A client from kubeconfig text (its current context).
    pub fn from_kubeconfig_str(text: &str) -> Result<Client, Error> {
        Client::new(Config::from_kubeconfig_str(text, None)?)
    }

    /// The kubeconfig context's namespace (`default` if it sets none).
    pub fn default_namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Reads one object.
    pub async fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> Result<Value, Error> {
        self.json(Method::GET, &r.path(ns, Some(name), None), None)
            .await
    }

    /// Reads one page of a collection: pass the previous page's `continue_token` to get
    /// the next one.
    pub async fn list_page(
        &self,
        r: &Resource,
        ns: Option<&str>,
        params: &ListParams,
        continue_token: Option<&str>,
    ) -> Result<ObjectList, Error> {
        let mut q = Query::default();
        params.selectors(&mut q);
        q.push_opt("limit", params.limit);
        q.push_opt("continue", continue_token);
        let path = format!("{}{}", r.path(ns, None, None), q.encode());
        ObjectList::from_value(self.json(Method::GET, &path, None).await?)
    }

    /// Reads a whole collection, following `continue` tokens page by page. All pages are
    /// one consistent snapshot at the returned `resource_version` (Kubernetes serves
    /// continued pages at the first page's revision), so a watch may start from it.
    pub async fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList, Error> {
        let mut all = self.list_page(r, ns, params, None).await?;
        while let Some(token) = all.continue_token.take() {
            let page = self.list_page(r, ns, params, Some(&token)).await?;
            all.items.extend(page.items);
            all.continue_token = page.continue_token;
        }
        Ok(all)
    }

    /// Creates `obj`. For namespaced resources the namespace is `ns`, else the object's
    /// `metadata.namespace`, else the client's default namespace.
    pub async fn create(
        &self,
        r: &Resource,
        ns: Option<&str>,
        obj: &Value,
        pp: &PostParams,
    ) -> Result<Value, Error> {
        let ns = self.namespace_for(r, ns, obj);
        let path = format!("{}{}", r.path(ns, None, None), pp.query().encode());
        self.json(Method::POST, &path, Some(body(obj, "application/json")?))
            .await
    }

    /// Replaces (PUT) an object. A `metadata.resourceVersion` in `obj` makes it a
    /// compare-and-swap: a stale one fails with 409 Conflict.
    pub async fn replace(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        pp: &PostParams,
    ) -> Result<Value, Error> {
        self.put(r, ns, name, None, obj, pp).await
    }

    /// Replaces the `status` subresource (only `status` changes; same 409 rules).
    pub async fn replace_status(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        pp: &PostParams,
    ) -> Result<Value, Error> {
        self.put(r, ns, name, Some("status"), obj, pp).await
    }

    /// Patches an object.
    pub async fn patch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        patch: &Patch,
        pp: &PatchParams,
    ) -> Result<Value, Error> {
        self.patch_sub(r, ns, name, None, patch, pp).await
    }

    /// Patches the `status` subresource.
    pub async fn patch_status(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        patch: &Patch,
        pp: &PatchParams,
    ) -> Result<Value, Error> {
        self.patch_sub(r, ns, name, Some("status"), patch, pp).await
    }

    /// Deletes an object. Returns what the server answers: the object itself while
    /// finalizers or a grace period keep it, else a success `Status`.
    pub async fn delete(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        dp: &DeleteParams,
    ) -> Result<Value, Error> {
        let path = r.path(ns, Some(name), None);
        self.json(
            Method::DELETE,
            &path,
            Some(body(&dp.body(), "application/json")?),
        )
        .await
    }

    /// Binds a pod to a node (`POST pods/{name}/binding`): what a scheduler does. The
    /// server refuses (409) if the pod is already bound.
    pub async fn bind(&self, ns: &str, pod: &str, node: &str) -> Result<Value, Error> {
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod, "namespace": ns},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let path = Resource::PODS.path(Some(ns), Some(pod), Some("binding"));
        self.json(
            Method::POST,
            &path,
            Some(body(&binding, "application/json")?),
        )
        .await
    }

    /// POSTs `obj` to a subresource (`eviction`, `binding`, ...).
    pub async fn create_subresource(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: &str,
        obj: &Value,
    ) -> Result<Value, Error> {
        let path = r.path(ns, Some(name), Some(sub));
        self.json(Method::POST, &path, Some(body(obj, "application/json")?))
            .await
    }

    /// Any JSON request to a server path (`/version`, discovery), for what the typed
    /// methods do not cover.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        obj: Option<&Value>,
    ) -> Result<Value, Error> {
        let b = match obj {
            Some(o) => Some(body(o, "application/json")?),
            None => None,
        };
        self.json(method, path, b).await
    }

    /// Watches a collection from `resource_version` ("" or "0": first the current objects
    /// as `Added`). The stream ends when the server closes it (timeout, restart); an
    /// `Error` event with code 410 means the revision is compacted and the caller must
    /// re-list. Use [`crate::watcher`] for a watch that handles all of this.
    pub async fn watch(
        &self,
        r: &Resource,
        ns: Option<&str>,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent, Error>> + Send + 'static, Error> {
        let mut q = Query::default();
        q.push("watch", "true");
        params.selectors(&mut q);
        q.push_opt("timeoutSeconds", params.timeout_seconds);
        if !resource_version.is_empty() {
            q.push("resourceVersion", resource_version);
        }
        let path = format!("{}{}", r.path(ns, None, None), q.encode());
        let resp = tokio::time::timeout(self.inner.timeout, self.send(Method::GET, &path, None))
            .await
            .map_err(|_| Error::Timeout(self.inner.timeout))??;
        let resp = check(resp, self.inner.timeout).await?;
        Ok(lines(resp.into_body()))
    }

    fn namespace_for<'a>(
        &'a self,
        r: &Resource,
        ns: Option<&'a str>,
        obj: &'a Value,
    ) -> Option<&'a str> {
        if !r.namespaced {
            return None;
        }
        ns.or_else(|| obj.pointer("/metadata/namespace").and_then(Value::as_str))
            .or(Some(self.inner.namespace.as_str()))
    }

    async fn put(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        obj: &Value,
        pp: &PostParams,
    ) -> Result<Value, Error> {
        let path = format!("{}{}", r.path(ns, Some(name), sub), pp.query().encode());
        self.json(Method::PUT, &path, Some(body(obj, "application/json")?))
            .await
    }

    /// Patches the `scale` subresource (autoscalers, `kubectl scale`).
    pub async fn patch_scale(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        patch: &Patch,
        pp: &PatchParams,
    ) -> Result<Value, Error> {
        self.patch_sub(r, ns, name, Some("scale"), patch, pp).await
    }

    async fn patch_sub(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        patch: &Patch,
        pp: &PatchParams,
    ) -> Result<Value, Error> {
        let path = format!("{}{}", r.path(ns, Some(name), sub), pp.query().encode());
        self.json(
            Method::PATCH,
            &path,
            Some(body(patch.body(), patch.content_type())?),
        )
        .await
    }

    /// Sends a request and decodes a JSON answer, within the client's timeout.
    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Value, Error> {
        let timeout = self.inner.timeout;
        let call = async {
            let resp = check(self.send(method, path, body).await?, timeout).await?;
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(Error::Body)?
                .to_bytes();
            serde_json::from_slice::<Value>(&bytes).map_err(|source| Error::Decode {
                what: "response body",
                source,
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<Response<Incoming>, Error> {
        let uri = format!("{}{}", self.inner.base, path);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "drover-client");
        if let Some(auth) = &self.inner.auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let (bytes, content_type) = body.unwrap_or_default();
        if !content_type.is_empty() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| Error::Config(format!("invalid request URI {uri:?}: {e}")))?;
        tracing::trace!(uri, "request");
        self.inner
            .http
            .request(req)
            .await
            .map_err(|e| Error::Http(Box::new(e)))
    }
}

fn body(v: &Value, content_type: &'static str) -> Result<(Bytes, &'static str), Error> {
    let b = serde_json::to_vec(v).map_err(|source| Error::Decode {
        what: "request body",
        source,
    })?;
    Ok((Bytes::from(b), content_type))
}

/// Turns a non-2xx response into `Error::Api` with the server's Status.
async fn check(resp: Response<Incoming>, timeout: Duration) -> Result<Response<Incoming>, Error> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let code = resp.status().as_u16();
    let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
        .await
        .map_err(|_| Error::Timeout(timeout))?
        .map_err(Error::Body)?
        .to_bytes();
    let status = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| Status::from_value(&v))
        .unwrap_or_else(|| Status::from_code(code, &bytes));
    Err(Error::Api(Box::new(status)))
}

/// Splits a watch body into newline-delimited JSON events. After a body error the
/// stream yields that error and ends.
fn lines(body: Incoming) -> impl Stream<Item = Result<WatchEvent, Error>> + Send + 'static {
    struct Lines {
        body: Incoming,
        buf: Vec<u8>,
        done: bool,
    }
    let parse = |line: &[u8]| {
        serde_json::from_slice::<Value>(line)
            .map_err(|source| Error::Decode {
                what: "watch event",
                source,
            })
            .and_then(WatchEvent::from_value)
    };
    let st = Lines {
        body,
        buf: Vec::new(),
        done: false,
    };
    futures::stream::unfold(st, move |mut st| async move {
        loop {
            if let Some(pos) = st.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = st.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some((parse(&line), st));
            }
            if st.done {
                if st.buf.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let line = std::mem::take(&mut st.buf);
                return Some((parse(&line), st));
            }
            match st.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        st.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    st.buf.clear();
                    return Some((Err(Error::Body(e)), st));
                }
                None => st.done = true,
            }
        }
    })
}

/// Opens TCP + TLS connections to the server for hyper's pool.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TlsConn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URI without host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            Ok(TlsConn(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection that tells hyper whether ALPN chose HTTP/2.
struct TlsConn(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        let (_, session) = self.0.inner().get_ref();
        if session.alpn_protocol() == Some(b"h2") {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl hyper::rt::Read for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
