//! Score plugins: each gives every feasible node a raw score, normalized to 0–100 the
//! way the matching Kubernetes plugin does, then weighted and summed.

use std::collections::HashMap;

use crate::filters::{spread_counts, spread_eligible};
use crate::model::{Effect, LABEL_HOSTNAME, NodeSpec, PodInfo};
use crate::snapshot::{NodeState, Snapshot};
use crate::{Config, Strategy};

/// Kubernetes' MaxNodeScore.
pub const MAX_NODE_SCORE: i64 = 100;

/// LeastAllocated (`(capacity - requested) * 100 / capacity`) or MostAllocated
/// (`requested * 100 / capacity`) over cpu and memory, equally weighted, counting the
/// incoming pod and using non-zero requests (request-less containers still count).
pub(crate) fn allocation(
    strategy: Strategy,
    pod: &PodInfo,
    state: &NodeState,
    node: &NodeSpec,
) -> i64 {
    let pairs = [
        (
            state.non_zero_cpu + pod.requests.non_zero_milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            state.non_zero_memory + pod.requests.non_zero_memory,
            node.allocatable.memory,
        ),
    ];
    let mut total = 0;
    for (requested, capacity) in pairs {
        total += match strategy {
            Strategy::Spread => {
                if capacity <= 0 || requested > capacity {
                    0
                } else {
                    (capacity - requested) * MAX_NODE_SCORE / capacity
                }
            }
            Strategy::Binpack => {
                if capacity <= 0 {
                    0
                } else {
                    requested.min(capacity) * MAX_NODE_SCORE / capacity
                }
            }
        };
    }
    total / pairs.len() as i64
}

/// NodeResourcesBalancedAllocation: `(1 - std(cpu fraction, memory fraction)) * 100`,
/// favouring nodes whose cpu and memory fill evenly.
pub(crate) fn balanced(pod: &PodInfo, state: &NodeState, node: &NodeSpec) -> i64 {
    let frac = |req: i64, cap: i64| {
        if cap <= 0 {
            1.0
        } else {
            (req as f64 / cap as f64).min(1.0)
        }
    };
    let c = frac(
        state.non_zero_cpu + pod.requests.non_zero_milli_cpu,
        node.allocatable.milli_cpu,
    );
    let m = frac(
        state.non_zero_memory + pod.requests.non_zero_memory,
        node.allocatable.memory,
    );
    let std = (c - m).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Preferred node affinity: the sum of the weights of matching preferred terms.
pub(crate) fn node_affinity_raw(pod: &PodInfo, node: &NodeSpec) -> i64 {
    pod.preferred_node_terms
        .iter()
        .filter(|(_, t)| t.matches(node))
        .map(|(w, _)| *w)
        .sum()
}

/// TaintToleration score: the count of PreferNoSchedule taints not tolerated.
pub(crate) fn intolerable_prefer_no_schedule(pod: &PodInfo, node: &NodeSpec) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == Effect::PreferNoSchedule)
        .filter(|t| {
            !pod.tolerations
                .iter()
                .any(|tol| tol.for_prefer_no_schedule() && tol.tolerates(t))
        })
        .count() as i64
}

/// Kubernetes' DefaultNormalizeScore: scale so the best node gets 100 (or, reversed,
/// the worst gets 0); all-zero scores become 0 (100 when reversed).
pub(crate) fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// InterPodAffinity preferred terms (both the pod's and existing pods', plus existing
/// pods' required affinity at `hard_pod_affinity_weight`), summed per topology domain.
pub(crate) fn inter_pod_raw(
    snap: &Snapshot,
    pod: &PodInfo,
    config: &Config,
    nodes: &[(&NodeState, &NodeSpec)],
) -> Option<Vec<i64>> {
    let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    if !own && snap.with_affinity.is_empty() {
        return None;
    }
    let ns = &snap.namespaces;
    let mut topo: HashMap<String, HashMap<String, i64>> = HashMap::new();
    let mut add = |node: &NodeSpec, key: &str, w: i64| {
        if let Some(v) = node.label(key) {
            *topo
                .entry(key.to_string())
                .or_default()
                .entry(v.to_string())
                .or_insert(0) += w;
        }
    };
    let mut visit = |other: &PodInfo, node: &NodeSpec| {
        for t in &pod.preferred_affinity {
            if t.matches_pod(other, ns) {
                add(node, &t.topology_key, t.weight);
            }
        }
        for t in &pod.preferred_anti_affinity {
            if t.matches_pod(other, ns) {
                add(node, &t.topology_key, -t.weight);
            }
        }
        for t in &other.preferred_affinity {
            if t.matches_pod(pod, ns) {
                add(node, &t.topology_key, t.weight);
            }
        }
        for t in &other.preferred_anti_affinity {
            if t.matches_pod(pod, ns) {
                add(node, &t.topology_key, -t.weight);
            }
        }
        if config.hard_pod_affinity_weight > 0 {
            for t in &other.required_affinity {
                if t.matches_pod(pod, ns) {
                    add(node, &t.topology_key, config.hard_pod_affinity_weight);
                }
            }
        }
    };
    if own {
        for (state, node) in snap.live() {
            for other in &state.pods {
                visit(other, node);
            }
        }
    } else {
        for other in snap.with_affinity.values() {
            if let Some(node) = other
                .node_name
                .as_ref()
                .and_then(|n| snap.nodes.get(n))
                .and_then(|s| s.spec.as_ref())
            {
                visit(other, node);
            }
        }
    }
    if topo.is_empty() {
        return None;
    }
    Some(
        nodes
            .iter()
            .map(|(_, node)| {
                topo.iter()
                    .filter_map(|(k, m)| node.label(k).and_then(|v| m.get(v)))
                    .sum()
            })
            .collect(),
    )
}

/// InterPodAffinity normalization: min–max scaling to 0–100.
pub(crate) fn min_max_normalize(scores: &mut [i64]) {
    let (Some(min), Some(max)) = (scores.iter().min().copied(), scores.iter().max().copied())
    else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            MAX_NODE_SCORE * (*s - min) / diff
        } else {
            0
        };
    }
}

/// SelectorSpread-like: fewer pods of the same controller on the node (weight 1/3) and
/// in its zone (weight 2/3) score higher. Pods without a controller get no opinion.
pub(crate) fn controller_spread(
    snap: &Snapshot,
    pod: &PodInfo,
    nodes: &[(&NodeState, &NodeSpec)],
) -> Option<Vec<i64>> {
    const ZONE_WEIGHTING: f64 = 2.0 / 3.0;
    let owner = *snap.owner_ids.get(pod.owner_uid.as_ref()?)?;
    let counts: Vec<i64> = nodes.iter().map(|(s, _)| s.owner_count(owner)).collect();
    let mut by_zone: HashMap<&str, i64> = HashMap::new();
    for ((_, n), c) in nodes.iter().zip(&counts) {
        if let Some(z) = &n.zone_key {
            *by_zone.entry(z.as_str()).or_insert(0) += c;
        }
    }
    let max_node = counts.iter().copied().max().unwrap_or(0);
    let max_zone = by_zone.values().copied().max().unwrap_or(0);
    let max = MAX_NODE_SCORE as f64;
    Some(
        nodes
            .iter()
            .zip(&counts)
            .map(|((_, n), c)| {
                let mut f = max;
                if max_node > 0 {
                    f = max * (max_node - c) as f64 / max_node as f64;
                }
                if let Some(z) = &n.zone_key {
                    let mut zs = max;
                    if max_zone > 0 {
                        let zc = by_zone.get(z.as_str()).copied().unwrap_or(0);
                        zs = max * (max_zone - zc) as f64 / max_zone as f64;
                    }
                    f = f * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zs;
                }
                f as i64
            })
            .collect(),
    )
}

/// PodTopologySpread ScheduleAnyway constraints: fewer matching pods in the node's
/// domains scores higher; Kubernetes' log-weighted sum and inverse normalization.
pub(crate) fn soft_spread(
    snap: &Snapshot,
    pod: &PodInfo,
    nodes: &[(&NodeState, &NodeSpec)],
) -> Option<Vec<i64>> {
    let soft: Vec<_> = pod.spread.iter().filter(|c| !c.hard).collect();
    if soft.is_empty() {
        return None;
    }
    let has_keys = |n: &NodeSpec| soft.iter().all(|c| n.label(&c.topology_key).is_some());
    let mut raw: Vec<Option<f64>> = nodes
        .iter()
        .map(|(_, n)| has_keys(n).then_some(0.0))
        .collect();
    for c in &soft {
        let include = |n: &NodeSpec| has_keys(n) && spread_eligible(c, pod, n);
        let counts = if c.topology_key == LABEL_HOSTNAME {
            None
        } else {
            Some(spread_counts(snap, pod, c, &include))
        };
        // Domains among the feasible nodes that carry all keys.
        let mut domains: Vec<&str> = nodes
            .iter()
            .filter(|(_, n)| has_keys(n))
            .filter_map(|(_, n)| n.label(&c.topology_key))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let weight = ((domains.len() + 2) as f64).ln();
        for (i, (state, n)) in nodes.iter().enumerate() {
            let Some(score) = raw[i].as_mut() else {
                continue;
            };
            let cnt = match &counts {
                Some(counts) => n
                    .label(&c.topology_key)
                    .and_then(|v| counts.get(v))
                    .copied()
                    .unwrap_or(0),
                None => state
                    .pods
                    .iter()
                    .filter(|p| {
                        !p.terminating
                            && p.namespace == pod.namespace
                            && c.selector.matches(&p.labels)
                    })
                    .count() as i64,
            };
            *score += cnt as f64 * weight + (c.max_skew - 1) as f64;
        }
    }
    let ints: Vec<Option<i64>> = raw.iter().map(|s| s.map(|v| v.round() as i64)).collect();
    let max = ints.iter().flatten().copied().max().unwrap_or(0);
    let min = ints.iter().flatten().copied().min().unwrap_or(0);
    Some(
        ints.iter()
            .map(|s| match s {
                None => 0,
                Some(_) if max == 0 => MAX_NODE_SCORE,
                Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
            })
            .collect(),
    )
}

/// Total weighted score of every feasible node, in the order given.
pub(crate) fn score_nodes(
    snap: &Snapshot,
    pod: &PodInfo,
    config: &Config,
    nodes: &[(&NodeState, &NodeSpec)],
) -> Vec<i64> {
    let w = &config.weights;
    let mut total: Vec<i64> = nodes
        .iter()
        .map(|(s, n)| {
            w.resources * allocation(config.strategy, pod, s, n) + w.balanced * balanced(pod, s, n)
        })
        .collect();
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += weight * s;
        }
    };
    if !pod.preferred_node_terms.is_empty() {
        let mut s: Vec<i64> = nodes
            .iter()
            .map(|(_, n)| node_affinity_raw(pod, n))
            .collect();
        default_normalize(&mut s, false);
        add(&s, w.node_affinity);
    }
    let mut taints: Vec<i64> = nodes
        .iter()
        .map(|(_, n)| intolerable_prefer_no_schedule(pod, n))
        .collect();
    default_normalize(&mut taints, true);
    add(&taints, w.taint_toleration);
    if let Some(mut s) = inter_pod_raw(snap, pod, config, nodes) {
        min_max_normalize(&mut s);
        add(&s, w.inter_pod_affinity);
    }
    if let Some(s) = soft_spread(snap, pod, nodes) {
        add(&s, w.topology_spread);
    }
    if let Some(s) = controller_spread(snap, pod, nodes) {
        add(&s, w.selector_spread);
    }
    total
}
