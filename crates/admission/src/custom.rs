//! Custom resources: decoding against a CRD version's structural `openAPIV3Schema`, the way the
//! apiextensions API server does it: drop nulls of non-nullable fields, apply schema defaults, prune fields
//! the schema does not specify (unless `x-kubernetes-preserve-unknown-fields`), then validate types,
//! `required`, `enum`, bounds and patterns with kube-openapi's messages.

use crate::decode::Normalized;
use crate::field::FieldError;
use serde_json::{Map, Value};

/// Same as [`crate::normalize`] for custom resources, from the CRD version's openAPIV3Schema (structural
/// schema): type checks, required, enum, pattern, minimum/maximum, lengths and item counts; pruning of unknown
/// fields (reported in `unknown_fields`) unless `x-kubernetes-preserve-unknown-fields`;
/// `x-kubernetes-int-or-string`; `x-kubernetes-embedded-resource` and the root keep `apiVersion`, `kind`
/// and `metadata` untouched (the API server checks metadata as for any object). Errors use Kubernetes'
/// wording, e.g. `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
/// "string"`.
pub fn normalize_custom(schema: &Value, obj: &Value) -> Result<Normalized, Vec<FieldError>> {
    let mut cx = Ctx::default();
    if !obj.is_object() {
        return Err(vec![type_error("", "object", obj)]);
    }
    let object = walk(schema, obj, "", true, &mut cx);
    if cx.errs.is_empty() {
        Ok(Normalized {
            object,
            unknown_fields: cx.unknown,
        })
    } else {
        Err(cx.errs)
    }
}

#[derive(Default)]
struct Ctx {
    errs: Vec<FieldError>,
    unknown: Vec<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// kube-openapi's subject for the value at `path`: `spec.replicas in body`.
fn body_name(path: &str) -> String {
    if path.is_empty() {
        "in body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key) == Some(&Value::Bool(true))
}

/// The JSON type name kube-openapi reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

/// `<path> in body must be of type <want>: "<actual>"` with the actual type as the bad value.
fn type_error(path: &str, want: &str, v: &Value) -> FieldError {
    let actual = type_name(v);
    FieldError::invalid(
        path,
        actual,
        format!("{} must be of type {want}: \"{actual}\"", body_name(path)),
    )
}

/// Go's `%v` of a float64 schema bound: integral values print without a fraction.
fn show_num(n: &Value) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

fn uint(s: &Value, key: &str) -> Option<usize> {
    s.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// Checks the value's type; false (with an error) when it does not match.
fn check_type(s: &Value, v: &Value, path: &str, cx: &mut Ctx) -> bool {
    if flag(s, "x-kubernetes-int-or-string") {
        let ok = matches!(v, Value::String(_)) || matches!(v, Value::Number(n) if is_integer(n));
        if !ok {
            // Kubernetes turns int-or-string into anyOf [integer, string].
            cx.errs.push(FieldError::invalid(
                path,
                "",
                format!("{path} must validate at least one schema (anyOf)"),
            ));
            cx.errs.push(type_error(path, "integer", v));
        }
        return ok;
    }
    let want = s.get("type").and_then(Value::as_str).unwrap_or_default();
    let ok = match want {
        "" => true,
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => matches!(v, Value::Number(n) if is_integer(n)),
        _ => true,
    };
    if !ok {
        cx.errs.push(type_error(path, want, v));
    }
    ok
}

/// Prunes, defaults and validates `v` against `s`; `keep_meta` keeps `apiVersion`, `kind` and `metadata`
/// as sent (the root and embedded resources).
fn walk(s: &Value, v: &Value, path: &str, keep_meta: bool, cx: &mut Ctx) -> Value {
    if v.is_null() {
        if !flag(s, "nullable") {
            cx.errs.push(type_error(
                path,
                s.get("type").and_then(Value::as_str).unwrap_or("object"),
                v,
            ));
        }
        return Value::Null;
    }
    if !check_type(s, v, path, cx) {
        return v.clone();
    }
    let out = match v {
        Value::Object(map) => object(
            s,
            map,
            path,
            keep_meta || flag(s, "x-kubernetes-embedded-resource"),
            cx,
        ),
        Value::Array(items) => {
            let item_schema = s.get("items").filter(|i| i.is_object());
            let list = items
                .iter()
                .enumerate()
                .map(|(i, item)| match item_schema {
                    Some(is) => walk(is, item, &format!("{path}[{i}]"), false, cx),
                    None => item.clone(),
                })
                .collect();
            Value::Array(list)
        }
        other => other.clone(),
    };
    constraints(s, &out, path, cx);
    out
}

/// An object: known properties walked, `additionalProperties` values walked, the rest pruned unless
/// preserved; then defaults for missing properties and `required`.
fn object(s: &Value, map: &Map<String, Value>, path: &str, keep_meta: bool, cx: &mut Ctx) -> Value {
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    let preserve =
        flag(s, "x-kubernetes-preserve-unknown-fields") || additional == Some(&Value::Bool(true));
    let mut out = Map::new();
    for (k, v) in map {
        let p = child(path, k);
        if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            out.insert(k.clone(), v.clone());
            continue;
        }
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            // Nulls of non-nullable fields are dropped silently (so a default can apply), as Kubernetes does.
            if v.is_null() && !flag(ps, "nullable") {
                continue;
            }
            out.insert(k.clone(), walk(ps, v, &p, false, cx));
        } else if let Some(ap) = additional.filter(|a| a.is_object()) {
            if v.is_null() && !flag(ap, "nullable") {
                continue;
            }
            out.insert(k.clone(), walk(ap, v, &p, false, cx));
        } else if preserve {
            out.insert(k.clone(), v.clone());
        } else if !v.is_null() {
            cx.unknown.push(p);
        }
    }
    for (k, ps) in props.into_iter().flatten() {
        if !out.contains_key(k)
            && let Some(d) = ps.get("default")
        {
            out.insert(k.clone(), d.clone());
        }
    }
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !out.contains_key(r) {
            cx.errs.push(FieldError::required(child(path, r), ""));
        }
    }
    Value::Object(out)
}

/// enum, numeric bounds, string length and pattern, item and property counts.
fn constraints(s: &Value, v: &Value, path: &str, cx: &mut Ctx) {
    let name = body_name(path);
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let shown: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
            .collect();
        let refs: Vec<&str> = shown.iter().map(String::as_str).collect();
        cx.errs
            .push(FieldError::not_supported(path, v.clone(), &refs));
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = s.get("minimum").filter(|m| m.is_number()) {
                let m = min.as_f64().unwrap_or_default();
                let exclusive = flag(s, "exclusiveMinimum");
                if (exclusive && x <= m) || x < m {
                    let rel = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    cx.errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{name} should be {rel} {}", show_num(min)),
                    ));
                }
            }
            if let Some(max) = s.get("maximum").filter(|m| m.is_number()) {
                let m = max.as_f64().unwrap_or_default();
                let exclusive = flag(s, "exclusiveMaximum");
                if (exclusive && x >= m) || x > m {
                    let rel = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    cx.errs.push(FieldError::invalid(
                        path,
                        v.clone(),
                        format!("{name} should be {rel} {}", show_num(max)),
                    ));
                }
            }
            if let Some(mult) = s
                .get("multipleOf")
                .and_then(Value::as_f64)
                .filter(|m| *m > 0.0)
                && (x / mult).fract() != 0.0
            {
                cx.errs.push(FieldError::invalid(
                    path,
                    v.clone(),
                    format!(
                        "{name} should be a multiple of {}",
                        show_num(&Value::from(mult))
                    ),
                ));
            }
        }
        Value::String(st) => {
            let len = st.chars().count();
            if let Some(max) = uint(s, "maxLength").filter(|m| len > *m) {
                cx.errs.push(FieldError::too_long(path, max));
            }
            if let Some(min) = uint(s, "minLength").filter(|m| len < *m) {
                cx.errs.push(FieldError::invalid(
                    path,
                    st.as_str(),
                    format!("{name} should be at least {min} chars long"),
                ));
            }
            if let Some(pat) = s.get("pattern").and_then(Value::as_str) {
                // ECMA-262 patterns that the regex crate cannot compile are not enforced.
                if regex::Regex::new(pat).is_ok_and(|re| !re.is_match(st)) {
                    cx.errs.push(FieldError::invalid(
                        path,
                        st.as_str(),
                        format!("{name} should match '{pat}'"),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = uint(s, "maxItems").filter(|m| items.len() > *m) {
                cx.errs.push(FieldError::too_many(path, items.len(), max));
            }
            if let Some(min) = uint(s, "minItems").filter(|m| items.len() < *m) {
                cx.errs.push(FieldError::invalid(
                    path,
                    Value::Array(items.clone()),
                    format!("{name} should have at least {min} items"),
                ));
            }
            if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        cx.errs
                            .push(FieldError::duplicate(format!("{path}[{i}]"), item.clone()));
                    }
                }
            }
        }
        Value::Object(map) => {
            if let Some(max) = uint(s, "maxProperties").filter(|m| map.len() > *m) {
                cx.errs.push(FieldError::too_many(path, map.len(), max));
            }
            if let Some(min) = uint(s, "minProperties").filter(|m| map.len() < *m) {
                cx.errs.push(FieldError::invalid(
                    path,
                    "",
                    format!("{name} should have at least {min} properties"),
                ));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A realistic CRD schema (cert-manager/Crossplane style).
    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["engine"],
                    "properties": {
                        "engine": {"type": "string", "enum": ["postgres", "mysql"]},
                        "version": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                        "storageGB": {"type": "integer", "minimum": 10},
                        "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1},
                        "name": {"type": "string", "maxLength": 5, "minLength": 2},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "users": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
                        "note": {"type": "string", "nullable": true}
                    }
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
            }
        })
    }

    fn cr(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Database",
            "metadata": {"name": "db", "namespace": "default", "labels": {"a": "b"}}, "spec": spec})
    }

    fn messages(schema: &Value, obj: &Value) -> Vec<String> {
        match normalize_custom(schema, obj) {
            Ok(n) => panic!("expected errors, got {:?}", n.object),
            Err(errs) => errs.iter().map(FieldError::message).collect(),
        }
    }

    #[test]
    fn valid_object_is_defaulted_and_keeps_metadata() {
        let obj = cr(
            json!({"engine": "postgres", "version": "14.5", "port": "http", "labels": {"x": "y"},
            "values": {"anything": {"goes": [1, 2]}}, "note": null}),
        );
        let n = normalize_custom(&schema(), &obj).unwrap();
        assert!(n.unknown_fields.is_empty(), "{:?}", n.unknown_fields);
        assert_eq!(n.object["spec"]["replicas"], 1, "schema default applied");
        assert_eq!(n.object["metadata"], obj["metadata"]);
        assert_eq!(n.object["apiVersion"], "example.com/v1");
        assert_eq!(
            n.object["spec"]["values"],
            json!({"anything": {"goes": [1, 2]}})
        );
        assert_eq!(n.object["spec"]["note"], Value::Null, "nullable keeps null");
        assert_eq!(n.object["spec"]["port"], "http");
    }

    #[test]
    fn unknown_fields_are_pruned_with_paths() {
        let obj = cr(
            json!({"engine": "mysql", "replicaz": 3, "users": [{"name": "a", "pw": "x"}],
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "odd": 1},
                "spec": {"x": 1, "y": 2}}}),
        );
        let mut obj = obj;
        obj["extra"] = json!(true);
        let n = normalize_custom(&schema(), &obj).unwrap();
        assert_eq!(
            n.unknown_fields,
            vec![
                "spec.replicaz",
                "spec.users[0].pw",
                "spec.template.spec.y",
                "extra"
            ]
        );
        assert!(n.object["spec"].get("replicaz").is_none());
        assert!(n.object.get("extra").is_none());
        // Embedded resources keep apiVersion/kind/metadata as sent.
        assert_eq!(
            n.object["spec"]["template"]["metadata"],
            json!({"name": "p", "odd": 1})
        );
        assert_eq!(n.object["spec"]["template"]["kind"], "Pod");
    }

    #[test]
    fn null_of_non_nullable_field_is_dropped_then_defaulted() {
        let n =
            normalize_custom(&schema(), &cr(json!({"engine": "mysql", "replicas": null}))).unwrap();
        assert_eq!(n.object["spec"]["replicas"], 1);
        assert!(n.unknown_fields.is_empty());
    }

    #[test]
    fn validation_errors_use_kube_openapi_wording() {
        let s = schema();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"engine": "postgres", "replicas": "three"}),
                vec![
                    "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                ],
            ),
            (json!({"replicas": 2}), vec!["spec.engine: Required value"]),
            (
                json!({"engine": "oracle"}),
                vec![
                    "spec.engine: Unsupported value: \"oracle\": supported values: \"postgres\", \"mysql\"",
                ],
            ),
            (
                json!({"engine": "mysql", "storageGB": 5}),
                vec![
                    "spec.storageGB: Invalid value: 5: spec.storageGB in body should be greater than or equal to 10",
                ],
            ),
            (
                json!({"engine": "mysql", "replicas": 9}),
                vec![
                    "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5",
                ],
            ),
            (
                json!({"engine": "mysql", "ratio": 1}),
                vec!["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"],
            ),
            (
                json!({"engine": "mysql", "version": "latest"}),
                vec![
                    "spec.version: Invalid value: \"latest\": spec.version in body should match '^[0-9]+(\\.[0-9]+)?$'",
                ],
            ),
            (
                json!({"engine": "mysql", "name": "toolong"}),
                vec!["spec.name: Too long: may not be more than 5 bytes"],
            ),
            (
                json!({"engine": "mysql", "name": "a"}),
                vec![
                    "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long",
                ],
            ),
            (
                json!({"engine": "mysql", "tags": ["a", "b", "c"]}),
                vec!["spec.tags: Too many: 3: must have at most 2 items"],
            ),
            (
                json!({"engine": "mysql", "tags": ["a", "a"]}),
                vec!["spec.tags[1]: Duplicate value: \"a\""],
            ),
            (
                json!({"engine": "mysql", "labels": {"k": 1}}),
                vec![
                    "spec.labels.k: Invalid value: \"integer\": spec.labels.k in body must be of type string: \"integer\"",
                ],
            ),
            (
                json!({"engine": "mysql", "users": [{"name": true}]}),
                vec![
                    "spec.users[0].name: Invalid value: \"boolean\": spec.users[0].name in body must be of type string: \"boolean\"",
                ],
            ),
            (
                json!({"engine": "mysql", "port": 1.5}),
                vec![
                    "spec.port: Invalid value: \"\": spec.port must validate at least one schema (anyOf)",
                    "spec.port: Invalid value: \"number\": spec.port in body must be of type integer: \"number\"",
                ],
            ),
            (
                json!("not an object"),
                vec![
                    "spec: Invalid value: \"string\": spec in body must be of type object: \"string\"",
                ],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(messages(&s, &cr(spec.clone())), want, "spec {spec}");
        }
    }

    #[test]
    fn int_or_string_accepts_both_and_integral_floats_are_integers() {
        for port in [json!(8080), json!("http")] {
            assert!(
                normalize_custom(&schema(), &cr(json!({"engine": "mysql", "port": port}))).is_ok()
            );
        }
        // YAML/JSON clients may send 3.0 for an integer (Kubernetes accepts integral floats).
        assert!(
            normalize_custom(&schema(), &cr(json!({"engine": "mysql", "replicas": 3.0}))).is_ok()
        );
    }

    #[test]
    fn preserve_unknown_fields_at_root_keeps_everything() {
        let s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let obj = cr(json!({"whatever": [1, {"a": null}]}));
        let n = normalize_custom(&s, &obj).unwrap();
        assert_eq!(n.object, obj);
        assert!(n.unknown_fields.is_empty());
        // An object schema with no properties and no preservation prunes everything under it.
        let s = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let n = normalize_custom(&s, &cr(json!({"a": 1}))).unwrap();
        assert_eq!(n.unknown_fields, vec!["spec.a"]);
        assert_eq!(n.object["spec"], json!({}));
        assert!(normalize_custom(&s, &json!([1])).is_err());
    }
}
