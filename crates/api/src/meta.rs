//! Reading and writing `metadata` on JSON objects.

use serde_json::{Map, Value};

/// `metadata.name`, if set and non-empty.
pub fn name(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("name")?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `metadata.namespace`, if set and non-empty.
pub fn namespace(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("namespace")?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `metadata.resourceVersion`, if set and non-empty.
pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("resourceVersion")?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `metadata.uid`, if set.
pub fn uid(obj: &Value) -> Option<&str> {
    obj.get("metadata")?
        .get("uid")?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// `metadata.labels` (empty when absent), borrowed: selectors run over every cached
/// object, and copying each label map was most of their cost.
pub fn labels(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .unwrap_or(&EMPTY)
}

/// `metadata.finalizers` (empty when absent).
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// True once `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|d| !d.is_null())
}

/// The `metadata` object, created if missing (replacing a non-object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(map) = obj else {
        unreachable!("made an object above")
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Sets one metadata field.
pub fn set(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

/// Removes one metadata field.
pub fn remove(obj: &mut Value, field: &str) {
    metadata_mut(obj).remove(field);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_metadata() {
        let mut o = json!({"kind": "Pod"});
        assert_eq!(name(&o), None);
        set(&mut o, "name", json!("p"));
        assert_eq!(name(&o), Some("p"));
        assert!(!is_deleting(&o));
        set(&mut o, "deletionTimestamp", json!("2024-01-01T00:00:00Z"));
        assert!(is_deleting(&o));
    }
}
