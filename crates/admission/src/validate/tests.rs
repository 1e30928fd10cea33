//! Table-driven tests on realistic manifests, run through the API server's pipeline:
//! normalize → apply_defaults → validate. Expected messages are Kubernetes' (v1.33) wording.

use crate::{apply_defaults, normalize, validate, validate_name};
use serde_json::{Value, json};

fn gv(group: &str) -> &'static str {
    match group {
        "autoscaling" => "v2",
        _ => "v1",
    }
}

/// The messages Kubernetes would return for this create (or update) request.
fn check(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
    let mut n = normalize(group, gv(group), kind, obj).unwrap().object;
    apply_defaults(group, kind, &mut n);
    let old = old.map(|o| {
        let mut o = normalize(group, gv(group), kind, o).unwrap().object;
        apply_defaults(group, kind, &mut o);
        o
    });
    validate(group, kind, &n, old.as_ref())
        .iter()
        .map(|e| e.message())
        .collect()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80, "name": "http"}]}]}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
}

fn with(mut base: Value, pointer: &str, v: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = base.pointer_mut(parent).unwrap();
    match target {
        Value::Array(a) => {
            let i: usize = key.parse().unwrap();
            a[i] = v;
        }
        Value::Object(m) => {
            if v.is_null() {
                m.remove(key);
            } else {
                m.insert(key.to_string(), v);
            }
        }
        _ => panic!("bad pointer {pointer}"),
    }
    base
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

#[test]
fn valid_manifests_pass() {
    let cases: Vec<(&str, &str, Value)> = vec![
        ("", "Pod", pod()),
        ("apps", "Deployment", deployment()),
        ("", "Service", service()),
        ("", "Namespace", json!({"metadata": {"name": "team-a"}})),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"app.properties": "x=1"}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "s", "namespace": "default"}, "stringData": {"password": "hunter2"}}),
        ),
        (
            "",
            "ServiceAccount",
            json!({"metadata": {"name": "builder", "namespace": "default"}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "pi", "namespace": "default", "uid": "0b7c0f4e-1111-2222-3333-444455556666"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": {"name": "hello", "namespace": "default"}, "spec": {"schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "l", "namespace": "kube-system"}, "spec": {"leaseDurationSeconds": 15}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}}),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.5"]}], "ports": [{"name": "http", "port": 80}]}),
        ),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            json!({"metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
        ),
    ];
    for (g, k, obj) in cases {
        assert_eq!(check(g, k, &obj, None), Vec::<String>::new(), "{k}");
    }
}

#[test]
fn metadata_rules() {
    let cases: Vec<(&str, &str, Value, Vec<String>)> = vec![
        ("", "Pod", with(pod(), "/metadata/name", json!("Web_1")),
            vec![format!("metadata.name: Invalid value: \"Web_1\": {SUBDOMAIN_MSG}")]),
        ("", "Pod", with(pod(), "/metadata/name", Value::Null),
            vec!["metadata.name: Required value: name or generateName is required".into()]),
        ("", "Pod", with(pod(), "/metadata/namespace", Value::Null), vec!["metadata.namespace: Required value".into()]),
        // Namespaces are RFC 1123 labels: dots are rejected with the short message.
        ("", "Namespace", json!({"metadata": {"name": "team.a"}}),
            vec!["metadata.name: Invalid value: \"team.a\": must not contain dots".into()]),
        ("", "Namespace", json!({"metadata": {"name": "a", "namespace": "default"}}),
            vec!["metadata.namespace: Forbidden: not allowed on this type".into()]),
        // Services are DNS-1035 labels: they must start with a letter.
        ("", "Service", with(service(), "/metadata/name", json!("1web")),
            vec!["metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into()]),
        ("", "Pod", with(pod(), "/metadata/labels", json!({"app": "bad value"})),
            vec!["metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into()]),
        ("", "Pod", with(pod(), "/metadata/annotations", json!({"big": "x".repeat(262_142)})),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes".into()]),
        ("", "Pod", with(pod(), "/metadata/finalizers", json!(["orphan", "foregroundDeletion"])),
            vec!["metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set".into()]),
        ("", "Pod", with(pod(), "/metadata/generateName", json!("Web-")),
            vec![format!("metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}")]),
    ];
    for (g, k, obj, want) in cases {
        assert_eq!(check(g, k, &obj, None), want, "{obj}");
    }
    // A name with a trailing dash from generateName is fine as a prefix.
    let generated = with(
        with(pod(), "/metadata/name", json!("web-x7k2p")),
        "/metadata/generateName",
        json!("web-"),
    );
    assert!(check("", "Pod", &generated, None).is_empty());
}

#[test]
fn pod_rules() {
    let c = "/spec/containers/0";
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(pod(), "/spec/containers", json!([])),
            vec!["spec.containers: Required value"],
        ),
        (
            with(pod(), &format!("{c}/image"), Value::Null),
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            with(
                pod(),
                "/spec/containers",
                json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
            ),
            vec!["spec.containers[1].name: Duplicate value: \"a\""],
        ),
        (
            with(pod(), &format!("{c}/ports/0/containerPort"), json!(70000)),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ],
        ),
        (
            with(pod(), &format!("{c}/ports/0/protocol"), json!("ICMP")),
            vec![
                "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ],
        ),
        (
            with(pod(), "/spec/restartPolicy", json!("Sometimes")),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ],
        ),
        (
            with(
                pod(),
                &format!("{c}/volumeMounts"),
                json!([{"name": "data", "mountPath": "/data"}]),
            ),
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
        ),
        (
            with(
                pod(),
                &format!("{c}/resources"),
                json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
            ),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            ],
        ),
        (
            with(pod(), &format!("{c}/ports/0/name"), json!("HTTP")),
            vec![
                "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(check("", "Pod", &obj, None), want, "{obj}");
    }
    let bad_name = with(pod(), &format!("{c}/name"), json!("Nginx"));
    assert_eq!(
        check("", "Pod", &bad_name, None),
        vec![format!(
            "spec.containers[0].name: Invalid value: \"Nginx\": {LABEL_MSG}"
        )]
    );
}

#[test]
fn pod_updates_only_change_images_deadlines_and_tolerations() {
    let old = with(pod(), "/metadata/uid", json!("u1"));
    let new_image = with(old.clone(), "/spec/containers/0/image", json!("nginx:1.28"));
    assert!(check("", "Pod", &new_image, Some(&old)).is_empty());
    let new_labels = with(old.clone(), "/metadata/labels", json!({"app": "debug"}));
    assert!(check("", "Pod", &new_labels, Some(&old)).is_empty());
    let new_port = with(
        old.clone(),
        "/spec/containers/0/ports/0/containerPort",
        json!(81),
    );
    let errs = check("", "Pod", &new_port, Some(&old));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{errs:?}");
    let new_uid = with(old.clone(), "/metadata/uid", json!("u2"));
    assert_eq!(
        check("", "Pod", &new_uid, Some(&old)),
        vec!["metadata.uid: Invalid value: \"u2\": field is immutable"]
    );
    let with_deadline = with(old.clone(), "/spec/activeDeadlineSeconds", json!(30));
    let raised = with(old.clone(), "/spec/activeDeadlineSeconds", json!(60));
    assert_eq!(
        check("", "Pod", &raised, Some(&with_deadline)),
        vec![
            "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"
        ]
    );
}

#[test]
fn controller_rules() {
    let t = "/spec/template";
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "apps",
            "Deployment",
            with(deployment(), "/spec/replicas", json!(-1)),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        // No selector: required, and the nil selector matches nothing (kubectl shows both).
        (
            "apps",
            "Deployment",
            with(deployment(), "/spec/selector", Value::Null),
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "apps",
            "Deployment",
            with(
                deployment(),
                "/spec/selector",
                json!({"matchLabels": {"app": "api"}}),
            ),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "apps",
            "Deployment",
            with(deployment(), "/spec/selector", json!({})),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"],
        ),
        (
            "apps",
            "Deployment",
            with(
                deployment(),
                &format!("{t}/spec/restartPolicy"),
                json!("Never"),
            ),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ],
        ),
        (
            "apps",
            "Deployment",
            with(
                deployment(),
                "/spec/strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}),
            ),
            vec![
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ],
        ),
        (
            "apps",
            "Deployment",
            with(
                deployment(),
                "/spec/strategy",
                json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
            ),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ],
        ),
        (
            "apps",
            "ReplicaSet",
            with(
                with(deployment(), "/kind", json!("ReplicaSet")),
                "/spec/selector",
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}),
            ),
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ],
        ),
        (
            "apps",
            "DaemonSet",
            with(
                with(deployment(), "/kind", json!("DaemonSet")),
                "/spec/replicas",
                Value::Null,
            ),
            vec![],
        ),
        (
            "apps",
            "StatefulSet",
            with(
                with(deployment(), "/kind", json!("StatefulSet")),
                &format!("{t}/spec/activeDeadlineSeconds"),
                json!(10),
            ),
            vec![
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
            ],
        ),
        (
            "",
            "ReplicationController",
            json!({"metadata": {"name": "rc", "namespace": "default"},
            "spec": {"selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "y"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"y\"}: `selector` does not match template `labels`",
            ],
        ),
    ];
    for (g, k, obj, want) in cases {
        assert_eq!(check(g, k, &obj, None), want, "{k} {obj}");
    }
}

#[test]
fn selectors_are_immutable_in_apps_v1() {
    for kind in ["Deployment", "ReplicaSet", "DaemonSet"] {
        let old = with(deployment(), "/kind", json!(kind));
        let new = with(
            with(
                old.clone(),
                "/spec/selector",
                json!({"matchLabels": {"app": "web", "v": "2"}}),
            ),
            "/spec/template/metadata/labels",
            json!({"app": "web", "v": "2"}),
        );
        let errs = check("apps", kind, &new, Some(&old));
        assert_eq!(
            errs,
            vec![
                "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"v\":\"2\"}}: field is immutable"
            ],
            "{kind}"
        );
    }
    let old = with(deployment(), "/kind", json!("StatefulSet"));
    let new = with(
        with(old.clone(), "/spec/serviceName", json!("db")),
        "/spec/replicas",
        json!(5),
    );
    assert_eq!(
        check("apps", "StatefulSet", &new, Some(&old)),
        vec![
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
    let scaled = with(old.clone(), "/spec/replicas", json!(5));
    assert!(check("apps", "StatefulSet", &scaled, Some(&old)).is_empty());
}

#[test]
fn job_and_cronjob_rules() {
    let job = json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
        "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}}});
    // Defaulting made restartPolicy Always; Kubernetes reports it as required for Jobs.
    assert_eq!(
        check("batch", "Job", &job, None),
        vec![
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        ]
    );
    let job = with(job, "/spec/template/spec/restartPolicy", json!("Never"));
    assert!(check("batch", "Job", &job, None).is_empty());
    let changed = with(
        job.clone(),
        "/spec/template/spec/containers/0/image",
        json!("perl:2"),
    );
    let errs = check("batch", "Job", &changed, Some(&job));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("spec.template: Invalid value: ")
            && errs[0].ends_with(": field is immutable"),
        "{errs:?}"
    );
    let no_uid = json!({"metadata": {"name": "pi", "namespace": "default"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}});
    assert_eq!(
        check("batch", "Job", &no_uid, None),
        vec!["spec.selector: Required value"],
        "without a uid no selector can be generated"
    );

    let cron = |schedule: &str, name: &str| {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"schedule": schedule,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}})
    };
    let cases = [
        ("@hourly", "ok", vec![]),
        ("0 0 * * MON-FRI", "ok", vec![]),
        ("* * *", "ok", vec!["spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]".to_string()]),
        ("61 * * * *", "ok", vec!["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61".to_string()]),
        ("TZ=UTC 0 * * * *", "ok", vec!["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string()]),
        ("0 * * * *", &"a".repeat(53), vec![format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "a".repeat(53))]),
    ];
    for (schedule, name, want) in cases {
        assert_eq!(
            check("batch", "CronJob", &cron(schedule, name), None),
            want,
            "{schedule}"
        );
    }
}

#[test]
fn service_rules() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            with(service(), "/spec/ports", json!([])),
            vec!["spec.ports: Required value"],
        ),
        // Headless and ExternalName services need no ports.
        (
            with(
                with(service(), "/spec/ports", json!([])),
                "/spec/clusterIP",
                json!("None"),
            ),
            vec![],
        ),
        (
            json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
            vec![],
        ),
        (
            json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"type": "ExternalName"}}),
            vec!["spec.externalName: Required value"],
        ),
        (
            with(
                service(),
                "/spec/ports",
                json!([{"port": 80}, {"port": 443, "name": "https"}]),
            ),
            vec!["spec.ports[0].name: Required value"],
        ),
        (
            with(
                service(),
                "/spec/ports",
                json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
            ),
            vec!["spec.ports[1]: Duplicate value: {\"protocol\":\"TCP\",\"port\":80}"],
        ),
        (
            with(service(), "/spec/ports/0/port", json!(0)),
            vec!["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
        ),
        (
            with(service(), "/spec/ports/0/nodePort", json!(30080)),
            vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
        ),
        (
            with(service(), "/spec/type", json!("Internal")),
            vec![
                "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(check("", "Service", &obj, None), want, "{obj}");
    }
    let old = with(service(), "/spec/clusterIP", json!("10.96.0.10"));
    let headless = with(service(), "/spec/clusterIP", json!("None"));
    assert_eq!(
        check("", "Service", &headless, Some(&old)),
        vec!["spec.clusterIPs[0]: Invalid value: [\"None\"]: may not change once set"]
    );
    let same = with(old.clone(), "/spec/ports/0/port", json!(81));
    assert!(check("", "Service", &same, Some(&old)).is_empty());
}

#[test]
fn config_map_secret_namespace_lease_hpa_slice_rules() {
    // Keys are checked in sorted order (Go iterates the map in random order; we are deterministic).
    let cm = json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"bad key": "v", "..x": "y"}});
    assert_eq!(
        check("", "ConfigMap", &cm, None),
        vec![
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ]
    );
    let frozen = json!({"metadata": {"name": "cfg", "namespace": "default"}, "immutable": true, "data": {"a": "1"}});
    let edited = with(frozen.clone(), "/data/a", json!("2"));
    assert_eq!(
        check("", "ConfigMap", &edited, Some(&frozen)),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
    let tls = json!({"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}});
    assert_eq!(
        check("", "Secret", &tls, None),
        vec!["data[tls.key]: Required value"]
    );
    let opaque = json!({"metadata": {"name": "s", "namespace": "default"}, "data": {"a": "YQ=="}});
    let retyped = with(opaque.clone(), "/type", json!("kubernetes.io/basic-auth"));
    assert!(check("", "Secret", &retyped, Some(&opaque)).contains(
        &"type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable".to_string()
    ));
    let ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["custom"]}});
    assert_eq!(
        check("", "Namespace", &ns, None),
        vec![
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    let lease = json!({"metadata": {"name": "l", "namespace": "default"}, "spec": {"leaseDurationSeconds": 0}});
    assert_eq!(
        check("coordination.k8s.io", "Lease", &lease, None),
        vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
    let hpa = json!({"metadata": {"name": "h", "namespace": "default"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}});
    assert_eq!(
        check("autoscaling", "HorizontalPodAutoscaler", &hpa, None),
        vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
    );
    let slice = json!({"metadata": {"name": "s", "namespace": "default"}, "addressType": "IPv4", "endpoints": [{"addresses": []}]});
    assert_eq!(
        check("discovery.k8s.io", "EndpointSlice", &slice, None),
        vec!["endpoints[0].addresses: Required value: must contain at least 1 address"]
    );
}

#[test]
fn crd_rules() {
    let crd = json!({"metadata": {"name": "widget.example.com"},
        "spec": {"group": "example", "scope": "Everywhere", "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": false}, {"name": "v2", "served": true, "storage": false,
                "schema": {"openAPIV3Schema": {"type": "string"}}}]}});
    let errs = check(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        &crd,
        None,
    );
    let want_prefixes = [
        "metadata.name: Invalid value: \"widget.example.com\": must be spec.names.plural+\".\"+spec.group",
        "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
        "spec.scope: Unsupported value: \"Everywhere\": supported values: \"Cluster\", \"Namespaced\"",
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
        "spec.versions[1].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root",
        "spec.versions: Invalid value: ",
    ];
    assert_eq!(errs.len(), want_prefixes.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want_prefixes) {
        assert!(e.starts_with(w), "{e} vs {w}");
    }
    assert!(errs[5].ends_with("must have exactly one version marked as storage version"));
}

#[test]
fn validate_name_per_kind() {
    assert!(validate_name("", "Pod", "web.v1").is_ok());
    assert_eq!(
        validate_name("", "Namespace", "a.b"),
        Err("must not contain dots".to_string())
    );
    assert!(validate_name("", "Service", "web.v1").is_err());
    assert!(validate_name("", "Service", "2web").is_err());
    assert_eq!(
        validate_name("apps", "Deployment", "Web"),
        Err(SUBDOMAIN_MSG.to_string())
    );
    assert_eq!(
        validate_name("", "ConfigMap", &"a".repeat(254)),
        Err("must be no more than 253 characters".to_string())
    );
}
