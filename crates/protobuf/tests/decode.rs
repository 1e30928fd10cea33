//! Round trips real protobuf bodies, built with k8s-pb exactly as client-go frames them, through
//! `decode`, and checks the JSON against what Kubernetes' JSON encoding gives for the same object.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use k8s_protobuf::{DecodeError, decode, has_envelope};
use prost::Message;
use serde_json::json;

/// Frames `object` as client-go's protobuf serializer does: magic, then runtime.Unknown with the
/// typeMeta, the raw object bytes and empty contentEncoding/contentType (gogo writes empty strings).
fn envelope<M: Message>(api_version: &str, kind: &str, object: &M) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    unknown.encode(&mut body).unwrap();
    body
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// ObjectMeta as gogo marshals a Go ObjectMeta with only name/labels set: every non-pointer field is
/// on the wire with its zero value, and creationTimestamp is an empty message (the zero time).
fn object_meta(name: &str, pairs: &[(&str, &str)]) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: if name.is_empty() { s("") } else { s(name) },
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: labels(pairs),
        ..Default::default()
    }
}

fn int_or_string_int(v: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: s(""),
    }
}

fn int_or_string_str(v: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(v),
    }
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

#[test]
fn deployment_like_kubectl_create_deployment() {
    // `kubectl create deployment web --image=busybox --replicas=3`, with every non-pointer field zero.
    let container = core::Container {
        name: s("busybox"),
        image: s("busybox"),
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(object_meta("web", &[("app", "web")])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(object_meta("", &[("app", "web")])),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    restart_policy: s(""),
                    dns_policy: s(""),
                    service_account_name: s(""),
                    node_name: s(""),
                    host_network: Some(false),
                    host_pid: Some(false),
                    host_ipc: Some(false),
                    scheduler_name: s(""),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    let body = envelope("apps/v1", "Deployment", &deployment);
    assert!(has_envelope(&body));
    let value = decode(&body).unwrap();
    // What `kubectl create deployment web --image=busybox --replicas=3 --dry-run=client -o json` prints:
    // omitempty zero scalars vanish, non-pointer structs stay as {}, the zero Time is null.
    let expected = json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox", "resources": {}}]}
            },
            "strategy": {}
        },
        "status": {}
    });
    assert_eq!(value, expected);
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(value).unwrap();
    assert_eq!(typed.spec.unwrap().replicas, Some(3));
}

#[test]
fn deployment_with_zero_replicas_keeps_the_explicit_zero() {
    // replicas is *int32: "This is a pointer to distinguish between explicit zero and not specified.
    // Defaults to 1." Dropping it would make the server default it to 1.
    let deployment = apps::Deployment {
        metadata: Some(object_meta("web", &[])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    let value = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
    assert_eq!(value["spec"], json!({"replicas": 0}));
}

#[test]
fn service_ports_with_int_and_string_target_ports() {
    let port = |name: &str, port: i32, target: IntOrString| core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        port: Some(port),
        target_port: Some(target),
        node_port: Some(0),
        ..Default::default()
    };
    let service = core::Service {
        metadata: Some(object_meta("web", &[("app", "web")])),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port("80-8080", 80, int_or_string_int(8080)),
                port("https", 443, int_or_string_str("https")),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            external_ips: vec!["10.0.0.9".into()],
            session_affinity: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let value = decode(&envelope("v1", "Service", &service)).unwrap();
    assert_eq!(
        value["spec"],
        json!({
            "ports": [
                {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"}
            ],
            "selector": {"app": "web"},
            "type": "ClusterIP",
            "externalIPs": ["10.0.0.9"]
        })
    );
    assert_eq!(value["status"], json!({"loadBalancer": {}}));
    let typed: k8s_openapi::api::core::v1::Service = serde_json::from_value(value).unwrap();
    let ports = typed.spec.unwrap().ports.unwrap();
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as Ios;
    assert_eq!(ports[0].target_port, Some(Ios::Int(8080)));
    assert_eq!(ports[1].target_port, Some(Ios::String("https".into())));
}

#[test]
fn secret_data_is_base64() {
    // Secret.data is map[string][]byte; Go's JSON encodes []byte as standard base64.
    let secret = core::Secret {
        metadata: Some(object_meta("creds", &[])),
        data: [("password".to_string(), b"s3cr\xfft".to_vec())]
            .into_iter()
            .collect(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
        immutable: None,
    };
    let value = decode(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(value["data"], json!({"password": "czNjcv90"}));
    assert_eq!(value["type"], "Opaque");
    let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(value).unwrap();
    assert_eq!(typed.data.unwrap()["password"].0, b"s3cr\xfft".to_vec());
}

#[test]
fn configmap_binary_data_and_immutable_false() {
    let cm = core::ConfigMap {
        metadata: Some(object_meta("cfg", &[])),
        immutable: Some(false),
        data: labels(&[("a", "b"), ("empty", "")]),
        binary_data: [("bin".to_string(), vec![0u8, 1, 2])].into_iter().collect(),
    };
    let value = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
    // immutable is *bool: an explicit false survives. Map values are kept even when empty.
    assert_eq!(value["immutable"], json!(false));
    assert_eq!(value["data"], json!({"a": "b", "empty": ""}));
    assert_eq!(value["binaryData"], json!({"bin": "AAEC"}));
    let typed: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(value).unwrap();
    assert_eq!(typed.binary_data.unwrap()["bin"].0, vec![0, 1, 2]);
}

fn pod_template(restart: &str) -> core::PodTemplateSpec {
    core::PodTemplateSpec {
        metadata: Some(object_meta("", &[])),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("pi"),
                image: s("perl"),
                command: vec!["perl".into(), "-e".into(), "print 1".into()],
                ..Default::default()
            }],
            restart_policy: s(restart),
            ..Default::default()
        }),
    }
}

#[test]
fn job_keeps_pointer_zero_backoff_limit() {
    let job = batch::Job {
        metadata: Some(object_meta("pi", &[])),
        spec: Some(batch::JobSpec {
            template: Some(pod_template("Never")),
            backoff_limit: Some(0),
            completions: Some(2),
            ..Default::default()
        }),
        status: None,
    };
    let value = decode(&envelope("batch/v1", "Job", &job)).unwrap();
    assert_eq!(value["spec"]["backoffLimit"], json!(0));
    assert_eq!(value["spec"]["completions"], json!(2));
    assert_eq!(value["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let typed: k8s_openapi::api::batch::v1::Job = serde_json::from_value(value).unwrap();
    assert_eq!(typed.spec.unwrap().backoff_limit, Some(0));
}

#[test]
fn cronjob() {
    let cronjob = batch::CronJob {
        metadata: Some(object_meta("tick", &[])),
        spec: Some(batch::CronJobSpec {
            schedule: s("*/1 * * * *"),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(object_meta("tick", &[])),
                spec: Some(batch::JobSpec {
                    template: Some(pod_template("OnFailure")),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus::default()),
    };
    let value = decode(&envelope("batch/v1", "CronJob", &cronjob)).unwrap();
    assert_eq!(value["spec"]["schedule"], "*/1 * * * *");
    assert_eq!(
        value["spec"]["jobTemplate"]["metadata"],
        json!({"name": "tick", "creationTimestamp": null})
    );
    assert_eq!(value["status"], json!({}));
    let typed: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(value).unwrap();
    let template = typed.spec.unwrap().job_template.spec.unwrap().template;
    assert_eq!(
        template.spec.unwrap().restart_policy.as_deref(),
        Some("OnFailure")
    );
}

#[test]
fn namespace() {
    let ns = core::Namespace {
        metadata: Some(object_meta("team-a", &[])),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let value = decode(&envelope("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        value,
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "team-a", "creationTimestamp": null}, "spec": {}, "status": {}})
    );
    let _: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(value).unwrap();
}

#[test]
fn pod_with_resources_probes_and_security_context() {
    let probe_handler = |handler: core::ProbeHandler| core::Probe {
        handler: Some(handler),
        initial_delay_seconds: Some(5),
        timeout_seconds: Some(0),
        period_seconds: Some(10),
        success_threshold: Some(0),
        failure_threshold: Some(0),
        termination_grace_period_seconds: None,
    };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            deletion_grace_period_seconds: Some(30),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("web"),
                image: s("nginx"),
                ports: vec![core::ContainerPort {
                    container_port: Some(80),
                    protocol: s("TCP"),
                    host_port: Some(0),
                    ..Default::default()
                }],
                resources: Some(core::ResourceRequirements {
                    limits: [
                        ("cpu".into(), quantity("500m")),
                        ("memory".into(), quantity("128Mi")),
                    ]
                    .into(),
                    requests: [("cpu".into(), quantity("250m"))].into(),
                    claims: vec![],
                }),
                liveness_probe: Some(probe_handler(core::ProbeHandler {
                    http_get: Some(core::HttpGetAction {
                        path: s("/healthz"),
                        port: Some(int_or_string_int(8080)),
                        host: s(""),
                        scheme: s("HTTP"),
                        http_headers: vec![],
                    }),
                    ..Default::default()
                })),
                readiness_probe: Some(probe_handler(core::ProbeHandler {
                    exec: Some(core::ExecAction {
                        command: vec!["cat".into(), "/ready".into()],
                    }),
                    ..Default::default()
                })),
                security_context: Some(core::SecurityContext {
                    run_as_user: Some(0),
                    allow_privilege_escalation: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    let value = decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        value["metadata"]["creationTimestamp"],
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(value["metadata"]["deletionGracePeriodSeconds"], 30);
    let container = &value["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}})
    );
    // Probe embeds ProbeHandler (`json:",inline"`): httpGet/exec sit next to initialDelaySeconds.
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 5, "periodSeconds": 10})
    );
    assert_eq!(
        container["readinessProbe"]["exec"],
        json!({"command": ["cat", "/ready"]})
    );
    // containerPort is required (no omitempty); hostPort 0 is omitted.
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    // Pointer fields whose zero means something: root user, no service links, immediate kill.
    assert_eq!(
        container["securityContext"],
        json!({"runAsUser": 0, "allowPrivilegeEscalation": false})
    );
    assert_eq!(value["spec"]["enableServiceLinks"], false);
    assert_eq!(value["spec"]["terminationGracePeriodSeconds"], 0);
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(value).unwrap();
    let spec = typed.spec.unwrap();
    let limits = spec.containers[0]
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "128Mi");
}

#[test]
fn lease_micro_time() {
    // MicroTime marshals as RFC 3339 with exactly six fractional digits, in UTC.
    let lease = coordination::Lease {
        metadata: Some(object_meta("node-a", &[])),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-a"),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let value = decode(&envelope("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(value["spec"]["renewTime"], "2023-11-14T22:13:20.123456Z");
    let _: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(value).unwrap();
}

#[test]
fn controller_revision_raw_extension_is_embedded_json() {
    let revision = apps::ControllerRevision {
        metadata: Some(object_meta("rev", &[])),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"x":1}}"#.to_vec()),
        }),
        revision: Some(2),
    };
    let value = decode(&envelope("apps/v1", "ControllerRevision", &revision)).unwrap();
    assert_eq!(value["data"], json!({"spec": {"x": 1}}));
    assert_eq!(value["revision"], 2);
}

#[test]
fn crd_schema_special_forms() {
    let props = |ty: &str| apiext::JsonSchemaProps {
        r#type: s(ty),
        ..Default::default()
    };
    let mut spec_props = props("object");
    spec_props
        .properties
        .insert("size".into(), props("integer"));
    spec_props.additional_properties = Some(Box::new(apiext::JsonSchemaPropsOrBool {
        allows: Some(false),
        schema: None,
    }));
    spec_props.x_kubernetes_preserve_unknown_fields = Some(true);
    spec_props.default = Some(apiext::Json {
        raw: Some(br#"{"size":1}"#.to_vec()),
    });
    spec_props.items = Some(Box::new(apiext::JsonSchemaPropsOrArray {
        schema: Some(Box::new(props("string"))),
        j_son_schemas: vec![],
    }));
    let crd = apiext::CustomResourceDefinition {
        metadata: Some(object_meta("widgets.example.com", &[])),
        spec: Some(apiext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(apiext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                kind: s("Widget"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(spec_props),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let value = decode(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd,
    ))
    .unwrap();
    let schema = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert_eq!(
        schema,
        &json!({
            "type": "object",
            "default": {"size": 1},
            "items": {"type": "string"},
            "properties": {"size": {"type": "integer"}},
            "additionalProperties": false,
            "x-kubernetes-preserve-unknown-fields": true
        })
    );
    let _: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(value).unwrap();
}

#[test]
fn bad_magic_is_reported() {
    assert!(!has_envelope(b"{\"kind\":\"Pod\"}"));
    assert_eq!(
        decode(b"{\"ki").unwrap_err(),
        DecodeError::BadMagic {
            found: b"{\"ki".to_vec()
        }
    );
    assert_eq!(
        decode(b"k8s").unwrap_err(),
        DecodeError::BadMagic {
            found: b"k8s".to_vec()
        }
    );
}

#[test]
fn truncated_varint_is_reported_with_its_offset() {
    // Key of field 1 (typeMeta), then a length varint whose continuation bit promises more bytes.
    let err = decode(b"k8s\0\x0a\x80").unwrap_err();
    assert_eq!(
        err,
        DecodeError::Truncated {
            what: "varint",
            offset: 5
        }
    );
    assert!(err.to_string().contains("byte 5"), "{err}");
}

#[test]
fn truncated_object_is_reported() {
    let mut body = envelope(
        "v1",
        "Namespace",
        &core::Namespace {
            metadata: Some(object_meta("x", &[])),
            ..Default::default()
        },
    );
    body.truncate(body.len() - 3);
    assert!(matches!(
        decode(&body).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
}

#[test]
fn unknown_kind_is_reported() {
    let err = decode(&envelope(
        "example.com/v1",
        "Widget",
        &core::Namespace::default(),
    ))
    .unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"no protobuf schema for apiVersion "example.com/v1" kind "Widget""#
    );
}

#[test]
fn wrong_wire_type_names_the_field() {
    // Namespace field 1 (metadata) sent as a varint instead of a message.
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![0x08, 0x01]),
        content_encoding: None,
        content_type: None,
    };
    let mut body = b"k8s\0".to_vec();
    unknown.encode(&mut body).unwrap();
    let err = decode(&body).unwrap_err();
    assert!(
        matches!(&err, DecodeError::WrongWireType { path, number: 1, .. } if path == "metadata"),
        "{err}"
    );
}

#[test]
fn compressed_envelope_is_refused() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![]),
        content_encoding: s("gzip"),
        content_type: None,
    };
    let mut body = b"k8s\0".to_vec();
    unknown.encode(&mut body).unwrap();
    assert!(matches!(
        decode(&body).unwrap_err(),
        DecodeError::UnsupportedEncoding { .. }
    ));
}

#[test]
fn supported_kinds_cover_the_required_groups() {
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("v1", "Node"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "ServiceAccount"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "CronJob"),
        ("autoscaling/v1", "HorizontalPodAutoscaler"),
        ("autoscaling/v1", "Scale"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("networking.k8s.io/v1", "Ingress"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("authentication.k8s.io/v1", "TokenRequest"),
    ] {
        assert!(
            k8s_protobuf::supports(api_version, kind),
            "{api_version} {kind}"
        );
    }
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let mut body = b"k8s\0".to_vec();
        body.extend_from_slice(&bytes);
        let _ = decode(&body);
    }

    #[test]
    fn random_object_bytes_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        // Random bytes inside a valid envelope exercise the schema walk itself.
        for (api_version, kind) in [("apps/v1", "Deployment"), ("v1", "Pod"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition")] {
            let unknown = Unknown {
                type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
                raw: Some(raw.clone()),
                content_encoding: None,
                content_type: None,
            };
            let mut body = b"k8s\0".to_vec();
            unknown.encode(&mut body).unwrap();
            let _ = decode(&body);
        }
    }
}
