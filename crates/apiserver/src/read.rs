//! get and list, with label and field selectors, pagination and Table output.

use crate::http::{self, Body, Want};
use crate::printing;
use crate::route::Target;
use crate::state::{State, decode, store_error};
use ::http::Response;
use api::{ApiError, ResourceInfo, meta};
use base64::Engine;
use labels::{FieldSelector, LabelSelector};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The selectors of a list or watch request.
pub struct Selectors {
    /// From `labelSelector`.
    pub labels: LabelSelector,
    /// From `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parses and checks the selectors of a request for one resource.
    pub fn from_query(q: &HashMap<String, String>, info: &ResourceInfo) -> Result<Self, ApiError> {
        let labels = match q.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => LabelSelector::everything(),
        };
        let fields = match q.get("fieldSelector") {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::parse("").map_err(|e| ApiError::bad_request(e.to_string()))?,
        };
        for f in fields.fields() {
            if !labels::supported_field(&info.group, &info.kind, f) {
                let supported = labels::supported_fields(&info.group, &info.kind);
                let list = supported
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f} ({f:?} is not a known field selector: only {list})"
                )));
            }
        }
        Ok(Selectors { labels, fields })
    }

    /// True when the object matches both selectors.
    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        self.labels.matches(meta::labels(obj)) && self.fields.matches(&info.group, &info.kind, obj)
    }
}

/// Reads one object.
pub async fn get_object(state: &State, t: &Target, name: &str) -> Result<Value, ApiError> {
    let key = t.info.key(t.namespace.as_deref(), name);
    match state.store.get(&key).await.map_err(store_error)? {
        Some(kv) => decode(&kv),
        None => Err(ApiError::not_found(&t.info.group, &t.info.plural, name)),
    }
}

/// Reads one object with its store revision.
pub async fn get_with_revision(
    state: &State,
    t: &Target,
    name: &str,
) -> Result<(Value, i64), ApiError> {
    let key = t.info.key(t.namespace.as_deref(), name);
    match state.store.get(&key).await.map_err(store_error)? {
        Some(kv) => Ok((decode(&kv)?, kv.mod_revision)),
        None => Err(ApiError::not_found(&t.info.group, &t.info.plural, name)),
    }
}

/// GET of one object, as JSON or a one-row Table.
pub async fn get(
    state: &State,
    t: &Target,
    name: &str,
    want: Want,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let obj = get_object(state, t, name).await?;
    if want == Want::Table {
        let rv = meta::resource_version(&obj).unwrap_or("").to_string();
        let table = printing::table(
            state,
            &t.info,
            vec![obj],
            &rv,
            q.get("includeObject").map(String::as_str),
            true,
        );
        return Ok(http::json_with(200, &table, http::TABLE_CONTENT_TYPE));
    }
    Ok(http::json(200, &obj))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: i64,
    start: String,
}

/// Lists objects matching the selectors, at most `limit` (0 = all), from a continue token.
pub async fn list_objects(
    state: &State,
    t: &Target,
    q: &HashMap<String, String>,
) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let sel = Selectors::from_query(q, &t.info)?;
    let limit: usize = match q.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        _ => 0,
    };
    let prefix = t.info.namespace_prefix(t.namespace.as_deref());
    let (mut start, mut at) = (None, None);
    if let Some(c) = q.get("continue").filter(|c| !c.is_empty()) {
        let token: Continue = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                ApiError::bad_request("continue key is not valid: the token is malformed")
            })?;
        if !token.start.starts_with(&prefix) {
            return Err(ApiError::bad_request(
                "continue key is not valid: it belongs to another list",
            ));
        }
        start = Some(token.start);
        at = Some(token.rv);
    }
    // A single-name field selector needs no scan.
    if let Some(name) = sel.fields.exact_name().map(str::to_string) {
        if t.info.namespaced && t.namespace.is_none() {
            // metadata.name across namespaces: scan.
        } else {
            let key = t.info.key(t.namespace.as_deref(), &name);
            let rev = state.store.current_revision();
            let items = match state.store.get(&key).await.map_err(store_error)? {
                Some(kv) => {
                    let o = decode(&kv)?;
                    if sel.matches(&t.info, &o) {
                        vec![o]
                    } else {
                        vec![]
                    }
                }
                None => vec![],
            };
            return Ok((items, rev, None));
        }
    }
    let mut items = Vec::new();
    loop {
        let page_size = if limit == 0 {
            0
        } else {
            (limit - items.len()).max(50)
        };
        let page = state
            .store
            .list(&prefix, start.as_deref(), at, page_size)
            .await
            .map_err(|e| match e {
                store::StoreError::Compacted { .. } if q.contains_key("continue") => ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                e => store_error(e),
            })?;
        at = Some(page.revision);
        let mut last_key = None;
        for kv in &page.items {
            last_key = Some(kv.key.clone());
            let obj = decode(kv)?;
            if sel.matches(&t.info, &obj) {
                items.push(obj);
                if limit != 0 && items.len() == limit {
                    let more = page.more
                        || kv.key != page.items.last().map(|k| k.key.clone()).unwrap_or_default();
                    let token = more.then(|| {
                        let c = Continue {
                            rv: page.revision,
                            start: kv.key.clone(),
                        };
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(serde_json::to_vec(&c).unwrap_or_default())
                    });
                    return Ok((items, page.revision, token));
                }
            }
        }
        if !page.more {
            return Ok((items, page.revision, None));
        }
        start = last_key;
    }
}

/// GET of a collection, as a typed list or a Table.
pub async fn list(
    state: &State,
    t: &Target,
    want: Want,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (items, rev, token) = list_objects(state, t, q).await?;
    let rv = rev.to_string();
    if want == Want::Table {
        let mut table = printing::table(
            state,
            &t.info,
            items,
            &rv,
            q.get("includeObject").map(String::as_str),
            true,
        );
        if let Some(c) = token {
            table["metadata"]["continue"] = json!(c);
        }
        return Ok(http::json_with(200, &table, http::TABLE_CONTENT_TYPE));
    }
    let mut metadata = json!({"resourceVersion": rv});
    if let Some(c) = token {
        metadata["continue"] = json!(c);
    }
    let list = json!({
        "kind": t.info.list_kind(),
        "apiVersion": t.info.api_version(),
        "metadata": metadata,
        "items": items,
    });
    Ok(http::json(200, &list))
}

/// The `autoscaling/v1 Scale` view of an object with replicas.
pub fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let selector = match obj["spec"].get("selector") {
        Some(s) if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() => {
            LabelSelector::from_json(s)
                .map(|l| l.to_string())
                .unwrap_or_default()
        }
        Some(Value::Object(m)) => LabelSelector::from_map(m).to_string(),
        _ => String::new(),
    };
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(if info.kind == "StatefulSet" || info.kind == "Deployment" || info.kind == "ReplicaSet" { 1 } else { 0 })},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}
