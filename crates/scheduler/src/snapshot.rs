//! The scheduler's view of the cluster, kept up to date from watch events one object
//! at a time: adding or removing a pod only touches that pod's node aggregates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::ObjectError;
use crate::model::{HostPort, NodeSpec, PodInfo, str_at};
use crate::resources::Resources;

/// One node and the pods placed on it, with running totals. A node that was deleted
/// while pods still point at it stays as a "ghost" (no spec) until they go, as in
/// Kubernetes' scheduler cache; ghosts are never candidates.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeState {
    pub spec: Option<NodeSpec>,
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of the placed pods' requests, plus their count in `pods`.
    pub requested: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub ports: Vec<HostPort>,
    /// Placed pods per controller (interned owner reference uid), for spreading
    /// replicas: a short list scanned per placement, cheaper than hashing uids.
    pub owners: Vec<(u32, i64)>,
}

impl NodeState {
    fn add(&mut self, pod: Arc<PodInfo>, owner: Option<u32>) {
        self.requested.add(&pod.requests.requests);
        self.requested.pods += 1;
        self.non_zero_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.ports.extend(pod.host_ports.iter().cloned());
        if let Some(o) = owner {
            match self.owners.iter_mut().find(|(id, _)| *id == o) {
                Some((_, c)) => *c += 1,
                None => self.owners.push((o, 1)),
            }
        }
        self.pods.push(pod);
    }

    /// How many pods of the interned owner `id` are placed here.
    pub fn owner_count(&self, id: u32) -> i64 {
        self.owners
            .iter()
            .find(|(o, _)| *o == id)
            .map_or(0, |(_, c)| *c)
    }

    fn remove(
        &mut self,
        key: &str,
        owner_of: impl Fn(&str) -> Option<u32>,
    ) -> Option<Arc<PodInfo>> {
        let idx = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(idx);
        let owner = pod.owner_uid.as_deref().and_then(owner_of);
        self.requested.sub(&pod.requests.requests);
        self.requested.pods -= 1;
        self.non_zero_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for hp in &pod.host_ports {
            if let Some(i) = self.ports.iter().position(|p| p == hp) {
                self.ports.swap_remove(i);
            }
        }
        if let Some(o) = owner
            && let Some(i) = self.owners.iter().position(|(id, _)| *id == o)
        {
            self.owners[i].1 -= 1;
            if self.owners[i].1 <= 0 {
                self.owners.swap_remove(i);
            }
        }
        Some(pod)
    }
}

/// What the scheduler knows of the cluster: nodes (allocatable, labels, taints,
/// unschedulable, Ready condition) and the pods placed on each (requests, labels, host
/// ports, namespace, owner, affinity). Updated incrementally from watch events —
/// never rebuilt per pod — so that thousands of placements per second stay cheap.
/// Cloning is cheap enough for preemption's what-if runs (pods are shared).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) nodes: BTreeMap<String, NodeState>,
    /// Pod key (`namespace/name`) → node name.
    pub(crate) pod_node: HashMap<String, String>,
    /// Pods with any pod (anti-)affinity term: the only ones whose own rules can
    /// affect another pod's placement.
    pub(crate) with_affinity: BTreeMap<String, Arc<PodInfo>>,
    pub(crate) namespaces: HashMap<String, Map<String, Value>>,
    /// Controller uids interned to small integers (never freed: one entry per
    /// controller ever seen).
    pub(crate) owner_ids: HashMap<String, u32>,
    live_nodes: usize,
}

impl Snapshot {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node or replaces what is known of it (labels, taints, allocatable,
    /// conditions); the pods placed on it are kept.
    pub fn upsert_node(&mut self, node: &Value) -> Result<(), ObjectError> {
        let spec = NodeSpec::parse(node)?;
        let state = self.nodes.entry(spec.name.clone()).or_default();
        if state.spec.is_none() {
            self.live_nodes += 1;
        }
        state.spec = Some(spec);
        Ok(())
    }

    /// Adds a node (same as [`Snapshot::upsert_node`], named after the watch event).
    pub fn add_node(&mut self, node: &Value) -> Result<(), ObjectError> {
        self.upsert_node(node)
    }

    /// Updates a node (same as [`Snapshot::upsert_node`], named after the watch event).
    pub fn update_node(&mut self, node: &Value) -> Result<(), ObjectError> {
        self.upsert_node(node)
    }

    /// Forgets a node. Pods still bound to it keep counting against it until removed.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(state) = self.nodes.get_mut(name) {
            if state.spec.take().is_some() {
                self.live_nodes -= 1;
            }
            if state.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
    }

    /// Adds or replaces a pod bound to `spec.nodeName`. Pods that have finished
    /// (phase Succeeded or Failed) hold no resources and are removed instead, like the
    /// scheduler's informer that filters them out.
    pub fn add_pod(&mut self, pod: &Value) -> Result<(), ObjectError> {
        let info = PodInfo::parse(pod)?;
        if matches!(
            str_at(pod, &["status", "phase"]),
            Some("Succeeded" | "Failed")
        ) {
            self.remove_pod(&info.key);
            return Ok(());
        }
        let Some(node) = info.node_name.clone() else {
            return Err(ObjectError::NotBound { pod: info.key });
        };
        self.insert(Arc::new(info), &node);
        Ok(())
    }

    /// Updates a pod (same as [`Snapshot::add_pod`], named after the watch event).
    pub fn update_pod(&mut self, pod: &Value) -> Result<(), ObjectError> {
        self.add_pod(pod)
    }

    /// Records a pod as placed on `node` before its binding is confirmed (Kubernetes'
    /// "assume"), so the next placements already see its requests. A later
    /// [`Snapshot::add_pod`] with the bound object replaces it; [`Snapshot::remove_pod`]
    /// undoes it if the binding fails.
    pub fn assume_pod(&mut self, pod: &Value, node: &str) -> Result<(), ObjectError> {
        let mut info = PodInfo::parse(pod)?;
        info.node_name = Some(node.to_string());
        self.insert(Arc::new(info), node);
        Ok(())
    }

    pub(crate) fn insert(&mut self, info: Arc<PodInfo>, node: &str) {
        self.remove_pod(&info.key);
        if info.has_pod_affinity() {
            self.with_affinity.insert(info.key.clone(), info.clone());
        }
        self.pod_node.insert(info.key.clone(), node.to_string());
        let owner = info.owner_uid.as_ref().map(|o| {
            let next = self.owner_ids.len() as u32;
            *self.owner_ids.entry(o.clone()).or_insert(next)
        });
        self.nodes
            .entry(node.to_string())
            .or_default()
            .add(info, owner);
    }

    /// Removes a pod by `namespace/name`; returns whether it was known.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        self.take_pod(key).is_some()
    }

    pub(crate) fn take_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let node = self.pod_node.remove(key)?;
        self.with_affinity.remove(key);
        let state = self.nodes.get_mut(&node)?;
        let owner_ids = &self.owner_ids;
        let pod = state.remove(key, |uid: &str| owner_ids.get(uid).copied());
        if state.spec.is_none() && state.pods.is_empty() {
            self.nodes.remove(&node);
        }
        pod
    }

    /// Records a namespace's labels, which `namespaceSelector` in pod affinity terms
    /// matches against. Unknown namespaces have no labels.
    pub fn set_namespace_labels(&mut self, namespace: &str, labels: &Value) {
        let map = labels.as_object().cloned().unwrap_or_default();
        self.namespaces.insert(namespace.to_string(), map);
    }

    /// Forgets a namespace's labels.
    pub fn remove_namespace(&mut self, namespace: &str) {
        self.namespaces.remove(namespace);
    }

    /// How many nodes exist (ghosts of deleted nodes excluded).
    pub fn node_count(&self) -> usize {
        self.live_nodes
    }

    /// How many pods are placed.
    pub fn pod_count(&self) -> usize {
        self.pod_node.len()
    }

    /// The node a pod is placed on, by `namespace/name`.
    pub fn node_of(&self, pod_key: &str) -> Option<&str> {
        self.pod_node.get(pod_key).map(String::as_str)
    }

    /// The sum of the requests of the pods placed on a node (with `pods` = their
    /// count), what NodeResourcesFit subtracts from allocatable.
    pub fn requested(&self, node: &str) -> Option<&Resources> {
        self.nodes.get(node).map(|n| &n.requested)
    }

    /// A node's allocatable resources, if the node exists.
    pub fn allocatable(&self, node: &str) -> Option<&Resources> {
        self.nodes
            .get(node)
            .and_then(|n| n.spec.as_ref())
            .map(|s| &s.allocatable)
    }

    /// The `namespace/name` keys of the pods placed on a node.
    pub fn pods_on(&self, node: &str) -> Vec<&str> {
        self.nodes
            .get(node)
            .map(|n| n.pods.iter().map(|p| p.key.as_str()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn live(&self) -> impl Iterator<Item = (&NodeState, &NodeSpec)> {
        self.nodes
            .values()
            .filter_map(|n| n.spec.as_ref().map(|s| (n, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"},
               "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}},
                        "ports": [{"containerPort": 80, "hostPort": 8080}]}]}})
    }

    #[test]
    fn aggregates_follow_adds_and_removes() {
        let mut s = Snapshot::new();
        s.add_node(&json!({"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4"}}}))
            .unwrap();
        s.add_pod(&pod("a", "n1", "500m")).unwrap();
        s.add_pod(&pod("b", "n1", "250m")).unwrap();
        assert_eq!(s.requested("n1").unwrap().milli_cpu, 750);
        assert_eq!(s.requested("n1").unwrap().pods, 2);
        // Updating a pod replaces its contribution rather than adding twice.
        s.update_pod(&pod("a", "n1", "1")).unwrap();
        assert_eq!(s.requested("n1").unwrap().milli_cpu, 1250);
        assert!(s.remove_pod("ns/a"));
        assert_eq!(s.requested("n1").unwrap().milli_cpu, 250);
        assert_eq!(s.nodes["n1"].ports.len(), 1);
        assert!(!s.remove_pod("ns/a"));
    }

    #[test]
    fn finished_pods_release_their_node() {
        let mut s = Snapshot::new();
        s.add_pod(&pod("a", "n1", "1")).unwrap();
        let mut done = pod("a", "n1", "1");
        done["status"] = json!({"phase": "Succeeded"});
        s.update_pod(&done).unwrap();
        assert_eq!(s.pod_count(), 0);
    }

    #[test]
    fn deleted_node_lingers_while_pods_remain() {
        let mut s = Snapshot::new();
        s.add_node(&json!({"metadata": {"name": "n1"}})).unwrap();
        s.add_pod(&pod("a", "n1", "1")).unwrap();
        s.remove_node("n1");
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.requested("n1").unwrap().milli_cpu, 1000);
        s.remove_pod("ns/a");
        assert!(s.requested("n1").is_none());
    }

    #[test]
    fn unbound_pod_is_refused() {
        let mut s = Snapshot::new();
        let err = s
            .add_pod(&json!({"metadata": {"name": "p"}, "spec": {}}))
            .unwrap_err();
        assert!(matches!(err, ObjectError::NotBound { .. }));
    }
}
