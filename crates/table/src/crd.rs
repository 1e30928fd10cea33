//! Custom resources: columns from a CRD version's `additionalPrinterColumns`, as the
//! apiextensions-apiserver table convertor builds them.

use serde_json::{Value, json};

use crate::OwnedColumn;
use crate::util::{human_duration, parse_timestamp, s};

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One printer column with the JSONPath its cells come from.
struct PrinterColumn {
    column: OwnedColumn,
    json_path: String,
}

/// The CRD's columns, or the default `Age` column (a date at
/// `.metadata.creationTimestamp`) when it declares none.
fn printer_columns(apc: Option<&Value>) -> Vec<PrinterColumn> {
    let declared: Vec<PrinterColumn> = apc
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| PrinterColumn {
            column: OwnedColumn {
                name: s(c, &["name"]).to_string(),
                type_: s(c, &["type"]).to_string(),
                format: s(c, &["format"]).to_string(),
                description: s(c, &["description"]).to_string(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
            },
            json_path: s(c, &["jsonPath"]).to_string(),
        })
        .collect();
    if !declared.is_empty() {
        return declared;
    }
    vec![PrinterColumn {
        column: OwnedColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: AGE_DESC.into(),
            priority: 0,
        },
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

/// Custom resources: `Name` first, then the CRD version's additionalPrinterColumns
/// (or `Age` when it has none), as kubectl shows them.
pub fn crd_columns(additional_printer_columns: Option<&Value>) -> Vec<OwnedColumn> {
    let mut out = vec![OwnedColumn {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: NAME_DESC.into(),
        priority: 0,
    }];
    out.extend(
        printer_columns(additional_printer_columns)
            .into_iter()
            .map(|c| c.column),
    );
    out
}

/// The cells of a custom resource row for [`crd_columns`]: each JSONPath evaluated on
/// the object (first result), converted to the column type; null when absent. Dates
/// become ages, as the apiextensions server does.
pub fn crd_cells(additional_printer_columns: Option<&Value>, obj: &Value, now: i64) -> Vec<Value> {
    let mut out = vec![json!(s(obj, &["metadata", "name"]))];
    for pc in printer_columns(additional_printer_columns) {
        let found = eval_json_path(&pc.json_path, obj);
        let cell = match found.first() {
            None | Some(Value::Null) => Value::Null,
            Some(v) => cell_for(&pc.column.type_, v, now),
        };
        out.push(cell);
    }
    out
}

/// `cellForJSONValue`, with strings printed as JSONPath prints them.
fn cell_for(type_: &str, v: &Value, now: i64) -> Value {
    match type_ {
        "string" => json!(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        "integer" => match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            _ => Value::Null,
        },
        "number" => match v {
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f)),
            _ => Value::Null,
        },
        "boolean" => match v {
            Value::Bool(b) => json!(b),
            _ => Value::Null,
        },
        "date" => match v {
            Value::String(s) => match parse_timestamp(s) {
                Some(t) => json!(human_duration(now - t)),
                None => json!("<invalid>"),
            },
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// One step of a simple JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    /// `[?(@.a.b=="v")]`, or `[?(@.a)]` (present) when `value` is None.
    Filter(Vec<String>, Option<String>),
}

/// Parses the JSONPath subset CRDs use: `.a.b`, `.a\.b`, `['a.b']`, `[0]`, `[-1]`,
/// `[*]`, `[?(@.type=="Ready")]`, optionally wrapped in `{}` and starting with `$`.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name == "*" {
                    steps.push(Step::Wildcard);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                steps.push(parse_bracket(inner)?);
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// The `]` closing the bracket at `open`, skipping quoted text.
fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(open + 1) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ']' => return Some(j),
            None => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name.to_string()));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, rhs) = match expr.split_once("==") {
        Some((l, r)) => (l.trim(), Some(r.trim())),
        None => (expr, None),
    };
    let lhs = lhs.strip_prefix('@')?;
    let fields: Vec<String> = lhs
        .split('.')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let value = rhs.map(|r| unquote(r).unwrap_or(r).to_string());
    Some(Step::Filter(fields, value))
}

/// Evaluates a JSONPath on an object; an unparsable path yields no result.
fn eval_json_path(path: &str, obj: &Value) -> Vec<Value> {
    let Some(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut cur: Vec<&Value> = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if idx >= 0 {
                            next.extend(a.get(idx as usize));
                        }
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(fields, want) => {
                    for item in v.as_array().map(Vec::as_slice).unwrap_or_default() {
                        let got = fields.iter().try_fold(item, |x, f| x.get(f.as_str()));
                        let keep = match (got, want) {
                            (Some(g), Some(w)) => match g {
                                Value::String(s) => s == w,
                                // Numbers and booleans compare as JSON literals.
                                other => {
                                    serde_json::from_str::<Value>(w).ok().as_ref() == Some(other)
                                }
                            },
                            (Some(g), None) => !g.is_null(),
                            (None, _) => false,
                        };
                        if keep {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let o = json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "db"}},
            "spec": {"replicas": 3, "containers": [{"image": "a"}, {"image": "b"}]},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "Waiting"}
            ]}
        });
        assert_eq!(eval_json_path(".spec.replicas", &o), vec![json!(3)]);
        assert_eq!(eval_json_path("{.spec.replicas}", &o), vec![json!(3)]);
        assert_eq!(
            eval_json_path(".spec.containers[1].image", &o),
            vec![json!("b")]
        );
        assert_eq!(
            eval_json_path(".spec.containers[-1].image", &o),
            vec![json!("b")]
        );
        assert_eq!(
            eval_json_path(".spec.containers[*].image", &o),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(
            eval_json_path(".status.conditions[?(@.type==\"Ready\")].reason", &o),
            vec![json!("Waiting")]
        );
        assert_eq!(
            eval_json_path(".metadata.labels.app\\.kubernetes\\.io/name", &o),
            vec![json!("db")]
        );
        assert_eq!(
            eval_json_path(".metadata.labels['app.kubernetes.io/name']", &o),
            vec![json!("db")]
        );
        assert!(eval_json_path(".spec.missing", &o).is_empty());
        assert_eq!(
            eval_json_path(".spec.containers[?(@.image==\"a\")].image", &o),
            vec![json!("a")]
        );
        let n = json!({"items": [{"n": 1, "v": "x"}, {"n": 2, "v": "y"}]});
        assert_eq!(eval_json_path(".items[?(@.n==2)].v", &n), vec![json!("y")]);
        assert!(eval_json_path("spec", &o).is_empty());
    }
}
