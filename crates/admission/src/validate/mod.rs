//! Kubernetes' validation rules for create and update (`pkg/apis/*/validation`), on JSON objects that went
//! through [`crate::normalize`] and [`crate::apply_defaults`].

mod meta;
mod misc;
mod pod;
mod quantity;
mod service;
mod workloads;

use crate::field::{FieldError, Path};
use crate::names::{self, NameFn};
use serde_json::{Map, Value};

pub(crate) type Errs = Vec<FieldError>;

/// Kubernetes' validation for create (old = None) and update (old = Some): metadata (name rules per kind —
/// DNS-1123 subdomain for most, DNS-1123 label for namespaces, DNS-1035 label for services as in Kubernetes,
/// generateName, label keys/values, annotation size 256 KiB, finalizer names, owner references), and the spec
/// rules a user meets most (containers, ports, replicas, selectors matching template labels, restart policies
/// per controller, Service ports, ConfigMap/Secret keys, CRD names and versions) plus the immutable fields on
/// update. Returns every error, not just the first, in Kubernetes' order.
///
/// Expects the object after [`crate::normalize`] and [`crate::apply_defaults`] (for example a Job without
/// `restartPolicy` is reported the way Kubernetes does after defaulting). Kinds without specific rules get the
/// metadata checks only (and no namespace check, as their scope is unknown here).
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Value::Object(Map::new());
    let meta = obj.get("metadata").unwrap_or(&empty);
    let name_fn = name_fn(group, kind);
    let scope = namespaced(group, kind);
    if group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition" {
        misc::crd_meta(obj, &mut errs);
    } else {
        meta::object_meta(meta, scope, name_fn, &mut errs);
        if scope.is_some() {
            // Built-in kinds use core's ValidateObjectMeta, which also rejects unprefixed finalizers that
            // are not standard ones.
            let path = Path::new("metadata").child("finalizers");
            for (i, f) in arr_at(meta, "finalizers")
                .iter()
                .filter_map(Value::as_str)
                .enumerate()
            {
                misc::kube_finalizer_name(f, &path.index(i), &mut errs);
            }
        }
    }
    if let Some(old) = old {
        let old_meta = old.get("metadata").unwrap_or(&empty);
        meta::object_meta_update(meta, old_meta, &mut errs);
    }
    match (group, kind) {
        ("", "Pod") => pod::pod(obj, old, &mut errs),
        ("", "PodTemplate") => pod::pod_template(
            obj.get("template").unwrap_or(&empty),
            &Path::new("template"),
            &mut errs,
        ),
        ("", "ReplicationController") => workloads::replication_controller(obj, &mut errs),
        ("", "Service") => service::service(obj, old, &mut errs),
        ("", "Endpoints") => service::endpoints(obj, &mut errs),
        ("", "Namespace") => misc::namespace(obj, &mut errs),
        ("", "ConfigMap") => misc::config_map(obj, old, &mut errs),
        ("", "Secret") => misc::secret(obj, old, &mut errs),
        ("", "Event") => misc::event(obj, &mut errs),
        ("", "Node") => misc::node(obj, old, &mut errs),
        ("apps", "Deployment") => workloads::deployment(obj, old, &mut errs),
        ("apps", "ReplicaSet") => workloads::replica_set(obj, old, &mut errs),
        ("apps", "DaemonSet") => workloads::daemon_set(obj, old, &mut errs),
        ("apps", "StatefulSet") => workloads::stateful_set(obj, old, &mut errs),
        ("batch", "Job") => workloads::job(obj, old, &mut errs),
        ("batch", "CronJob") => workloads::cron_job(obj, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => workloads::hpa(obj, &mut errs),
        ("coordination.k8s.io", "Lease") => misc::lease(obj, &mut errs),
        ("discovery.k8s.io", "EndpointSlice") => service::endpoint_slice(obj, old, &mut errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => misc::crd(obj, old, &mut errs),
        _ => {}
    }
    errs
}

/// Name rules alone, for the URL path and generateName: `Err(detail)` with Kubernetes' messages (several
/// problems joined by ", ").
pub fn validate_name(group: &str, kind: &str, name: &str) -> Result<(), String> {
    let msgs = name_fn(group, kind)(name, false);
    if msgs.is_empty() {
        Ok(())
    } else {
        Err(msgs.join(", "))
    }
}

/// Which name rule a kind uses (`ValidateXName` in Kubernetes).
fn name_fn(group: &str, kind: &str) -> NameFn {
    match (group, kind) {
        ("", "Namespace") => names::name_is_dns_label,
        ("", "Service") => names::name_is_dns1035_label,
        _ => names::name_is_dns_subdomain,
    }
}

/// `Some(true)` for namespaced kinds, `Some(false)` for cluster-scoped ones, `None` when unknown here.
fn namespaced(group: &str, kind: &str) -> Option<bool> {
    match (group, kind) {
        ("", "Namespace" | "Node" | "PersistentVolume")
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
        | ("storage.k8s.io", "StorageClass")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("networking.k8s.io", "IngressClass") => Some(false),
        (
            "",
            "Pod"
            | "Service"
            | "Endpoints"
            | "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Event"
            | "ReplicationController"
            | "PersistentVolumeClaim"
            | "PodTemplate"
            | "LimitRange"
            | "ResourceQuota",
        )
        | (
            "apps",
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ControllerRevision",
        )
        | ("batch", "Job" | "CronJob")
        | ("coordination.k8s.io", "Lease")
        | ("autoscaling", "HorizontalPodAutoscaler")
        | ("discovery.k8s.io", "EndpointSlice")
        | ("events.k8s.io", "Event")
        | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
        | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
        | ("policy", "PodDisruptionBudget") => Some(true),
        _ => None,
    }
}

// ---- small accessors shared by the rule modules; missing, null or mistyped values read as absent ----

/// The non-null value under `key`.
pub(crate) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// The string under `key`, or "".
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The integer under `key`.
pub(crate) fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// The array under `key`, or an empty slice.
pub(crate) fn arr_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The object under `key`.
pub(crate) fn obj_at<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// `ValidateNonnegativeField`: `must be greater than or equal to 0`.
pub(crate) fn nonneg(v: &Value, key: &str, path: &Path, errs: &mut Errs) {
    if let Some(n) = int_at(v, key).filter(|n| *n < 0) {
        errs.push(FieldError::invalid(
            path.child(key),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateImmutableField`: `field is immutable` with the new value.
pub(crate) fn immutable(
    new: Option<&Value>,
    old: Option<&Value>,
    path: impl Into<String>,
    errs: &mut Errs,
) {
    let n = new.filter(|v| !v.is_null());
    let o = old.filter(|v| !v.is_null());
    if n != o {
        errs.push(FieldError::invalid(
            path,
            n.cloned().unwrap_or(Value::Null),
            "field is immutable",
        ));
    }
}

/// Each Kubernetes message from a name/label check as an `Invalid` error at `path`.
pub(crate) fn push_msgs(msgs: Vec<String>, path: &Path, value: &str, errs: &mut Errs) {
    for m in msgs {
        errs.push(FieldError::invalid(path, value, m));
    }
}

#[cfg(test)]
mod tests;
