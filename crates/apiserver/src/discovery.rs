//! `/version`, legacy and aggregated discovery, and the OpenAPI v3 documents kubectl
//! needs before `apply` (it checks that each kind's PATCH accepts `fieldValidation`).

use api::registry::{VERBS, api_resource_entries};
use api::{Registry, ResourceInfo};
use serde_json::{Value, json};

/// The Kubernetes version Drover reports. kubectl's dispatcher picks its kubectl minor from it.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-drover",
        "gitCommit": "drover",
        "gitTreeState": "clean",
        "buildDate": "2026-11-23T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

/// `/api` as APIVersions.
pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis` as APIGroupList.
pub fn group_list(registry: &Registry) -> Value {
    let mut groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    groups.push(crate::metrics::group_entry());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}` as APIGroup.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    if name == crate::metrics::GROUP {
        return Some(crate::metrics::api_group());
    }
    registry
        .groups()
        .iter()
        .find(|(g, _)| g == name && !g.is_empty())
        .map(|(g, vs)| {
            let mut e = group_entry(g, vs);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            e
        })
}

/// `/api/v1` or `/apis/{g}/{v}` as APIResourceList.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    if group == crate::metrics::GROUP {
        return (version == crate::metrics::VERSION).then(crate::metrics::resource_list);
    }
    let resources: Vec<Value> = registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(api_resource_entries)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, v, k, verbs): (&str, &str, &str, &[&str]) = match s.as_str() {
                "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
                "binding" => ("", "v1", "Binding", &["create"]),
                "eviction" => ("policy", "v1", "Eviction", &["create"]),
                "log" => ("", "v1", "Pod", &["get"]),
                "exec" | "attach" | "portforward" => ("", "v1", "PodExecOptions", &["create", "get"]),
                "token" => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
                "finalize" => ("", "v1", "Namespace", &["update"]),
                "proxy" => ("", "v1", "NodeProxyOptions", &["create", "delete", "get", "patch", "update"]),
                _ => (r.group.as_str(), r.version.as_str(), r.kind.as_str(), &["get", "patch", "update"]),
            };
            json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": verbs})
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        e["subresources"] = Value::Array(subs);
    }
    e
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList) for `/api`
/// (core only) or `/apis` (every named group).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let mut items: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry
                        .all()
                        .iter()
                        .filter(|r| &r.group == g && &r.version == v)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let meta = if g.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": g, "creationTimestamp": null})
            };
            json!({"metadata": meta, "versions": vs})
        })
        .collect();
    if !core {
        // Served by the API server itself (kube serves it through metrics-server).
        items.push(crate::metrics::aggregated_item());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// A stable hash of what a group-version serves, so kubectl's OpenAPI cache notices changes.
fn gv_hash(registry: &Registry, group: &str, version: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for r in registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        r.kind.hash(&mut h);
        r.plural.hash(&mut h);
        r.namespaced.hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: one entry per group-version.
pub fn openapi_index(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, versions) in registry.groups() {
        for v in versions {
            let p = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let hash = gv_hash(registry, &g, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/{gv}`: the operations of each kind, with their group-version-kind and the
/// `fieldValidation` parameter (what kubectl's client-side validation looks for), and a
/// permissive schema per kind.
pub fn openapi_group_version(
    registry: &Registry,
    group: &str,
    version: &str,
    crd_schema: &dyn Fn(&ResourceInfo) -> Option<Value>,
) -> Option<Value> {
    let builtin = crate::schemas::builtin(group, version);
    let resources: Vec<&ResourceInfo> = registry
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let root = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let params = json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
    ]);
    for r in resources {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let schema_name = match builtin.and_then(|b| b.kinds.get(&r.kind)) {
            Some(n) => n.clone(),
            None => format!(
                "drover.{}.{}.{}",
                if r.group.is_empty() { "core" } else { &r.group },
                r.version,
                r.kind
            ),
        };
        let reference = json!({"$ref": format!("#/components/schemas/{schema_name}")});
        let op = |id: &str| {
            json!({
                "operationId": format!("{id}{}", r.kind),
                "parameters": params,
                "requestBody": {"content": {"application/json": {"schema": reference}}},
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
                "x-kubernetes-action": id,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let item = if r.namespaced {
            format!("{root}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{root}/{}/{{name}}", r.plural)
        };
        paths.insert(item, json!({"get": op("read"), "put": op("replace"), "patch": op("patch"), "delete": op("delete")}));
        let collection = if r.namespaced {
            format!("{root}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{root}/{}", r.plural)
        };
        paths.insert(collection, json!({"get": op("list"), "post": op("create")}));
        if builtin.is_some_and(|b| b.kinds.contains_key(&r.kind)) {
            continue;
        }
        let mut schema = crd_schema(r).unwrap_or_else(|| {
            json!({
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                    "metadata": {"type": "object", "description": "Standard object's metadata."},
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                },
            })
        });
        if let Value::Object(m) = &mut schema {
            m.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
        schemas.insert(schema_name, schema);
    }
    if let Some(b) = builtin {
        for (k, v) in &b.definitions {
            schemas.insert(k.clone(), v.clone());
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Drover", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
