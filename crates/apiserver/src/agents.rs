//! A small HTTPS client for node agents: the API server reaches them for pod logs, exec,
//! attach, port-forward and resource usage, as kube-apiserver reaches kubelets.

use crate::http::Body;
use ::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long connecting (TCP and TLS) to an agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an agent may take to answer with its response head.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// The kubelet's default port, used when a node reports none.
pub const DEFAULT_PORT: u16 = 10250;

/// Why an agent could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed.
    #[error("the TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid host name or address")]
    BadHost(String),
    /// The HTTP exchange failed.
    #[error("the HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// The agent took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The agent answered something else than expected.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Where a node's agent listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's name (for messages).
    pub node: String,
    /// The host (an IP address, from the node's addresses).
    pub host: String,
    /// The port (`status.daemonEndpoints.kubeletEndpoint.Port`).
    pub port: u16,
}

impl Endpoint {
    /// Reads the agent endpoint from a Node object: the first InternalIP (then ExternalIP,
    /// then Hostname) and the kubelet endpoint port. None when the node reports no address.
    pub fn of_node(node: &Value) -> Option<Endpoint> {
        let name = node["metadata"]["name"].as_str().unwrap_or("").to_string();
        let addresses = node["status"]["addresses"].as_array()?;
        let host = ["InternalIP", "ExternalIP", "Hostname"]
            .iter()
            .find_map(|kind| {
                addresses
                    .iter()
                    .find(|a| a["type"] == *kind)
                    .and_then(|a| a["address"].as_str())
                    .filter(|a| !a.is_empty())
            })?
            .to_string();
        let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_PORT);
        Some(Endpoint {
            node: name,
            host,
            port,
        })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The HTTPS client for agents, shared by all requests (one TLS configuration; one
/// connection per request, so upgraded streams and log follows never share a socket).
///
/// Agents serve a self-signed certificate, and the server does not verify it: any
/// certificate is accepted (the handshake signature is still checked against it).
/// Requests carry the token the agent checks: the one minted for the node when it joined
/// with a join token (so no agent learns another's), else the cluster join token (the
/// server's own agent, legacy agents).
pub struct AgentClient {
    tls: tokio_rustls::TlsConnector,
    token: String,
    store: store::SharedStore,
    secrets: api::ResourceInfo,
}

impl AgentClient {
    /// A client that authenticates to agents with their node tokens from `store`, or
    /// `join_token`.
    pub fn new(join_token: &str, store: store::SharedStore) -> Result<AgentClient, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth();
        // Upgrades (exec, attach, port-forward) need HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(AgentClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            token: join_token.to_string(),
            store,
            secrets: api::Registry::default()
                .find("", "v1", "secrets")
                .cloned()
                .ok_or_else(|| {
                    rustls::Error::General("the secrets resource is not registered".into())
                })?,
        })
    }

    /// Sends `req` (origin-form URI: path and query) to the agent at `ep`, adding the
    /// Host and Authorization headers. The connection supports upgrades: call
    /// `hyper::upgrade::on` on a 101 response.
    pub async fn send(
        &self,
        ep: &Endpoint,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, AgentError> {
        let authority = ep.authority();
        if let Ok(v) = HeaderValue::from_str(&authority) {
            req.headers_mut().insert(header::HOST, v);
        }
        let token = crate::auth::agent_token_for(&self.store, &self.secrets, &ep.node)
            .await
            .unwrap_or_else(|| self.token.clone());
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
        let server_name = ServerName::try_from(ep.host.clone())
            .map_err(|_| AgentError::BadHost(ep.host.clone()))?;
        let connect = async {
            let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
                .await
                .map_err(AgentError::Connect)?;
            let _ = tcp.set_nodelay(true);
            self.tls
                .connect(server_name, tcp)
                .await
                .map_err(AgentError::Tls)
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| AgentError::Timeout(CONNECT_TIMEOUT))??;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "agent connection ended with an error");
            }
        });
        tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| AgentError::Timeout(RESPONSE_TIMEOUT))?
            .map_err(AgentError::Http)
    }

    /// GETs `path` and parses the JSON answer, all within `timeout`.
    pub async fn get_json(
        &self,
        ep: &Endpoint,
        path: &str,
        timeout: Duration,
    ) -> Result<Value, AgentError> {
        use http_body_util::BodyExt;
        let work = async {
            let mut req = Request::new(crate::http::full(bytes::Bytes::new()));
            *req.uri_mut() = path
                .parse()
                .map_err(|_| AgentError::Unexpected(format!("bad path {path:?}")))?;
            let resp = self.send(ep, req).await?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024 * 1024)
                .collect()
                .await
                .map_err(|e| AgentError::Unexpected(format!("cannot read the body: {e}")))?
                .to_bytes();
            if !status.is_success() {
                return Err(AgentError::Unexpected(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(512)])
                )));
            }
            serde_json::from_slice(&body)
                .map_err(|e| AgentError::Unexpected(format!("the body is not JSON: {e}")))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| AgentError::Timeout(timeout))?
    }
}

/// Accepts any server certificate (see [`AgentClient`]), still checking that the peer
/// holds the key of the certificate it presents.
#[derive(Debug)]
pub(crate) struct AcceptAnyCert(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_from_nodes() {
        let n = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}}});
        let ep = Endpoint::of_node(&n).unwrap();
        assert_eq!(ep.authority(), "10.0.0.5:12345");
        assert_eq!(ep.node, "n1");
        let n = json!({"metadata": {"name": "n2"}, "status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}]}});
        assert_eq!(
            Endpoint::of_node(&n).unwrap().authority(),
            "[fd00::1]:10250"
        );
        assert!(Endpoint::of_node(&json!({"metadata": {"name": "n3"}, "status": {}})).is_none());
    }
}
