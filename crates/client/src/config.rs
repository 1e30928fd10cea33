//! Connection settings: where the server is, which CA signs its certificate, and the
//! bearer token. Read from a kubeconfig (the one `drover server` writes, or any
//! kubeconfig using token authentication) or given directly.

use crate::Error;
use base64::Engine;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Everything needed to reach and authenticate to an API server.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `https://host:port`, optionally with a path prefix.
    pub url: String,
    /// PEM of the CA certificate(s) the server's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The context's default namespace (`default` when the kubeconfig sets none).
    pub namespace: String,
    /// Deadline for each non-watch request (watches run until closed).
    pub timeout: Duration,
}

impl Config {
    /// Settings from a server URL, its CA and a token.
    pub fn new(url: impl Into<String>, ca_pem: impl Into<Vec<u8>>, token: Option<String>) -> Self {
        Config {
            url: url.into(),
            ca_pem: ca_pem.into(),
            token,
            namespace: "default".into(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Settings from a kubeconfig file, using its current context.
    pub fn from_kubeconfig_file(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_kubeconfig_str(&text, path.parent())
    }

    /// Settings from kubeconfig text, using its current context. `base_dir` resolves
    /// relative `certificate-authority` and `tokenFile` paths (kubectl resolves them
    /// against the kubeconfig's directory).
    pub fn from_kubeconfig_str(text: &str, base_dir: Option<&Path>) -> Result<Config, Error> {
        let kc: Kubeconfig = serde_saphyr::from_str(text)
            .map_err(|e| Error::Config(format!("kubeconfig is not valid YAML: {e}")))?;
        let ctx_name = kc
            .current_context
            .as_deref()
            .filter(|s| !s.is_empty())
            .or_else(|| kc.contexts.first().map(|c| c.name.as_str()))
            .ok_or_else(|| Error::Config("kubeconfig has no context".into()))?;
        let ctx = kc
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .map(|c| &c.context)
            .ok_or_else(|| Error::Config(format!("context {ctx_name:?} not found")))?;
        let cluster = kc
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .map(|c| &c.cluster)
            .ok_or_else(|| Error::Config(format!("cluster {:?} not found", ctx.cluster)))?;
        let user = match &ctx.user {
            Some(u) => kc
                .users
                .iter()
                .find(|n| &n.name == u)
                .map(|n| n.user.clone())
                .ok_or_else(|| Error::Config(format!("user {u:?} not found")))?,
            None => User::default(),
        };
        let resolve = |p: &str| match base_dir {
            Some(d) => d.join(p),
            None => Path::new(p).to_path_buf(),
        };
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let ca_pem = match (&cluster.ca_data, &cluster.ca_file) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| {
                    Error::Config(format!("certificate-authority-data is not base64: {e}"))
                })?,
            (None, Some(file)) => read(&resolve(file))?,
            (None, None) => {
                return Err(Error::Config(
                    "the cluster has no certificate-authority(-data)".into(),
                ));
            }
        };
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => Some(
                String::from_utf8_lossy(&read(&resolve(f))?)
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let mut config = Config::new(cluster.server.clone(), ca_pem, token);
        if let Some(ns) = ctx.namespace.as_deref().filter(|s| !s.is_empty()) {
            config.namespace = ns.to_string();
        }
        Ok(config)
    }
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    ca_data: Option<String>,
    #[serde(rename = "certificate-authority", default)]
    ca_file: Option<String>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize, Default, Clone)]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(rename = "tokenFile", default)]
    token_file: Option<String>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: b3RoZXI=
- name: drover
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTg==
users:
- name: admin
  user:
    token: secret-token
contexts:
- name: other
  context:
    cluster: other
    user: admin
- name: drover
  context:
    cluster: drover
    user: admin
    namespace: team-a
current-context: drover
";

    #[test]
    fn reads_the_current_context() {
        let c = Config::from_kubeconfig_str(KUBECONFIG, None).unwrap();
        assert_eq!(c.url, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem, b"-----BEGIN");
        assert_eq!(c.token.as_deref(), Some("secret-token"));
        assert_eq!(c.namespace, "team-a");
    }

    #[test]
    fn token_file_and_ca_file_resolve_against_the_kubeconfig_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "PEM").unwrap();
        std::fs::write(dir.path().join("tok"), "t0k\n").unwrap();
        let text = "clusters:
- name: c
  cluster: {server: 'https://h:1', certificate-authority: ca.pem}
users:
- name: u
  user: {tokenFile: tok}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
";
        let c = Config::from_kubeconfig_str(text, Some(dir.path())).unwrap();
        assert_eq!(c.ca_pem, b"PEM");
        assert_eq!(c.token.as_deref(), Some("t0k"));
        // No namespace in the context: kubectl uses "default".
        assert_eq!(c.namespace, "default");
    }

    #[test]
    fn missing_context_is_a_config_error() {
        let text = KUBECONFIG.replace("current-context: drover", "current-context: nope");
        let err = Config::from_kubeconfig_str(&text, None).unwrap_err();
        assert!(matches!(err, Error::Config(m) if m.contains("nope")));
    }
}
