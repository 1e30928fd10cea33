//! Field selectors (`k8s.io/apimachinery/pkg/fields`) and the per-kind selectable
//! fields of the Kubernetes API server.

use std::fmt;

use serde_json::Value;

use crate::error::SelectorError;

/// One `field=value` (or `field!=value`) term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldTerm {
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// The unescaped value to compare with.
    pub value: String,
    /// True for `!=`.
    pub negated: bool,
}

/// A parsed field selector (`metadata.name=x,status.phase!=Running`). Terms are kept
/// in Kubernetes' order (sorted by their raw text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Splits on commas not escaped by a backslash, keeping the escapes in the parts.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Finds the first position where `!=`, `==` or `=` starts (in that preference).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

/// Kubernetes' `UnescapeValue`: `\\`, `\,`, `\=` are the only escapes; bare `,`/`=` are errors.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(SelectorError::InvalidEscape(format!("\\{other}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError::UnescapedRune(c as u32)),
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidEscape("\\".into()));
    }
    Ok(out)
}

/// Kubernetes' `EscapeValue`, the inverse of [`unescape_value`].
fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FieldSelector {
    /// Parses a field selector as Kubernetes' `fields.ParseSelector` does: comma-separated
    /// `field=value`, `field==value` or `field!=value` terms, empty terms ignored, values
    /// with `\`-escapes for `\`, `,` and `=`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::FieldTerm {
                    selector: s.to_string(),
                    term: part.clone(),
                });
            };
            terms.push(FieldTerm {
                field: lhs.to_string(),
                value: unescape_value(rhs)?,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// The field paths the selector mentions, so the server can reject unsupported ones.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    /// The terms, in Kubernetes' order.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Whether the selector has no term (selects everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Matches against an object, reading each field with [`field_value`]; a field the
    /// kind does not support reads as "" (the server rejects those before matching).
    pub fn matches(&self, group: &str, kind: &str, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(group, kind, obj, &t.field).unwrap_or_default();
            (have == t.value) != t.negated
        })
    }

    /// For a single-name watch/list: `metadata.name=X` → `Some("X")` (as Kubernetes'
    /// `RequiresExactMatch("metadata.name")`, also when other terms are present).
    pub fn exact_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| !t.negated && t.field == "metadata.name")
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical string: terms joined by `,`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The kind-specific selectable fields (beyond `metadata.name`/`metadata.namespace`),
/// from the field label conversion functions Kubernetes registers per kind.
fn kind_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => POD_FIELDS,
        ("", "Event") => EVENT_FIELDS,
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "ReplicationController") => &["status.replicas"],
        ("apps", "ReplicaSet") | ("extensions", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec.signerName"],
        _ => &[],
    }
}

/// All field selectors Kubernetes supports for a kind, for building the
/// `"foo" is not a known field selector: only "metadata.name", ...` message.
pub fn supported_fields(group: &str, kind: &str) -> Vec<&'static str> {
    let mut v = vec!["metadata.name", "metadata.namespace"];
    v.extend_from_slice(kind_fields(group, kind));
    v
}

/// Whether Kubernetes supports this field selector for this kind: `metadata.name` and
/// `metadata.namespace` for all, plus the kind's own list (pods, events, secrets,
/// namespaces, nodes, replicasets, replicationcontrollers, jobs, CSRs).
pub fn supported_field(group: &str, kind: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || kind_fields(group, kind).contains(&field)
}

/// Reads a dotted path of object keys.
fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(*k))
}

fn str_at(obj: &Value, path: &[&str]) -> String {
    at(obj, path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn bool_at(obj: &Value, path: &[&str]) -> String {
    at(obj, path)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

fn int_at(obj: &Value, path: &[&str]) -> String {
    at(obj, path)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

/// The string value of a selectable field ("" when absent, as Kubernetes does; bools as
/// "true"/"false", counters as decimal with 0 when absent), or `None` when the kind does
/// not support the field.
pub fn field_value(group: &str, kind: &str, obj: &Value, field: &str) -> Option<String> {
    if !supported_field(group, kind, field) {
        return None;
    }
    let path: Vec<&str> = field.split('.').collect();
    Some(match (kind, field) {
        (_, "metadata.name") | (_, "metadata.namespace") => str_at(obj, &path),
        ("Pod", "spec.hostNetwork") | ("Node", "spec.unschedulable") => bool_at(obj, &path),
        ("Pod", "status.podIP") => {
            // Kubernetes reads status.podIPs[0]; status.podIP mirrors it.
            let first = at(obj, &["status", "podIPs"])
                .and_then(|v| v.get(0))
                .and_then(|v| v.get("ip"))
                .and_then(Value::as_str);
            match first {
                Some(ip) => ip.to_string(),
                None => str_at(obj, &path),
            }
        }
        (_, "status.replicas") => int_at(obj, &path),
        ("Job", "status.successful") => int_at(obj, &["status", "succeeded"]),
        ("Event", "source") => str_at(obj, &["source", "component"]),
        ("Event", "reportingComponent") => str_at(obj, &["reportingComponent"]),
        _ => str_at(obj, &path),
    })
}
