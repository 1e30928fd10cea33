//! Typed decoding through k8s-openapi: type checks, normalization and unknown-field detection.

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The result of decoding: the normalized object and the fields the type does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// The object as the typed round-trip (or schema pruning) produced it: unknown fields dropped, keys in the
    /// type's order, `apiVersion`/`kind` set.
    pub object: Value,
    /// Paths of the dropped fields, in input order (`spec.template.spec.containers[0].foo`). With
    /// fieldValidation=Strict the API server rejects the request with [`strict_decoding_message`]; with Warn it
    /// returns them as warnings; with Ignore it stores `object` silently.
    pub unknown_fields: Vec<String>,
}

/// Why an object could not be decoded; the API server answers 400 BadRequest with [`DecodeError::to_string`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not a JSON object.
    #[error(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: the object must be a JSON object"
    )]
    NotAnObject {
        /// Kind being decoded.
        kind: String,
        /// Version being decoded.
        version: String,
    },
    /// A field has the wrong JSON type or an invalid encoding (e.g. a string where an integer is expected).
    #[error("{kind} in version \"{version}\" cannot be handled as a {kind}: {path}: {detail}")]
    Type {
        /// Kind being decoded.
        kind: String,
        /// Version being decoded.
        version: String,
        /// Where the problem is, e.g. `spec.replicas`.
        path: String,
        /// What the decoder expected.
        detail: String,
    },
}

/// Kubernetes' strict-decoding message for fieldValidation=Strict:
/// `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
pub fn strict_decoding_message(unknown_fields: &[String]) -> String {
    let parts: Vec<String> = unknown_fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    format!("strict decoding error: {}", parts.join(", "))
}

/// Decodes `obj` through the typed k8s-openapi struct for (group, version, kind) and back, which both checks
/// types and yields the normalized object; reports fields the type does not have (for fieldValidation
/// Strict → 400 `strict decoding error: unknown field "spec.foo"`, Warn → warnings, Ignore → dropped).
/// Kinds without a typed struct only get `metadata` checked; the rest passes through unchanged.
/// `apiVersion` and `kind` in the body are replaced by the canonical ones (the API server checks them against
/// the URL before calling this).
pub fn normalize(
    group: &str,
    version: &str,
    kind: &str,
    obj: &Value,
) -> Result<Normalized, DecodeError> {
    let Value::Object(input) = obj else {
        return Err(DecodeError::NotAnObject {
            kind: kind.to_string(),
            version: version.to_string(),
        });
    };
    let mut stripped = input.clone();
    stripped.remove("apiVersion");
    stripped.remove("kind");
    let stripped = Value::Object(stripped);
    let ctx = Ctx { kind, version };
    let object = match typed_decoder(group, version, kind) {
        Some(decode) => decode(&ctx, stripped)?,
        None => generic(&ctx, group, version, kind, stripped)?,
    };
    let mut object = object;
    if let (Value::Object(out), Value::Object(inp)) = (&mut object, obj) {
        for (k, v) in out.iter_mut() {
            if k != "metadata" {
                strip_invented(inp.get(k), v);
            }
        }
    }
    let mut unknown_fields = Vec::new();
    diff_unknown(obj, &object, "", &mut unknown_fields);
    Ok(Normalized {
        object,
        unknown_fields,
    })
}

type Decoder = fn(&Ctx<'_>, Value) -> Result<Value, DecodeError>;

/// The typed struct for each built-in (group, version, kind), as a monomorphized round-trip function.
fn typed_decoder(group: &str, version: &str, kind: &str) -> Option<Decoder> {
    Some(match (group, version, kind) {
        ("", "v1", "Namespace") => rt::<api::core::v1::Namespace>,
        ("", "v1", "Pod") => rt::<api::core::v1::Pod>,
        ("", "v1", "Service") => rt::<api::core::v1::Service>,
        ("", "v1", "Endpoints") => rt::<api::core::v1::Endpoints>,
        ("", "v1", "Node") => rt::<api::core::v1::Node>,
        ("", "v1", "ConfigMap") => rt::<api::core::v1::ConfigMap>,
        ("", "v1", "Secret") => rt::<api::core::v1::Secret>,
        ("", "v1", "ServiceAccount") => rt::<api::core::v1::ServiceAccount>,
        ("", "v1", "Event") => rt::<api::core::v1::Event>,
        ("", "v1", "ReplicationController") => rt::<api::core::v1::ReplicationController>,
        ("", "v1", "PersistentVolume") => rt::<api::core::v1::PersistentVolume>,
        ("", "v1", "PersistentVolumeClaim") => rt::<api::core::v1::PersistentVolumeClaim>,
        ("", "v1", "PodTemplate") => rt::<api::core::v1::PodTemplate>,
        ("", "v1", "LimitRange") => rt::<api::core::v1::LimitRange>,
        ("", "v1", "ResourceQuota") => rt::<api::core::v1::ResourceQuota>,
        ("", "v1", "Binding") => rt::<api::core::v1::Binding>,
        ("apps", "v1", "Deployment") => rt::<api::apps::v1::Deployment>,
        ("apps", "v1", "ReplicaSet") => rt::<api::apps::v1::ReplicaSet>,
        ("apps", "v1", "DaemonSet") => rt::<api::apps::v1::DaemonSet>,
        ("apps", "v1", "StatefulSet") => rt::<api::apps::v1::StatefulSet>,
        ("apps", "v1", "ControllerRevision") => rt::<api::apps::v1::ControllerRevision>,
        ("batch", "v1", "Job") => rt::<api::batch::v1::Job>,
        ("batch", "v1", "CronJob") => rt::<api::batch::v1::CronJob>,
        ("coordination.k8s.io", "v1", "Lease") => rt::<api::coordination::v1::Lease>,
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            rt::<api::autoscaling::v2::HorizontalPodAutoscaler>
        }
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            rt::<api::autoscaling::v1::HorizontalPodAutoscaler>
        }
        ("autoscaling", "v1", "Scale") => rt::<api::autoscaling::v1::Scale>,
        ("discovery.k8s.io", "v1", "EndpointSlice") => rt::<api::discovery::v1::EndpointSlice>,
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            rt::<apiext::CustomResourceDefinition>
        }
        ("events.k8s.io", "v1", "Event") => rt::<api::events::v1::Event>,
        ("rbac.authorization.k8s.io", "v1", "Role") => rt::<api::rbac::v1::Role>,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => rt::<api::rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => rt::<api::rbac::v1::RoleBinding>,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            rt::<api::rbac::v1::ClusterRoleBinding>
        }
        ("networking.k8s.io", "v1", "Ingress") => rt::<api::networking::v1::Ingress>,
        ("networking.k8s.io", "v1", "IngressClass") => rt::<api::networking::v1::IngressClass>,
        ("networking.k8s.io", "v1", "NetworkPolicy") => rt::<api::networking::v1::NetworkPolicy>,
        ("policy", "v1", "PodDisruptionBudget") => rt::<api::policy::v1::PodDisruptionBudget>,
        ("policy", "v1", "Eviction") => rt::<api::policy::v1::Eviction>,
        ("scheduling.k8s.io", "v1", "PriorityClass") => rt::<api::scheduling::v1::PriorityClass>,
        ("storage.k8s.io", "v1", "StorageClass") => rt::<api::storage::v1::StorageClass>,
        _ => return None,
    })
}

/// Whether [`normalize`] decodes (group, version, kind) through a typed struct (otherwise only `metadata` is
/// checked and everything else passes through).
pub fn is_typed(group: &str, version: &str, kind: &str) -> bool {
    // Typed structs drop a top-level field they do not have; the generic path keeps it.
    let probe = serde_json::json!({"__drover_probe": 1});
    normalize(group, version, kind, &probe).is_ok_and(|n| !n.unknown_fields.is_empty())
}

struct Ctx<'a> {
    kind: &'a str,
    version: &'a str,
}

impl Ctx<'_> {
    fn type_error(&self, path: String, detail: String) -> DecodeError {
        DecodeError::Type {
            kind: self.kind.to_string(),
            version: self.version.to_string(),
            path,
            detail,
        }
    }
}

/// Decodes into `T` (recording the path of the first type error) and encodes back.
fn rt<T: DeserializeOwned + Serialize>(ctx: &Ctx<'_>, v: Value) -> Result<Value, DecodeError> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        ctx.type_error(path, e.into_inner().to_string())
    })?;
    serde_json::to_value(&typed).map_err(|e| ctx.type_error(".".to_string(), e.to_string()))
}

/// Kinds without a typed struct: check `metadata` through `ObjectMeta`, keep everything else as sent.
fn generic(
    ctx: &Ctx<'_>,
    group: &str,
    version: &str,
    kind: &str,
    v: Value,
) -> Result<Value, DecodeError> {
    let Value::Object(mut map) = v else {
        return Err(DecodeError::NotAnObject {
            kind: kind.to_string(),
            version: version.to_string(),
        });
    };
    let meta = map.remove("metadata").unwrap_or(Value::Object(Map::new()));
    let meta = if meta.is_null() {
        Value::Object(Map::new())
    } else {
        meta
    };
    let meta: ObjectMeta = serde_path_to_error::deserialize(meta).map_err(|e| {
        let path = format!("metadata.{}", e.path());
        ctx.type_error(
            path.trim_end_matches('.').to_string(),
            e.into_inner().to_string(),
        )
    })?;
    let meta = serde_json::to_value(&meta)
        .map_err(|e| ctx.type_error("metadata".to_string(), e.to_string()))?;
    let mut out = Map::new();
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    out.insert("apiVersion".to_string(), Value::String(api_version));
    out.insert("kind".to_string(), Value::String(kind.to_string()));
    out.insert("metadata".to_string(), meta);
    out.extend(map);
    Ok(Value::Object(out))
}

/// k8s-openapi fills required fields the input lacked with empty defaults (`selector: {}`), where Go keeps a
/// nil pointer. Drops such invented empty objects and arrays so "missing" stays distinguishable from "empty"
/// for validation (e.g. `spec.selector: Required value`).
fn strip_invented(input: Option<&Value>, output: &mut Value) {
    let Value::Object(o) = output else {
        if let (Some(Value::Array(i)), Value::Array(o)) = (input, output) {
            for (iv, ov) in i.iter().zip(o.iter_mut()) {
                strip_invented(Some(iv), ov);
            }
        }
        return;
    };
    let given = input.and_then(Value::as_object);
    o.retain(|k, v| {
        given.and_then(|i| i.get(k)).is_some_and(|x| !x.is_null()) || !is_empty_container(v)
    });
    for (k, v) in o.iter_mut() {
        strip_invented(given.and_then(|i| i.get(k)), v);
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Collects every non-null input field that the normalized output lost. Arrays are compared element by
/// element, so paths carry indexes (`spec.containers[0].foo`), as Kubernetes' strict decoder reports them.
pub(crate) fn diff_unknown(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    None => out.push(p),
                    Some(ov) => diff_unknown(v, ov, &p, out),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (idx, (iv, ov)) in i.iter().zip(o.iter()).enumerate() {
                diff_unknown(iv, ov, &format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": null},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    #[test]
    fn clean_object_round_trips_without_unknown_fields() {
        let n = normalize("apps", "v1", "Deployment", &deployment()).unwrap();
        assert!(n.unknown_fields.is_empty(), "{:?}", n.unknown_fields);
        assert_eq!(n.object["spec"]["replicas"], 3);
        assert_eq!(n.object["apiVersion"], "apps/v1");
        assert_eq!(
            n.object["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        // A null input value is dropped but is not an unknown field.
        assert!(n.object["metadata"].get("creationTimestamp").is_none());
    }

    #[test]
    fn unknown_fields_are_reported_with_paths_and_dropped() {
        let mut d = deployment();
        d["spec"]["foo"] = json!(1);
        d["metadata"]["bogus"] = json!("x");
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostport"] = json!(8080);
        let n = normalize("apps", "v1", "Deployment", &d).unwrap();
        assert_eq!(
            n.unknown_fields,
            vec![
                "metadata.bogus",
                "spec.template.spec.containers[0].ports[0].hostport",
                "spec.template.spec.containers[0].imagePullPolicyy",
                "spec.foo",
            ]
        );
        assert!(n.object["spec"].get("foo").is_none());
        assert_eq!(
            strict_decoding_message(&[n.unknown_fields[0].clone(), n.unknown_fields[3].clone()]),
            "strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.foo\""
        );
    }

    #[test]
    fn type_errors_name_the_path() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("three");
        let err = normalize("apps", "v1", "Deployment", &d).unwrap_err();
        let DecodeError::Type { path, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "spec.replicas");
        assert!(
            err.to_string()
                .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: ")
        );
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "http"}]}]}});
        let err = normalize("", "v1", "Pod", &p).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Type { path, .. } if path == "spec.containers[0].ports[0].containerPort")
        );
        p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(80);
        assert!(normalize("", "v1", "Pod", &p).is_ok());
        assert!(matches!(
            normalize("", "v1", "Pod", &json!([])),
            Err(DecodeError::NotAnObject { .. })
        ));
    }

    #[test]
    fn untyped_kinds_check_only_metadata() {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "colour": "red"}, "spec": {"anything": [1, 2]}});
        let n = normalize("example.com", "v1", "Widget", &obj).unwrap();
        assert_eq!(n.unknown_fields, vec!["metadata.colour"]);
        assert_eq!(n.object["spec"], json!({"anything": [1, 2]}));
        let bad = json!({"metadata": {"name": 5}});
        assert!(matches!(normalize("example.com", "v1", "Widget", &bad),
            Err(DecodeError::Type { path, .. }) if path == "metadata.name"));
    }

    #[test]
    fn secret_data_must_be_base64_and_round_trips() {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "aGVsbG8="}});
        let n = normalize("", "v1", "Secret", &s).unwrap();
        assert_eq!(n.object["data"]["k"], "aGVsbG8=");
        let bad = json!({"metadata": {"name": "s"}, "data": {"k": "not base64!"}});
        assert!(
            matches!(normalize("", "v1", "Secret", &bad), Err(DecodeError::Type { path, .. }) if path == "data.k")
        );
    }

    #[test]
    fn required_fields_the_input_lacks_are_not_invented_as_empty_objects() {
        // Go keeps a nil *LabelSelector, so validation can say `spec.selector: Required value`.
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        let n = normalize("apps", "v1", "Deployment", &d).unwrap();
        assert!(n.object["spec"].get("selector").is_none());
        // An explicitly empty selector is kept (validation reports it as empty, not missing).
        d["spec"]["selector"] = json!({});
        let n = normalize("apps", "v1", "Deployment", &d).unwrap();
        assert_eq!(n.object["spec"]["selector"], json!({}));
    }
}
