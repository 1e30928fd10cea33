//! Joining a cluster with a token, shared by the server and the agent.
//!
//! A join token is `drv1.<id>.<secret>.<ca-hash>`: a bootstrap token (kubeadm's
//! `<id>.<secret>`, stored by the server as a `bootstrap.kubernetes.io/token` Secret in
//! kube-system) and the SHA-256 of the cluster CA's public key (kubeadm's
//! `--discovery-token-ca-cert-hash`). The agent fetches the CA from the public
//! [`CA_PATH`] without trusting anything, checks it against the hash, and only then
//! presents the bootstrap token, over TLS verified against that CA, to [`JOIN_PATH`],
//! which answers with the node's own credentials ([`NodeCredentials`]).

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The public path that serves the cluster CA certificate (PEM), like k3s' `/cacerts`.
pub const CA_PATH: &str = "/cacerts";
/// Where an agent exchanges a bootstrap token for its node credentials (POST).
pub const JOIN_PATH: &str = "/drover/v1/join";
/// The prefix of join tokens.
pub const TOKEN_PREFIX: &str = "drv1";
/// The prefix of node bearer tokens (`drvn.<node>.<secret>`).
pub const NODE_TOKEN_PREFIX: &str = "drvn";
/// The Secret type of bootstrap tokens (as kubeadm's).
pub const BOOTSTRAP_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The name prefix of bootstrap token Secrets in kube-system.
pub const BOOTSTRAP_SECRET_PREFIX: &str = "bootstrap-token-";
/// The Secret type of node credentials.
pub const NODE_SECRET_TYPE: &str = "drover.dev/node-credential";
/// The name prefix of node credential Secrets in kube-system.
pub const NODE_SECRET_PREFIX: &str = "drover-node-";

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The token is not in a known format.
    #[error(
        "the join token is malformed: {0} (expected drv1.<id>.<secret>.<ca-hash>, as printed by `drover server` or `drover token create`)"
    )]
    BadToken(String),
    /// The CA the server presented does not match the token's hash.
    #[error(
        "the server's CA does not match the join token (its public key hashes to sha256:{got}, the token expects sha256:{want}): refusing to trust {server}"
    )]
    CaMismatch {
        /// The server URL.
        server: String,
        /// The hash of the fetched CA.
        got: String,
        /// The hash in the token.
        want: String,
    },
    /// The CA could not be fetched or parsed.
    #[error("cannot fetch the cluster CA from {server}: {why}")]
    Fetch {
        /// The server URL.
        server: String,
        /// Why.
        why: String,
    },
    /// The certificate is unusable.
    #[error("the CA certificate is unusable: {0}")]
    BadCa(String),
}

/// A parsed join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The token id (6 characters of `[a-z0-9]`), public: it names the Secret.
    pub id: String,
    /// The secret (16 characters of `[a-z0-9]`).
    pub secret: String,
    /// The hex SHA-256 of the CA's SubjectPublicKeyInfo; None for a bare `<id>.<secret>`.
    pub ca_hash: Option<String>,
}

fn valid_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl JoinToken {
    /// A fresh random token for the CA `ca_hash`.
    pub fn generate(ca_hash: &str) -> JoinToken {
        JoinToken {
            id: random_chars(6),
            secret: random_chars(16),
            ca_hash: Some(ca_hash.to_string()),
        }
    }

    /// Parses `drv1.<id>.<secret>.<hash>` or a bare bootstrap token `<id>.<secret>`.
    pub fn parse(s: &str) -> Result<JoinToken, JoinError> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let (id, secret, hash) = match parts.as_slice() {
            [p, id, secret, hash] if *p == TOKEN_PREFIX => (*id, *secret, Some(*hash)),
            [id, secret] => (*id, *secret, None),
            _ => return Err(JoinError::BadToken("wrong number of parts".into())),
        };
        if !valid_part(id, 6) {
            return Err(JoinError::BadToken(
                "the id must be 6 characters of a-z and 0-9".into(),
            ));
        }
        if !valid_part(secret, 16) {
            return Err(JoinError::BadToken(
                "the secret must be 16 characters of a-z and 0-9".into(),
            ));
        }
        if let Some(h) = hash
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(JoinError::BadToken(
                "the CA hash must be 64 hexadecimal digits".into(),
            ));
        }
        Ok(JoinToken {
            id: id.into(),
            secret: secret.into(),
            ca_hash: hash.map(str::to_ascii_lowercase),
        })
    }

    /// Whether `s` looks like a join or bootstrap token (rather than a legacy secret).
    pub fn looks_like(s: &str) -> bool {
        s.contains('.') && !s.starts_with(NODE_TOKEN_PREFIX)
    }

    /// The bootstrap token `<id>.<secret>` (what the agent presents as its bearer token).
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ca_hash {
            Some(h) => write!(f, "{TOKEN_PREFIX}.{}.{}.{h}", self.id, self.secret),
            None => write!(f, "{}.{}", self.id, self.secret),
        }
    }
}

/// `n` random characters of `[a-z0-9]`.
pub fn random_chars(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hex SHA-256 of the first certificate's SubjectPublicKeyInfo in `ca_pem` (what
/// kubeadm's discovery-token-ca-cert-hash pins: it survives re-issuing the CA
/// certificate with the same key).
pub fn ca_hash(ca_pem: &str) -> Result<String, JoinError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| JoinError::BadCa(format!("not a PEM certificate: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| JoinError::BadCa(format!("not an X.509 certificate: {e}")))?;
    Ok(sha256_hex(cert.tbs_certificate.subject_pki.raw))
}

/// What the server answers at [`JOIN_PATH`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentials {
    /// The node name the credentials are for.
    pub node: String,
    /// The node's bearer token for the API server (`drvn.<node>.<secret>`).
    pub token: String,
    /// The token the API server presents when it calls this node's agent.
    pub agent_token: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
}

/// What the agent sends to [`JOIN_PATH`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The node name to get credentials for.
    pub node: String,
}

/// The bootstrap token Secret (kubeadm's format, in kube-system) for `token`, expiring
/// at `expiration` (RFC 3339) if given.
pub fn bootstrap_secret(
    token: &JoinToken,
    expiration: Option<&str>,
    description: &str,
) -> serde_json::Value {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut data = serde_json::json!({
        "token-id": b64(&token.id),
        "token-secret": b64(&token.secret),
        "usage-bootstrap-authentication": b64("true"),
        "description": b64(description),
    });
    if let Some(e) = expiration {
        data["expiration"] = serde_json::json!(b64(e));
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{BOOTSTRAP_SECRET_PREFIX}{}", token.id), "namespace": "kube-system"},
        "type": BOOTSTRAP_SECRET_TYPE,
        "data": data,
    })
}

/// How long fetching the CA may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches the CA from `server_url` (`https://host:port`) without verifying the server
/// (nothing is trusted yet), then checks it against `expected_hash`; returns its PEM.
pub async fn fetch_ca(server_url: &str, expected_hash: &str) -> Result<String, JoinError> {
    let fetch_err = |why: String| JoinError::Fetch {
        server: server_url.to_string(),
        why,
    };
    let pem = tokio::time::timeout(FETCH_TIMEOUT, fetch_unverified(server_url))
        .await
        .map_err(|_| fetch_err(format!("no answer within {FETCH_TIMEOUT:?}")))?
        .map_err(fetch_err)?;
    let got = ca_hash(&pem)?;
    let want = expected_hash.to_ascii_lowercase();
    if got != want {
        return Err(JoinError::CaMismatch {
            server: server_url.to_string(),
            got,
            want,
        });
    }
    Ok(pem)
}

async fn fetch_unverified(server_url: &str) -> Result<String, String> {
    use http_body_util::BodyExt;
    let authority = server_url
        .strip_prefix("https://")
        .ok_or("the server URL must start with https://")?
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority.as_str(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty())
    {
        authority.clone()
    } else {
        format!("{authority}:443")
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        // Any certificate: only to download the CA, which is then checked against
        // the hash in the join token before anything else is sent.
        .with_custom_certificate_verifier(Arc::new(crate::agents::AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.clone()).map_err(|_| format!("bad host {host:?}"))?;
    let tcp = tokio::net::TcpStream::connect(&target)
        .await
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(CA_PATH)
        .header(http::header::HOST, &authority)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{CA_PATH} answered {status} (is this a Drover server?)"
        ));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the CA is not text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        let t = JoinToken::generate(&"ab".repeat(32));
        let s = t.to_string();
        assert!(s.starts_with("drv1."));
        assert_eq!(JoinToken::parse(&s).unwrap(), t);
        assert_eq!(t.bearer().len(), 23);
        let bare = JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(bare.ca_hash, None);
        for bad in [
            "",
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123",
            "drv1.abcdef.0123456789abcdef.xyz",
            "drv2.abcdef.0123456789abcdef.0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
        assert!(JoinToken::looks_like(&s));
        assert!(!JoinToken::looks_like("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn the_ca_hash_is_the_public_key_hash_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let creds = crate::pki::load_or_create(dir.path(), &[]).unwrap();
        let h = ca_hash(&creds.ca_pem).unwrap();
        assert_eq!(h.len(), 64);
        let again = crate::pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(ca_hash(&again.ca_pem).unwrap(), h);
        assert!(ca_hash("not a cert").is_err());
    }
}
