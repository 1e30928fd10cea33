//! Field selector behaviour, from Kubernetes' `fields.ParseSelector` and the
//! per-kind selectable fields of the API server.

use labels::{FieldSelector, SelectorError, field_value, supported_field, supported_fields};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn parses_terms() {
    let s = FieldSelector::parse("status.phase!=Running,metadata.name=web").unwrap();
    // Kubernetes sorts the raw terms.
    assert_eq!(s.to_string(), "metadata.name=web,status.phase!=Running");
    assert_eq!(
        s.fields().collect::<Vec<_>>(),
        ["metadata.name", "status.phase"]
    );
    assert_eq!(FieldSelector::parse("a==b").unwrap().to_string(), "a=b");
    assert!(FieldSelector::parse("").unwrap().is_empty());
    // Empty terms are skipped.
    assert_eq!(FieldSelector::parse("a=b,,").unwrap().terms().len(), 1);
    // An empty value is allowed.
    assert_eq!(
        FieldSelector::parse("spec.nodeName=").unwrap().terms()[0].value,
        ""
    );
    // Escapes.
    let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
    assert_eq!(s.exact_name(), Some(r"a,b=c\d"));
    assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
}

#[test]
fn rejects_like_kubernetes() {
    let err = FieldSelector::parse("foo").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid selector: 'foo'; can't understand 'foo'"
    );
    let err = FieldSelector::parse(r"a=b\x").unwrap_err();
    assert_eq!(
        err.to_string(),
        r"invalid field selector: invalid escape sequence: \x"
    );
    let err = FieldSelector::parse(r"a=b\").unwrap_err();
    assert_eq!(err, SelectorError::InvalidEscape("\\".into()));
    // An unescaped '=' in the value: Go prints the rune as its number (61).
    let err = FieldSelector::parse("a=b=c").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid field selector: unescaped character in value: 61"
    );
}

#[test]
fn exact_name() {
    assert_eq!(
        FieldSelector::parse("metadata.name=nginx")
            .unwrap()
            .exact_name(),
        Some("nginx")
    );
    assert_eq!(
        FieldSelector::parse("metadata.namespace=default,metadata.name=nginx")
            .unwrap()
            .exact_name(),
        Some("nginx")
    );
    assert_eq!(
        FieldSelector::parse("metadata.name!=nginx")
            .unwrap()
            .exact_name(),
        None
    );
    assert_eq!(
        FieldSelector::parse("status.phase=Running")
            .unwrap()
            .exact_name(),
        None
    );
}

#[test]
fn supported_fields_per_kind() {
    for (g, k, f, want) in [
        ("", "ConfigMap", "metadata.name", true),
        ("", "ConfigMap", "metadata.namespace", true),
        ("", "ConfigMap", "data.x", false),
        ("", "Pod", "spec.nodeName", true),
        ("", "Pod", "status.phase", true),
        ("", "Pod", "status.podIP", true),
        ("", "Pod", "spec.hostNetwork", true),
        ("", "Pod", "spec.containers", false),
        ("", "Event", "involvedObject.uid", true),
        ("", "Event", "reason", true),
        ("", "Secret", "type", true),
        ("", "Node", "spec.unschedulable", true),
        ("", "Namespace", "status.phase", true),
        ("apps", "ReplicaSet", "status.replicas", true),
        ("apps", "Deployment", "status.replicas", false),
        ("", "ReplicationController", "status.replicas", true),
        ("batch", "Job", "status.successful", true),
        ("example.com", "Widget", "spec.size", false),
    ] {
        assert_eq!(supported_field(g, k, f), want, "{g}/{k} {f}");
    }
    assert_eq!(
        supported_fields("", "Secret"),
        ["metadata.name", "metadata.namespace", "type"]
    );
}

#[test]
fn field_values_and_matching() {
    let pod = json!({
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"nodeName": "node-a", "restartPolicy": "Always"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}]}
    });
    assert_eq!(
        field_value("", "Pod", &pod, "spec.nodeName").as_deref(),
        Some("node-a")
    );
    assert_eq!(
        field_value("", "Pod", &pod, "status.podIP").as_deref(),
        Some("10.0.0.5")
    );
    // Absent bools default to false, absent strings to "".
    assert_eq!(
        field_value("", "Pod", &pod, "spec.hostNetwork").as_deref(),
        Some("false")
    );
    assert_eq!(
        field_value("", "Pod", &pod, "status.nominatedNodeName").as_deref(),
        Some("")
    );
    assert_eq!(field_value("", "Pod", &pod, "spec.containers"), None);

    let matches = |s: &str| FieldSelector::parse(s).unwrap().matches("", "Pod", &pod);
    assert!(matches("spec.nodeName=node-a"));
    assert!(matches("status.phase!=Pending,metadata.namespace=default"));
    assert!(!matches("status.phase!=Running"));
    // `kubectl get pods --field-selector spec.nodeName=` lists unscheduled pods only.
    assert!(!matches("spec.nodeName="));
    assert!(matches(""));

    let event = json!({
        "metadata": {"name": "web-1.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
        "reason": "Scheduled", "type": "Normal", "source": {"component": "default-scheduler"}
    });
    let s = FieldSelector::parse(
        "involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.uid=u1",
    )
    .unwrap();
    assert!(s.matches("", "Event", &event));
    assert!(
        !FieldSelector::parse("involvedObject.uid=u2")
            .unwrap()
            .matches("", "Event", &event)
    );
    assert_eq!(
        field_value("", "Event", &event, "source").as_deref(),
        Some("default-scheduler")
    );

    let job = json!({"metadata": {"name": "j"}, "status": {}});
    assert_eq!(
        field_value("batch", "Job", &job, "status.successful").as_deref(),
        Some("0")
    );
    let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
    assert!(
        FieldSelector::parse("spec.unschedulable=true")
            .unwrap()
            .matches("", "Node", &node)
    );
}

proptest! {
    #[test]
    fn display_parse_round_trips(
        terms in proptest::collection::vec(("[a-z]{1,6}(\\.[a-zA-Z]{1,6})?", "[ -~]{0,8}", any::<bool>()), 0..4)
    ) {
        // Build the escaped text by hand, parse it, then Display and parse again.
        let text: Vec<String> = terms.iter().map(|(f, v, neg)| {
            let esc: String = v.chars().flat_map(|c| {
                if matches!(c, '\\' | ',' | '=') { vec!['\\', c] } else { vec![c] }
            }).collect();
            format!("{f}{}{esc}", if *neg { "!=" } else { "=" })
        }).collect();
        let s = FieldSelector::parse(&text.join(",")).unwrap();
        let again = FieldSelector::parse(&s.to_string()).unwrap();
        prop_assert_eq!(&again, &s);
        for (f, v, neg) in &terms {
            prop_assert!(s.terms().iter().any(|t| &t.field == f && &t.value == v && t.negated == *neg));
        }
    }
}
