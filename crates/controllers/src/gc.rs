//! The garbage collector's sweep: dependents whose owners are all gone are deleted.
//!
//! The API server cascades a DELETE itself (Background, Foreground, Orphan) and resumes
//! unfinished Foreground and Orphan deletions when it starts again. Two cases escape it,
//! and Kubernetes' garbage collector deletes both: a server that stopped between
//! deleting an owner and deleting its dependents (Background), and objects created with
//! a reference to an owner that does not exist. This loop looks at the dependents the
//! controllers cache anyway, every resync period; an owner missing from the cache is
//! confirmed missing by a live read (uid compared), as Kubernetes does, before its
//! dependent is deleted.

use crate::Options;
use client::{Client, DeleteParams, Informers, PropagationPolicy, Resource, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The kinds whose objects are looked at.
fn dependents() -> [Resource; 4] {
    [
        Resource::PODS,
        Resource::REPLICASETS,
        Resource::JOBS,
        Resource::CONTROLLERREVISIONS,
    ]
}

/// The owner kinds this sweep can check (all namespaced, like their dependents). An
/// object with an owner of another kind is left alone: its absence cannot be told.
fn owner_resource(api_version: &str, kind: &str) -> Option<Resource> {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let r = match (group, kind) {
        ("apps", "Deployment") => Resource::DEPLOYMENTS,
        ("apps", "ReplicaSet") => Resource::REPLICASETS,
        ("apps", "DaemonSet") => Resource::DAEMONSETS,
        ("apps", "StatefulSet") => Resource::STATEFULSETS,
        ("batch", "Job") => Resource::JOBS,
        ("batch", "CronJob") => Resource::CRONJOBS,
        ("", "ReplicationController") => crate::runtime::rc_resource(),
        _ => return None,
    };
    Some(r)
}

/// One owner reference of a dependent: where to look for it and the uid it must have.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerRef {
    /// The owner's resource.
    pub resource: Resource,
    /// Its name (in the dependent's namespace).
    pub name: String,
    /// The uid the reference names: another object of the same name is not the owner.
    pub uid: String,
}

/// The owner references of `obj` when every one is of a kind this sweep can check;
/// None when it has none, or one it cannot check.
pub fn checkable_owners(obj: &Value) -> Option<Vec<OwnerRef>> {
    let refs = obj["metadata"]["ownerReferences"].as_array()?;
    if refs.is_empty() {
        return None;
    }
    refs.iter()
        .map(|r| {
            Some(OwnerRef {
                resource: owner_resource(r["apiVersion"].as_str()?, r["kind"].as_str()?)?,
                name: r["name"].as_str()?.to_string(),
                uid: r["uid"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// Whether a cached or read object is the owner a reference names.
fn is_owner(obj: Option<&Value>, r: &OwnerRef) -> bool {
    obj.is_some_and(|o| o["metadata"]["uid"].as_str() == Some(r.uid.as_str()))
}

/// Whether the owner exists, by a live read. An error other than 404 counts as "it
/// exists": deleting on a failed read would lose objects.
async fn owner_exists(client: &Client, ns: Option<&str>, r: &OwnerRef) -> bool {
    match client.get(&r.resource, ns, &r.name).await {
        Ok(o) => is_owner(Some(&o), r),
        Err(e) if e.is_not_found() => false,
        Err(e) => {
            tracing::debug!(owner = %r.name, error = %e, "garbage collector: cannot read an owner");
            true
        }
    }
}

/// Runs the sweep until the future is dropped.
pub async fn run(client: Client, options: Options, informers: Arc<Informers>) {
    let mut caches: HashMap<String, Store> = HashMap::new();
    let owner_kinds = [
        Resource::DEPLOYMENTS,
        Resource::REPLICASETS,
        Resource::DAEMONSETS,
        Resource::STATEFULSETS,
        Resource::JOBS,
        Resource::CRONJOBS,
    ];
    for r in owner_kinds.iter().chain(dependents().iter()) {
        // The streams are not needed: the caches are read at each sweep.
        let (store, _events) = informers.informer(r, None);
        caches.insert(r.plural.to_string(), store);
    }
    for s in caches.values() {
        s.wait_until_ready().await;
    }
    let every = options.resync.max(Duration::from_secs(1));
    loop {
        sweep(&client, &caches).await;
        tokio::time::sleep(every).await;
    }
}

async fn sweep(client: &Client, caches: &HashMap<String, Store>) {
    for dep in dependents() {
        let Some(store) = caches.get(&*dep.plural) else {
            continue;
        };
        for obj in store.list() {
            let Some(owners) = checkable_owners(&obj) else {
                continue;
            };
            let ns = obj["metadata"]["namespace"].as_str();
            let cached = |r: &OwnerRef| {
                caches
                    .get(&*r.resource.plural)
                    .is_none_or(|s| is_owner(s.get_by(ns, &r.name).as_deref(), r))
            };
            if owners.iter().any(cached) || !obj["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let mut any = false;
            for r in &owners {
                any = any || owner_exists(client, ns, r).await;
            }
            if any {
                continue;
            }
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                precondition_uid: obj["metadata"]["uid"].as_str().map(str::to_string),
                ..Default::default()
            };
            match client.delete(&dep, ns, name, &dp).await {
                Ok(_) => tracing::info!(
                    "garbage collector: deleted {} {}/{}: its owner {} {} is gone",
                    dep.kind,
                    ns.unwrap_or_default(),
                    name,
                    owners[0].resource.kind,
                    owners[0].name
                ),
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => tracing::info!(error = %e, "garbage collector: cannot delete {name}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_references_of_known_kinds_are_checked() {
        let pod = |refs: Value| json!({"metadata": {"name": "p", "ownerReferences": refs}});
        let owned = pod(
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}]),
        );
        assert_eq!(
            checkable_owners(&owned),
            Some(vec![OwnerRef {
                resource: Resource::REPLICASETS,
                name: "rs".into(),
                uid: "u1".into()
            }])
        );
        // No owner, an empty list, or one owner of a kind we cannot look up: left alone.
        assert_eq!(checkable_owners(&json!({"metadata": {"name": "p"}})), None);
        assert_eq!(checkable_owners(&pod(json!([]))), None);
        let mixed = pod(json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"},
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "u2"}]));
        assert_eq!(checkable_owners(&mixed), None);
        // A reference without a uid cannot be checked either.
        assert_eq!(
            checkable_owners(&pod(
                json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j"}])
            )),
            None
        );
    }

    #[test]
    fn an_object_of_the_same_name_with_another_uid_is_not_the_owner() {
        let r = OwnerRef {
            resource: Resource::JOBS,
            name: "j".into(),
            uid: "u1".into(),
        };
        assert!(is_owner(Some(&json!({"metadata": {"uid": "u1"}})), &r));
        assert!(!is_owner(Some(&json!({"metadata": {"uid": "u2"}})), &r));
        assert!(!is_owner(None, &r));
    }
}
