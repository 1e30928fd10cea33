//! OpenAPI v3 schemas of the built-in kinds, from the `k8s-openapi` types, so that
//! `kubectl explain` can describe every field. Made once per group-version and cached.

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

macro_rules! builtin_kinds {
    ($generator:ident, $group:ident, $version:ident, $out:ident; $( ($g:literal, $v:literal, $k:literal, $t:ty) ),* $(,)?) => {
        $(
            if $g == $group && $v == $version {
                let _ = $generator.subschema_for::<$t>();
                $out.push(($k, <$t as JsonSchema>::schema_name().into_owned()));
            }
        )*
    };
}

/// The schemas of one group-version: (kind → schema name, all definitions).
pub struct GroupVersionSchemas {
    /// Kind → the name of its schema under `#/components/schemas/`.
    pub kinds: HashMap<String, String>,
    /// Every schema the kinds reference.
    pub definitions: Map<String, Value>,
}

fn build(group: &str, version: &str) -> GroupVersionSchemas {
    use k8s_openapi::api::{
        apps, autoscaling, batch, coordination, core, discovery, policy, rbac, scheduling,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    let mut generator: SchemaGenerator = SchemaSettings::openapi3().into_generator();
    let mut kinds: Vec<(&str, String)> = Vec::new();
    builtin_kinds!(generator, group, version, kinds;
        ("", "v1", "Namespace", core::v1::Namespace),
        ("", "v1", "Pod", core::v1::Pod),
        ("", "v1", "Service", core::v1::Service),
        ("", "v1", "Endpoints", core::v1::Endpoints),
        ("", "v1", "Node", core::v1::Node),
        ("", "v1", "ConfigMap", core::v1::ConfigMap),
        ("", "v1", "Secret", core::v1::Secret),
        ("", "v1", "ServiceAccount", core::v1::ServiceAccount),
        ("", "v1", "Event", core::v1::Event),
        ("", "v1", "ReplicationController", core::v1::ReplicationController),
        ("", "v1", "PersistentVolumeClaim", core::v1::PersistentVolumeClaim),
        ("", "v1", "PersistentVolume", core::v1::PersistentVolume),
        ("", "v1", "ResourceQuota", core::v1::ResourceQuota),
        ("", "v1", "LimitRange", core::v1::LimitRange),
        ("apps", "v1", "Deployment", apps::v1::Deployment),
        ("apps", "v1", "ReplicaSet", apps::v1::ReplicaSet),
        ("apps", "v1", "DaemonSet", apps::v1::DaemonSet),
        ("apps", "v1", "StatefulSet", apps::v1::StatefulSet),
        ("apps", "v1", "ControllerRevision", apps::v1::ControllerRevision),
        ("batch", "v1", "Job", batch::v1::Job),
        ("batch", "v1", "CronJob", batch::v1::CronJob),
        ("coordination.k8s.io", "v1", "Lease", coordination::v1::Lease),
        ("autoscaling", "v2", "HorizontalPodAutoscaler", autoscaling::v2::HorizontalPodAutoscaler),
        ("discovery.k8s.io", "v1", "EndpointSlice", discovery::v1::EndpointSlice),
        ("policy", "v1", "PodDisruptionBudget", policy::v1::PodDisruptionBudget),
        ("rbac.authorization.k8s.io", "v1", "Role", rbac::v1::Role),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding", rbac::v1::RoleBinding),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole", rbac::v1::ClusterRole),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", rbac::v1::ClusterRoleBinding),
        ("scheduling.k8s.io", "v1", "PriorityClass", scheduling::v1::PriorityClass),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", apiext::CustomResourceDefinition),
    );
    let mut definitions = generator.take_definitions(true);
    for (kind, name) in &kinds {
        if let Some(Value::Object(s)) = definitions.get_mut(name) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "version": version, "kind": kind}]),
            );
        }
    }
    // OpenAPI 3.0 ignores siblings of $ref; Kubernetes wraps such references in allOf so
    // that the field's own description survives. kubectl explain reads them that way.
    for def in definitions.values_mut() {
        wrap_refs(def);
    }
    GroupVersionSchemas {
        kinds: kinds.into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
        definitions,
    }
}

/// Wraps `$ref`s that have sibling keys in `allOf`, walking only schema positions (a
/// `properties` map may have a property literally named `$ref`).
fn wrap_refs(schema: &mut Value) {
    let Value::Object(m) = schema else { return };
    if m.len() > 1
        && let Some(r) = m.remove("$ref")
    {
        m.insert("allOf".into(), json!([{"$ref": r}]));
    }
    for (key, child) in m.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "definitions" => {
                if let Value::Object(props) = child {
                    props.values_mut().for_each(wrap_refs);
                }
            }
            "items" | "additionalProperties" | "not" => wrap_refs(child),
            "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(a) = child {
                    a.iter_mut().for_each(wrap_refs);
                }
            }
            _ => {}
        }
    }
}

/// The cached schemas of a built-in group-version (None for an unknown one).
pub fn builtin(group: &str, version: &str) -> Option<&'static GroupVersionSchemas> {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), &'static GroupVersionSchemas>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().ok()?;
    if let Some(s) = map.get(&(group.to_string(), version.to_string())) {
        return Some(s);
    }
    let built = build(group, version);
    if built.kinds.is_empty() {
        return None;
    }
    let leaked: &'static GroupVersionSchemas = Box::leak(Box::new(built));
    map.insert((group.to_string(), version.to_string()), leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_schema_carries_its_gvk_and_field_docs() {
        let s = builtin("apps", "v1").unwrap();
        let name = &s.kinds["Deployment"];
        let d = &s.definitions[name];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let spec = &s.definitions["io.k8s.api.apps.v1.DeploymentSpec"];
        assert!(
            spec["properties"]["replicas"]["description"]
                .as_str()
                .unwrap()
                .contains("Number of desired pods")
        );
        assert!(s.definitions.contains_key("io.k8s.api.core.v1.PodSpec"));
    }

    #[test]
    fn a_property_named_ref_is_left_alone() {
        let s = builtin("apiextensions.k8s.io", "v1").unwrap();
        let props = &s.definitions["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]
            ["properties"];
        assert_eq!(props["$ref"]["type"], "string");
        assert!(props.get("allOf").is_some_and(|a| a["type"] == "array"));
    }
}
