//! Strategic merge patch and server-side apply (managedFields, conflicts) over JSON objects.
//!
//! The API server calls these pure functions for PATCH requests, one per content type:
//! [`json_patch`] (RFC 6902), [`merge_patch`] (RFC 7386), [`strategic_merge`] (Kubernetes'
//! strategic merge patch) and [`server_side_apply`]; [`record_update`] keeps
//! `metadata.managedFields` current for ordinary writes so that apply sees their ownership.
#![forbid(unsafe_code)]

mod apply;
mod error;
mod fieldset;
pub mod schema;
mod strategic;

use serde_json::{Map, Value};

pub use apply::{ApplyRequest, record_update, server_side_apply};
pub use error::{ApplyError, PatchError};
pub use fieldset::Conflict;

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// RFC 6902 (application/json-patch+json), applied atomically: on error nothing is changed.
/// Used by `kubectl rollout undo`, which sends `replace` operations on `/spec/template`.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| {
        let op = ops.0.get(e.operation).map(op_name).unwrap_or("unknown");
        PatchError::JsonPatchOp {
            index: e.operation,
            op: op.to_owned(),
            path: e.path.to_string(),
            reason: e.kind.to_string(),
        }
    })?;
    Ok(doc)
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    match op {
        json_patch::PatchOperation::Add(_) => "add",
        json_patch::PatchOperation::Remove(_) => "remove",
        json_patch::PatchOperation::Replace(_) => "replace",
        json_patch::PatchOperation::Move(_) => "move",
        json_patch::PatchOperation::Copy(_) => "copy",
        json_patch::PatchOperation::Test(_) => "test",
    }
}

/// RFC 7386 (application/merge-patch+json): objects merge recursively, `null` deletes a key,
/// anything else (lists included) replaces. Used by `kubectl scale` on `/scale` and for CRDs.
/// The patch must be an object, as Kubernetes requires for object patches. Key order of the
/// original is preserved.
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject {
            kind: "merge patch",
            found: type_name(patch),
        });
    }
    let mut doc = original.clone();
    merge_rfc7386(&mut doc, patch);
    Ok(doc)
}

fn merge_rfc7386(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(d) = doc {
        for (k, v) in p {
            if v.is_null() {
                d.shift_remove(k);
            } else {
                merge_rfc7386(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// True when strategic merge patch is defined for this built-in kind (Kubernetes answers 415 for SMP on CRDs).
pub fn supports_strategic(api_version: &str, kind: &str) -> bool {
    schema::builtin_type(api_version, kind).is_some()
}

/// application/strategic-merge-patch+json, as the Kubernetes API server applies it: lists with a
/// patch merge key merge by key, `patchStrategy:merge` scalar lists merge as sets, other lists are
/// replaced; the directives `$patch`, `$retainKeys`, `$setElementOrder/…` and
/// `$deleteFromPrimitiveList/…` are honoured and never stored; `null` deletes a key.
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let Some(ty) = schema::builtin_type(api_version, kind) else {
        return Err(PatchError::StrategicUnsupported {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
    };
    let Value::Object(p) = patch else {
        return Err(PatchError::NotAnObject {
            kind: "strategic merge patch",
            found: type_name(patch),
        });
    };
    let Value::Object(o) = original else {
        return Err(PatchError::NotAnObject {
            kind: "original object",
            found: type_name(original),
        });
    };
    Ok(Value::Object(strategic::merge_map(
        o.clone(),
        p.clone(),
        Some(ty),
        "",
    )?))
}
