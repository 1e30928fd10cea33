//! Object keys: `namespace/name` (or `name` for cluster-scoped objects), as client-go's
//! `MetaNamespaceKeyFunc` writes them. Caches are indexed and work queues keyed by them.

use serde_json::Value;

/// Identifies an object of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace; None for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a namespaced (`Some`) or cluster-scoped (`None`) object.
    pub fn new(namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: namespace.filter(|s| !s.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The key of an object, from its metadata; None without `metadata.name`.
    pub fn from_object(obj: &Value) -> Option<ObjectKey> {
        let name = api::meta::name(obj).filter(|n| !n.is_empty())?;
        Some(ObjectKey::new(api::meta::namespace(obj), name))
    }

    /// Parses `namespace/name` or `name` (the inverse of `Display`).
    pub fn parse(key: &str) -> ObjectKey {
        match key.split_once('/') {
            Some((ns, name)) => ObjectKey::new(Some(ns), name),
            None => ObjectKey::new(None, key),
        }
    }

    /// The namespace as `Option<&str>`, as the client's methods take it.
    pub fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_like_meta_namespace_key_func() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "prod"}});
        let k = ObjectKey::from_object(&pod).unwrap();
        assert_eq!(k.to_string(), "prod/web-1");
        assert_eq!(ObjectKey::parse("prod/web-1"), k);
        let node = json!({"metadata": {"name": "n1"}});
        let k = ObjectKey::from_object(&node).unwrap();
        assert_eq!(k.to_string(), "n1");
        assert_eq!(ObjectKey::parse("n1"), k);
        assert!(ObjectKey::from_object(&json!({"metadata": {}})).is_none());
    }
}
