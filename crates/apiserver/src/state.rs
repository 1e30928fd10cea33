//! The server's shared state and the small conversions every handler needs.

use api::{ApiError, Registry, ResourceInfo, meta};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use store::{KeyValue, SharedStore, StoreError};

/// What every handler shares.
pub struct State {
    /// ClusterIPs come from this range: (network address, number of addresses).
    pub service_range: (u32, u32),
    /// The only door to the store.
    pub store: SharedStore,
    /// Built-in and custom resources.
    pub registry: RwLock<Arc<Registry>>,
    /// The stored CRDs, for custom resources' schemas and printer columns.
    pub crds: RwLock<Vec<Value>>,
    /// The admin bearer token.
    pub admin_token: String,
    /// The legacy cluster join token (`DIR/join-token`): admin access, for the server's
    /// own agent and hollow nodes. Other machines join with bootstrap tokens.
    pub join_token: String,
    /// The cluster CA (PEM), served at `/cacerts`.
    pub ca_pem: String,
    /// `host:port` clients reach the server at.
    pub address: String,
    /// The client for node agents (logs, exec, attach, port-forward, metrics).
    pub agents: crate::agents::AgentClient,
    /// Watch lines of recent events, encoded once for every watcher without selectors.
    pub watch_lines: crate::watch::LineCache,
}

impl State {
    /// A snapshot of the registry: a shared pointer, so every request can take one
    /// cheaply; CRD changes swap in a new registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// The CRD object that defines a custom resource.
    pub fn crd_for(&self, info: &ResourceInfo) -> Option<Value> {
        let crds = self.crds.read().ok()?;
        crds.iter()
            .find(|c| {
                c["spec"]["group"] == json!(info.group)
                    && c["spec"]["names"]["plural"] == json!(info.plural)
            })
            .cloned()
    }

    /// The CRD version entry (schema, printer columns) of a custom resource.
    pub fn crd_version(&self, info: &ResourceInfo) -> Option<Value> {
        let crd = self.crd_for(info)?;
        crd["spec"]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == json!(info.version))
            .cloned()
    }

    /// Reloads CRDs from the store and rebuilds the custom part of the registry.
    pub async fn reload_crds(&self) -> Result<(), ApiError> {
        let info = self
            .registry()
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .cloned()
            .ok_or_else(|| ApiError::internal("the CRD resource is not registered"))?;
        let page = self
            .store
            .list(&info.key_prefix(), None, None, 0)
            .await
            .map_err(store_error)?;
        let crds: Vec<Value> = page.items.iter().filter_map(|kv| decode(kv).ok()).collect();
        let mut next = (*self.registry()).clone();
        next.set_custom(&crds);
        if let Ok(mut r) = self.registry.write() {
            *r = Arc::new(next);
        }
        if let Ok(mut c) = self.crds.write() {
            *c = crds;
        }
        Ok(())
    }
}

/// Decodes a stored object and sets its resourceVersion from the store revision.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    meta::set(
        &mut v,
        "resourceVersion",
        json!(kv.mod_revision.to_string()),
    );
    Ok(v)
}

/// Encodes an object for the store (without resourceVersion, which the store owns).
pub fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut o = obj.clone();
    meta::remove(&mut o, "resourceVersion");
    serde_json::to_vec(&o).map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))
}

/// Maps a store failure onto the API error a client should see.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists { key } => {
            ApiError::new(409, "AlreadyExists", format!("{key} already exists"))
        }
        StoreError::NotFound { key } => ApiError::new(404, "NotFound", format!("{key} not found")),
        StoreError::Conflict { key, .. } => ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {key}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        ),
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::FutureRevision { requested, current } => {
            let mut e = ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            );
            e.details.retry_after = Some(1);
            e
        }
        StoreError::Closed => ApiError::unavailable("the store is shutting down"),
        StoreError::Database(m) => ApiError::internal(m),
    }
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The current time in Unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The parsed query string (last value wins, as Go's `Get` does... first, in fact).
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k);
        out.entry(k).or_insert_with(|| percent_decode(v));
    }
    out
}

/// Decodes `%XX` escapes and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500&x",
        ));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "500");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("a%4"), "a%4");
    }
}
