//! Pods and nodes parsed once, when they enter the snapshot, into the compact form the
//! plugins read: thousands of placements per second cannot afford to walk JSON.

use std::collections::{BTreeSet, HashMap};

use labels::{LabelSelector, Operator, Requirement};
use serde_json::{Map, Value};

use crate::error::ObjectError;
use crate::resources::{PodRequests, Resources, pod_requests};

/// Taint put on cordoned nodes; tolerating it lets a pod onto a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Taint Kubernetes puts on a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint Kubernetes puts on a node whose Ready condition is Unknown (lost heartbeat).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The well-known hostname label, the per-node topology domain.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known zone label, used to spread a controller's pods across zones.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn labels_of(v: &Value) -> Map<String, Value> {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn label<'a>(labels: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    labels.get(key).and_then(Value::as_str)
}

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    Other,
}

impl Effect {
    fn parse(s: &str) -> Self {
        match s {
            "NoSchedule" => Effect::NoSchedule,
            "PreferNoSchedule" => Effect::PreferNoSchedule,
            "NoExecute" => Effect::NoExecute,
            _ => Effect::Other,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Effect::NoSchedule => "NoSchedule",
            Effect::PreferNoSchedule => "PreferNoSchedule",
            Effect::NoExecute => "NoExecute",
            Effect::Other => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Toleration {
    key: String,
    exists: bool,
    bad_operator: bool,
    value: String,
    effect: String,
}

impl Toleration {
    fn parse(v: &Value) -> Self {
        let op = str_at(v, &["operator"]).unwrap_or("");
        Toleration {
            key: str_at(v, &["key"]).unwrap_or("").to_string(),
            exists: op == "Exists",
            bad_operator: !matches!(op, "" | "Equal" | "Exists"),
            value: str_at(v, &["value"]).unwrap_or("").to_string(),
            effect: str_at(v, &["effect"]).unwrap_or("").to_string(),
        }
    }

    /// `v1.Toleration.ToleratesTaint`: an empty effect matches every effect, an empty
    /// key with `Exists` matches every taint, `Equal` (or no operator) compares values.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect.name() {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        if self.bad_operator {
            return false;
        }
        self.exists || self.value == taint.value
    }

    /// Whether this toleration is considered for PreferNoSchedule scoring (Kubernetes
    /// keeps only tolerations with an empty or PreferNoSchedule effect).
    pub fn for_prefer_no_schedule(&self) -> bool {
        self.effect.is_empty() || self.effect == "PreferNoSchedule"
    }
}

pub(crate) fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeReq {
    key: String,
    op: NodeOp,
    values: Vec<String>,
}

impl NodeReq {
    fn parse(v: &Value) -> Self {
        let op = match str_at(v, &["operator"]).unwrap_or("") {
            "In" => NodeOp::In,
            "NotIn" => NodeOp::NotIn,
            "Exists" => NodeOp::Exists,
            "DoesNotExist" => NodeOp::DoesNotExist,
            "Gt" => NodeOp::Gt,
            "Lt" => NodeOp::Lt,
            _ => NodeOp::Invalid,
        };
        let values: Vec<String> = v
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        // The value counts Kubernetes' NodeSelectorRequirementsAsSelector insists on;
        // a malformed requirement makes its term match nothing.
        let op = match op {
            NodeOp::In | NodeOp::NotIn if values.is_empty() => NodeOp::Invalid,
            NodeOp::Exists | NodeOp::DoesNotExist if !values.is_empty() => NodeOp::Invalid,
            NodeOp::Gt | NodeOp::Lt if values.len() != 1 || values[0].parse::<i64>().is_err() => {
                NodeOp::Invalid
            }
            o => o,
        };
        NodeReq {
            key: str_at(v, &["key"]).unwrap_or("").to_string(),
            op,
            values,
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match self.op {
            NodeOp::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            NodeOp::NotIn => value.is_none_or(|v| self.values.iter().all(|x| x != v)),
            NodeOp::Exists => value.is_some(),
            NodeOp::DoesNotExist => value.is_none(),
            NodeOp::Gt | NodeOp::Lt => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == NodeOp::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
            NodeOp::Invalid => false,
        }
    }
}

/// One `nodeSelectorTerm`: its matchExpressions and matchFields are ANDed; an empty
/// term matches no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeSelectorTerm {
    exprs: Vec<NodeReq>,
    fields: Vec<NodeReq>,
}

impl NodeSelectorTerm {
    fn parse(v: &Value) -> Self {
        let list = |k: &str| -> Vec<NodeReq> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(NodeReq::parse).collect())
                .unwrap_or_default()
        };
        let mut fields = list("matchFields");
        // Only metadata.name is a supported field, and only with In/NotIn.
        for f in &mut fields {
            if f.key != "metadata.name" || !matches!(f.op, NodeOp::In | NodeOp::NotIn) {
                f.op = NodeOp::Invalid;
            }
        }
        NodeSelectorTerm {
            exprs: list("matchExpressions"),
            fields,
        }
    }

    fn is_empty(&self) -> bool {
        self.exprs.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, node: &NodeSpec) -> bool {
        !self.is_empty()
            && self
                .exprs
                .iter()
                .all(|r| r.matches(label(&node.labels, &r.key)))
            && self.fields.iter().all(|r| r.matches(Some(&node.name)))
    }
}

/// A label selector plus the extra requirements `matchLabelKeys`/`mismatchLabelKeys`
/// derive from the owning pod's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    base: LabelSelector,
    extra: Vec<Requirement>,
}

impl Selector {
    fn parse(
        v: Option<&Value>,
        match_keys: Option<&Value>,
        mismatch_keys: Option<&Value>,
        own_labels: &Map<String, Value>,
        object: &str,
    ) -> Result<Self, ObjectError> {
        let base = LabelSelector::from_json(v.unwrap_or(&Value::Null)).map_err(|source| {
            ObjectError::Selector {
                object: object.to_string(),
                source,
            }
        })?;
        let mut extra = Vec::new();
        for (keys, op) in [(match_keys, Operator::In), (mismatch_keys, Operator::NotIn)] {
            for k in keys
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let Some(val) = label(own_labels, k)
                    && let Ok(r) = Requirement::new(k, op, BTreeSet::from([val.to_string()]))
                {
                    extra.push(r);
                }
            }
        }
        Ok(Selector { base, extra })
    }

    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.base.matches(labels) && self.extra.iter().all(|r| r.matches(labels))
    }
}

/// A required or preferred pod (anti-)affinity term, with its namespaces resolved to
/// "these names or namespaces whose labels match".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AffinityTerm {
    pub selector: Selector,
    namespaces: Vec<String>,
    ns_selector: Option<LabelSelector>,
    pub topology_key: String,
    pub weight: i64,
}

impl AffinityTerm {
    fn parse(
        term: &Value,
        weight: i64,
        own_ns: &str,
        own_labels: &Map<String, Value>,
        object: &str,
    ) -> Result<Self, ObjectError> {
        let selector = Selector::parse(
            term.get("labelSelector"),
            term.get("matchLabelKeys"),
            term.get("mismatchLabelKeys"),
            own_labels,
            object,
        )?;
        let mut namespaces: Vec<String> = term
            .get("namespaces")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let ns_selector = match term.get("namespaceSelector") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(
                    LabelSelector::from_json(v).map_err(|source| ObjectError::Selector {
                        object: object.to_string(),
                        source,
                    })?,
                )
            }
        };
        // Neither namespaces nor a namespaceSelector: the pod's own namespace.
        if namespaces.is_empty() && ns_selector.is_none() {
            namespaces.push(own_ns.to_string());
        }
        Ok(AffinityTerm {
            selector,
            namespaces,
            ns_selector,
            topology_key: str_at(term, &["topologyKey"]).unwrap_or("").to_string(),
            weight,
        })
    }

    /// Whether `pod` is one of the pods this term is about.
    pub fn matches_pod(
        &self,
        pod: &PodInfo,
        ns_labels: &HashMap<String, Map<String, Value>>,
    ) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.ns_selector.as_ref().is_some_and(|s| {
                let empty = Map::new();
                s.matches(ns_labels.get(&pod.namespace).unwrap_or(&empty))
            });
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// One `topologySpreadConstraint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `whenUnsatisfiable: DoNotSchedule` (a filter) rather than ScheduleAnyway (a score).
    pub hard: bool,
    pub selector: Selector,
    pub min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod could go to count.
    pub honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore): skip nodes with untolerated taints.
    pub honor_taints: bool,
}

/// A host port a container claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i64,
}

impl HostPort {
    /// Kubernetes' conflict rule: same protocol and port, and the same IP or either one
    /// the wildcard 0.0.0.0.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// Everything the plugins need about one pod, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct PodInfo {
    pub key: String,
    pub namespace: String,
    pub node_name: Option<String>,
    pub labels: Map<String, Value>,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub priority: i64,
    pub preemption_never: bool,
    pub owner_uid: Option<String>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: Map<String, Value>,
    pub required_node_terms: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_terms: Vec<(i64, NodeSelectorTerm)>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<AffinityTerm>,
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    pub spread: Vec<SpreadConstraint>,
    pub start_time: String,
    /// Has a deletionTimestamp: topology spread does not count it.
    pub terminating: bool,
}

fn affinity_terms(
    spec: &Value,
    kind: &str,
    preferred: bool,
    ns: &str,
    own_labels: &Map<String, Value>,
    object: &str,
) -> Result<Vec<AffinityTerm>, ObjectError> {
    let field = if preferred {
        "preferredDuringSchedulingIgnoredDuringExecution"
    } else {
        "requiredDuringSchedulingIgnoredDuringExecution"
    };
    let Some(list) = spec
        .get("affinity")
        .and_then(|a| a.get(kind))
        .and_then(|a| a.get(field))
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|t| {
            if preferred {
                let w = t.get("weight").and_then(Value::as_i64).unwrap_or(0);
                let term = t.get("podAffinityTerm").unwrap_or(&Value::Null);
                AffinityTerm::parse(term, w, ns, own_labels, object)
            } else {
                AffinityTerm::parse(t, 1, ns, own_labels, object)
            }
        })
        .collect()
}

impl PodInfo {
    /// Parses a pod object (the API's JSON).
    pub fn parse(pod: &Value) -> Result<Self, ObjectError> {
        let name =
            str_at(pod, &["metadata", "name"]).ok_or(ObjectError::MissingName { kind: "pod" })?;
        let namespace = str_at(pod, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_string();
        let key = format!("{namespace}/{name}");
        let null = Value::Null;
        let spec = pod.get("spec").unwrap_or(&null);
        let labels = labels_of(pod);
        let requests = pod_requests(spec).map_err(|source| ObjectError::Quantity {
            object: key.clone(),
            source,
        })?;
        let mut host_ports = Vec::new();
        for c in spec
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let port = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
                if port > 0 {
                    host_ports.push(HostPort {
                        ip: str_at(p, &["hostIP"])
                            .filter(|s| !s.is_empty())
                            .unwrap_or("0.0.0.0")
                            .to_string(),
                        protocol: str_at(p, &["protocol"])
                            .filter(|s| !s.is_empty())
                            .unwrap_or("TCP")
                            .to_string(),
                        port,
                    });
                }
            }
        }
        let owner_uid = pod
            .get("metadata")
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            })
            .and_then(|r| str_at(r, &["uid"]))
            .map(str::to_string);
        let tolerations = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(Toleration::parse).collect())
            .unwrap_or_default();
        let node_aff = spec.get("affinity").and_then(|a| a.get("nodeAffinity"));
        let required_node_terms = node_aff
            .and_then(|n| n.get("requiredDuringSchedulingIgnoredDuringExecution"))
            .filter(|r| !r.is_null())
            .map(|r| {
                r.get("nodeSelectorTerms")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(NodeSelectorTerm::parse).collect())
                    .unwrap_or_default()
            });
        let preferred_node_terms = node_aff
            .and_then(|n| n.get("preferredDuringSchedulingIgnoredDuringExecution"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        let w = p.get("weight").and_then(Value::as_i64).unwrap_or(0);
                        let t = NodeSelectorTerm::parse(p.get("preference")?);
                        (w != 0 && !t.is_empty()).then_some((w, t))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut spread = Vec::new();
        for c in spec
            .get("topologySpreadConstraints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            spread.push(SpreadConstraint {
                max_skew: c.get("maxSkew").and_then(Value::as_i64).unwrap_or(1).max(1),
                topology_key: str_at(c, &["topologyKey"]).unwrap_or("").to_string(),
                hard: str_at(c, &["whenUnsatisfiable"]) != Some("ScheduleAnyway"),
                selector: Selector::parse(
                    c.get("labelSelector"),
                    c.get("matchLabelKeys"),
                    None,
                    &labels,
                    &key,
                )?,
                min_domains: c.get("minDomains").and_then(Value::as_i64).unwrap_or(1),
                honor_affinity: str_at(c, &["nodeAffinityPolicy"]) != Some("Ignore"),
                honor_taints: str_at(c, &["nodeTaintsPolicy"]) == Some("Honor"),
            });
        }
        Ok(PodInfo {
            required_affinity: affinity_terms(
                spec,
                "podAffinity",
                false,
                &namespace,
                &labels,
                &key,
            )?,
            required_anti_affinity: affinity_terms(
                spec,
                "podAntiAffinity",
                false,
                &namespace,
                &labels,
                &key,
            )?,
            preferred_affinity: affinity_terms(
                spec,
                "podAffinity",
                true,
                &namespace,
                &labels,
                &key,
            )?,
            preferred_anti_affinity: affinity_terms(
                spec,
                "podAntiAffinity",
                true,
                &namespace,
                &labels,
                &key,
            )?,
            node_name: str_at(spec, &["nodeName"])
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            priority: spec.get("priority").and_then(Value::as_i64).unwrap_or(0),
            preemption_never: str_at(spec, &["preemptionPolicy"]) == Some("Never"),
            node_selector: spec
                .get("nodeSelector")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            start_time: str_at(pod, &["status", "startTime"])
                .or_else(|| str_at(pod, &["metadata", "creationTimestamp"]))
                .unwrap_or("")
                .to_string(),
            terminating: pod
                .get("metadata")
                .and_then(|m| m.get("deletionTimestamp"))
                .is_some_and(|d| !d.is_null()),
            key,
            namespace,
            labels,
            requests,
            host_ports,
            owner_uid,
            tolerations,
            required_node_terms,
            preferred_node_terms,
            spread,
        })
    }

    /// Whether any existing-pod rule (affinity of any kind) can involve other pods.
    pub fn has_pod_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }
}

/// Everything the plugins need about one node, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub name: String,
    pub labels: Map<String, Value>,
    pub allocatable: Resources,
    /// The node's taints plus the not-ready/unreachable taint its Ready condition
    /// implies (what Kubernetes' TaintNodesByCondition would have added).
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// Region and zone labels joined (Kubernetes' `GetZoneKey`), precomputed because
    /// controller spreading reads it for every node on every placement.
    pub zone_key: Option<String>,
}

impl NodeSpec {
    /// Parses a node object (the API's JSON).
    pub fn parse(node: &Value) -> Result<Self, ObjectError> {
        let name = str_at(node, &["metadata", "name"])
            .ok_or(ObjectError::MissingName { kind: "node" })?
            .to_string();
        let status = node.get("status");
        // Allocatable defaults to capacity, as the API's defaulting of NodeStatus does.
        let list = status
            .and_then(|s| s.get("allocatable"))
            .filter(|v| !v.is_null())
            .or_else(|| status.and_then(|s| s.get("capacity")));
        let allocatable = Resources::from_list(list).map_err(|source| ObjectError::Quantity {
            object: name.clone(),
            source,
        })?;
        let mut taints: Vec<Taint> = node
            .get("spec")
            .and_then(|s| s.get("taints"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| Taint {
                        key: str_at(t, &["key"]).unwrap_or("").to_string(),
                        value: str_at(t, &["value"]).unwrap_or("").to_string(),
                        effect: Effect::parse(str_at(t, &["effect"]).unwrap_or("")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ready = status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| str_at(c, &["type"]) == Some("Ready")))
            .and_then(|c| str_at(c, &["status"]));
        // A node that never reported Ready is treated as unreachable, as the node
        // lifecycle controller does ("Kubelet never posted node status").
        let implied = match ready {
            Some("True") => None,
            Some("False") => Some(TAINT_NOT_READY),
            _ => Some(TAINT_UNREACHABLE),
        };
        if let Some(key) = implied
            && !taints.iter().any(|t| t.key == key)
        {
            taints.push(Taint {
                key: key.to_string(),
                value: String::new(),
                effect: Effect::NoSchedule,
            });
        }
        let labels = labels_of(node);
        let zone_key = label(&labels, LABEL_ZONE).map(|zone| {
            let region = label(&labels, "topology.kubernetes.io/region").unwrap_or("");
            format!("{region}:\x00:{zone}")
        });
        Ok(NodeSpec {
            zone_key,
            labels,
            allocatable,
            taints,
            unschedulable: node
                .get("spec")
                .and_then(|s| s.get("unschedulable"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            name,
        })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        label(&self.labels, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str, value: &str, effect: Effect) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect,
        }
    }

    #[test]
    fn toleration_table() {
        // v1.Toleration.ToleratesTaint cases.
        let cases = [
            (
                json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "k", "value": "other"}), false),
            (json!({"key": "other", "operator": "Exists"}), false),
            (
                json!({"key": "k", "value": "v", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "k", "operator": "Bogus"}), false),
            // ToleratesTaint skips the key check when the key is empty, so an empty key
            // with Equal compares values only (API validation normally rejects it).
            (json!({"value": "v"}), true),
            (json!({"value": "w"}), false),
        ];
        let t = taint("k", "v", Effect::NoSchedule);
        for (tol, want) in cases {
            assert_eq!(Toleration::parse(&tol).tolerates(&t), want, "{tol}");
        }
    }

    #[test]
    fn node_requirement_table() {
        let node = NodeSpec::parse(&json!({
            "metadata": {"name": "n1", "labels": {"zone": "a", "cores": "8"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let cases = [
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["4"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4", "5"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": []}]}),
                false,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
                true,
            ),
            (
                json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}),
                false,
            ),
            (
                json!({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["n1"]}]}),
                false,
            ),
            // Both lists are ANDed.
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}],
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}),
                false,
            ),
            // An empty term matches nothing.
            (json!({}), false),
        ];
        for (term, want) in cases {
            assert_eq!(
                NodeSelectorTerm::parse(&term).matches(&node),
                want,
                "{term}"
            );
        }
    }

    #[test]
    fn ready_condition_implies_taints() {
        let cases = [
            (json!([{"type": "Ready", "status": "True"}]), None),
            (
                json!([{"type": "Ready", "status": "False"}]),
                Some(TAINT_NOT_READY),
            ),
            (
                json!([{"type": "Ready", "status": "Unknown"}]),
                Some(TAINT_UNREACHABLE),
            ),
            (json!([]), Some(TAINT_UNREACHABLE)),
        ];
        for (conds, want) in cases {
            let n = NodeSpec::parse(
                &json!({"metadata": {"name": "n"}, "status": {"conditions": conds}}),
            )
            .unwrap();
            assert_eq!(n.taints.first().map(|t| t.key.as_str()), want);
        }
    }

    #[test]
    fn allocatable_defaults_to_capacity() {
        let n = NodeSpec::parse(&json!({"metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "2", "pods": "110"}}}))
        .unwrap();
        assert_eq!(n.allocatable.milli_cpu, 2000);
        assert_eq!(n.allocatable.pods, 110);
    }

    #[test]
    fn host_port_conflicts() {
        let p = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        assert!(p("0.0.0.0", "TCP", 80).conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(p("10.0.0.1", "TCP", 80).conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(!p("10.0.0.1", "TCP", 80).conflicts(&p("10.0.0.2", "TCP", 80)));
        assert!(!p("0.0.0.0", "TCP", 80).conflicts(&p("0.0.0.0", "UDP", 80)));
        assert!(!p("0.0.0.0", "TCP", 80).conflicts(&p("0.0.0.0", "TCP", 81)));
    }
}
