//! `ObjectMeta` validation (`apimachinery/pkg/api/validation/objectmeta.go`) and label selectors.

use super::{Errs, arr_at, get, int_at, obj_at, push_msgs, str_at};
use crate::field::{FieldError, Path};
use crate::names::{self, NameFn};
use serde_json::{Map, Value};

/// Total size of annotation keys and values Kubernetes accepts (256 KiB).
pub(crate) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `ValidateObjectMeta`: names, namespace presence per scope, generation, labels, annotations, owner
/// references and finalizers.
pub(crate) fn object_meta(
    meta: &Value,
    namespaced: Option<bool>,
    name_fn: NameFn,
    errs: &mut Errs,
) {
    let path = Path::new("metadata");
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        push_msgs(
            name_fn(generate_name, true),
            &path.child("generateName"),
            generate_name,
            errs,
        );
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            path.child("name"),
            "name or generateName is required",
        ));
    } else {
        push_msgs(name_fn(name, false), &path.child("name"), name, errs);
    }
    let ns = str_at(meta, "namespace");
    match namespaced {
        Some(true) if ns.is_empty() => errs.push(FieldError::required(path.child("namespace"), "")),
        Some(true) => push_msgs(
            names::name_is_dns_label(ns, false),
            &path.child("namespace"),
            ns,
            errs,
        ),
        Some(false) if !ns.is_empty() => errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        )),
        _ => {}
    }
    if let Some(g) = int_at(meta, "generation").filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            path.child("generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    labels(obj_at(meta, "labels"), &path.child("labels"), errs);
    annotations(
        obj_at(meta, "annotations"),
        &path.child("annotations"),
        errs,
    );
    owner_references(meta, &path.child("ownerReferences"), errs);
    finalizers(arr_at(meta, "finalizers"), &path.child("finalizers"), errs);
}

/// `ValidateObjectMetaUpdate`: identity fields never change; generation never decreases; objects being
/// deleted take no new finalizers. (`resourceVersion` presence is the API server's concern: it fills it for
/// unconditional updates.)
pub(crate) fn object_meta_update(new: &Value, old: &Value, errs: &mut Errs) {
    let path = Path::new("metadata");
    if get(old, "deletionTimestamp").is_some() {
        let old_f: Vec<&str> = arr_at(old, "finalizers")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let extra: Vec<&str> = arr_at(new, "finalizers")
            .iter()
            .filter_map(Value::as_str)
            .filter(|f| !old_f.contains(f))
            .collect();
        if !extra.is_empty() {
            let mut sorted = extra.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let list: Vec<String> = sorted.iter().map(|f| crate::field::go_quote(f)).collect();
            errs.push(FieldError::forbidden(
                path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    if let (Some(n), Some(o)) = (int_at(new, "generation"), int_at(old, "generation"))
        && n < o
    {
        errs.push(FieldError::invalid(
            path.child("generation"),
            n,
            "must not be decremented",
        ));
    }
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let n = new
            .get(key)
            .filter(|v| !v.is_null() && v.as_str() != Some(""));
        let o = old
            .get(key)
            .filter(|v| !v.is_null() && v.as_str() != Some(""));
        if n != o {
            let shown = n.cloned().unwrap_or(Value::String(String::new()));
            errs.push(FieldError::invalid(
                path.child(key),
                shown,
                "field is immutable",
            ));
        }
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; errors point at the map itself.
pub(crate) fn labels(labels: Option<&Map<String, Value>>, path: &Path, errs: &mut Errs) {
    for (k, v) in labels.into_iter().flatten() {
        push_msgs(names::is_qualified_name(k), path, k, errs);
        let v = v.as_str().unwrap_or_default();
        push_msgs(names::is_valid_label_value(v), path, v, errs);
    }
}

/// `ValidateAnnotations`: case-insensitive qualified-name keys and a 256 KiB total.
pub(crate) fn annotations(annotations: Option<&Map<String, Value>>, path: &Path, errs: &mut Errs) {
    let Some(map) = annotations else {
        return;
    };
    let mut total = 0usize;
    for (k, v) in map {
        push_msgs(names::is_qualified_name(&k.to_lowercase()), path, k, errs);
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn owner_references(meta: &Value, path: &Path, errs: &mut Errs) {
    let refs = arr_at(meta, "ownerReferences");
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_at(r, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errs.push(FieldError::invalid(
                path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for key in ["kind", "name", "uid"] {
            let v = str_at(r, key);
            if v.is_empty() {
                errs.push(FieldError::invalid(path.child(key), v, "must not be empty"));
            }
        }
        if r.get("controller") == Some(&Value::Bool(true)) {
            let current = format!("{}/{}", str_at(r, "kind"), str_at(r, "name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.to_vec()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

/// `ValidateFinalizers`: qualified names, and not both orphan and foreground deletion.
fn finalizers(list: &[Value], path: &Path, errs: &mut Errs) {
    let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    for f in &names {
        push_msgs(names::is_qualified_name(f), path, f, errs);
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            Value::Array(list.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateLabelSelector` (strict label values, as for workload selectors).
pub(crate) fn label_selector(sel: &Value, path: &Path, errs: &mut Errs) {
    labels(obj_at(sel, "matchLabels"), &path.child("matchLabels"), errs);
    for (i, expr) in arr_at(sel, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = arr_at(expr, "values");
        let op = str_at(expr, "operator");
        match op {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                p.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                p.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errs.push(FieldError::invalid(
                p.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let key = str_at(expr, "key");
        push_msgs(names::is_qualified_name(key), &p.child("key"), key, errs);
        for (vi, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            push_msgs(
                names::is_valid_label_value(v),
                &p.child("values").index(vi),
                v,
                errs,
            );
        }
    }
}

/// Whether a `LabelSelector` selects `labels`. `None` (no selector) selects nothing; an empty selector
/// selects everything, as `metav1.LabelSelectorAsSelector` does.
pub(crate) fn selector_matches(sel: Option<&Value>, labels: Option<&Map<String, Value>>) -> bool {
    let Some(sel) = sel else {
        return false;
    };
    let empty = Map::new();
    let labels = labels.unwrap_or(&empty);
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels_ok = obj_at(sel, "matchLabels")
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    match_labels_ok
        && arr_at(sel, "matchExpressions").iter().all(|e| {
            let key = str_at(e, "key");
            let values: Vec<&str> = arr_at(e, "values")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match str_at(e, "operator") {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
}

/// Whether a selector has no requirements at all (`len(matchLabels)+len(matchExpressions) == 0`).
pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    obj_at(sel, "matchLabels").is_none_or(Map::is_empty)
        && arr_at(sel, "matchExpressions").is_empty()
}
