//! Columns and cells of the built-in kinds, after Kubernetes'
//! `pkg/printers/internalversion/printers.go`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::Column;
use crate::util::{
    arr, at, container_cells, format_label_selector, format_labels, i, join_host_port, len, obj,
    opt_s, s, since,
};

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";
const SELECTOR_DESC: &str = "A label query over pods that should match the replica count.";

const fn c(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: NAME_DESC,
    priority: 0,
};
const AGE: Column = c("Age", "string", AGE_DESC);
const CONTAINERS: Column = wide("Containers", "string", CONTAINERS_DESC);
const IMAGES: Column = wide("Images", "string", IMAGES_DESC);
const SELECTOR: Column = wide("Selector", "string", SELECTOR_DESC);

/// The kinds this module prints, keyed like the API (group, kind).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Pod,
    Node,
    Namespace,
    Service,
    Endpoints,
    EndpointSlice,
    ConfigMap,
    Secret,
    ServiceAccount,
    Event,
    ReplicationController,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    Lease,
    HorizontalPodAutoscaler,
    Default,
}

fn kind_of(group: &str, kind: &str) -> Kind {
    match (group, kind) {
        ("", "Pod") => Kind::Pod,
        ("", "Node") => Kind::Node,
        ("", "Namespace") => Kind::Namespace,
        ("", "Service") => Kind::Service,
        ("", "Endpoints") => Kind::Endpoints,
        ("discovery.k8s.io", "EndpointSlice") => Kind::EndpointSlice,
        ("", "ConfigMap") => Kind::ConfigMap,
        ("", "Secret") => Kind::Secret,
        ("", "ServiceAccount") => Kind::ServiceAccount,
        ("", "Event") => Kind::Event,
        ("", "ReplicationController") => Kind::ReplicationController,
        ("apps", "Deployment") => Kind::Deployment,
        ("apps", "ReplicaSet") => Kind::ReplicaSet,
        ("apps", "DaemonSet") => Kind::DaemonSet,
        ("apps", "StatefulSet") => Kind::StatefulSet,
        ("batch", "Job") => Kind::Job,
        ("batch", "CronJob") => Kind::CronJob,
        ("coordination.k8s.io", "Lease") => Kind::Lease,
        ("autoscaling", "HorizontalPodAutoscaler") => Kind::HorizontalPodAutoscaler,
        _ => Kind::Default,
    }
}

pub(crate) fn columns(group: &str, kind: &str) -> Vec<Column> {
    match kind_of(group, kind) {
        Kind::Pod => vec![
            NAME,
            c(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            c(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
            ),
            c(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            wide(
                "IP",
                "string",
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            wide(
                "Node",
                "string",
                "NodeName indicates in which node this pod is scheduled.",
            ),
            wide(
                "Nominated Node",
                "string",
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            wide(
                "Readiness Gates",
                "string",
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        Kind::Node => vec![
            NAME,
            c("Status", "string", "The status of the node"),
            c("Roles", "string", "The roles of the node"),
            AGE,
            c("Version", "string", "Kubelet Version reported by the node."),
            wide(
                "Internal-IP",
                "string",
                "List of addresses reachable to the node.",
            ),
            wide(
                "External-IP",
                "string",
                "List of addresses reachable to the node.",
            ),
            wide(
                "OS-Image",
                "string",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            wide(
                "Kernel-Version",
                "string",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            wide(
                "Container-Runtime",
                "string",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        Kind::Namespace => vec![
            NAME,
            c("Status", "string", "The status of the namespace"),
            AGE,
        ],
        Kind::Service => vec![
            NAME,
            c(
                "Type",
                "string",
                "type determines how the Service is exposed.",
            ),
            c(
                "Cluster-IP",
                "string",
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            c(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            c(
                "Port(s)",
                "string",
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            wide(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        Kind::Endpoints => vec![
            NAME,
            c(
                "Endpoints",
                "string",
                "The set of all endpoints is the union of all subsets.",
            ),
            AGE,
        ],
        Kind::EndpointSlice => vec![
            NAME,
            c(
                "AddressType",
                "string",
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            c(
                "Ports",
                "string",
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            c(
                "Endpoints",
                "string",
                "endpoints is a list of unique endpoints in this slice.",
            ),
            AGE,
        ],
        Kind::ConfigMap => vec![
            NAME,
            c("Data", "string", "Data contains the configuration data."),
            AGE,
        ],
        Kind::Secret => vec![
            NAME,
            c(
                "Type",
                "string",
                "Used to facilitate programmatic handling of secret data.",
            ),
            c("Data", "string", "Data contains the secret data."),
            AGE,
        ],
        Kind::ServiceAccount => vec![
            NAME,
            c(
                "Secrets",
                "string",
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ],
        Kind::Event => vec![
            c(
                "Last Seen",
                "string",
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            c(
                "Type",
                "string",
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            c(
                "Reason",
                "string",
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            c("Object", "string", "The object that this event is about."),
            wide(
                "Subobject",
                "string",
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
            ),
            wide("Source", "string", "The component reporting this event."),
            c(
                "Message",
                "string",
                "A human-readable description of the status of this operation.",
            ),
            wide(
                "First Seen",
                "string",
                "The time at which the event was first recorded.",
            ),
            wide(
                "Count",
                "string",
                "The number of times this event has occurred.",
            ),
            Column {
                priority: 1,
                ..NAME
            },
        ],
        Kind::ReplicationController => vec![
            NAME,
            c(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas.",
            ),
            c(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas.",
            ),
            c(
                "Ready",
                "integer",
                "The number of ready replicas for this replication controller.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Kind::Deployment => vec![
            NAME,
            c("Ready", "string", "Number of the pod with ready state"),
            c(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            c(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        Kind::ReplicaSet => vec![
            NAME,
            c(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas.",
            ),
            c(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas.",
            ),
            c(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Kind::DaemonSet => vec![
            NAME,
            c(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod.",
            ),
            c(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            c(
                "Ready",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            c(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod",
            ),
            c(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            c(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "A label query over pods that are managed by the daemon set.",
            ),
        ],
        Kind::StatefulSet => vec![
            NAME,
            c("Ready", "string", "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        Kind::Job => vec![
            NAME,
            c("Status", "string", "Status of the job."),
            c(
                "Completions",
                "string",
                "The number of pods which reached phase Succeeded.",
            ),
            c("Duration", "string", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "A label query over pods that should match the pod count.",
            ),
        ],
        Kind::CronJob => vec![
            NAME,
            c(
                "Schedule",
                "string",
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            ),
            c(
                "Timezone",
                "string",
                "The time zone name for the given schedule.",
            ),
            c(
                "Suspend",
                "boolean",
                "This flag tells the controller to suspend subsequent executions.",
            ),
            c(
                "Active",
                "integer",
                "A list of pointers to currently running jobs.",
            ),
            c(
                "Last Schedule",
                "string",
                "Information when was the last time the job was successfully scheduled.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            wide(
                "Selector",
                "string",
                "A label query over pods that should match the pod count.",
            ),
        ],
        Kind::Lease => vec![
            NAME,
            c(
                "Holder",
                "string",
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            AGE,
        ],
        Kind::HorizontalPodAutoscaler => vec![
            NAME,
            c(
                "Reference",
                "string",
                "scaleTargetRef points to the target resource to scale.",
            ),
            c(
                "Targets",
                "string",
                "metrics contains the specifications for which to use to calculate the desired replica count.",
            ),
            c(
                "MinPods",
                "string",
                "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
            ),
            c(
                "MaxPods",
                "string",
                "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
            ),
            c(
                "Replicas",
                "string",
                "currentReplicas is current number of replicas of pods managed by this autoscaler.",
            ),
            AGE,
        ],
        // rest.NewDefaultTableConvertor (also what CustomResourceDefinitions get).
        Kind::Default => vec![NAME, c("Created At", "date", AGE_DESC)],
    }
}

pub(crate) fn cells(group: &str, kind: &str, o: &Value, now: i64) -> Vec<Value> {
    let name = json!(s(o, &["metadata", "name"]));
    let age = || json!(since(opt_s(o, &["metadata", "creationTimestamp"]), now));
    let spec = o.get("spec").unwrap_or(&Value::Null);
    let status = o.get("status").unwrap_or(&Value::Null);
    let template_containers = || container_cells(arr(spec, &["template", "spec", "containers"]));
    match kind_of(group, kind) {
        Kind::Pod => pod_cells(o, now),
        Kind::Node => node_cells(o, now),
        Kind::Namespace => vec![name, json!(s(status, &["phase"])), age()],
        Kind::Service => service_cells(o, now),
        Kind::Endpoints => vec![name, json!(format_endpoints(arr(o, &["subsets"]))), age()],
        Kind::EndpointSlice => vec![
            name,
            json!(s(o, &["addressType"])),
            json!(format_slice_ports(arr(o, &["ports"]))),
            json!(format_slice_endpoints(arr(o, &["endpoints"]))),
            age(),
        ],
        Kind::ConfigMap => vec![
            name,
            json!(len(o, &["data"]) + len(o, &["binaryData"])),
            age(),
        ],
        Kind::Secret => vec![
            name,
            json!(s(o, &["type"])),
            json!(len(o, &["data"])),
            age(),
        ],
        Kind::ServiceAccount => vec![name, json!(len(o, &["secrets"])), age()],
        Kind::Event => event_cells(o, now),
        Kind::ReplicationController => {
            let (names, images) = template_containers();
            vec![
                name,
                json!(replicas(spec)),
                json!(i(status, &["replicas"])),
                json!(i(status, &["readyReplicas"])),
                age(),
                json!(names),
                json!(images),
                json!(format_labels(obj(spec, &["selector"]))),
            ]
        }
        Kind::Deployment => {
            let (names, images) = template_containers();
            // printDeployment uses selector.String() directly: "" when empty.
            let selector = match labels::LabelSelector::from_json(
                spec.get("selector").unwrap_or(&Value::Null),
            ) {
                Ok(sel) => sel.to_string(),
                Err(_) => "<invalid>".to_string(),
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(status, &["readyReplicas"]),
                    replicas(spec)
                )),
                json!(i(status, &["updatedReplicas"])),
                json!(i(status, &["availableReplicas"])),
                age(),
                json!(names),
                json!(images),
                json!(selector),
            ]
        }
        Kind::ReplicaSet => {
            let (names, images) = template_containers();
            vec![
                name,
                json!(replicas(spec)),
                json!(i(status, &["replicas"])),
                json!(i(status, &["readyReplicas"])),
                age(),
                json!(names),
                json!(images),
                json!(format_label_selector(spec.get("selector"))),
            ]
        }
        Kind::DaemonSet => {
            let (names, images) = template_containers();
            vec![
                name,
                json!(i(status, &["desiredNumberScheduled"])),
                json!(i(status, &["currentNumberScheduled"])),
                json!(i(status, &["numberReady"])),
                json!(i(status, &["updatedNumberScheduled"])),
                json!(i(status, &["numberAvailable"])),
                json!(format_labels(obj(
                    spec,
                    &["template", "spec", "nodeSelector"]
                ))),
                age(),
                json!(names),
                json!(images),
                json!(format_label_selector(spec.get("selector"))),
            ]
        }
        Kind::StatefulSet => {
            let (names, images) = template_containers();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(status, &["readyReplicas"]),
                    replicas(spec)
                )),
                age(),
                json!(names),
                json!(images),
            ]
        }
        Kind::Job => job_cells(o, now),
        Kind::CronJob => {
            let job_spec = at(spec, &["jobTemplate", "spec"]).unwrap_or(&Value::Null);
            let (names, images) =
                container_cells(arr(job_spec, &["template", "spec", "containers"]));
            let last = match opt_s(status, &["lastScheduleTime"]) {
                Some(t) => since(Some(t), now),
                None => "<none>".to_string(),
            };
            vec![
                name,
                json!(s(spec, &["schedule"])),
                json!(opt_s(spec, &["timeZone"]).unwrap_or("<none>")),
                json!(
                    at(spec, &["suspend"])
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(len(status, &["active"])),
                json!(last),
                age(),
                json!(names),
                json!(images),
                json!(format_label_selector(job_spec.get("selector"))),
            ]
        }
        Kind::Lease => vec![name, json!(s(spec, &["holderIdentity"])), age()],
        Kind::HorizontalPodAutoscaler => {
            let reference = format!(
                "{}/{}",
                s(spec, &["scaleTargetRef", "kind"]),
                s(spec, &["scaleTargetRef", "name"])
            );
            let min = match at(spec, &["minReplicas"]).and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => "<unset>".to_string(),
            };
            vec![
                name,
                json!(reference),
                json!(format_hpa_metrics(
                    arr(spec, &["metrics"]),
                    arr(status, &["currentMetrics"])
                )),
                json!(min),
                json!(i(spec, &["maxReplicas"])),
                json!(i(status, &["currentReplicas"])),
                age(),
            ]
        }
        Kind::Default => {
            // The default convertor prints the RFC 3339 timestamp itself.
            let created =
                opt_s(o, &["metadata", "creationTimestamp"]).unwrap_or("0001-01-01T00:00:00Z");
            vec![name, json!(created)]
        }
    }
}

/// `spec.replicas`, defaulted to 1 as the API server does on create.
fn replicas(spec: &Value) -> i64 {
    at(spec, &["replicas"]).and_then(Value::as_i64).unwrap_or(1)
}

fn condition_true(status: &Value, type_: &str) -> bool {
    arr(status, &["conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == type_ && s(c, &["status"]) == "True")
}

/// Latest `lastState.terminated.finishedAt` seen so far (Unix seconds).
fn bump_last_restart(last: &mut Option<i64>, cs: &Value) {
    let finished = opt_s(cs, &["lastState", "terminated", "finishedAt"])
        .and_then(crate::util::parse_timestamp);
    if let Some(t) = finished
        && last.is_none_or(|l| t > l)
    {
        *last = Some(t);
    }
}

/// `printPod`: READY, STATUS (phase, init progress, container reasons, Terminating),
/// RESTARTS with the time of the last restart, and the wide columns.
fn pod_cells(o: &Value, now: i64) -> Vec<Value> {
    let spec = o.get("spec").unwrap_or(&Value::Null);
    let status = o.get("status").unwrap_or(&Value::Null);
    let init_containers = arr(spec, &["initContainers"]);
    // Sidecars: init containers with restartPolicy Always count as containers.
    let sidecars: BTreeSet<&str> = init_containers
        .iter()
        .filter(|c| s(c, &["restartPolicy"]) == "Always")
        .map(|c| s(c, &["name"]))
        .collect();
    let total = arr(spec, &["containers"]).len() + sidecars.len();
    let phase = s(status, &["phase"]);
    let mut reason = opt_s(status, &["reason"]).unwrap_or(phase).to_string();
    if arr(status, &["conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let mut restarts = 0;
    let mut ready = 0;
    let mut last_restart: Option<i64> = None;
    let mut sidecar_restarts = 0;
    let mut sidecar_last_restart: Option<i64> = None;
    let mut initializing = false;
    for (idx, cs) in arr(status, &["initContainerStatuses"]).iter().enumerate() {
        restarts += i(cs, &["restartCount"]);
        bump_last_restart(&mut last_restart, cs);
        let is_sidecar = sidecars.contains(s(cs, &["name"]));
        if is_sidecar {
            sidecar_restarts += i(cs, &["restartCount"]);
            bump_last_restart(&mut sidecar_last_restart, cs);
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting_reason = opt_s(cs, &["state", "waiting", "reason"]);
        // A successfully finished init container: look at the next one.
        if terminated.is_some_and(|t| i(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar && at(cs, &["started"]).and_then(Value::as_bool) == Some(true) {
            if at(cs, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match opt_s(t, &["reason"]) {
                Some(r) => format!("Init:{r}"),
                None if i(t, &["signal"]) != 0 => format!("Init:Signal:{}", i(t, &["signal"])),
                None => format!("Init:ExitCode:{}", i(t, &["exitCode"])),
            }
        } else if let Some(w) = waiting_reason.filter(|w| *w != "PodInitializing") {
            format!("Init:{w}")
        } else {
            format!("Init:{idx}/{}", init_containers.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(status, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for cs in arr(status, &["containerStatuses"]).iter().rev() {
            restarts += i(cs, &["restartCount"]);
            bump_last_restart(&mut last_restart, cs);
            let terminated = at(cs, &["state", "terminated"]);
            if let Some(w) = opt_s(cs, &["state", "waiting", "reason"]) {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = match opt_s(t, &["reason"]) {
                    Some(r) => r.to_string(),
                    None if i(t, &["signal"]) != 0 => format!("Signal:{}", i(t, &["signal"])),
                    None => format!("ExitCode:{}", i(t, &["exitCode"])),
                };
            } else if at(cs, &["ready"]).and_then(Value::as_bool) == Some(true)
                && at(cs, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if at(o, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null()) {
        if s(status, &["reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) => format!("{restarts} ({} ago)", crate::human_duration(now - t)),
        None => restarts.to_string(),
    };

    let ip = arr(status, &["podIPs"])
        .first()
        .and_then(|p| opt_s(p, &["ip"]))
        .or_else(|| opt_s(status, &["podIP"]))
        .unwrap_or("<none>");
    let gates = arr(spec, &["readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(status, &["conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let t = s(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| s(c, &["type"]) == t)
                    .is_some_and(|c| s(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(since(opt_s(o, &["metadata", "creationTimestamp"]), now)),
        json!(ip),
        json!(opt_s(spec, &["nodeName"]).unwrap_or("<none>")),
        json!(opt_s(status, &["nominatedNodeName"]).unwrap_or("<none>")),
        json!(gates_cell),
    ]
}

/// `printNode`: Ready/NotReady/Unknown, SchedulingDisabled, roles from labels.
fn node_cells(o: &Value, now: i64) -> Vec<Value> {
    let status = o.get("status").unwrap_or(&Value::Null);
    let mut st: Vec<&str> = Vec::new();
    // Only the Ready condition is shown; a later duplicate wins, as with Go's map.
    if let Some(cond) = arr(status, &["conditions"])
        .iter()
        .rev()
        .find(|c| s(c, &["type"]) == "Ready")
    {
        st.push(if s(cond, &["status"]) == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        st.push("Unknown");
    }
    if at(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        st.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (k, v) in obj(o, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role"
            && let Some(v) = v.as_str().filter(|v| !v.is_empty())
        {
            roles.insert(v.to_string());
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |t: &str| {
        arr(status, &["addresses"])
            .iter()
            .find(|a| s(a, &["type"]) == t)
            .map(|a| s(a, &["address"]))
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |k: &str| {
        opt_s(status, &["nodeInfo", k])
            .unwrap_or("<unknown>")
            .to_string()
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(st.join(",")),
        json!(roles),
        json!(since(opt_s(o, &["metadata", "creationTimestamp"]), now)),
        json!(s(status, &["nodeInfo", "kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// `printService`: type, first cluster IP, external IPs by type, `80/TCP`/`80:30080/TCP`.
fn service_cells(o: &Value, now: i64) -> Vec<Value> {
    let spec = o.get("spec").unwrap_or(&Value::Null);
    let type_ = opt_s(spec, &["type"]).unwrap_or("ClusterIP");
    let cluster_ip = arr(spec, &["clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_s(spec, &["clusterIP"]))
        .unwrap_or("<none>");
    let external_ips: Vec<&str> = arr(spec, &["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match type_ {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            // Server-side tables are generated wide, so the list is not truncated.
            let lb: BTreeSet<&str> = arr(o, &["status", "loadBalancer", "ingress"])
                .iter()
                .filter_map(|ing| opt_s(ing, &["ip"]).or_else(|| opt_s(ing, &["hostname"])))
                .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(spec, &["externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(spec, &["ports"])
        .iter()
        .map(|p| {
            let port = i(p, &["port"]);
            let proto = opt_s(p, &["protocol"]).unwrap_or("TCP");
            match i(p, &["nodePort"]) {
                np if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(type_),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(since(opt_s(o, &["metadata", "creationTimestamp"]), now)),
        json!(format_labels(obj(spec, &["selector"]))),
    ]
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            for a in addresses {
                if list.len() < MAX {
                    list.push(s(a, &["ip"]).to_string());
                }
                count += 1;
            }
        } else {
            for p in ports {
                for a in addresses {
                    if list.len() < MAX {
                        list.push(join_host_port(s(a, &["ip"]), i(p, &["port"])));
                    }
                    count += 1;
                }
            }
        }
    }
    let ret = list.join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

/// `listWithMoreString`: "<unset>" when empty.
fn list_with_more(list: Vec<String>, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

fn format_slice_ports(ports: &[Value]) -> String {
    const MAX: usize = 3;
    let list: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| match at(p, &["port"]).and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => at(p, &["name"])
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    list_with_more(list, ports.len(), MAX)
}

fn format_slice_endpoints(endpoints: &[Value]) -> String {
    const MAX: usize = 3;
    let all: Vec<String> = endpoints
        .iter()
        .flat_map(|e| arr(e, &["addresses"]).iter().filter_map(Value::as_str))
        .map(str::to_string)
        .collect();
    let count = all.len();
    list_with_more(all.into_iter().take(MAX).collect(), count, MAX)
}

/// `printEvent`: LAST SEEN from lastTimestamp, else firstTimestamp, else eventTime,
/// or the series' last observation; OBJECT as `kind/name` lower-cased kind.
fn event_cells(o: &Value, now: i64) -> Vec<Value> {
    let first = match opt_s(o, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(opt_s(o, &["eventTime"]), now),
    };
    let mut last = match opt_s(o, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = i(o, &["count"]);
    if let Some(series) = o.get("series").filter(|v| v.is_object()) {
        last = since(opt_s(series, &["lastObservedTime"]), now);
        count = i(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(o, &["involvedObject", "kind"]).to_lowercase();
    let target = match opt_s(o, &["involvedObject", "name"]) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component = opt_s(o, &["source", "component"])
        .or_else(|| opt_s(o, &["reportingComponent"]))
        .unwrap_or_default();
    let instance = opt_s(o, &["source", "host"])
        .or_else(|| opt_s(o, &["reportingInstance"]))
        .unwrap_or_default();
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(o, &["type"])),
        json!(s(o, &["reason"])),
        json!(target),
        json!(s(o, &["involvedObject", "fieldPath"])),
        json!(source),
        json!(s(o, &["message"]).trim()),
        json!(first),
        json!(count),
        json!(s(o, &["metadata", "name"])),
    ]
}

/// `printJob`: STATUS from conditions, COMPLETIONS, DURATION.
fn job_cells(o: &Value, now: i64) -> Vec<Value> {
    let spec = o.get("spec").unwrap_or(&Value::Null);
    let status = o.get("status").unwrap_or(&Value::Null);
    let state = if condition_true(status, "Complete") {
        "Complete"
    } else if condition_true(status, "Failed") {
        "Failed"
    } else if at(o, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null()) {
        "Terminating"
    } else if condition_true(status, "Suspended") {
        "Suspended"
    } else if condition_true(status, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(status, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let succeeded = i(status, &["succeeded"]);
    let completions = match at(spec, &["completions"]).and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => match i(spec, &["parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = opt_s(status, &["startTime"]).and_then(crate::util::parse_timestamp);
    let end = opt_s(status, &["completionTime"]).and_then(crate::util::parse_timestamp);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(st), None) => crate::human_duration(now - st),
        (Some(st), Some(en)) => crate::human_duration(en - st),
    };
    let (names, images) = container_cells(arr(spec, &["template", "spec", "containers"]));
    vec![
        json!(s(o, &["metadata", "name"])),
        json!(state),
        json!(completions),
        json!(duration),
        json!(since(opt_s(o, &["metadata", "creationTimestamp"]), now)),
        json!(names),
        json!(images),
        json!(format_label_selector(spec.get("selector"))),
    ]
}

/// `formatHPAMetrics`: at most two targets, `cpu: 40%/80%`, then `+ N more...`.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 2;
    let mut list = Vec::new();
    for (idx, m) in specs.iter().enumerate() {
        let st = statuses.get(idx);
        let cur = |kind: &str, field: &str| {
            st.and_then(|v| v.get(kind))
                .and_then(|v| at(v, &["current", field]))
                .map(quantity)
        };
        let entry = match s(m, &["type"]) {
            "External" | "Object" => {
                let key = if s(m, &["type"]) == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = at(m, &[key, "target"]).unwrap_or(&Value::Null);
                if let Some(avg) = target.get("averageValue") {
                    let c = cur(key, "averageValue").unwrap_or_else(|| "<unknown>".into());
                    format!("{c}/{} (avg)", quantity(avg))
                } else {
                    let c = cur(key, "value").unwrap_or_else(|| "<unknown>".into());
                    let t = target.get("value").map(quantity).unwrap_or_default();
                    format!("{c}/{t}")
                }
            }
            "Pods" => {
                let c = cur("pods", "averageValue").unwrap_or_else(|| "<unknown>".into());
                let t = at(m, &["pods", "target", "averageValue"])
                    .map(quantity)
                    .unwrap_or_default();
                format!("{c}/{t}")
            }
            "Resource" | "ContainerResource" => {
                let key = if s(m, &["type"]) == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = s(m, &[key, "name"]);
                let target = at(m, &[key, "target"]).unwrap_or(&Value::Null);
                if let Some(avg) = target.get("averageValue") {
                    let c = cur(key, "averageValue").unwrap_or_else(|| "<unknown>".into());
                    format!("{name}: {c}/{}", quantity(avg))
                } else {
                    let c = st
                        .and_then(|v| at(v, &[key, "current", "averageUtilization"]))
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".into());
                    let t = target
                        .get("averageUtilization")
                        .and_then(Value::as_i64)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<auto>".into());
                    format!("{name}: {c}/{t}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    let count = list.len();
    list.truncate(MAX);
    let ret = list.join(", ");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

/// A resource.Quantity as JSON (a string, or a bare number) in its printed form.
fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}
