//! Drover's scheduling core: a pure function from a cluster [`Snapshot`] and a pod to
//! the node it should run on, or an [`Unschedulable`] diagnosis worded like
//! Kubernetes' FailedScheduling event; and [`preempt`] for priority preemption.
//!
//! The shape follows the Kubernetes scheduler framework: filter plugins (in the
//! default profile's order, stopping at the first rejection per node), then weighted
//! score plugins normalized to 0–100. No I/O, no clock, no randomness: ties between
//! equally good nodes are broken by a hash of the pod and node names, which spreads
//! like Kubernetes' random choice but stays reproducible. The only I/O lives in
//! [`runner`]: the watch loop, the scheduling queue and binding, which keep the
//! snapshot current with the incremental `add_*`/`remove_*` methods.
#![forbid(unsafe_code)]

mod error;
mod filters;
mod model;
mod preempt;

mod resources;
pub mod runner;
mod scores;
mod snapshot;
mod unschedulable;

use std::collections::BTreeMap;

use serde_json::Value;

pub use api::quantity::{Quantity, QuantityError};
pub use error::ObjectError;
pub use filters::{
    NodeFailure, REASON_AFFINITY, REASON_ANTI_AFFINITY, REASON_EXISTING_ANTI_AFFINITY,
    REASON_NODE_AFFINITY, REASON_NODE_NAME, REASON_PORTS, REASON_SPREAD, REASON_SPREAD_LABEL,
    REASON_TOO_MANY_PODS, REASON_UNSCHEDULABLE,
};
pub use model::{
    LABEL_HOSTNAME, LABEL_ZONE, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
};
pub use preempt::{Preemption, preempt, try_preempt};
pub use resources::{
    DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, PodRequests, Resources, pod_requests,
};
pub use snapshot::Snapshot;
pub use unschedulable::Unschedulable;

use filters::{Cycle, run_filters};
use model::PodInfo;

/// How resource usage ranks nodes: Docker Swarm's two strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Prefer the emptiest node (Kubernetes' LeastAllocated, its default).
    #[default]
    Spread,
    /// Prefer the fullest node that still fits (MostAllocated), to keep nodes free.
    Binpack,
}

/// Weights of the score plugins; the defaults are Kubernetes' default profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// NodeResourcesFit (LeastAllocated or MostAllocated).
    pub resources: i64,
    /// NodeResourcesBalancedAllocation.
    pub balanced: i64,
    /// Preferred node affinity.
    pub node_affinity: i64,
    /// Preferred inter-pod affinity and anti-affinity.
    pub inter_pod_affinity: i64,
    /// PreferNoSchedule taints.
    pub taint_toleration: i64,
    /// ScheduleAnyway topology spread constraints.
    pub topology_spread: i64,
    /// Spreading a controller's pods across nodes and zones.
    pub selector_spread: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            resources: 1,
            balanced: 1,
            node_affinity: 2,
            inter_pod_affinity: 2,
            taint_toleration: 3,
            topology_spread: 2,
            selector_spread: 1,
        }
    }
}

/// Scheduler configuration (a Kubernetes scheduler profile, reduced to what varies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Spread (LeastAllocated) or Binpack (MostAllocated).
    pub strategy: Strategy,
    /// Score plugin weights.
    pub weights: Weights,
    /// Weight given to existing pods' *required* affinity terms that match the
    /// incoming pod when scoring (Kubernetes' hardPodAffinityWeight, default 1).
    pub hard_pod_affinity_weight: i64,
    /// Whether lower-priority pods may be evicted to make room (Kubernetes'
    /// DefaultPreemption plugin, enabled by default).
    pub preemption: bool,
    /// Percentage of the nodes to find feasible before scoring stops looking (Kubernetes'
    /// percentageOfNodesToScore): 0 adapts it to the cluster (50 % minus 1 % per 125
    /// nodes, at least 5 %, at least 100 nodes), 100 looks at every node. On 5,000 nodes
    /// this is what keeps a placement from filtering all of them.
    pub percentage_of_nodes_to_score: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            strategy: Strategy::Spread,
            weights: Weights::default(),
            hard_pod_affinity_weight: 1,
            preemption: true,
            percentage_of_nodes_to_score: 0,
        }
    }
}

/// FNV-1a over the pod key and node name: a reproducible stand-in for Kubernetes'
/// random tie-break between equally scored nodes.
fn tie_hash(pod: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How many feasible nodes to find among `all` before scoring (Kubernetes'
/// numFeasibleNodesToFind).
pub fn nodes_to_find(all: usize, percentage: u32) -> usize {
    const MIN_FEASIBLE: usize = 100;
    const MIN_PERCENTAGE: usize = 5;
    if all < MIN_FEASIBLE || percentage >= 100 {
        return all;
    }
    let pct = match percentage {
        0 => 50usize.saturating_sub(all / 125).max(MIN_PERCENTAGE),
        p => p as usize,
    };
    (all * pct / 100).max(MIN_FEASIBLE)
}

/// Runs the filters on the nodes, starting at a place that depends on the pod (so that
/// pods spread the search over the cluster), until `to_find` nodes passed or every node
/// was tried; the feasible nodes, or the diagnosis of every node.
pub(crate) fn feasible<'s>(
    snap: &'s Snapshot,
    pod: &PodInfo,
    to_find: usize,
) -> Result<Vec<(&'s snapshot::NodeState, &'s model::NodeSpec)>, Unschedulable> {
    let n = snap.node_count();
    if n == 0 {
        return Err(Unschedulable::whole_pod(
            0,
            "no nodes available to schedule pods".into(),
        ));
    }
    let cycle = Cycle::new(snap, pod);
    let mut ok = Vec::new();
    let mut failures = BTreeMap::new();
    let start = usize::try_from(tie_hash(&pod.key, "") % n as u64).unwrap_or(0);
    for (state, node) in snap.live().skip(start).chain(snap.live().take(start)) {
        match run_filters(&cycle, snap, pod, state, node) {
            Ok(()) => ok.push((state, node)),
            Err(f) => {
                failures.insert(node.name.clone(), f);
            }
        }
        if ok.len() >= to_find.max(1) {
            break;
        }
    }
    if ok.is_empty() {
        Err(Unschedulable::new(n, failures))
    } else {
        Ok(ok)
    }
}

fn schedule_info(snap: &Snapshot, pod: &PodInfo, config: &Config) -> Result<String, Unschedulable> {
    let to_find = nodes_to_find(snap.node_count(), config.percentage_of_nodes_to_score);
    let nodes = feasible(snap, pod, to_find)?;
    if nodes.len() == 1 {
        return Ok(nodes[0].1.name.clone());
    }
    let scores = scores::score_nodes(snap, pod, config, &nodes);
    let best = nodes
        .iter()
        .zip(&scores)
        .max_by(|(a, sa), (b, sb)| {
            sa.cmp(sb).then_with(|| {
                // Lower hash wins a tie: reverse so max_by picks it.
                tie_hash(&pod.key, &b.1.name).cmp(&tie_hash(&pod.key, &a.1.name))
            })
        })
        .map(|(n, _)| n.1.name.clone());
    best.ok_or_else(|| Unschedulable::whole_pod(snap.node_count(), "no feasible node".into()))
}

/// Chooses the node for `pod` (a Pod object as JSON): runs the filters on every node
/// of the snapshot, scores the survivors and returns the best one. The snapshot is not
/// changed; the caller binds, then records the placement with
/// [`Snapshot::assume_pod`] before scheduling the next pod.
pub fn schedule(
    snapshot: &Snapshot,
    pod: &Value,
    config: &Config,
) -> Result<String, Unschedulable> {
    let info = PodInfo::parse(pod).map_err(|e| {
        Unschedulable::whole_pod(snapshot.node_count(), format!("invalid pod: {e}"))
    })?;
    schedule_info(snapshot, &info, config)
}

#[cfg(test)]
mod tests;
