//! Cascading deletion by owner references, and namespace termination.
//!
//! Kubernetes does this in its garbage-collector and namespace controllers; until Drover's
//! controllers exist, the API server finishes what a DELETE started: Background deletes
//! dependents after the owner, Foreground deletes them first (the owner waits with the
//! `foregroundDeletion` finalizer), Orphan strips their owner references (`orphan`
//! finalizer), and a Terminating namespace is emptied and then removed. Every step is an
//! ordinary API write, so it is safe to repeat after a restart ([`resume`]).

use crate::route::Target;
use crate::state::{State, decode, encode, store_error};
use crate::write::{DeleteOpts, delete};
use api::{ApiError, ResourceInfo, meta};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn target_of(info: &ResourceInfo, obj: &Value) -> Option<(Target, String)> {
    let name = meta::name(obj)?.to_string();
    Some((
        Target {
            info: info.clone(),
            namespace: meta::namespace(obj).map(str::to_string),
            name: Some(name.clone()),
            sub: None,
        },
        name,
    ))
}

/// Objects whose ownerReferences name `uid`, in `namespace` (owners may only own objects
/// in their own namespace; cluster-scoped owners may own anything).
async fn dependents(
    state: &State,
    uid: &str,
    namespace: Option<&str>,
) -> Result<Vec<(ResourceInfo, Value)>, ApiError> {
    let mut out = Vec::new();
    for info in state.registry().all() {
        let prefix = match namespace {
            Some(ns) if info.namespaced => info.namespace_prefix(Some(ns)),
            Some(_) => continue,
            None => info.key_prefix(),
        };
        let page = state
            .store
            .list(&prefix, None, None, 0)
            .await
            .map_err(store_error)?;
        for kv in &page.items {
            // Cheap check before parsing.
            if !kv.value.windows(uid.len()).any(|w| w == uid.as_bytes()) {
                continue;
            }
            let obj = decode(kv)?;
            let owned = obj["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)));
            if owned {
                out.push((info.clone(), obj));
            }
        }
    }
    Ok(out)
}

/// Removes one finalizer from an object (compare-and-swap, retried), deleting it when it
/// was the last one on an object being deleted.
async fn remove_finalizer(
    state: &State,
    t: &Target,
    name: &str,
    finalizer: &str,
) -> Result<(), ApiError> {
    let key = t.info.key(t.namespace.as_deref(), name);
    loop {
        let Some(kv) = state.store.get(&key).await.map_err(store_error)? else {
            return Ok(());
        };
        let mut obj = decode(&kv)?;
        let mut fs = meta::finalizers(&obj);
        let before = fs.len();
        fs.retain(|f| f != finalizer);
        if fs.len() == before {
            return Ok(());
        }
        let r = if fs.is_empty() && meta::is_deleting(&obj) {
            state
                .store
                .delete(&key, Some(kv.mod_revision))
                .await
                .map(|_| ())
        } else {
            if fs.is_empty() {
                meta::remove(&mut obj, "finalizers");
            } else {
                meta::set(&mut obj, "finalizers", json!(fs));
            }
            state
                .store
                .update(&key, encode(&obj)?, kv.mod_revision)
                .await
                .map(|_| ())
        };
        match r {
            Ok(()) => return Ok(()),
            Err(store::StoreError::Conflict { .. }) => continue,
            Err(store::StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(store_error(e)),
        }
    }
}

async fn orphan(state: &Arc<State>, owner: &Value) -> Result<(), ApiError> {
    let uid = meta::uid(owner).unwrap_or("").to_string();
    for (info, dep) in dependents(state, &uid, meta::namespace(owner)).await? {
        let Some((t, name)) = target_of(&info, &dep) else {
            continue;
        };
        let key = info.key(t.namespace.as_deref(), &name);
        loop {
            let Some(kv) = state.store.get(&key).await.map_err(store_error)? else {
                break;
            };
            let mut o = decode(&kv)?;
            let refs: Vec<Value> = o["metadata"]["ownerReferences"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|r| r["uid"] != json!(uid))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if refs.is_empty() {
                meta::remove(&mut o, "ownerReferences");
            } else {
                meta::set(&mut o, "ownerReferences", json!(refs));
            }
            match state.store.update(&key, encode(&o)?, kv.mod_revision).await {
                Ok(_) | Err(store::StoreError::NotFound { .. }) => break,
                Err(store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
    }
    Ok(())
}

async fn delete_dependents(
    state: &Arc<State>,
    owner: &Value,
    policy: &str,
) -> Result<usize, ApiError> {
    let uid = meta::uid(owner).unwrap_or("").to_string();
    let deps = dependents(state, &uid, meta::namespace(owner)).await?;
    let n = deps.len();
    for (info, dep) in deps {
        if meta::is_deleting(&dep) {
            continue;
        }
        let Some((t, name)) = target_of(&info, &dep) else {
            continue;
        };
        let opts = DeleteOpts {
            propagation: Some(policy.into()),
            ..Default::default()
        };
        match Box::pin(delete(state, &t, &name, &opts)).await {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

async fn finish_marked(state: Arc<State>, t: Target, obj: Value) -> Result<(), ApiError> {
    let name = meta::name(&obj).unwrap_or("").to_string();
    let fs = meta::finalizers(&obj);
    if fs.iter().any(|f| f == "orphan") {
        orphan(&state, &obj).await?;
        remove_finalizer(&state, &t, &name, "orphan").await?;
    }
    if fs.iter().any(|f| f == "foregroundDeletion") {
        while delete_dependents(&state, &obj, "Foreground").await? > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        remove_finalizer(&state, &t, &name, "foregroundDeletion").await?;
    }
    if t.info.group.is_empty() && t.info.kind == "Namespace" {
        terminate_namespace(&state, &name).await?;
    }
    Ok(())
}

/// Empties a Terminating namespace, then removes it.
async fn terminate_namespace(state: &Arc<State>, ns: &str) -> Result<(), ApiError> {
    loop {
        let mut remaining = 0usize;
        for info in state.registry().all().iter().filter(|i| i.namespaced) {
            let page = state
                .store
                .list(&info.namespace_prefix(Some(ns)), None, None, 0)
                .await
                .map_err(store_error)?;
            for kv in &page.items {
                remaining += 1;
                let obj = decode(kv)?;
                if meta::is_deleting(&obj) {
                    continue;
                }
                let Some((t, name)) = target_of(info, &obj) else {
                    continue;
                };
                match Box::pin(delete(state, &t, &name, &DeleteOpts::default())).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(namespace = ns, error = %e, "cannot delete an object of a terminating namespace")
                    }
                }
            }
        }
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let info = state
        .registry()
        .find("", "v1", "namespaces")
        .cloned()
        .ok_or_else(|| ApiError::internal("namespaces are not registered"))?;
    let t = Target {
        info,
        namespace: None,
        name: Some(ns.into()),
        sub: None,
    };
    remove_finalizer(state, &t, ns, "kubernetes").await?;
    // A namespace without the kubernetes finalizer (or with it gone) is removed when no other finalizers hold it.
    let key = format!("/core/namespaces/{ns}");
    if let Some(kv) = state.store.get(&key).await.map_err(store_error)? {
        let obj = decode(&kv)?;
        let spec_fs = obj["spec"]["finalizers"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        if meta::finalizers(&obj).is_empty() && meta::is_deleting(&obj) && spec_fs <= 1 {
            let _ = state.store.delete(&key, Some(kv.mod_revision)).await;
        }
    }
    Ok(())
}

/// Deletes every custom resource of a deleted CRD, as Kubernetes' CRD finalizer does, so
/// that re-creating the CRD does not bring old objects back.
pub async fn purge_custom_resources(state: &State, crd: &Value) -> Result<(), ApiError> {
    let (Some(group), Some(plural)) = (
        crd["spec"]["group"].as_str(),
        crd["spec"]["names"]["plural"].as_str(),
    ) else {
        return Ok(());
    };
    let prefix = format!("/{group}/{plural}/");
    let page = state
        .store
        .list(&prefix, None, None, 0)
        .await
        .map_err(store_error)?;
    for kv in page.items {
        match state.store.delete(&kv.key, None).await {
            Ok(_) | Err(store::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
    }
    Ok(())
}

/// Called after an object was marked for deletion (it had finalizers, or the policy added one).
pub fn after_mark(state: Arc<State>, t: Target, obj: Value) {
    tokio::spawn(async move {
        if let Err(e) = finish_marked(state, t, obj).await {
            tracing::warn!(error = %e, "cascading deletion failed; it is retried at the next start");
        }
    });
}

/// Called after an object was deleted: its dependents go too, unless orphaned.
pub fn after_delete(state: Arc<State>, _t: Target, obj: Value, orphaned: bool) {
    if orphaned {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = delete_dependents(&state, &obj, "Background").await {
            tracing::warn!(error = %e, "background deletion of dependents failed");
        }
    });
}

/// Resumes unfinished deletions after a restart: objects marked with deletionTimestamp and
/// one of our finalizers, and Terminating namespaces.
pub async fn resume(state: Arc<State>) -> Result<(), ApiError> {
    for info in state.registry().all().to_vec() {
        let page = state
            .store
            .list(&info.key_prefix(), None, None, 0)
            .await
            .map_err(store_error)?;
        for kv in &page.items {
            let obj = decode(kv)?;
            if !meta::is_deleting(&obj) {
                continue;
            }
            let ours = meta::finalizers(&obj)
                .iter()
                .any(|f| f == "orphan" || f == "foregroundDeletion")
                || (info.group.is_empty() && info.kind == "Namespace");
            if let (true, Some((t, _))) = (ours, target_of(&info, &obj)) {
                after_mark(state.clone(), t, obj);
            }
        }
    }
    Ok(())
}
