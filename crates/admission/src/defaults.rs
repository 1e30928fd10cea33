//! Defaults Kubernetes fills in when it decodes and creates objects (`pkg/apis/*/v1/defaults.go`, plus the
//! create-time strategy and default admission steps that users see in `kubectl get -o yaml`).

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Fills in the defaults Kubernetes applies on create (Pod spec: restartPolicy Always, dnsPolicy ClusterFirst,
/// schedulerName default-scheduler, terminationGracePeriodSeconds 30, securityContext {}, container
/// terminationMessagePath/Policy, imagePullPolicy (Always for :latest or no tag, else IfNotPresent), protocol
/// TCP on ports; Deployment strategy RollingUpdate 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds
/// 600, replicas 1; ReplicaSet/RC/StatefulSet/DaemonSet/Job/CronJob defaults; Service type ClusterIP,
/// sessionAffinity None, port protocol TCP, targetPort = port, ipFamilies/ipFamilyPolicy; Namespace
/// spec.finalizers ["kubernetes"] and status.phase Active; Secret type Opaque and stringData folded into data;
/// ... Pod templates inside controllers get the pod-spec defaults too).
///
/// Only missing (or null) fields are filled, so applying it twice changes nothing. Call it after
/// [`crate::normalize`] and, for Jobs, after `metadata.uid` and `metadata.name` are set (the Job selector is
/// generated from the uid, as Kubernetes does). Non-object input is left alone: validation reports it.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => pod(root),
        ("", "PodTemplate") => {
            if let Some(t) = ensure_obj(root, "template") {
                pod_template(t);
            }
        }
        ("", "ReplicationController") => replication_controller(root),
        ("", "Service") => service(root),
        ("", "Namespace") => namespace(root),
        ("", "Secret") => secret(root),
        ("", "Endpoints") => endpoints(root),
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = ensure_obj(root, "spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = ensure_obj(root, "spec") {
                set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("apps", "Deployment") => deployment(root),
        ("apps", "ReplicaSet") => replica_set(root),
        ("apps", "DaemonSet") => daemon_set(root),
        ("apps", "StatefulSet") => stateful_set(root),
        ("batch", "Job") => job(root),
        ("batch", "CronJob") => cron_job(root),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(root),
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(root),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(root),
        _ => {}
    }
}

/// Inserts `value` under `key` when the key is missing or null.
fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_string(), value);
        }
        Some(_) => {}
    }
}

/// The object under `key`, created empty when missing or null; `None` when it holds something else.
fn ensure_obj<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    set_default(map, key, Value::Object(Map::new()));
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The existing object under `key`, if any.
fn obj_mut<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// Each object element of the array under `key`.
fn each_obj<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn is_empty_or_missing(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// The tag Kubernetes' image parser finds: the part after the last ':' of the last path component, "latest"
/// when there is neither a tag nor a digest, empty when only a digest is given.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if digest => "",
        None => "latest",
    }
}

fn probe(p: &mut Map<String, Value>) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    http_get(p);
}

fn http_get(handler: &mut Map<String, Value>) {
    if let Some(h) = obj_mut(handler, "httpGet") {
        if is_empty_or_missing(h.get("path")) {
            h.insert("path".to_string(), json!("/"));
        }
        set_default(h, "scheme", json!("HTTP"));
    }
}

fn container(c: &mut Map<String, Value>, host_network_pod: bool) {
    if is_empty_or_missing(c.get("imagePullPolicy")) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        // Kubernetes: `:latest` (or no tag at all) means the image can change, so always pull.
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".to_string(), json!(policy));
    }
    if is_empty_or_missing(c.get("terminationMessagePath")) {
        c.insert(
            "terminationMessagePath".to_string(),
            json!("/dev/termination-log"),
        );
    }
    if is_empty_or_missing(c.get("terminationMessagePolicy")) {
        c.insert("terminationMessagePolicy".to_string(), json!("File"));
    }
    set_default(c, "resources", json!({}));
    for port in each_obj(c, "ports") {
        if is_empty_or_missing(port.get("protocol")) {
            port.insert("protocol".to_string(), json!("TCP"));
        }
        // Pods on the host network listen on the host: hostPort defaults to containerPort.
        if host_network_pod
            && port
                .get("hostPort")
                .is_none_or(|v| v.is_null() || v == &json!(0))
            && let Some(cp) = port.get("containerPort").cloned()
        {
            port.insert("hostPort".to_string(), cp);
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj_mut(c, key) {
            probe(p);
        }
    }
    if let Some(lc) = obj_mut(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(h) = obj_mut(lc, key) {
                http_get(h);
            }
        }
    }
    for env in each_obj(c, "env") {
        if let Some(field_ref) = obj_mut(env, "valueFrom").and_then(|vf| obj_mut(vf, "fieldRef")) {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
}

const VOLUME_SOURCES_WITH_MODE: [&str; 4] = ["configMap", "secret", "downwardAPI", "projected"];

fn volume(v: &mut Map<String, Value>) {
    let has_source = v.iter().any(|(k, val)| k != "name" && !val.is_null());
    if !has_source {
        // SetDefaults_Volume: a volume without a source is an emptyDir.
        v.insert("emptyDir".to_string(), json!({}));
    }
    for key in VOLUME_SOURCES_WITH_MODE {
        if let Some(src) = obj_mut(v, key) {
            set_default(src, "defaultMode", json!(420));
        }
    }
    if let Some(hp) = obj_mut(v, "hostPath") {
        set_default(hp, "type", json!(""));
    }
}

/// `SetDefaults_PodSpec` (pods and templates); `is_pod` adds what only Pods get.
fn pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    if is_empty_or_missing(spec.get("dnsPolicy")) {
        spec.insert("dnsPolicy".to_string(), json!("ClusterFirst"));
    }
    if is_empty_or_missing(spec.get("restartPolicy")) {
        spec.insert("restartPolicy".to_string(), json!("Always"));
    }
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    if is_empty_or_missing(spec.get("schedulerName")) {
        spec.insert("schedulerName".to_string(), json!("default-scheduler"));
    }
    let host_network = is_pod && spec.get("hostNetwork") == Some(&Value::Bool(true));
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in each_obj(spec, key) {
            container(c, host_network);
            if is_pod {
                requests_from_limits(c);
            }
        }
    }
    for v in each_obj(spec, "volumes") {
        volume(v);
    }
    if is_pod {
        set_default(spec, "enableServiceLinks", json!(true));
        // ServiceAccount admission: pods run as the namespace's "default" account unless told otherwise.
        if is_empty_or_missing(spec.get("serviceAccountName")) {
            let sa = spec
                .get("serviceAccount")
                .filter(|v| !is_empty_or_missing(Some(v)))
                .cloned()
                .unwrap_or(json!("default"));
            spec.insert("serviceAccountName".to_string(), sa);
        }
        if let Some(sa) = spec.get("serviceAccountName").cloned() {
            set_default(spec, "serviceAccount", sa);
        }
        // Priority admission: without a priority class the priority is 0 and lower priorities may be preempted.
        if is_empty_or_missing(spec.get("priorityClassName")) {
            set_default(spec, "priority", json!(0));
        }
        set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        default_tolerations(spec);
    }
}

/// DefaultTolerationSeconds admission: pods tolerate not-ready/unreachable nodes for 300 s before eviction.
fn default_tolerations(spec: &mut Map<String, Value>) {
    if !matches!(
        spec.get("tolerations"),
        None | Some(Value::Null) | Some(Value::Array(_))
    ) {
        return;
    }
    let mut tolerations: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or_default();
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            (k == key || (k.is_empty() && op == "Exists"))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec.insert("tolerations".to_string(), Value::Array(tolerations));
}

/// SetDefaults_Pod: a resource with a limit but no request is requested at its limit.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = obj_mut(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    if let Some(requests) = ensure_obj(res, "requests") {
        for (k, v) in limits {
            if !requests.contains_key(&k) {
                requests.insert(k, v);
            }
        }
    }
}

/// The QoS class Kubernetes computes for a pod's status (`qos.GetPodQOS`), from cpu and memory only.
fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for key in ["initContainers", "containers"] {
        let Some(list) = spec.get(key).and_then(Value::as_array) else {
            continue;
        };
        for c in list {
            let res = c.get("resources");
            let req = res
                .and_then(|r| r.get("requests"))
                .and_then(Value::as_object);
            let lim = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
            for name in ["cpu", "memory"] {
                let r = req
                    .and_then(|m| m.get(name))
                    .filter(|v| !is_zero_quantity(v));
                let l = lim
                    .and_then(|m| m.get(name))
                    .filter(|v| !is_zero_quantity(v));
                if r.is_some() || l.is_some() {
                    any = true;
                }
                match (r, l) {
                    (Some(r), Some(l)) if r == l => {}
                    _ => guaranteed = false,
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn is_zero_quantity(v: &Value) -> bool {
    match v {
        Value::String(s) => s
            .trim_start_matches(['0', '.'])
            .chars()
            .all(|c| c.is_ascii_alphabetic()),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn pod(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    pod_spec(spec, true);
    let qos = qos_class(spec);
    // The pod strategy starts every new pod Pending with its QoS class.
    if let Some(status) = ensure_obj(root, "status") {
        if is_empty_or_missing(status.get("phase")) {
            status.insert("phase".to_string(), json!("Pending"));
        }
        set_default(status, "qosClass", json!(qos));
    }
}

/// A `PodTemplateSpec` (`{metadata, spec}`) inside a controller.
fn pod_template(t: &mut Map<String, Value>) {
    if let Some(spec) = ensure_obj(t, "spec") {
        pod_spec(spec, false);
    }
}

fn template_of(spec: &mut Map<String, Value>) {
    if let Some(t) = obj_mut(spec, "template") {
        pod_template(t);
    }
}

fn replication_controller(root: &mut Map<String, Value>) {
    let template_labels = root
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = template_labels {
        // SetDefaults_ReplicationController: selector and the RC's own labels default to the template's labels.
        if let Some(spec) = ensure_obj(root, "spec")
            && is_empty_or_missing(spec.get("selector"))
        {
            spec.insert("selector".to_string(), labels.clone());
        }
        if let Some(meta) = ensure_obj(root, "metadata")
            && is_empty_or_missing(meta.get("labels"))
        {
            meta.insert("labels".to_string(), labels);
        }
    }
    if let Some(spec) = ensure_obj(root, "spec") {
        set_default(spec, "replicas", json!(1));
        template_of(spec);
    }
}

fn deployment(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        if is_empty_or_missing(strategy.get("type")) {
            strategy.insert("type".to_string(), json!("RollingUpdate"));
        }
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template_of(spec);
}

fn replica_set(root: &mut Map<String, Value>) {
    if let Some(spec) = ensure_obj(root, "spec") {
        set_default(spec, "replicas", json!(1));
        template_of(spec);
    }
}

fn daemon_set(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        if is_empty_or_missing(us.get("type")) {
            us.insert("type".to_string(), json!("RollingUpdate"));
        }
        if us.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = ensure_obj(us, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template_of(spec);
}

fn stateful_set(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if is_empty_or_missing(spec.get("podManagementPolicy")) {
        spec.insert("podManagementPolicy".to_string(), json!("OrderedReady"));
    }
    if let Some(us) = ensure_obj(spec, "updateStrategy") {
        if is_empty_or_missing(us.get("type")) {
            us.insert("type".to_string(), json!("RollingUpdate"));
            set_default(us, "rollingUpdate", json!({}));
        }
        if us.get("type") == Some(&json!("RollingUpdate"))
            && let Some(ru) = obj_mut(us, "rollingUpdate")
        {
            set_default(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default(policy, "whenDeleted", json!("Retain"));
        set_default(policy, "whenScaled", json!("Retain"));
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for claim in each_obj(spec, "volumeClaimTemplates") {
        if let Some(cs) = ensure_obj(claim, "spec") {
            set_default(cs, "volumeMode", json!("Filesystem"));
        }
    }
    template_of(spec);
}

/// The Job strategy's `generateSelector` plus `SetDefaults_Job`.
fn job(root: &mut Map<String, Value>) {
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let uid = root
        .get("metadata")
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    let manual = spec.get("manualSelector") == Some(&Value::Bool(true));
    if let (false, Some(uid), Some(name)) = (manual, uid, name) {
        generate_job_selector(spec, &name, &uid);
    }
    if is_empty_or_missing(spec.get("completions")) && is_empty_or_missing(spec.get("parallelism"))
    {
        spec.insert("completions".to_string(), json!(1));
        spec.insert("parallelism".to_string(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    if is_empty_or_missing(spec.get("backoffLimit")) {
        let limit = if spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null())
        {
            i32::MAX
        } else {
            6
        };
        spec.insert("backoffLimit".to_string(), json!(limit));
    }
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    template_of(spec);
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, ensure_obj(root, "metadata"))
        && is_empty_or_missing(meta.get("labels"))
    {
        meta.insert("labels".to_string(), labels);
    }
}

fn generate_job_selector(spec: &mut Map<String, Value>, name: &str, uid: &str) {
    if let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
    {
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            if !labels.contains_key(key) {
                labels.insert(key.to_string(), json!(name));
            }
        }
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            if !labels.contains_key(key) {
                labels.insert(key.to_string(), json!(uid));
            }
        }
    }
    if let Some(ml) = ensure_obj(spec, "selector").and_then(|s| ensure_obj(s, "matchLabels"))
        && !ml.contains_key("batch.kubernetes.io/controller-uid")
    {
        ml.insert("batch.kubernetes.io/controller-uid".to_string(), json!(uid));
    }
}

fn cron_job(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if is_empty_or_missing(spec.get("concurrencyPolicy")) {
        spec.insert("concurrencyPolicy".to_string(), json!("Allow"));
    }
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(js) = obj_mut(spec, "jobTemplate").and_then(|jt| obj_mut(jt, "spec")) {
        template_of(js);
    }
}

fn service(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if is_empty_or_missing(spec.get("sessionAffinity")) {
        spec.insert("sessionAffinity".to_string(), json!("None"));
    }
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".to_string(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    if is_empty_or_missing(spec.get("type")) {
        spec.insert("type".to_string(), json!("ClusterIP"));
    }
    for port in each_obj(spec, "ports") {
        if is_empty_or_missing(port.get("protocol")) {
            port.insert("protocol".to_string(), json!("TCP"));
        }
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if target_unset && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".to_string(), p);
        }
    }
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible = svc_type == "LoadBalancer"
        || svc_type == "NodePort"
        || (svc_type == "ClusterIP" && has_external_ips);
    if externally_accessible && is_empty_or_missing(spec.get("externalTrafficPolicy")) {
        spec.insert("externalTrafficPolicy".to_string(), json!("Cluster"));
    }
    if matches!(svc_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        // The service registry's IP-family allocation on a single-stack IPv4 cluster.
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        let cluster_ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let cluster_ips_missing = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
        if let (Some(ip), true) = (&cluster_ip, cluster_ips_missing) {
            spec.insert("clusterIPs".to_string(), json!([ip]));
        }
        if cluster_ip.is_none()
            && let Some(first) = spec.get("clusterIPs").and_then(|a| a.get(0)).cloned()
        {
            spec.insert("clusterIP".to_string(), first);
        }
    }
    if svc_type == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn namespace(root: &mut Map<String, Value>) {
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        // SetDefaults_Namespace: every namespace carries its name as a label, so selectors can pick it.
        if let Some(labels) = ensure_obj(root, "metadata").and_then(|m| ensure_obj(m, "labels")) {
            labels.insert("kubernetes.io/metadata.name".to_string(), json!(name));
        }
    }
    if let Some(spec) = ensure_obj(root, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(root, "status")
        && is_empty_or_missing(status.get("phase"))
    {
        status.insert("phase".to_string(), json!("Active"));
    }
}

fn secret(root: &mut Map<String, Value>) {
    if is_empty_or_missing(root.get("type")) {
        root.insert("type".to_string(), json!("Opaque"));
    }
    // stringData is a write-only convenience: Kubernetes merges it into data (winning over data) and never
    // stores it.
    if let Some(Value::Object(string_data)) = root.remove("stringData")
        && let Some(data) = ensure_obj(root, "data")
    {
        for (k, v) in string_data {
            if let Value::String(s) = v {
                let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                data.insert(k, Value::String(encoded));
            }
        }
    }
}

fn endpoints(root: &mut Map<String, Value>) {
    for subset in each_obj(root, "subsets") {
        for port in each_obj(subset, "ports") {
            if is_empty_or_missing(port.get("protocol")) {
                port.insert("protocol".to_string(), json!("TCP"));
            }
        }
    }
}

fn endpoint_slice(root: &mut Map<String, Value>) {
    for port in each_obj(root, "ports") {
        set_default(port, "name", json!(""));
        set_default(port, "protocol", json!("TCP"));
    }
}

fn hpa(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    // autoscaling/v2 defaulting: no metrics means 80% average CPU utilization. Objects are expected in the
    // storage version (v2); a v1 object (with targetCPUUtilizationPercentage) is left alone.
    let empty = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty());
    if empty && !spec.contains_key("targetCPUUtilizationPercentage") {
        spec.insert(
            "metrics".to_string(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
}

fn crd(root: &mut Map<String, Value>) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if let Some(names) = obj_mut(spec, "names") {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !kind.is_empty() {
            if is_empty_or_missing(names.get("singular")) {
                names.insert("singular".to_string(), json!(kind.to_lowercase()));
            }
            if is_empty_or_missing(names.get("listKind")) {
                names.insert("listKind".to_string(), json!(format!("{kind}List")));
            }
        }
    }
    if let Some(conv) = ensure_obj(spec, "conversion") {
        set_default(conv, "strategy", json!("None"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, kind: &str, obj: Value) -> Value {
        let mut o = obj;
        apply_defaults(group, kind, &mut o);
        o
    }

    #[test]
    fn pod_defaults_match_kubectl_get_output() {
        let p = defaulted(
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"port": 80}},
                 "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "image": "registry:5000/app:1.2"},
                {"name": "c", "image": "app@sha256:abcd"}],
                "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]}}),
        );
        let s = &p["spec"];
        for (k, v) in [
            ("restartPolicy", json!("Always")),
            ("dnsPolicy", json!("ClusterFirst")),
            ("schedulerName", json!("default-scheduler")),
            ("terminationGracePeriodSeconds", json!(30)),
            ("securityContext", json!({})),
            ("enableServiceLinks", json!(true)),
            ("serviceAccountName", json!("default")),
            ("priority", json!(0)),
        ] {
            assert_eq!(s[k], v, "{k}");
        }
        // imagePullPolicy: Always for no tag (= latest), IfNotPresent for a tag (a registry port is not a tag)
        // or a digest.
        let policies: Vec<&Value> = (0..3)
            .map(|i| &s["containers"][i]["imagePullPolicy"])
            .collect();
        assert_eq!(
            policies,
            [
                &json!("Always"),
                &json!("IfNotPresent"),
                &json!("IfNotPresent")
            ]
        );
        let a = &s["containers"][0];
        assert_eq!(a["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(a["terminationMessagePolicy"], "File");
        assert_eq!(a["ports"][0]["protocol"], "TCP");
        assert_eq!(
            a["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        // Requests default to limits for Pods, which makes this container Guaranteed... but the other
        // containers have none, so the pod is Burstable.
        assert_eq!(
            a["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "Burstable"})
        );
        assert_eq!(s["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(s["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(s["tolerations"].as_array().map(Vec::len), Some(2));
        // Idempotent.
        assert_eq!(defaulted("", "Pod", p.clone()), p);
    }

    #[test]
    fn controller_defaults_and_templates() {
        let d = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1.27"}]}}}}),
        );
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let t = &d["spec"]["template"]["spec"];
        assert_eq!(t["restartPolicy"], "Always");
        assert_eq!(t["containers"][0]["imagePullPolicy"], "IfNotPresent");
        // Pod-only defaults stay out of templates.
        assert!(t.get("enableServiceLinks").is_none() && t.get("tolerations").is_none());
        let recreate = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        );
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));

        let ds = defaulted("apps", "DaemonSet", json!({"spec": {}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let sts = defaulted("apps", "StatefulSet", json!({"spec": {}}));
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        let rc = defaulted(
            "",
            "ReplicationController",
            json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}}}),
        );
        assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn job_selector_is_generated_from_uid() {
        let j = defaulted(
            "batch",
            "Job",
            json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never"}}}}),
        );
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = &j["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(j["metadata"]["labels"], *labels);
        for (k, v) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            assert_eq!(j["spec"][k], v, "{k}");
        }
        // Only parallelism given: completions stays unset (a work-queue job).
        let wq = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
        assert!(wq["spec"].get("completions").is_none());
        let manual = defaulted(
            "batch",
            "Job",
            json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true}}),
        );
        assert!(manual["spec"].get("selector").is_none());
        let cj = defaulted(
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *"}}),
        );
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    }

    #[test]
    fn service_namespace_secret_crd_defaults() {
        let s = defaulted(
            "",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
        );
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "dns");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        let np = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "NodePort", "sessionAffinity": "ClientIP", "ports": []}}),
        );
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            np["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let ext = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
        );
        assert!(ext["spec"].get("ipFamilies").is_none());

        let ns = defaulted("", "Namespace", json!({"metadata": {"name": "team-a"}}));
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );

        let sec = defaulted(
            "",
            "Secret",
            json!({"data": {"a": "eA=="}, "stringData": {"a": "hello", "b": "hi"}}),
        );
        assert_eq!(sec["type"], "Opaque");
        // stringData wins over data and is never stored.
        assert_eq!(sec["data"], json!({"a": "aGVsbG8=", "b": "aGk="}));
        assert!(sec.get("stringData").is_none());

        let crd = defaulted(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            json!({"spec": {"names": {"kind": "Widget", "plural": "widgets"}}}),
        );
        assert_eq!(crd["spec"]["names"]["singular"], "widget");
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    }
}
