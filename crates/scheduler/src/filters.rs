//! Filter plugins: each decides whether one node can take the pod, with Kubernetes'
//! reason strings (they end up in the FailedScheduling event) and whether preemption
//! could help (`unresolvable` = removing pods from the node would not).

use std::collections::HashMap;

use crate::model::{
    Effect, NodeSpec, PodInfo, SpreadConstraint, TAINT_UNSCHEDULABLE, Taint, tolerated,
};
use crate::snapshot::{NodeState, Snapshot};

/// Reason of NodeUnschedulable.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason of NodeName.
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// Reason of NodeAffinity (nodeSelector and required node affinity).
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason of NodePorts.
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// Reason of NodeResourcesFit for the pod count.
pub const REASON_TOO_MANY_PODS: &str = "Too many pods";
/// Reason of InterPodAffinity for the pod's required affinity.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Reason of InterPodAffinity for the pod's required anti-affinity.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Reason of InterPodAffinity for existing pods' anti-affinity against this pod.
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// Reason of PodTopologySpread when the skew would be exceeded.
pub const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// Reason of PodTopologySpread when the node lacks a constraint's topology label.
pub const REASON_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// Why one node was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    /// The reasons, as Kubernetes words them (one plugin can give several, e.g.
    /// "Insufficient cpu" and "Insufficient memory").
    pub reasons: Vec<String>,
    /// Kubernetes' UnschedulableAndUnresolvable: evicting pods from this node would not
    /// make it fit, so preemption skips it.
    pub unresolvable: bool,
}

impl NodeFailure {
    fn new(reason: impl Into<String>, unresolvable: bool) -> Self {
        NodeFailure {
            reasons: vec![reason.into()],
            unresolvable,
        }
    }
}

type FilterResult = Result<(), NodeFailure>;

/// NodeUnschedulable: a cordoned node takes only pods tolerating the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub(crate) fn node_unschedulable(pod: &PodInfo, node: &NodeSpec) -> FilterResult {
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.to_string(),
        value: String::new(),
        effect: Effect::NoSchedule,
    };
    if node.unschedulable && !tolerated(&pod.tolerations, &taint) {
        return Err(NodeFailure::new(REASON_UNSCHEDULABLE, true));
    }
    Ok(())
}

/// NodeName: a pod naming a node fits only that node.
pub(crate) fn node_name(pod: &PodInfo, node: &NodeSpec) -> FilterResult {
    match &pod.node_name {
        Some(n) if *n != node.name => Err(NodeFailure::new(REASON_NODE_NAME, true)),
        _ => Ok(()),
    }
}

/// TaintToleration: every NoSchedule and NoExecute taint must be tolerated; the first
/// one that is not is reported.
pub(crate) fn taint_toleration(pod: &PodInfo, node: &NodeSpec) -> FilterResult {
    for t in &node.taints {
        if matches!(t.effect, Effect::NoSchedule | Effect::NoExecute)
            && !tolerated(&pod.tolerations, t)
        {
            return Err(NodeFailure::new(
                format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value),
                true,
            ));
        }
    }
    Ok(())
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity
/// (terms ORed; a required affinity with no terms matches nothing).
pub(crate) fn matches_node_affinity(pod: &PodInfo, node: &NodeSpec) -> bool {
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| v.as_str().is_some_and(|v| node.label(k) == Some(v)));
    selector_ok
        && pod
            .required_node_terms
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
}

/// NodeAffinity: nodeSelector plus required node affinity.
pub(crate) fn node_affinity(pod: &PodInfo, node: &NodeSpec) -> FilterResult {
    if matches_node_affinity(pod, node) {
        Ok(())
    } else {
        Err(NodeFailure::new(REASON_NODE_AFFINITY, true))
    }
}

/// NodePorts: no host port of the pod may conflict with one already used on the node.
pub(crate) fn node_ports(pod: &PodInfo, state: &NodeState) -> FilterResult {
    let conflict = pod
        .host_ports
        .iter()
        .any(|want| state.ports.iter().any(|used| used.conflicts(want)));
    if conflict {
        Err(NodeFailure::new(REASON_PORTS, false))
    } else {
        Ok(())
    }
}

/// NodeResourcesFit: requests against allocatable minus what placed pods request,
/// plus the pod count. Every insufficient resource is reported, as Kubernetes does.
pub(crate) fn resources_fit(pod: &PodInfo, state: &NodeState, node: &NodeSpec) -> FilterResult {
    let alloc = &node.allocatable;
    let used = &state.requested;
    let want = &pod.requests.requests;
    let mut reasons = Vec::new();
    if used.pods + 1 > alloc.pods {
        reasons.push(REASON_TOO_MANY_PODS.to_string());
    }
    if !want.is_zero() {
        if want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu - used.milli_cpu {
            reasons.push("Insufficient cpu".to_string());
        }
        if want.memory > 0 && want.memory > alloc.memory - used.memory {
            reasons.push("Insufficient memory".to_string());
        }
        if want.ephemeral_storage > 0
            && want.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".to_string());
        }
        for (name, q) in &want.scalar {
            let have = alloc.scalar.get(name).copied().unwrap_or(0)
                - used.scalar.get(name).copied().unwrap_or(0);
            if *q > 0 && *q > have {
                reasons.push(format!("Insufficient {name}"));
            }
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(NodeFailure {
            reasons,
            unresolvable: false,
        })
    }
}

type TopologyCounts = HashMap<(String, String), i64>;

/// Per-cycle state of a hard topology spread constraint (Kubernetes' PreFilter).
#[derive(Debug, Clone)]
pub(crate) struct SpreadState {
    constraint: SpreadConstraint,
    counts: HashMap<String, i64>,
    min: Option<i64>,
    self_match: bool,
}

/// Whether a node counts for a spread constraint's domains (node inclusion policies).
pub(crate) fn spread_eligible(c: &SpreadConstraint, pod: &PodInfo, node: &NodeSpec) -> bool {
    (!c.honor_affinity || matches_node_affinity(pod, node))
        && (!c.honor_taints || taint_toleration(pod, node).is_ok())
}

/// Counts the pods matching `c` in `pod`'s namespace, per value of the topology key,
/// over the nodes accepted by `include` (every such node's value is a domain, even
/// with no matching pod).
pub(crate) fn spread_counts(
    snap: &Snapshot,
    pod: &PodInfo,
    c: &SpreadConstraint,
    include: &dyn Fn(&NodeSpec) -> bool,
) -> HashMap<String, i64> {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for (state, node) in snap.live() {
        if !include(node) {
            continue;
        }
        let Some(value) = node.label(&c.topology_key) else {
            continue;
        };
        let n = state
            .pods
            .iter()
            .filter(|p| {
                !p.terminating && p.namespace == pod.namespace && c.selector.matches(&p.labels)
            })
            .count() as i64;
        *counts.entry(value.to_string()).or_insert(0) += n;
    }
    counts
}

/// Per-cycle precomputation shared by all nodes: what Kubernetes' PreFilter does for
/// InterPodAffinity and PodTopologySpread, so each node check is a lookup.
#[derive(Debug, Default)]
pub(crate) struct Cycle {
    affinity_counts: TopologyCounts,
    anti_counts: TopologyCounts,
    existing_anti_counts: TopologyCounts,
    spread: Vec<SpreadState>,
}

impl Cycle {
    pub fn new(snap: &Snapshot, pod: &PodInfo) -> Self {
        let mut cy = Cycle::default();
        let ns = &snap.namespaces;
        // Existing pods' required anti-affinity against the incoming pod.
        for other in snap.with_affinity.values() {
            if other.required_anti_affinity.is_empty() {
                continue;
            }
            let Some(node) = other
                .node_name
                .as_ref()
                .and_then(|n| snap.nodes.get(n))
                .and_then(|s| s.spec.as_ref())
            else {
                continue;
            };
            for t in &other.required_anti_affinity {
                if let Some(v) = node.label(&t.topology_key)
                    && t.matches_pod(pod, ns)
                {
                    *cy.existing_anti_counts
                        .entry((t.topology_key.clone(), v.to_string()))
                        .or_insert(0) += 1;
                }
            }
        }
        // The incoming pod's own required terms against every placed pod.
        if !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty() {
            for (state, node) in snap.live() {
                for other in &state.pods {
                    if !pod.required_affinity.is_empty()
                        && pod
                            .required_affinity
                            .iter()
                            .all(|t| t.matches_pod(other, ns))
                    {
                        for t in &pod.required_affinity {
                            if let Some(v) = node.label(&t.topology_key) {
                                *cy.affinity_counts
                                    .entry((t.topology_key.clone(), v.to_string()))
                                    .or_insert(0) += 1;
                            }
                        }
                    }
                    for t in &pod.required_anti_affinity {
                        if let Some(v) = node.label(&t.topology_key)
                            && t.matches_pod(other, ns)
                        {
                            *cy.anti_counts
                                .entry((t.topology_key.clone(), v.to_string()))
                                .or_insert(0) += 1;
                        }
                    }
                }
            }
        }
        // Hard topology spread constraints. Only nodes carrying every hard
        // constraint's key count, as in Kubernetes' PreFilter.
        let hard: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| c.hard).collect();
        for c in &hard {
            let include = |node: &NodeSpec| {
                hard.iter().all(|h| node.label(&h.topology_key).is_some())
                    && spread_eligible(c, pod, node)
            };
            let counts = spread_counts(snap, pod, c, &include);
            let mut min = counts.values().copied().min();
            if (counts.len() as i64) < c.min_domains {
                // Fewer domains than minDomains: the global minimum is taken as 0.
                min = Some(0);
            }
            cy.spread.push(SpreadState {
                self_match: c.selector.matches(&pod.labels),
                constraint: (*c).clone(),
                counts,
                min,
            });
        }
        cy
    }
}

/// PodTopologySpread (DoNotSchedule constraints): placing the pod here must keep
/// `count(domain) + 1 - global minimum <= maxSkew` for every hard constraint.
pub(crate) fn topology_spread(cycle: &Cycle, node: &NodeSpec) -> FilterResult {
    for s in &cycle.spread {
        let Some(value) = node.label(&s.constraint.topology_key) else {
            return Err(NodeFailure::new(REASON_SPREAD_LABEL, true));
        };
        let Some(min) = s.min else { continue };
        let count = s.counts.get(value).copied().unwrap_or(0);
        let skew = count + i64::from(s.self_match) - min;
        if skew > s.constraint.max_skew {
            return Err(NodeFailure::new(REASON_SPREAD, false));
        }
    }
    Ok(())
}

/// InterPodAffinity: the pod's required affinity (with the "first pod of its group"
/// exception), its required anti-affinity, then existing pods' anti-affinity.
pub(crate) fn inter_pod_affinity(
    cycle: &Cycle,
    snap: &Snapshot,
    pod: &PodInfo,
    node: &NodeSpec,
) -> FilterResult {
    if !pod.required_affinity.is_empty() {
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            let Some(v) = node.label(&t.topology_key) else {
                return Err(NodeFailure::new(REASON_AFFINITY, true));
            };
            if cycle
                .affinity_counts
                .get(&(t.topology_key.clone(), v.to_string()))
                .copied()
                .unwrap_or(0)
                <= 0
            {
                pods_exist = false;
            }
        }
        if !pods_exist {
            // Kubernetes lets the first pod of a self-affine group in when no pod in
            // the cluster matches the terms and the pod matches its own terms.
            let ns = &snap.namespaces;
            let self_match = pod.required_affinity.iter().all(|t| t.matches_pod(pod, ns));
            if !(cycle.affinity_counts.is_empty() && self_match) {
                return Err(NodeFailure::new(REASON_AFFINITY, true));
            }
        }
    }
    for t in &pod.required_anti_affinity {
        if let Some(v) = node.label(&t.topology_key)
            && cycle
                .anti_counts
                .get(&(t.topology_key.clone(), v.to_string()))
                .is_some_and(|c| *c > 0)
        {
            return Err(NodeFailure::new(REASON_ANTI_AFFINITY, false));
        }
    }
    if !cycle.existing_anti_counts.is_empty() {
        for (k, v) in &node.labels {
            if let Some(v) = v.as_str()
                && cycle
                    .existing_anti_counts
                    .get(&(k.clone(), v.to_string()))
                    .is_some_and(|c| *c > 0)
            {
                return Err(NodeFailure::new(REASON_EXISTING_ANTI_AFFINITY, false));
            }
        }
    }
    Ok(())
}

/// Runs every filter on one node in Kubernetes' default plugin order, stopping at the
/// first plugin that rejects it (as the framework does).
pub(crate) fn run_filters(
    cycle: &Cycle,
    snap: &Snapshot,
    pod: &PodInfo,
    state: &NodeState,
    node: &NodeSpec,
) -> FilterResult {
    node_unschedulable(pod, node)?;
    node_name(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, state)?;
    resources_fit(pod, state, node)?;
    topology_spread(cycle, node)?;
    inter_pod_affinity(cycle, snap, pod, node)?;
    Ok(())
}
