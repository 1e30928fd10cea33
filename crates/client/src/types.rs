//! What list and watch requests return.

use crate::{Error, Status};
use serde_json::Value;

/// One page (or, from [`crate::Client::list`], all pages) of a list response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectList {
    /// `metadata.resourceVersion` of the list: the revision to start a watch from so
    /// that no change after this snapshot is missed.
    pub resource_version: String,
    /// The objects (each with its `metadata.resourceVersion`).
    pub items: Vec<Value>,
    /// `metadata.continue`: the token for the next page; None on the last page.
    pub continue_token: Option<String>,
}

impl ObjectList {
    /// Reads a `*List` object.
    pub fn from_value(mut v: Value) -> Result<ObjectList, Error> {
        let items = match v.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                return Err(Error::Decode {
                    what: "list response",
                    source: serde::de::Error::custom("`items` is not an array"),
                });
            }
        };
        let meta = v.get("metadata");
        let field = |f: &str| {
            meta.and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(ObjectList {
            resource_version: field("resourceVersion").unwrap_or_default(),
            items,
            continue_token: field("continue"),
        })
    }
}

/// One event of a watch stream, as the server sends it.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// `ADDED`: the object was created (or started matching the selector).
    Added(Value),
    /// `MODIFIED`: the object changed.
    Modified(Value),
    /// `DELETED`: the object was deleted (or stopped matching the selector); the value is
    /// its last state.
    Deleted(Value),
    /// `BOOKMARK`: only `metadata.resourceVersion` is meaningful — progress without change.
    Bookmark(Value),
    /// `ERROR`: the watch failed (410 Gone when its revision was compacted); the server
    /// ends the stream after it.
    Error(Status),
}

impl WatchEvent {
    /// Reads one `{"type": ..., "object": ...}` line.
    pub fn from_value(mut v: Value) -> Result<WatchEvent, Error> {
        let object = v.get_mut("object").map(Value::take).unwrap_or(Value::Null);
        let bad = |m: String| Error::Decode {
            what: "watch event",
            source: serde::de::Error::custom(m),
        };
        match v.get("type").and_then(Value::as_str) {
            Some("ADDED") => Ok(WatchEvent::Added(object)),
            Some("MODIFIED") => Ok(WatchEvent::Modified(object)),
            Some("DELETED") => Ok(WatchEvent::Deleted(object)),
            Some("BOOKMARK") => Ok(WatchEvent::Bookmark(object)),
            Some("ERROR") => Status::from_value(&object)
                .map(WatchEvent::Error)
                .ok_or_else(|| bad(format!("ERROR event without a Status: {object}"))),
            other => Err(bad(format!("unknown watch event type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_reads_revision_and_continue() {
        let l = ObjectList::from_value(json!({
            "kind": "PodList", "metadata": {"resourceVersion": "42", "continue": "abc"},
            "items": [{"metadata": {"name": "a"}}]
        }))
        .unwrap();
        assert_eq!(l.resource_version, "42");
        assert_eq!(l.continue_token.as_deref(), Some("abc"));
        assert_eq!(l.items.len(), 1);
        // An empty continue token means the last page (Kubernetes omits or empties it).
        let l =
            ObjectList::from_value(json!({"metadata": {"continue": ""}, "items": null})).unwrap();
        assert_eq!(l.continue_token, None);
        assert!(l.items.is_empty());
    }

    #[test]
    fn watch_error_event_carries_the_status() {
        let e = WatchEvent::from_value(json!({"type": "ERROR", "object": {
            "kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}))
        .unwrap();
        assert!(matches!(e, WatchEvent::Error(s) if s.code == 410 && s.reason == "Expired"));
        assert!(WatchEvent::from_value(json!({"type": "NOPE", "object": {}})).is_err());
    }
}
