//! Request options, encoded as Kubernetes query parameters and bodies.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// Characters kept verbatim in a query value (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A `?a=b&c=d` builder that escapes values (selectors contain `=`, `,`, `!`, spaces).
#[derive(Default, Debug)]
pub(crate) struct Query(Vec<(&'static str, String)>);

impl Query {
    pub(crate) fn push(&mut self, key: &'static str, value: impl Into<String>) {
        self.0.push((key, value.into()));
    }

    pub(crate) fn push_opt(&mut self, key: &'static str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.0.push((key, v.to_string()));
        }
    }

    /// The query string with its leading `?`, or "" when empty.
    pub(crate) fn encode(&self) -> String {
        let mut s = String::new();
        for (i, (k, v)) in self.0.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(k);
            s.push('=');
            s.extend(utf8_percent_encode(v, QUERY_VALUE));
        }
        s
    }
}

/// Options of list and watch requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListParams {
    /// `labelSelector`, e.g. `app=web,tier!=cache`.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `spec.nodeName=node1`.
    pub field_selector: Option<String>,
    /// `limit`: page size. [`crate::Client::list`] still returns every page.
    pub limit: Option<u32>,
    /// `timeoutSeconds`: the server ends a watch after this long.
    pub timeout_seconds: Option<u32>,
}

impl ListParams {
    /// Only objects whose labels match `selector`.
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// Only objects whose fields match `selector`.
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// Pages of at most `limit` objects.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub(crate) fn selectors(&self, q: &mut Query) {
        q.push_opt("labelSelector", self.label_selector.as_deref());
        q.push_opt("fieldSelector", self.field_selector.as_deref());
    }
}

/// Options of create and replace requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostParams {
    /// `fieldManager`: who owns the fields written (server-side apply bookkeeping).
    pub field_manager: Option<String>,
    /// `dryRun=All`: validate and answer without storing.
    pub dry_run: bool,
}

impl PostParams {
    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        if self.dry_run {
            q.push("dryRun", "All");
        }
        q.push_opt("fieldManager", self.field_manager.as_deref());
        q
    }
}

/// A patch body and its type (the `Content-Type` tells the server how to apply it).
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`).
    Merge(Value),
    /// RFC 6902 JSON patch, an array of operations (`application/json-patch+json`).
    Json(Value),
    /// Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
    Strategic(Value),
    /// Server-side apply of a full intent (`application/apply-patch+yaml`; JSON is
    /// valid YAML). Requires [`PatchParams::field_manager`].
    Apply(Value),
}

impl Patch {
    pub(crate) fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply(_) => "application/apply-patch+yaml",
        }
    }

    pub(crate) fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) | Patch::Strategic(v) | Patch::Apply(v) => v,
        }
    }
}

/// Options of patch requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatchParams {
    /// `fieldManager`; required by the server for [`Patch::Apply`].
    pub field_manager: Option<String>,
    /// `force`: take ownership of conflicting fields (apply only).
    pub force: bool,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl PatchParams {
    /// Options for server-side apply as `manager`.
    pub fn apply(manager: impl Into<String>) -> Self {
        PatchParams {
            field_manager: Some(manager.into()),
            ..Default::default()
        }
    }

    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        if self.dry_run {
            q.push("dryRun", "All");
        }
        q.push_opt("fieldManager", self.field_manager.as_deref());
        if self.force {
            q.push("force", "true");
        }
        q
    }
}

/// How dependents are treated when their owner is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    /// Delete dependents first, then the owner.
    Foreground,
    /// Delete the owner now; the garbage collector deletes dependents.
    Background,
    /// Leave dependents, removing their owner reference.
    Orphan,
}

/// Options of delete requests (sent as a `DeleteOptions` body, as kubectl does).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeleteParams {
    /// `propagationPolicy`.
    pub propagation_policy: Option<PropagationPolicy>,
    /// `gracePeriodSeconds` (0 deletes a pod at once).
    pub grace_period_seconds: Option<u64>,
    /// `preconditions.uid`: delete only this incarnation of the name.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`: delete only if unchanged.
    pub precondition_resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteParams {
    pub(crate) fn body(&self) -> Value {
        let mut b = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(p) = self.propagation_policy {
            b["propagationPolicy"] = json!(format!("{p:?}"));
        }
        if let Some(g) = self.grace_period_seconds {
            b["gracePeriodSeconds"] = json!(g);
        }
        if let Some(uid) = &self.precondition_uid {
            b["preconditions"]["uid"] = json!(uid);
        }
        if let Some(rv) = &self.precondition_resource_version {
            b["preconditions"]["resourceVersion"] = json!(rv);
        }
        if self.dry_run {
            b["dryRun"] = json!(["All"]);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_escaped_in_the_query() {
        let p = ListParams::default()
            .labels("app=web,tier notin (a,b)")
            .fields("spec.nodeName=n1");
        let mut q = Query::default();
        p.selectors(&mut q);
        assert_eq!(
            q.encode(),
            "?labelSelector=app%3Dweb%2Ctier%20notin%20%28a%2Cb%29&fieldSelector=spec.nodeName%3Dn1"
        );
        assert_eq!(Query::default().encode(), "");
    }

    #[test]
    fn delete_options_body() {
        let d = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            precondition_uid: Some("u1".into()),
            ..Default::default()
        };
        let b = d.body();
        assert_eq!(b["propagationPolicy"], "Foreground");
        assert_eq!(b["preconditions"]["uid"], "u1");
        assert!(b.get("gracePeriodSeconds").is_none());
    }
}
