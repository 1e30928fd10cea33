//! Node IPAM: gives every Node without `spec.podCIDR` the next free block of the
//! cluster CIDR (kube-controller-manager's range allocator), so agents that join
//! without `--pod-cidr` get a pod range no other node has.

use crate::Options;
use client::{Client, Event, ListParams, Patch, PatchParams, Resource};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The cluster CIDR split into per-node blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAllocator {
    base: u32,
    prefix: u8,
    node_prefix: u8,
    used: BTreeSet<u32>,
}

/// A CIDR that does not parse or cannot be split.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "invalid cluster CIDR {0:?}: use an IPv4 range such as 10.244.0.0/16 (nodes get /24 blocks)"
)]
pub struct CidrError(pub String);

fn parse(cidr: &str) -> Option<(u32, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(ip) & mask, len))
}

impl RangeAllocator {
    /// Blocks of `/node_prefix` inside `cidr`.
    pub fn new(cidr: &str, node_prefix: u8) -> Result<RangeAllocator, CidrError> {
        let (base, prefix) = parse(cidr).ok_or_else(|| CidrError(cidr.to_string()))?;
        if node_prefix < prefix || node_prefix > 30 {
            return Err(CidrError(cidr.to_string()));
        }
        Ok(RangeAllocator {
            base,
            prefix,
            node_prefix,
            used: BTreeSet::new(),
        })
    }

    fn blocks(&self) -> u32 {
        1u32.checked_shl(u32::from(self.node_prefix - self.prefix))
            .unwrap_or(u32::MAX)
    }

    /// Marks a node's existing range as taken (if it lies inside the cluster CIDR).
    pub fn occupy(&mut self, cidr: &str) {
        if let Some((ip, len)) = parse(cidr)
            && len == self.node_prefix
            && ip.wrapping_sub(self.base) >> (32 - u32::from(self.node_prefix)) < self.blocks()
            && ip >= self.base
        {
            self.used
                .insert((ip - self.base) >> (32 - u32::from(self.node_prefix)));
        }
    }

    /// Frees a range.
    pub fn release(&mut self, cidr: &str) {
        if let Some((ip, _)) = parse(cidr)
            && ip >= self.base
        {
            self.used
                .remove(&((ip - self.base) >> (32 - u32::from(self.node_prefix))));
        }
    }

    /// The next free block, None when the cluster CIDR is exhausted.
    pub fn allocate(&mut self) -> Option<String> {
        let n = (0..self.blocks()).find(|i| !self.used.contains(i))?;
        self.used.insert(n);
        let ip = Ipv4Addr::from(self.base + (n << (32 - u32::from(self.node_prefix))));
        Some(format!("{ip}/{}", self.node_prefix))
    }
}

fn cidr_of(node: &Value) -> Option<&str> {
    node["spec"]["podCIDR"].as_str().filter(|s| !s.is_empty())
}

/// Runs the allocator until dropped.
pub async fn run(client: Client, options: Options) {
    let Some(cidr) = options.cluster_cidr.clone() else {
        return;
    };
    let mut alloc = match RangeAllocator::new(&cidr, 24) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("node IPAM disabled: {e}");
            return;
        }
    };
    let mut events = std::pin::pin!(client::watcher(
        client.clone(),
        Resource::NODES,
        None,
        ListParams::default()
    ));
    let mut pending: Vec<Value> = Vec::new();
    while let Some(ev) = events.next().await {
        match ev {
            Ok(Event::Restarted(nodes)) => {
                for n in &nodes {
                    if let Some(c) = cidr_of(n) {
                        alloc.occupy(c);
                    }
                }
                pending.extend(nodes.into_iter().filter(|n| cidr_of(n).is_none()));
            }
            Ok(Event::Applied(n)) => match cidr_of(&n) {
                Some(c) => alloc.occupy(c),
                None => pending.push(n),
            },
            Ok(Event::Deleted(n)) => {
                if let Some(c) = cidr_of(&n) {
                    alloc.release(c);
                }
            }
            Err(e) => tracing::warn!("node IPAM: node watch: {e}"),
        }
        for n in pending.drain(..) {
            let Some(name) = n["metadata"]["name"].as_str() else {
                continue;
            };
            let Some(block) = alloc.allocate() else {
                tracing::warn!("node IPAM: cluster CIDR {cidr} has no free /24 for node {name}");
                continue;
            };
            let patch = Patch::Merge(json!({"spec": {"podCIDR": block, "podCIDRs": [block]}}));
            match client
                .patch(
                    &Resource::NODES,
                    None,
                    name,
                    &patch,
                    &PatchParams::default(),
                )
                .await
            {
                Ok(_) => tracing::info!("node IPAM: node {name} gets {block}"),
                Err(e) => {
                    alloc.release(&block);
                    tracing::warn!("node IPAM: assigning {block} to {name}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_free_blocks_in_order_and_reuses_released_ones() {
        let mut a = RangeAllocator::new("10.244.0.0/22", 24).unwrap();
        a.occupy("10.244.1.0/24");
        a.occupy("192.168.0.0/24");
        assert_eq!(a.allocate().as_deref(), Some("10.244.0.0/24"));
        assert_eq!(a.allocate().as_deref(), Some("10.244.2.0/24"));
        assert_eq!(a.allocate().as_deref(), Some("10.244.3.0/24"));
        assert_eq!(a.allocate(), None);
        a.release("10.244.2.0/24");
        assert_eq!(a.allocate().as_deref(), Some("10.244.2.0/24"));
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(RangeAllocator::new("nonsense", 24).is_err());
        assert!(RangeAllocator::new("10.0.0.0/25", 24).is_err());
        assert!(RangeAllocator::new("10.244.3.7/16", 24).is_ok());
    }
}
