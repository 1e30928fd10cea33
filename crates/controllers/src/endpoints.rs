//! Endpoints and EndpointSlices, pure (Kubernetes' `pkg/controller/endpoint` and
//! `pkg/controller/endpointslice`): for every Service with a selector, the pods it
//! selects that have an IP, grouped by their resolved ports.
//!
//! - `v1` Endpoints (named like the Service): ready pods in `addresses`, not-ready ones in
//!   `notReadyAddresses`, terminating pods left out (unless `publishNotReadyAddresses`).
//! - `discovery.k8s.io/v1` EndpointSlices (labelled `kubernetes.io/service-name` and
//!   managed-by `endpointslice-controller.k8s.io`, owned by the Service): every pod with
//!   its `ready`/`serving`/`terminating` conditions, at most 100 endpoints per slice,
//!   one slice per address family and port set, an empty placeholder when there are
//!   none.
//!
//! Both are removed when the Service is deleted or stops selecting (only the ones this
//! controller manages: user-written Endpoints of a selector-less Service stay). The
//! I/O side is in [`run`].

use crate::util::{self, is_pod_ready};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

mod run;
pub use run::run;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages an EndpointSlice.
pub const SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The value of [`SLICE_MANAGED_BY_LABEL`] on the slices this controller writes.
pub const SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";
/// The label Kubernetes (1.33+) puts on the Endpoints its controller writes.
pub const ENDPOINTS_MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// The value of [`ENDPOINTS_MANAGED_BY_LABEL`].
pub const ENDPOINTS_MANAGER: &str = "endpoint-controller";
/// The label marking objects of a headless Service (`clusterIP: None`).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Kubernetes' default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A write to the API.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create this object.
    Create(Value),
    /// Replace the object with this copy (its resourceVersion makes it a CAS).
    Update(Value),
    /// Delete the object `name` (precondition: `uid`).
    Delete {
        /// Its name.
        name: String,
        /// Its UID.
        uid: String,
    },
}

/// The pod selector of a Service that gets endpoints from this controller: None for
/// services without a selector (their endpoints are written by users) and for
/// ExternalName services (they have none).
pub fn service_selector(svc: &Value) -> Option<labels::LabelSelector> {
    if svc["spec"]["type"] == "ExternalName" {
        return None;
    }
    let m = svc["spec"]["selector"].as_object()?;
    // An empty selector map selects nothing in the endpoints controllers.
    (!m.is_empty()).then(|| labels::LabelSelector::from_map(m))
}

fn is_headless(svc: &Value) -> bool {
    svc["spec"]["clusterIP"] == "None"
}

/// The address families the Service's endpoints use (`spec.ipFamilies`, IPv4 by
/// default).
fn families(svc: &Value) -> Vec<&str> {
    let f: Vec<&str> = svc["spec"]["ipFamilies"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if f.is_empty() { vec!["IPv4"] } else { f }
}

/// The pod's IP of one family (`status.podIPs`, or `status.podIP`).
fn pod_ip<'a>(pod: &'a Value, family: &str) -> Option<&'a str> {
    let v6 = family == "IPv6";
    let ips: Vec<&str> = match pod["status"]["podIPs"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(|i| i["ip"].as_str()).collect(),
        _ => pod["status"]["podIP"].as_str().into_iter().collect(),
    };
    ips.into_iter()
        .find(|ip| !ip.is_empty() && ip.contains(':') == v6)
}

/// `podutil.FindPort`: a numeric `targetPort` as is (absent: the service port), a named
/// one from the pod's container ports of that name and protocol (sidecar init
/// containers included); None if the pod has no such port.
pub fn resolve_port(pod: &Value, service_port: &Value) -> Option<i64> {
    let protocol = service_port["protocol"].as_str().unwrap_or("TCP");
    match &service_port["targetPort"] {
        Value::Number(n) => n
            .as_i64()
            .filter(|p| *p > 0)
            .or_else(|| service_port["port"].as_i64()),
        Value::String(name) => {
            if let Ok(n) = name.parse::<i64>() {
                return Some(n);
            }
            let containers = pod["spec"]["containers"].as_array().into_iter().flatten();
            let sidecars = pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["restartPolicy"] == "Always");
            containers
                .chain(sidecars)
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .find(|p| {
                    p["name"].as_str() == Some(name.as_str())
                        && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })
                .and_then(|p| p["containerPort"].as_i64())
        }
        _ => service_port["port"].as_i64(),
    }
}

/// The endpoint ports of one pod: each service port it resolves (others are skipped).
fn pod_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for sp in svc["spec"]["ports"].as_array().into_iter().flatten() {
        let Some(port) = resolve_port(pod, sp) else {
            continue;
        };
        let mut p = json!({
            "name": sp["name"].as_str().unwrap_or_default(),
            "port": port,
            "protocol": sp["protocol"].as_str().unwrap_or("TCP"),
        });
        if let Some(ap) = sp["appProtocol"].as_str() {
            p["appProtocol"] = json!(ap);
        }
        out.push(p);
    }
    out
}

/// `ShouldPodBeInEndpoints`: an IP, not terminal, and not terminating unless asked.
fn eligible(pod: &Value, include_terminating: bool) -> bool {
    !matches!(util::phase(pod), "Succeeded" | "Failed")
        && (include_terminating || !api::meta::is_deleting(pod))
        && (pod["status"]["podIP"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
            || pod["status"]["podIPs"]
                .as_array()
                .is_some_and(|a| !a.is_empty()))
}

fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": api::meta::namespace(pod).unwrap_or_default(),
        "name": util::name(pod),
        "uid": util::uid(pod),
    })
}

/// `ShouldSetHostname`: the pod asks for a hostname under this Service's subdomain.
fn hostname<'a>(pod: &'a Value, svc: &Value) -> Option<&'a str> {
    let h = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"].as_str() == Some(util::name(svc))
        && api::meta::namespace(pod) == api::meta::namespace(svc))
    .then_some(h)
}

/// The selected pods of `svc` among `pods` (its namespace's pods).
fn selected<'a>(svc: &Value, pods: &'a [Arc<Value>]) -> Vec<&'a Arc<Value>> {
    let Some(sel) = service_selector(svc) else {
        return Vec::new();
    };
    let ns = api::meta::namespace(svc);
    let mut v: Vec<&Arc<Value>> = pods
        .iter()
        .filter(|p| api::meta::namespace(p) == ns && sel.matches(api::meta::labels(p)))
        .collect();
    v.sort_by(|a, b| util::name(a).cmp(util::name(b)));
    v
}

/// Ports with no service ports: only headless services publish bare addresses.
fn publishes(svc: &Value, ports: &[Value]) -> bool {
    !ports.is_empty()
        || (svc["spec"]["ports"].as_array().is_none_or(Vec::is_empty) && is_headless(svc))
}

fn port_key(ports: &[Value]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_by_key(Value::to_string);
    Value::Array(sorted).to_string()
}

/// The labels of the objects written for `svc`: the Service's own, the headless
/// marker, then `extra` (which win).
fn derived_labels(svc: &Value, extra: &[(&str, &str)]) -> Map<String, Value> {
    let mut l = api::meta::labels(svc).clone();
    l.remove(SERVICE_NAME_LABEL);
    l.remove(SLICE_MANAGED_BY_LABEL);
    l.remove(ENDPOINTS_MANAGED_BY_LABEL);
    l.remove(HEADLESS_LABEL);
    if is_headless(svc) {
        l.insert(HEADLESS_LABEL.into(), json!(""));
    }
    for (k, v) in extra {
        l.insert((*k).into(), json!(v));
    }
    l
}

/// One v1 Endpoints subset being built: ports, ready and not-ready addresses.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The `subsets` of the Service's v1 Endpoints (`RepackSubsets`): one subset per port
/// set, addresses sorted by IP.
pub fn subsets(svc: &Value, pods: &[Arc<Value>]) -> Vec<Value> {
    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == true;
    let family = families(svc)[0];
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for pod in selected(svc, pods) {
        if !eligible(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = pod_ip(pod, family) else {
            continue;
        };
        let ports = pod_ports(svc, pod);
        if !publishes(svc, &ports) {
            continue;
        }
        let mut addr = json!({"ip": ip, "targetRef": target_ref(pod)});
        if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            addr["nodeName"] = json!(n);
        }
        if let Some(h) = hostname(pod, svc) {
            addr["hostname"] = json!(h);
        }
        let g = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish_not_ready || is_pod_ready(pod) {
            g.1.push(addr);
        } else {
            g.2.push(addr);
        }
    }
    let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
    groups
        .into_values()
        .map(|(mut ports, mut ready, mut not_ready)| {
            ports.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), json!(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), json!(not_ready));
            }
            if !ports.is_empty() {
                s.insert("ports".into(), json!(ports));
            }
            Value::Object(s)
        })
        .collect()
}

/// Plans the v1 Endpoints of the Service `key_name` in `ns`: `svc` is None when the
/// Service is gone, `current` the Endpoints object now (if any).
pub fn plan_endpoints(
    ns: &str,
    key_name: &str,
    svc: Option<&Value>,
    pods: &[Arc<Value>],
    current: Option<&Value>,
) -> Option<Write> {
    let delete = || {
        current.map(|c| Write::Delete {
            name: util::name(c).to_string(),
            uid: util::uid(c).to_string(),
        })
    };
    let ours = current
        .is_some_and(|c| c["metadata"]["labels"][ENDPOINTS_MANAGED_BY_LABEL] == ENDPOINTS_MANAGER);
    // The Service is gone or selects nothing: the Endpoints we wrote go. Others belong
    // to a user (Kubernetes 1.33 uses the managed-by label the same way).
    let Some(svc) = svc.filter(|s| service_selector(s).is_some()) else {
        return if ours { delete() } else { None };
    };
    let subsets = subsets(svc, pods);
    let labels = derived_labels(svc, &[(ENDPOINTS_MANAGED_BY_LABEL, ENDPOINTS_MANAGER)]);
    match current {
        None => Some(Write::Create(json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": key_name, "namespace": ns, "labels": labels},
            "subsets": subsets,
        }))),
        Some(c) => {
            let same = util::normalize(&c["subsets"]) == util::normalize(&json!(subsets))
                && util::normalize(&c["metadata"]["labels"]) == util::normalize(&json!(labels));
            if same {
                return None;
            }
            let mut o = c.clone();
            o["subsets"] = json!(subsets);
            o["metadata"]["labels"] = json!(labels);
            Some(Write::Update(o))
        }
    }
}

/// The desired slices' contents: (addressType, ports, endpoints) per family and port
/// set, chunked at [`MAX_ENDPOINTS_PER_SLICE`]; one empty placeholder if none.
fn slice_contents(svc: &Value, pods: &[Arc<Value>]) -> Vec<(String, Vec<Value>, Vec<Value>)> {
    let publish_not_ready = svc["spec"]["publishNotReadyAddresses"] == true;
    let fams = families(svc);
    let mut groups: BTreeMap<(String, String), (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for pod in selected(svc, pods) {
        if !eligible(pod, true) {
            continue;
        }
        let ports = pod_ports(svc, pod);
        if !publishes(svc, &ports) {
            continue;
        }
        let terminating = api::meta::is_deleting(pod);
        let serving = is_pod_ready(pod);
        // "ready" is never true for a terminating pod unless publishNotReadyAddresses.
        let ready = publish_not_ready || (serving && !terminating);
        for fam in &fams {
            let Some(ip) = pod_ip(pod, fam) else {
                continue;
            };
            let mut ep = json!({
                "addresses": [ip],
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                "targetRef": target_ref(pod),
            });
            if let Some(n) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                ep["nodeName"] = json!(n);
            }
            if let Some(h) = hostname(pod, svc) {
                ep["hostname"] = json!(h);
            }
            groups
                .entry(((*fam).to_string(), port_key(&ports)))
                .or_insert_with(|| (ports.clone(), Vec::new()))
                .1
                .push(ep);
        }
    }
    let mut out = Vec::new();
    for ((fam, _), (mut ports, eps)) in groups {
        ports.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push((fam.clone(), ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        out.push((fams[0].to_string(), Vec::new(), Vec::new()));
    }
    out
}

/// A slice's content as compared: address type, ports, endpoints, labels, owners.
fn slice_signature(s: &Value) -> Value {
    util::normalize(&json!({
        "addressType": s["addressType"],
        "ports": s["ports"],
        "endpoints": s["endpoints"],
        "labels": s["metadata"]["labels"],
        "owners": s["metadata"]["ownerReferences"],
    }))
}

/// Plans the EndpointSlices of the Service `key_name` in `ns`: `svc` is None when the
/// Service is gone, `existing` the slices labelled with its name and managed by this
/// controller. Unchanged slices are kept, changed ones updated in place, the rest
/// created or deleted.
pub fn plan_slices(
    ns: &str,
    key_name: &str,
    svc: Option<&Value>,
    pods: &[Arc<Value>],
    existing: &[Arc<Value>],
) -> Vec<Write> {
    let delete_all = || {
        existing
            .iter()
            .map(|s| Write::Delete {
                name: util::name(s).to_string(),
                uid: util::uid(s).to_string(),
            })
            .collect()
    };
    let Some(svc) = svc.filter(|s| service_selector(s).is_some()) else {
        return delete_all();
    };
    let labels = derived_labels(
        svc,
        &[
            (SERVICE_NAME_LABEL, key_name),
            (SLICE_MANAGED_BY_LABEL, SLICE_MANAGER),
        ],
    );
    let owner = util::owner_ref("v1", "Service", svc);
    let desired: Vec<Value> = slice_contents(svc, pods)
        .into_iter()
        .map(|(fam, ports, eps)| {
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "generateName": format!("{key_name}-"),
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [owner],
                },
                "addressType": fam,
                "endpoints": eps,
                "ports": ports,
            })
        })
        .collect();
    let mut unused: Vec<&Arc<Value>> = existing.iter().collect();
    let mut todo = Vec::new();
    for d in desired {
        let sig = slice_signature(&d);
        if let Some(i) = unused.iter().position(|e| slice_signature(e) == sig) {
            unused.remove(i);
        } else {
            todo.push(d);
        }
    }
    let mut writes = Vec::new();
    for d in todo {
        // Reuse a slice of the same address type (addressType is immutable).
        match unused
            .iter()
            .position(|e| e["addressType"] == d["addressType"])
        {
            Some(i) => {
                let e = unused.remove(i);
                let mut o = (**e).clone();
                o["metadata"]["labels"] = d["metadata"]["labels"].clone();
                o["metadata"]["ownerReferences"] = d["metadata"]["ownerReferences"].clone();
                o["endpoints"] = d["endpoints"].clone();
                o["ports"] = d["ports"].clone();
                writes.push(Write::Update(o));
            }
            None => writes.push(Write::Create(d)),
        }
    }
    writes.extend(unused.into_iter().map(|s| Write::Delete {
        name: util::name(s).to_string(),
        uid: util::uid(s).to_string(),
    }));
    writes
}

#[cfg(test)]
mod tests;
