//! Priority preemption (Kubernetes' DefaultPreemption PostFilter): find the node where
//! evicting the fewest, least important lower-priority pods lets the pod fit.

use std::sync::Arc;

use serde_json::Value;

use crate::filters::{Cycle, run_filters};
use crate::model::PodInfo;
use crate::snapshot::Snapshot;
use crate::unschedulable::Unschedulable;
use crate::{Config, feasible};

/// A preemption decision: evict `victims` (pod keys `namespace/name`) from `node`, then
/// the preemptor fits there (Kubernetes records it as the pod's nominatedNodeName).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    /// The node to make room on.
    pub node: String,
    /// The pods to evict, most important first.
    pub victims: Vec<String>,
}

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Whether `pod` passes every filter on `node` in `sim`.
fn fits(sim: &Snapshot, pod: &PodInfo, node: &str) -> Result<(), Vec<String>> {
    let Some(state) = sim.nodes.get(node) else {
        return Err(vec![NOT_HELPFUL.to_string()]);
    };
    let Some(spec) = state.spec.as_ref() else {
        return Err(vec![NOT_HELPFUL.to_string()]);
    };
    let cycle = Cycle::new(sim, pod);
    run_filters(&cycle, sim, pod, state, spec).map_err(|f| f.reasons)
}

struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
}

/// Kubernetes' pickOneNodeForPreemption order (without PodDisruptionBudgets): lowest
/// highest-victim priority, then lowest priority sum, then fewest victims, then the
/// node whose most important victims started latest, then the first node by name.
fn better(a: &Candidate, b: &Candidate) -> bool {
    let highest = |c: &Candidate| {
        c.victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i64::MIN)
    };
    let sum = |c: &Candidate| -> i64 {
        // Offset so negative priorities still add up positively, as Kubernetes does.
        c.victims
            .iter()
            .map(|v| v.priority + i64::from(i32::MAX) + 1)
            .sum()
    };
    let earliest_of_highest = |c: &Candidate| -> String {
        let h = highest(c);
        c.victims
            .iter()
            .filter(|v| v.priority == h)
            .map(|v| v.start_time.clone())
            .min()
            .unwrap_or_default()
    };
    let key_a = (highest(a), sum(a), a.victims.len());
    let key_b = (highest(b), sum(b), b.victims.len());
    if key_a != key_b {
        return key_a < key_b;
    }
    let (ta, tb) = (earliest_of_highest(a), earliest_of_highest(b));
    if ta != tb {
        return ta > tb;
    }
    a.node < b.node
}

/// Finds a preemption for `pod`, or explains why there is none with Kubernetes'
/// PostFilter message (`preemption: 0/3 nodes are available: ...`), ready for
/// [`Unschedulable::set_preemption_message`]. Only pods of strictly lower priority are
/// victims; nodes that failed for unresolvable reasons are skipped; on each candidate
/// node, victims are reprieved most important first while the pod still fits.
pub fn try_preempt(
    snapshot: &Snapshot,
    pod: &Value,
    config: &Config,
) -> Result<Preemption, String> {
    if !config.preemption {
        return Err("preemption: disabled by configuration.".to_string());
    }
    let info = PodInfo::parse(pod).map_err(|e| format!("preemption: invalid pod: {e}"))?;
    if info.preemption_never {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".to_string());
    }
    let failures = match feasible(snapshot, &info, usize::MAX) {
        Ok(_) => return Err("preemption: not needed, the pod fits a node.".to_string()),
        Err(u) => u.node_failures().clone(),
    };
    let num_nodes = snapshot.node_count();
    let mut statuses: Vec<String> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut sim = snapshot.clone();
    for (node, failure) in &failures {
        if failure.unresolvable {
            statuses.push(NOT_HELPFUL.to_string());
            continue;
        }
        let lower: Vec<Arc<PodInfo>> = sim
            .nodes
            .get(node)
            .map(|s| {
                s.pods
                    .iter()
                    .filter(|p| p.priority < info.priority)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if lower.is_empty() {
            statuses.push(NO_VICTIMS.to_string());
            continue;
        }
        for v in &lower {
            sim.take_pod(&v.key);
        }
        if let Err(reasons) = fits(&sim, &info, node) {
            statuses.extend(reasons);
            for v in &lower {
                sim.insert(v.clone(), node);
            }
            continue;
        }
        let mut order = lower;
        order.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.start_time.cmp(&b.start_time))
        });
        let mut victims = Vec::new();
        for v in order {
            sim.insert(v.clone(), node);
            if fits(&sim, &info, node).is_err() {
                sim.take_pod(&v.key);
                victims.push(v);
            }
        }
        for v in &victims {
            sim.insert(v.clone(), node);
        }
        if victims.is_empty() {
            statuses.push(NO_VICTIMS.to_string());
            continue;
        }
        candidates.push(Candidate {
            node: node.clone(),
            victims,
        });
    }
    let mut best: Option<Candidate> = None;
    for c in candidates {
        if best.as_ref().is_none_or(|b| better(&c, b)) {
            best = Some(c);
        }
    }
    match best {
        Some(c) => Ok(Preemption {
            node: c.node,
            victims: c.victims.iter().map(|v| v.key.clone()).collect(),
        }),
        None => Err(format!(
            "preemption: {}",
            Unschedulable::render_nodes(num_nodes, statuses.iter().map(String::as_str))
        )),
    }
}

/// The node to preempt on and the victims' keys, or `None` when preemption cannot
/// help (see [`try_preempt`] for the reason).
pub fn preempt(snapshot: &Snapshot, pod: &Value, config: &Config) -> Option<(String, Vec<String>)> {
    try_preempt(snapshot, pod, config)
        .ok()
        .map(|p| (p.node, p.victims))
}
