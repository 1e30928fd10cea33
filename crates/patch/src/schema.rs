//! The patch metadata of the built-in Kubernetes types, kept as data in one place.
//!
//! Strategic merge patch needs each list field's `patchStrategy`/`patchMergeKey` (the Go struct
//! tags, published as `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key`), and
//! server-side apply needs `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` plus the
//! `structType`/`mapType` markers. The two can differ (container ports merge by `containerPort`
//! under SMP but are keyed by `containerPort`+`protocol` under SSA), so every list records both.
//! Fields that are not listed behave as Kubernetes' defaults: objects are merged field by field,
//! lists are replaced (SMP) or owned atomically (SSA).

use serde_json::Value;

/// How strategic merge patch treats a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpList {
    /// No patch strategy: the patch list replaces the live list.
    Replace,
    /// `patchStrategy:"merge"` on a list of scalars: the lists are merged as sets.
    MergePrimitive,
    /// `patchStrategy:"merge"` with `patchMergeKey`: elements are merged by this key.
    MergeKey(&'static str),
}

/// How server-side apply owns a list field (`x-kubernetes-list-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsaList {
    /// Owned and replaced as a whole.
    Atomic,
    /// A set of scalars: each value is owned separately (`v:` path elements).
    Set,
    /// A list of objects keyed by these fields (`k:` path elements).
    Map(&'static [&'static str]),
}

/// The shape of one field, enough to drive both patch engines.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A struct (or an object of unknown schema when the type is `None`): merged field by field.
    Object(Option<&'static TypeDef>),
    /// A `map[string]T` (labels, resources.limits ...): merged key by key; SSA marks it with `.`.
    Map,
    /// A struct or map that server-side apply owns as a whole (`structType`/`mapType: atomic`).
    AtomicObject,
    /// A list field.
    List {
        /// Strategic merge patch behaviour.
        smp: SmpList,
        /// Server-side apply behaviour.
        ssa: SsaList,
        /// The element type when elements are objects.
        elem: Option<&'static TypeDef>,
    },
}

/// A named Go struct of the Kubernetes API: only the fields whose behaviour differs from the default.
#[derive(Debug)]
pub struct TypeDef {
    /// `(json field name, shape)` pairs.
    pub fields: &'static [(&'static str, Shape)],
}

impl TypeDef {
    /// The shape of a field of this type; unknown fields get the default shape.
    pub fn field(&self, name: &str) -> Shape {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .unwrap_or(Shape::Object(None))
    }
}

/// The shape of `name` inside an object of type `ty` (`None` = unknown schema).
pub fn field_shape(ty: Option<&'static TypeDef>, name: &str) -> Shape {
    match ty {
        Some(t) => t.field(name),
        None => Shape::Object(None),
    }
}

const fn obj(t: &'static TypeDef) -> Shape {
    Shape::Object(Some(t))
}

const fn merge_list(
    key: &'static str,
    ssa: &'static [&'static str],
    elem: Option<&'static TypeDef>,
) -> Shape {
    Shape::List {
        smp: SmpList::MergeKey(key),
        ssa: SsaList::Map(ssa),
        elem,
    }
}

/// A list that SMP replaces but SSA keys (listType=map without a patch strategy).
const fn ssa_map_list(keys: &'static [&'static str], elem: Option<&'static TypeDef>) -> Shape {
    Shape::List {
        smp: SmpList::Replace,
        ssa: SsaList::Map(keys),
        elem,
    }
}

const ATOMIC: Shape = Shape::List {
    smp: SmpList::Replace,
    ssa: SsaList::Atomic,
    elem: None,
};
const PRIMITIVE_SET: Shape = Shape::List {
    smp: SmpList::MergePrimitive,
    ssa: SsaList::Set,
    elem: None,
};
/// `conditions` of most status types: `patchStrategy:"merge" patchMergeKey:"type"`, listType=map.
const CONDITIONS: Shape = merge_list("type", &["type"], None);

/// metav1.ObjectMeta.
pub static OBJECT_META: TypeDef = TypeDef {
    fields: &[
        ("labels", Shape::Map),
        ("annotations", Shape::Map),
        ("finalizers", PRIMITIVE_SET),
        ("ownerReferences", merge_list("uid", &["uid"], None)),
        ("managedFields", ATOMIC),
    ],
};

/// metav1.LabelSelector is `structType=atomic`.
const SELECTOR: Shape = Shape::AtomicObject;

static RESOURCE_REQUIREMENTS: TypeDef = TypeDef {
    fields: &[
        ("limits", Shape::Map),
        ("requests", Shape::Map),
        ("claims", ssa_map_list(&["name"], None)),
    ],
};

static CONTAINER: TypeDef = TypeDef {
    fields: &[
        (
            "ports",
            merge_list("containerPort", &["containerPort", "protocol"], None),
        ),
        ("env", merge_list("name", &["name"], None)),
        (
            "volumeMounts",
            merge_list("mountPath", &["mountPath"], None),
        ),
        (
            "volumeDevices",
            merge_list("devicePath", &["devicePath"], None),
        ),
        ("resources", obj(&RESOURCE_REQUIREMENTS)),
        ("command", ATOMIC),
        ("args", ATOMIC),
        ("envFrom", ATOMIC),
        ("resizePolicy", ATOMIC),
    ],
};

static POD_SPEC: TypeDef = TypeDef {
    fields: &[
        (
            "containers",
            merge_list("name", &["name"], Some(&CONTAINER)),
        ),
        (
            "initContainers",
            merge_list("name", &["name"], Some(&CONTAINER)),
        ),
        (
            "ephemeralContainers",
            merge_list("name", &["name"], Some(&CONTAINER)),
        ),
        // patchStrategy:"merge,retainKeys"; the server applies `$retainKeys` wherever it appears.
        ("volumes", merge_list("name", &["name"], None)),
        ("imagePullSecrets", merge_list("name", &["name"], None)),
        ("hostAliases", merge_list("ip", &["ip"], None)),
        (
            "topologySpreadConstraints",
            merge_list("topologyKey", &["topologyKey", "whenUnsatisfiable"], None),
        ),
        ("resourceClaims", merge_list("name", &["name"], None)),
        ("schedulingGates", merge_list("name", &["name"], None)),
        ("tolerations", ATOMIC),
        ("readinessGates", ATOMIC),
        ("nodeSelector", Shape::Map),
        ("overhead", Shape::Map),
    ],
};

static POD_TEMPLATE_SPEC: TypeDef = TypeDef {
    fields: &[("metadata", obj(&OBJECT_META)), ("spec", obj(&POD_SPEC))],
};

static POD_STATUS: TypeDef = TypeDef {
    fields: &[
        ("conditions", CONDITIONS),
        ("podIPs", merge_list("ip", &["ip"], None)),
        ("hostIPs", merge_list("ip", &["ip"], None)),
        ("resourceClaimStatuses", merge_list("name", &["name"], None)),
        ("containerStatuses", ATOMIC),
        ("initContainerStatuses", ATOMIC),
        ("ephemeralContainerStatuses", ATOMIC),
    ],
};

static STATUS_WITH_CONDITIONS: TypeDef = TypeDef {
    fields: &[("conditions", CONDITIONS)],
};

static POD: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&POD_SPEC)),
        ("status", obj(&POD_STATUS)),
    ],
};

static POD_TEMPLATE: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("template", obj(&POD_TEMPLATE_SPEC)),
    ],
};

static WORKLOAD_SPEC: TypeDef = TypeDef {
    fields: &[
        ("template", obj(&POD_TEMPLATE_SPEC)),
        ("selector", SELECTOR),
        ("volumeClaimTemplates", ATOMIC),
    ],
};

/// Deployment, ReplicaSet, StatefulSet, DaemonSet: same list metadata where it matters.
static WORKLOAD: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&WORKLOAD_SPEC)),
        ("status", obj(&STATUS_WITH_CONDITIONS)),
    ],
};

static RC_SPEC: TypeDef = TypeDef {
    fields: &[
        ("template", obj(&POD_TEMPLATE_SPEC)),
        ("selector", Shape::Map),
    ],
};

static REPLICATION_CONTROLLER: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&RC_SPEC)),
        ("status", obj(&STATUS_WITH_CONDITIONS)),
    ],
};

static JOB_SPEC: TypeDef = TypeDef {
    fields: &[
        ("template", obj(&POD_TEMPLATE_SPEC)),
        ("selector", SELECTOR),
    ],
};

static JOB_STATUS: TypeDef = TypeDef {
    // JobStatus.conditions: patchStrategy merge/type, but listType=atomic.
    fields: &[(
        "conditions",
        Shape::List {
            smp: SmpList::MergeKey("type"),
            ssa: SsaList::Atomic,
            elem: None,
        },
    )],
};

static JOB: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&JOB_SPEC)),
        ("status", obj(&JOB_STATUS)),
    ],
};

static JOB_TEMPLATE_SPEC: TypeDef = TypeDef {
    fields: &[("metadata", obj(&OBJECT_META)), ("spec", obj(&JOB_SPEC))],
};

static CRON_JOB_SPEC: TypeDef = TypeDef {
    fields: &[("jobTemplate", obj(&JOB_TEMPLATE_SPEC))],
};

static CRON_JOB: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&CRON_JOB_SPEC)),
    ],
};

static SERVICE_SPEC: TypeDef = TypeDef {
    fields: &[
        ("ports", merge_list("port", &["port", "protocol"], None)),
        // ServiceSpec.selector is `mapType=atomic`.
        ("selector", Shape::AtomicObject),
        ("clusterIPs", ATOMIC),
        ("externalIPs", ATOMIC),
        ("ipFamilies", ATOMIC),
    ],
};

static SERVICE: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&SERVICE_SPEC)),
        ("status", obj(&STATUS_WITH_CONDITIONS)),
    ],
};

static NODE_SPEC: TypeDef = TypeDef {
    fields: &[
        ("podCIDRs", PRIMITIVE_SET),
        // NodeSpec.taints has no patch strategy: it is replaced as a whole.
        ("taints", ATOMIC),
    ],
};

static NODE_STATUS: TypeDef = TypeDef {
    fields: &[
        ("conditions", CONDITIONS),
        (
            "addresses",
            Shape::List {
                smp: SmpList::MergeKey("type"),
                ssa: SsaList::Atomic,
                elem: None,
            },
        ),
        ("capacity", Shape::Map),
        ("allocatable", Shape::Map),
        ("images", ATOMIC),
        ("volumesInUse", ATOMIC),
        ("volumesAttached", ATOMIC),
    ],
};

static NODE: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&NODE_SPEC)),
        ("status", obj(&NODE_STATUS)),
    ],
};

static PVC_SPEC: TypeDef = TypeDef {
    fields: &[
        ("accessModes", ATOMIC),
        ("selector", SELECTOR),
        ("resources", obj(&RESOURCE_REQUIREMENTS)),
    ],
};

static PVC: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("spec", obj(&PVC_SPEC)),
        ("status", obj(&STATUS_WITH_CONDITIONS)),
    ],
};

static SERVICE_ACCOUNT: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("secrets", merge_list("name", &["name"], None)),
        ("imagePullSecrets", ATOMIC),
    ],
};

static CONFIG_DATA: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("data", Shape::Map),
        ("binaryData", Shape::Map),
        ("stringData", Shape::Map),
    ],
};

/// Any object: only its metadata is known (CRDs and built-ins without merge lists).
pub static GENERIC: TypeDef = TypeDef {
    fields: &[("metadata", obj(&OBJECT_META))],
};

static WITH_CONDITIONS: TypeDef = TypeDef {
    fields: &[
        ("metadata", obj(&OBJECT_META)),
        ("status", obj(&STATUS_WITH_CONDITIONS)),
    ],
};

/// Built-in kinds by API group (`""` = core). The type is `None` when only metadata matters.
static BUILTIN: &[(&str, &str, &TypeDef)] = &[
    ("", "Pod", &POD),
    ("", "PodTemplate", &POD_TEMPLATE),
    ("", "ReplicationController", &REPLICATION_CONTROLLER),
    ("", "Service", &SERVICE),
    ("", "Node", &NODE),
    ("", "Namespace", &WITH_CONDITIONS),
    ("", "PersistentVolumeClaim", &PVC),
    ("", "PersistentVolume", &GENERIC),
    ("", "ServiceAccount", &SERVICE_ACCOUNT),
    ("", "ConfigMap", &CONFIG_DATA),
    ("", "Secret", &CONFIG_DATA),
    ("", "Endpoints", &GENERIC),
    ("", "Event", &GENERIC),
    ("", "LimitRange", &GENERIC),
    ("", "ResourceQuota", &GENERIC),
    ("", "Binding", &GENERIC),
    ("", "ComponentStatus", &GENERIC),
    ("apps", "Deployment", &WORKLOAD),
    ("apps", "ReplicaSet", &WORKLOAD),
    ("apps", "StatefulSet", &WORKLOAD),
    ("apps", "DaemonSet", &WORKLOAD),
    ("apps", "ControllerRevision", &GENERIC),
    ("batch", "Job", &JOB),
    ("batch", "CronJob", &CRON_JOB),
    ("autoscaling", "HorizontalPodAutoscaler", &WITH_CONDITIONS),
    ("autoscaling", "Scale", &GENERIC),
    ("discovery.k8s.io", "EndpointSlice", &GENERIC),
    ("coordination.k8s.io", "Lease", &GENERIC),
    ("events.k8s.io", "Event", &GENERIC),
    ("networking.k8s.io", "Ingress", &GENERIC),
    ("networking.k8s.io", "IngressClass", &GENERIC),
    ("networking.k8s.io", "NetworkPolicy", &GENERIC),
    ("policy", "PodDisruptionBudget", &WITH_CONDITIONS),
    ("policy", "Eviction", &GENERIC),
    ("rbac.authorization.k8s.io", "Role", &GENERIC),
    ("rbac.authorization.k8s.io", "ClusterRole", &GENERIC),
    ("rbac.authorization.k8s.io", "RoleBinding", &GENERIC),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", &GENERIC),
    ("storage.k8s.io", "StorageClass", &GENERIC),
    ("storage.k8s.io", "CSIDriver", &GENERIC),
    ("storage.k8s.io", "CSINode", &GENERIC),
    ("storage.k8s.io", "VolumeAttachment", &GENERIC),
    ("scheduling.k8s.io", "PriorityClass", &GENERIC),
    ("node.k8s.io", "RuntimeClass", &GENERIC),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        &WITH_CONDITIONS,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        &GENERIC,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        &GENERIC,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        &GENERIC,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        &GENERIC,
    ),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        &WITH_CONDITIONS,
    ),
    ("apiregistration.k8s.io", "APIService", &WITH_CONDITIONS),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        &WITH_CONDITIONS,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        &WITH_CONDITIONS,
    ),
];

/// The API group of an `apiVersion` (`"v1"` → `""`, `"apps/v1"` → `"apps"`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// The schema of a built-in kind, or `None` for kinds the API server does not compile in (CRDs).
pub fn builtin_type(api_version: &str, kind: &str) -> Option<&'static TypeDef> {
    let group = group_of(api_version);
    BUILTIN
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, t)| *t)
}

/// The schema used by server-side apply: built-ins get theirs, anything else the generic one.
pub fn apply_type(api_version: &str, kind: &str) -> &'static TypeDef {
    builtin_type(api_version, kind).unwrap_or(&GENERIC)
}

/// Kinds whose main resource ignores `status` (it is written through the `/status` subresource).
pub fn has_status_subresource(api_version: &str, kind: &str) -> bool {
    let group = group_of(api_version);
    builtin_type(api_version, kind).is_some()
        && !matches!(
            (group, kind),
            (
                "",
                "ConfigMap" | "Secret" | "ServiceAccount" | "Endpoints" | "Event" | "LimitRange"
            ) | ("", "Binding" | "PodTemplate" | "ComponentStatus")
                | ("apps", "ControllerRevision")
                | ("discovery.k8s.io", "EndpointSlice")
                | ("coordination.k8s.io", "Lease")
                | ("events.k8s.io", "Event")
                | ("rbac.authorization.k8s.io", _)
                | ("storage.k8s.io", "StorageClass" | "CSIDriver" | "CSINode")
                | ("scheduling.k8s.io", _)
                | ("node.k8s.io", _)
                | ("networking.k8s.io", "IngressClass" | "NetworkPolicy")
                | (
                    "admissionregistration.k8s.io",
                    "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
                )
        )
}

/// The schema default of a list-map key field, used when an element omits it
/// (structured-merge-diff fills `protocol: TCP` for ports keyed by `containerPort`+`protocol`).
pub fn key_default(field: &str) -> Option<Value> {
    match field {
        "protocol" => Some(Value::String("TCP".to_owned())),
        _ => None,
    }
}
