//! Field errors with Kubernetes' exact wording (`k8s.io/apimachinery/pkg/util/validation/field`).

use serde_json::Value;
use std::fmt::Write as _;

/// The category of a field error; each maps to a Kubernetes `field.ErrorType` and `StatusCause` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required value is missing (`Required value`).
    Required,
    /// The value is malformed or out of range (`Invalid value`).
    Invalid,
    /// The field may not be set or changed in this situation (`Forbidden`).
    Forbidden,
    /// The value is not one of an enumerated set (`Unsupported value`).
    NotSupported,
    /// The value repeats one that must be unique (`Duplicate value`).
    Duplicate,
    /// The value is longer than allowed (`Too long`).
    TooLong,
    /// A list has more items than allowed (`Too many`).
    TooMany,
    /// A reference to something that does not exist, e.g. a volume mount naming no volume (`Not found`).
    NotFound,
}

impl FieldErrorKind {
    /// Kubernetes' `ErrorType.String()`, the words printed before the value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Forbidden => "Forbidden",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::NotFound => "Not found",
        }
    }

    /// The `StatusCause.reason` clients match on (`FieldValueRequired`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::NotFound => "FieldValueNotFound",
        }
    }
}

/// One field error, as Kubernetes' `field.Error` (type + path + detail + bad value), so the API server can
/// build both the 422 message and the `details.causes` list.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The JSON path in Kubernetes' notation: `spec.containers[0].name`, `data[my key]`.
    pub field: String,
    /// The human explanation after the value (may be empty).
    pub detail: String,
    /// The offending value; `None` when Kubernetes omits it from the message.
    pub value: Option<Value>,
}

impl FieldError {
    /// A missing required value (`field.Required`).
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            detail: detail.into(),
            value: None,
        }
    }

    /// A malformed value (`field.Invalid`).
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            detail: detail.into(),
            value: Some(value.into()),
        }
    }

    /// A field that may not be set or changed (`field.Forbidden`).
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            detail: detail.into(),
            value: None,
        }
    }

    /// A value outside an enumeration (`field.NotSupported`); the detail lists the quoted valid values.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        valid: &[&str],
    ) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            detail,
            value: Some(value.into()),
        }
    }

    /// A repeated value that must be unique (`field.Duplicate`).
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            detail: String::new(),
            value: Some(value.into()),
        }
    }

    /// A reference to something missing (`field.NotFound`).
    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            kind: FieldErrorKind::NotFound,
            field: field.into(),
            detail: String::new(),
            value: Some(value.into()),
        }
    }

    /// A value longer than `max` bytes (`field.TooLong`; Kubernetes never prints the value).
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self {
            kind: FieldErrorKind::TooLong,
            field: field.into(),
            detail: format!("may not be more than {max} {unit}"),
            value: None,
        }
    }

    /// A list with `actual` items where at most `max` are allowed (`field.TooMany`).
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self {
            kind: FieldErrorKind::TooMany,
            field: field.into(),
            detail: format!("must have at most {max} {unit}"),
            value: Some(Value::from(actual)),
        }
    }

    /// Kubernetes' text: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    /// The message without the field path (Kubernetes' `ErrorBody`), used as `StatusCause.message`.
    pub fn body(&self) -> String {
        let mut s = String::from(self.kind.as_str());
        let omit = matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if let (false, Some(v)) = (omit, &self.value) {
            s.push_str(": ");
            s.push_str(&go_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The `StatusCause` reason: "FieldValueRequired", "FieldValueInvalid", ...
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// The 422 message: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be ...`
/// (with several errors: `... is invalid: [a: ..., b: ...]`; identical messages are reported once, as
/// Kubernetes' error aggregate does).
pub fn invalid_message(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut msgs: Vec<String> = Vec::new();
    for e in errors {
        let m = e.message();
        if !msgs.contains(&m) {
            msgs.push(m);
        }
    }
    let head = format!("{qualified} {} is invalid", go_quote(name));
    match msgs.len() {
        0 => head,
        1 => format!("{head}: {}", msgs[0]),
        _ => format!("{head}: [{}]", msgs.join(", ")),
    }
}

/// Go's `strconv.Quote`: double quotes with backslash escapes for quotes, backslashes and control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders a bad value the way Kubernetes' messages show it (since 1.31): numbers and booleans bare,
/// strings Go-quoted, anything else as compact JSON (`{"app":"web"}`, `["None"]`), string maps with sorted
/// keys as Go's JSON encoder writes them.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => go_quote(s),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let sorted: serde_json::Map<String, Value> = pairs
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(sorted).to_string()
        }
        other => other.to_string(),
    }
}

/// A field path under construction, printed in Kubernetes' notation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(String);

impl Path {
    /// A path starting at a top-level field (`spec`), or the empty root.
    pub fn new(root: &str) -> Self {
        Self(root.to_string())
    }

    /// `self.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// `self[i]`.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// `self[key]` (map keys are not quoted, as in Kubernetes).
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// The printed path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Path> for String {
    fn from(p: &Path) -> String {
        p.0.clone()
    }
}

impl From<Path> for String {
    fn from(p: Path) -> String {
        p.0
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_match_kubernetes_wording() {
        let cases = [
            (
                FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0"),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "FieldValueInvalid",
            ),
            (
                FieldError::required("spec.containers", ""),
                "spec.containers: Required value",
                "FieldValueRequired",
            ),
            (
                FieldError::not_supported(
                    "spec.restartPolicy",
                    "Sometimes",
                    &["Always", "OnFailure", "Never"],
                ),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "FieldValueNotSupported",
            ),
            (
                FieldError::duplicate("spec.containers[1].name", "web"),
                "spec.containers[1].name: Duplicate value: \"web\"",
                "FieldValueDuplicate",
            ),
            // TooLong never prints the value (field.ErrorBody).
            (
                FieldError::too_long("metadata.annotations", 262144),
                "metadata.annotations: Too long: may not be more than 262144 bytes",
                "FieldValueTooLong",
            ),
            (
                FieldError::too_many("spec.endpoints[0].addresses", 101, 100),
                "spec.endpoints[0].addresses: Too many: 101: must have at most 100 items",
                "FieldValueTooMany",
            ),
            (
                FieldError::forbidden("spec", "pod updates may not change fields"),
                "spec: Forbidden: pod updates may not change fields",
                "FieldValueForbidden",
            ),
            (
                FieldError::invalid(
                    "spec.template.metadata.labels",
                    json!({"tier": "a\"b", "app": "web"}),
                    "`selector` does not match template `labels`",
                ),
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\",\"tier\":\"a\\\"b\"}: `selector` does not match template `labels`",
                "FieldValueInvalid",
            ),
            (
                FieldError::invalid("x", Value::Null, "bad"),
                "x: Invalid value: null: bad",
                "FieldValueInvalid",
            ),
        ];
        for (err, msg, reason) in cases {
            assert_eq!(err.message(), msg);
            assert_eq!(err.reason(), reason);
        }
    }

    #[test]
    fn invalid_message_single_and_aggregate() {
        let one = [FieldError::invalid(
            "spec.replicas",
            -1,
            "must be greater than or equal to 0",
        )];
        assert_eq!(
            invalid_message("apps", "Deployment", "web", &one),
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let two = [
            FieldError::required("spec.selector", ""),
            FieldError::required("spec.selector", ""),
            FieldError::required("spec.template.spec.containers", ""),
        ];
        // Core group has no suffix; the aggregate is bracketed and de-duplicated.
        assert_eq!(
            invalid_message("", "Pod", "p", &two),
            "Pod \"p\" is invalid: [spec.selector: Required value, spec.template.spec.containers: Required value]"
        );
        assert_eq!(invalid_message("", "Pod", "p", &[]), "Pod \"p\" is invalid");
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
        assert_eq!(Path::new("data").key("my key").as_str(), "data[my key]");
        assert_eq!(
            Path::new("spec")
                .child("containers")
                .index(2)
                .child("name")
                .as_str(),
            "spec.containers[2].name"
        );
    }
}
