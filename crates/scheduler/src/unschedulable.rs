//! Why a pod could not be placed, rendered like Kubernetes' FailedScheduling message.

use std::collections::BTreeMap;
use std::fmt;

use crate::filters::NodeFailure;

/// The diagnosis of a failed placement: the reasons per node (or one reason for the
/// whole pod), and what preemption found. `Display` gives Kubernetes' wording:
/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node
/// affinity/selector. preemption: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable {
    num_nodes: usize,
    pre_filter: Option<String>,
    nodes: BTreeMap<String, NodeFailure>,
    preemption: Option<String>,
}

/// Kubernetes' histogram: "`count` `reason`" entries sorted as strings, comma-joined.
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_insert(0) += 1;
    }
    let mut items: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    items.sort();
    items.join(", ")
}

impl Unschedulable {
    pub(crate) fn new(num_nodes: usize, nodes: BTreeMap<String, NodeFailure>) -> Self {
        Unschedulable {
            num_nodes,
            pre_filter: None,
            nodes,
            preemption: None,
        }
    }

    /// A failure that concerns the pod itself rather than any node (an invalid pod,
    /// no node at all).
    pub(crate) fn whole_pod(num_nodes: usize, reason: String) -> Self {
        Unschedulable {
            num_nodes,
            pre_filter: Some(reason),
            nodes: BTreeMap::new(),
            preemption: None,
        }
    }

    /// How many nodes were considered.
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    /// Why each node was rejected, by node name.
    pub fn node_failures(&self) -> &BTreeMap<String, NodeFailure> {
        &self.nodes
    }

    /// Whether removing pods could help on at least one node (some node failed for a
    /// reason other than an unresolvable one): the condition for trying preemption.
    pub fn preemption_might_help(&self) -> bool {
        self.pre_filter.is_none() && self.nodes.values().any(|f| !f.unresolvable)
    }

    /// Attaches what preemption found (the message of [`crate::try_preempt`]'s error),
    /// appended to the rendered message as Kubernetes' PostFilter message is.
    pub fn set_preemption_message(&mut self, message: String) {
        self.preemption = Some(message);
    }

    /// The preemption message, if one was attached.
    pub fn preemption_message(&self) -> Option<&str> {
        self.preemption.as_deref()
    }

    /// `0/N nodes are available: <histogram>.` for a per-node diagnosis, used by
    /// preemption for its own message too.
    pub(crate) fn render_nodes<'a>(
        num_nodes: usize,
        reasons: impl Iterator<Item = &'a str>,
    ) -> String {
        let h = histogram(reasons);
        if h.is_empty() {
            format!("0/{num_nodes} nodes are available.")
        } else {
            format!("0/{num_nodes} nodes are available: {h}.")
        }
    }
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pre_filter {
            Some(msg) => write!(f, "0/{} nodes are available: {msg}.", self.num_nodes)?,
            None => f.write_str(&Self::render_nodes(
                self.num_nodes,
                self.nodes
                    .values()
                    .flat_map(|n| n.reasons.iter().map(String::as_str)),
            ))?,
        }
        if let Some(p) = &self.preemption {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unschedulable {}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(r: &[&str]) -> NodeFailure {
        NodeFailure {
            reasons: r.iter().map(|s| s.to_string()).collect(),
            unresolvable: false,
        }
    }

    #[test]
    fn renders_like_kubernetes_fit_error() {
        let mut nodes = BTreeMap::new();
        nodes.insert("a".to_string(), fail(&["Insufficient cpu"]));
        nodes.insert(
            "b".to_string(),
            fail(&["node(s) didn't match Pod's node affinity/selector"]),
        );
        nodes.insert(
            "c".to_string(),
            fail(&["node(s) didn't match Pod's node affinity/selector"]),
        );
        let mut u = Unschedulable::new(3, nodes);
        assert_eq!(
            u.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
        );
        u.set_preemption_message(
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                .into(),
        );
        assert!(u.to_string().ends_with(
            "selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ));
    }

    #[test]
    fn histogram_sorts_as_strings() {
        // Kubernetes sorts the "count reason" strings, so 10 comes before 2.
        let reasons = std::iter::repeat_n("b", 10).chain(std::iter::repeat_n("a", 2));
        assert_eq!(histogram(reasons), "10 b, 2 a");
    }

    #[test]
    fn multiple_reasons_of_one_node_each_count() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "a".to_string(),
            fail(&["Insufficient cpu", "Insufficient memory"]),
        );
        let u = Unschedulable::new(1, nodes);
        assert_eq!(
            u.to_string(),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."
        );
    }
}
