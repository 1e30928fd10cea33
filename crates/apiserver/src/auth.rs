//! Who is calling (bearer tokens) and what they may do.
//!
//! - the admin token and the legacy cluster `join-token` file: everything;
//! - a bootstrap token (`<id>.<secret>`, a `bootstrap.kubernetes.io/token` Secret in
//!   kube-system, kubeadm's format): only [`join::JOIN_PATH`], which mints node credentials;
//! - a node token (`drvn.<node>.<secret>`): the Node authorizer ([`authorize`]): its own
//!   Node and Lease, the pods bound to it (status, delete), events, and reading what pods
//!   need. Anything else is 403.

use crate::http::Body;
use crate::join::{self, JoinRequest, NodeCredentials};
use crate::route::{Route, Target};
use crate::state::{self, State};
use crate::write::{self, FieldValidation, WriteOpts};
use ::http::{Method, Request, Response, header};
use api::ApiError;
use base64::Engine;
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The namespace bootstrap tokens and node credentials live in.
pub const SYSTEM_NAMESPACE: &str = "kube-system";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The admin token or the legacy cluster join token.
    Admin,
    /// A bootstrap token, by id.
    Bootstrap(String),
    /// A node, by name.
    Node(String),
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn data_field(secret: &Value, key: &str) -> Option<String> {
    let raw = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

fn secrets_target(state: &State) -> Result<Target, ApiError> {
    let info = state
        .registry()
        .find("", "v1", "secrets")
        .cloned()
        .ok_or_else(|| ApiError::internal("the secrets resource is not registered"))?;
    Ok(Target {
        info,
        namespace: Some(SYSTEM_NAMESPACE.into()),
        name: None,
        sub: None,
    })
}

/// Reads a Secret in kube-system straight from the store.
async fn system_secret(state: &State, name: &str) -> Result<Option<Value>, ApiError> {
    let t = secrets_target(state)?;
    let key = t.info.key(Some(SYSTEM_NAMESPACE), name);
    match state.store.get(&key).await.map_err(state::store_error)? {
        Some(kv) => Ok(Some(state::decode(&kv)?)),
        None => Ok(None),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(message: String) -> ApiError {
    ApiError::new(401, "Unauthorized", message)
}

/// Authenticates the request's bearer token.
pub async fn authenticate(state: &State, req: &Request<Incoming>) -> Result<Identity, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    authenticate_token(state, token).await
}

/// Authenticates one bearer token.
pub async fn authenticate_token(state: &State, token: &str) -> Result<Identity, ApiError> {
    let bytes = token.as_bytes();
    if constant_time_eq(bytes, state.admin_token.as_bytes())
        | constant_time_eq(bytes, state.join_token.as_bytes())
    {
        return Ok(Identity::Admin);
    }
    if let Some(rest) = token.strip_prefix(&format!("{}.", join::NODE_TOKEN_PREFIX)) {
        let Some((node, secret)) = rest.rsplit_once('.') else {
            return Err(ApiError::unauthorized());
        };
        let Some(cred) =
            system_secret(state, &format!("{}{node}", join::NODE_SECRET_PREFIX)).await?
        else {
            return Err(unauthorized(format!(
                "the credentials of node {node} are not known to the server (the node was removed or its credentials replaced): join again with a join token"
            )));
        };
        let want = data_field(&cred, "token-hash").unwrap_or_default();
        if cred["type"] == join::NODE_SECRET_TYPE
            && constant_time_eq(
                join::sha256_hex(secret.as_bytes()).as_bytes(),
                want.as_bytes(),
            )
        {
            return Ok(Identity::Node(node.to_string()));
        }
        return Err(unauthorized(format!(
            "the credentials of node {node} are not valid (replaced by a later join?): join again with a join token"
        )));
    }
    if let Ok(t) = join::JoinToken::parse(token)
        && t.ca_hash.is_none()
    {
        let Some(secret) =
            system_secret(state, &format!("{}{}", join::BOOTSTRAP_SECRET_PREFIX, t.id)).await?
        else {
            return Err(unauthorized(format!(
                "the join token {} is not known to the server (revoked, or never created): create one with `drover token create` on the server",
                t.id
            )));
        };
        let stored = data_field(&secret, "token-secret").unwrap_or_default();
        if secret["type"] != join::BOOTSTRAP_SECRET_TYPE
            || !constant_time_eq(stored.as_bytes(), t.secret.as_bytes())
        {
            return Err(unauthorized(format!(
                "the join token {} has a wrong secret",
                t.id
            )));
        }
        if data_field(&secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
            return Err(unauthorized(format!(
                "the join token {} may not be used for joining (usage-bootstrap-authentication is not \"true\")",
                t.id
            )));
        }
        if let Some(exp) = data_field(&secret, "expiration") {
            let at =
                time::OffsetDateTime::parse(&exp, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                    unauthorized(format!(
                        "the join token {} has an unreadable expiration {exp:?}",
                        t.id
                    ))
                })?;
            if at <= time::OffsetDateTime::now_utc() {
                return Err(unauthorized(format!(
                    "the join token {} expired at {exp}: create a new one with `drover token create` on the server",
                    t.id
                )));
            }
        }
        return Ok(Identity::Bootstrap(t.id));
    }
    Err(ApiError::unauthorized())
}

/// What an authorized request must still satisfy.
#[derive(Debug, Default)]
pub struct Constraints {
    /// A create must name exactly this object (a node creating its own Node or Lease).
    pub create_name: Option<String>,
}

fn forbidden(node: &str, verb: &str, t: &Target, why: &str) -> ApiError {
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let what = match &t.sub {
        Some(s) => format!("{}/{s}", t.info.plural),
        None => t.info.plural.clone(),
    };
    let named = match &t.name {
        Some(n) => format!("{what} \"{n}\" is forbidden: "),
        None => format!("{what} is forbidden: "),
    };
    ApiError::forbidden(format!(
        "{named}User \"system:node:{node}\" cannot {verb} resource \"{what}\" in API group \"{}\" {scope}: {why}",
        t.info.group
    ))
}

fn verb(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match *method {
        Method::GET if watch => "watch",
        Method::GET if t.name.is_none() => "list",
        Method::GET => "get",
        Method::POST if t.sub.is_some() => "create",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if t.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "use",
    }
}

/// Whether a secret in kube-system is one of the cluster's own credentials.
fn is_credential_secret(ns: Option<&str>, name: &str) -> bool {
    ns == Some(SYSTEM_NAMESPACE)
        && (name.starts_with(join::BOOTSTRAP_SECRET_PREFIX)
            || name.starts_with(join::NODE_SECRET_PREFIX))
}

/// Decides whether `who` may make this request; Ok carries what a create must satisfy.
pub async fn authorize(
    state: &State,
    who: &Identity,
    method: &Method,
    route: &Route,
    q: &HashMap<String, String>,
) -> Result<Constraints, ApiError> {
    let node = match who {
        Identity::Admin => return Ok(Constraints::default()),
        Identity::Bootstrap(id) => {
            return Err(ApiError::forbidden(format!(
                "User \"system:bootstrap:{id}\" may only join the cluster (POST {}); it cannot use the API",
                join::JOIN_PATH
            )));
        }
        Identity::Node(n) => n.as_str(),
    };
    let t = match route {
        Route::Resource(t) => t,
        Route::Metrics(_) => {
            return Err(ApiError::forbidden(format!(
                "User \"system:node:{node}\" cannot read resource metrics"
            )));
        }
        _ => return Ok(Constraints::default()),
    };
    let v = verb(method, t, q);
    let group = t.info.group.as_str();
    let plural = t.info.plural.as_str();
    let is_read = *method == Method::GET;
    let own_name = t.name.as_deref() == Some(node);
    if is_read {
        if let Some(s) = t.sub.as_deref()
            && s != "status"
        {
            return Err(forbidden(
                node,
                v,
                t,
                "nodes may only read objects and their status",
            ));
        }
        let readable = matches!(
            (group, plural),
            (
                "",
                "nodes"
                    | "pods"
                    | "services"
                    | "endpoints"
                    | "configmaps"
                    | "namespaces"
                    | "persistentvolumeclaims"
                    | "persistentvolumes"
                    | "serviceaccounts"
            ) | ("discovery.k8s.io", "endpointslices")
                | ("coordination.k8s.io", "leases")
                | ("node.k8s.io", "runtimeclasses")
                | ("storage.k8s.io", _)
        );
        if readable {
            return Ok(Constraints::default());
        }
        if (group, plural) == ("", "secrets") {
            return match t.name.as_deref() {
                None => Err(forbidden(node, v, t, "nodes may only get secrets by name")),
                Some(n) if is_credential_secret(t.namespace.as_deref(), n) => Err(forbidden(
                    node,
                    v,
                    t,
                    "join tokens and node credentials are not readable by nodes",
                )),
                Some(_) => Ok(Constraints::default()),
            };
        }
        return Err(forbidden(node, v, t, "nodes may not read this resource"));
    }
    let write_sub_ok = matches!(t.sub.as_deref(), None | Some("status"));
    match (group, plural) {
        ("", "nodes") => match *method {
            Method::POST if t.name.is_none() => Ok(Constraints {
                create_name: Some(node.to_string()),
            }),
            Method::PUT | Method::PATCH if own_name && write_sub_ok => Ok(Constraints::default()),
            _ => Err(forbidden(
                node,
                v,
                t,
                "a node may only create, update and patch its own Node",
            )),
        },
        ("coordination.k8s.io", "leases") => {
            let in_lease_ns = t.namespace.as_deref() == Some("kube-node-lease");
            match *method {
                Method::POST if t.name.is_none() && in_lease_ns => Ok(Constraints {
                    create_name: Some(node.to_string()),
                }),
                Method::PUT | Method::PATCH if own_name && in_lease_ns && t.sub.is_none() => {
                    Ok(Constraints::default())
                }
                _ => Err(forbidden(
                    node,
                    v,
                    t,
                    "a node may only create and renew its own Lease in kube-node-lease",
                )),
            }
        }
        ("", "events") | ("events.k8s.io", "events") => match *method {
            Method::POST | Method::PUT | Method::PATCH => Ok(Constraints::default()),
            _ => Err(forbidden(
                node,
                v,
                t,
                "nodes may only create and update events",
            )),
        },
        ("", "pods") => {
            let allowed_verb = matches!(
                (method, t.sub.as_deref()),
                (&Method::PUT | &Method::PATCH, None | Some("status")) | (&Method::DELETE, None)
            );
            let Some(name) = t.name.as_deref().filter(|_| allowed_verb) else {
                return Err(forbidden(
                    node,
                    v,
                    t,
                    "a node may only update the status of, and delete, pods bound to it",
                ));
            };
            let key = t.info.key(t.namespace.as_deref(), name);
            let pod = match state.store.get(&key).await.map_err(state::store_error)? {
                Some(kv) => state::decode(&kv)?,
                // Not found is the handler's to say (404).
                None => return Ok(Constraints::default()),
            };
            if pod["spec"]["nodeName"].as_str() == Some(node) {
                Ok(Constraints::default())
            } else {
                Err(forbidden(node, v, t, "the pod is not bound to this node"))
            }
        }
        _ => Err(forbidden(node, v, t, "nodes may not modify this resource")),
    }
}

fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253 - join::NODE_SECRET_PREFIX.len()
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn system_opts() -> WriteOpts {
    WriteOpts {
        field_manager: "drover-apiserver".into(),
        dry_run: false,
        validation: FieldValidation::Ignore,
    }
}

/// `POST /drover/v1/join`: a bootstrap token (or the admin) gets a node its credentials.
/// Joining again under the same name replaces the node's earlier credentials.
pub async fn join(
    state: &State,
    who: &Identity,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "{} takes POST only",
            join::JOIN_PATH
        )));
    }
    let by = match who {
        Identity::Bootstrap(id) => format!("bootstrap token {id}"),
        Identity::Admin => "admin".to_string(),
        Identity::Node(n) => {
            return Err(ApiError::forbidden(format!(
                "User \"system:node:{n}\" cannot join: use a join token"
            )));
        }
    };
    let body = crate::read_object(req).await?;
    let request: JoinRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("the join request is malformed: {e}")))?;
    let node = request.node;
    if !valid_node_name(&node) {
        return Err(ApiError::bad_request(format!(
            "{node:?} is not a valid node name (lower-case DNS labels separated by dots)"
        )));
    }
    let secret = crate::pki::random_token();
    let agent_token = crate::pki::random_token();
    let name = format!("{}{node}", join::NODE_SECRET_PREFIX);
    let data = json!({
        "node": b64(&node),
        "token-hash": b64(&join::sha256_hex(secret.as_bytes())),
        "agent-token": b64(&agent_token),
    });
    let mut t = secrets_target(state)?;
    let obj = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": SYSTEM_NAMESPACE,
                     "annotations": {"drover.dev/joined-by": by}},
        "type": join::NODE_SECRET_TYPE,
        "data": data,
    });
    match write::create(state, &t, obj.clone(), &system_opts()).await {
        Ok(_) => {}
        Err(e) if e.code == 409 => {
            t.name = Some(name.clone());
            write::update_with(state, &t, &name, &system_opts(), None, |cur| {
                let mut o = cur.clone();
                o["data"] = data.clone();
                o["type"] = json!(join::NODE_SECRET_TYPE);
                o["metadata"]["annotations"]["drover.dev/joined-by"] = json!(by);
                Ok(o)
            })
            .await?;
        }
        Err(e) => return Err(e),
    }
    tracing::info!(%node, %by, "node joined");
    let creds = NodeCredentials {
        token: format!("{}.{node}.{secret}", join::NODE_TOKEN_PREFIX),
        node,
        agent_token,
        ca_pem: state.ca_pem.clone(),
    };
    let v = serde_json::to_value(&creds)
        .map_err(|e| ApiError::internal(format!("cannot encode the credentials: {e}")))?;
    Ok(crate::http::json(201, &v))
}

/// Makes sure the server's default join token (`DIR/node-token`, no expiry, revocable
/// with `drover token revoke`) exists; returns it. A revoked or damaged one is replaced.
pub async fn ensure_default_token(
    state: &State,
    dir: &std::path::Path,
    ca_hash: &str,
) -> Result<String, ApiError> {
    let path = dir.join("node-token");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(t) = join::JoinToken::parse(text.trim())
        && t.ca_hash.as_deref() == Some(ca_hash)
        && authenticate_token(state, &t.bearer()).await.is_ok()
    {
        return Ok(t.to_string());
    }
    let t = join::JoinToken::generate(ca_hash);
    let secret = join::bootstrap_secret(&t, None, "the default join token of drover server");
    write::create(state, &secrets_target(state)?, secret, &system_opts()).await?;
    crate::pki::write_private(&path, &t.to_string())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(t.to_string())
}

/// The token the API server presents to node `node`'s agent: the one minted when the node
/// joined, else (the server's own agent, legacy agents) the cluster join token.
pub async fn agent_token_for(
    store: &store::SharedStore,
    secrets: &api::ResourceInfo,
    node: &str,
) -> Option<String> {
    let key = secrets.key(
        Some(SYSTEM_NAMESPACE),
        &format!("{}{node}", join::NODE_SECRET_PREFIX),
    );
    let kv = store.get(&key).await.ok()??;
    let v: Value = serde_json::from_slice(&kv.value).ok()?;
    if v["type"] != join::NODE_SECRET_TYPE {
        return None;
    }
    data_field(&v, "agent-token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(valid_node_name("node-1.example"));
        assert!(!valid_node_name("Node"));
        assert!(!valid_node_name("a..b"));
        assert!(!valid_node_name("-a"));
        assert!(!valid_node_name(""));
    }
}
