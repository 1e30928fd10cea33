//! Label selector behaviour, table-driven from what Kubernetes' `labels.Parse`,
//! `Requirement.Matches` and `LabelSelectorAsSelector` do.

use labels::{LabelSelector, Operator, SelectorError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn set(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn parses_and_canonicalises_like_kubernetes() {
    // (input, canonical String()): requirements are sorted by key, values in sets
    // sorted, `==` kept as written, whitespace dropped.
    let cases = [
        ("", ""),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("y=a,x=b", "x=b,y=a"),
        ("x in (b,a)", "x in (a,b)"),
        ("x notin ( c , a )", "x notin (a,c)"),
        ("x", "x"),
        ("!x", "!x"),
        ("  x ,  !y  ", "x,!y"),
        ("x>1", "x>1"),
        ("x<10", "x<10"),
        ("x=", "x="),
        ("x in ()", "x in ()"),
        ("x in (,a)", "x in (,a)"),
        ("x=in", "x=in"),
        ("in=notin", "in=notin"),
        (
            "app.kubernetes.io/name=web,tier in (frontend)",
            "app.kubernetes.io/name=web,tier in (frontend)",
        ),
        ("x in (a,a,b)", "x in (a,b)"),
    ];
    for (input, want) in cases {
        let s = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(s.to_string(), want, "input {input:?}");
    }
}

#[test]
fn rejects_what_kubernetes_rejects_with_its_messages() {
    let cases = [
        ("x=a,", "found '', expected: identifier after ','"),
        (
            ",x",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "x y",
            "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "!x=a",
            "unable to parse requirement: found 'x', expected: ',' or 'end of string'",
        ),
        (
            "x in a",
            "unable to parse requirement: found 'a' expected: '('",
        ),
        (
            "x in (a",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "x==(",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        ("x=a=b", "found '=', expected: ',' or 'end of string'"),
    ];
    for (input, want) in cases {
        let err = LabelSelector::parse(input).expect_err(input);
        assert_eq!(err.to_string(), want, "input {input:?}");
    }
}

#[test]
fn validates_keys_and_values() {
    // Keys are qualified names; values at most 63 characters (IsValidLabelValue).
    let long = "a".repeat(64);
    for bad in [
        "-x=a".to_string(),
        "x=-a".to_string(),
        format!("x={long}"),
        format!("{long}=a"),
        "a/b/c=d".to_string(),
        "Example.com/x=a".to_string(),
        "x in (a,-b)".to_string(),
    ] {
        let err = LabelSelector::parse(&bad).expect_err(&bad);
        assert!(
            matches!(err, SelectorError::Requirement(_)),
            "{bad}: {err:?}"
        );
    }
    let err = LabelSelector::parse(&format!("x={long}")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unable to parse requirement: values[0][x]: Invalid value: \"{long}\": must be no more than 63 characters"
        )
    );
    let err = LabelSelector::parse("x_=a").unwrap_err();
    assert!(
        err.to_string().starts_with("unable to parse requirement: key: Invalid value: \"x_\": name part must consist of alphanumeric characters"),
        "{err}"
    );
    assert!(LabelSelector::parse(&format!("x={}", "a".repeat(63))).is_ok());
    assert!(LabelSelector::parse("example.com/My_Key-1.x=V_1.b-2").is_ok());
}

#[test]
fn matches_like_kubernetes() {
    let labels = set(json!({"app": "web", "tier": "frontend", "replicas": "5", "empty": ""}));
    let cases = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=db", false),
        ("app!=db", true),
        ("app!=web", false),
        // != and notin are true when the label is absent.
        ("missing!=x", true),
        ("missing notin (x)", true),
        ("missing=x", false),
        ("missing in (x)", false),
        ("app in (db,web)", true),
        ("app notin (db,web)", false),
        ("app", true),
        ("!app", false),
        ("missing", false),
        ("!missing", true),
        ("replicas>4", true),
        ("replicas>5", false),
        ("replicas<6", true),
        // Gt/Lt need the label present and an integer.
        ("missing>1", false),
        ("app>1", false),
        ("empty=", true),
        ("empty", true),
        ("app=web,tier=frontend", true),
        ("app=web,tier=backend", false),
    ];
    for (sel, want) in cases {
        let s = LabelSelector::parse(sel).unwrap();
        assert_eq!(s.matches(&labels), want, "{sel}");
    }
}

#[test]
fn empty_and_nothing() {
    assert!(LabelSelector::parse("").unwrap().is_empty());
    assert!(!LabelSelector::parse("a").unwrap().is_empty());
    // LabelSelectorAsSelector: null selects nothing, {} selects everything.
    let none = LabelSelector::from_json(&Value::Null).unwrap();
    assert!(!none.matches(&set(json!({"a": "b"}))));
    assert!(!none.is_empty());
    let all = LabelSelector::from_json(&json!({})).unwrap();
    assert!(all.is_empty());
    assert!(all.matches(&set(json!({}))));
}

#[test]
fn from_json_metav1_label_selector() {
    let s = LabelSelector::from_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "cache"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "version", "operator": "Exists"}
        ]
    }))
    .unwrap();
    // Sorted by key, as selector.Add does; matchLabels become `=` requirements.
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env notin (dev),tier in (cache,frontend),version"
    );
    assert!(s.matches(&set(json!({"app": "web", "tier": "cache", "version": "1"}))));
    assert!(!s.matches(&set(json!({"app": "web", "tier": "cache"}))));
    assert!(!s.matches(&set(
        json!({"app": "web", "tier": "cache", "version": "1", "canary": "y"})
    )));
    assert_eq!(s.requirements()[0].operator(), Operator::Equals);

    let err = LabelSelector::from_json(
        &json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"Gt\" is not a valid label selector operator"
    );
    // In with no values is invalid (NewRequirement).
    let err = LabelSelector::from_json(
        &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("values set can't be empty"),
        "{err}"
    );
    // Exists with values is invalid.
    assert!(
        LabelSelector::from_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
        )
        .is_err()
    );
    // matchLabels values are validated as label values.
    assert!(LabelSelector::from_json(&json!({"matchLabels": {"a": "-x"}})).is_err());
}

#[test]
fn from_map_is_an_equality_selector() {
    let s = LabelSelector::from_map(&set(json!({"tier": "fe", "app": "web"})));
    assert_eq!(s.to_string(), "app=web,tier=fe");
    assert!(s.matches(&set(json!({"app": "web", "tier": "fe", "x": "y"}))));
    assert!(!s.matches(&set(json!({"app": "web"}))));
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([a-z0-9_.-]{0,8}[a-z0-9])?",
        "[a-z]{1,5}\\.(io|com)/[A-Za-z]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?",
    ]
    .prop_filter("not a keyword", |k| k != "in" && k != "notin")
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?"
    ]
}

fn set_values(vals: &[String]) -> String {
    let mut v: Vec<&str> = vals
        .iter()
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .collect();
    if v.len() < vals.len() {
        v.insert(0, "");
    }
    v.join(",")
}

fn requirement() -> impl Strategy<Value = String> {
    (
        key(),
        0..9usize,
        proptest::collection::vec(value(), 1..4),
        -50i64..50,
    )
        .prop_map(|(k, op, vals, n)| match op {
            0 => k,
            1 => format!("!{k}"),
            2 => format!("{k}={}", vals[0]),
            3 => format!("{k}=={}", vals[0]),
            4 => format!("{k}!={}", vals[0]),
            // At most one empty value, first: Kubernetes rejects `(,,)` but accepts `(,a)`.
            5 => format!("{k} in ({})", set_values(&vals)),
            6 => format!("{k} notin ({})", set_values(&vals)),
            7 => format!("{k}>{}", n.abs()),
            _ => format!("{k}<{}", n.abs()),
        })
}

proptest! {
    #[test]
    fn display_parse_round_trips(reqs in proptest::collection::vec(requirement(), 0..5)) {
        let text = reqs.join(",");
        let parsed = LabelSelector::parse(&text).unwrap();
        let shown = parsed.to_string();
        let reparsed = LabelSelector::parse(&shown).unwrap();
        prop_assert_eq!(&reparsed, &parsed);
        prop_assert_eq!(reparsed.to_string(), shown);
    }

    #[test]
    fn canonical_form_matches_the_same_sets(
        reqs in proptest::collection::vec(requirement(), 0..4),
        labels in proptest::collection::btree_map(key(), value(), 0..4),
    ) {
        let parsed = LabelSelector::parse(&reqs.join(",")).unwrap();
        let reparsed = LabelSelector::parse(&parsed.to_string()).unwrap();
        let m: Map<String, Value> = labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        prop_assert_eq!(parsed.matches(&m), reparsed.matches(&m));
    }
}
