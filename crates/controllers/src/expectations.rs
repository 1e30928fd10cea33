//! Controller expectations (`pkg/controller/controller_utils.go`): what an owner has
//! created or deleted and the informer cache has not shown yet. While any is pending the
//! owner does not create or delete again, so a slow cache never doubles a scale-up.
//!
//! Unlike Kubernetes' counters, entries are names (creations) and UIDs (deletions)
//! checked against the cache at sync time, which makes them level-based: a missed event
//! cannot leave a count stuck. A TTL still bounds the wait, as in Kubernetes.

use client::ObjectKey;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Kubernetes' `ExpectationsTimeout`: after this, pending expectations are ignored.
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Default)]
struct Entry {
    /// Names of created pods not yet seen in the cache.
    creates: HashSet<String>,
    /// UIDs of deleted pods still in the cache (and not marked deleting).
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// The pending creations and deletions of each owner.
#[derive(Debug, Default)]
pub struct Expectations {
    owners: HashMap<ObjectKey, Entry>,
}

impl Expectations {
    /// Records that `owner` created pods with these names.
    pub fn expect_creations(
        &mut self,
        owner: &ObjectKey,
        names: impl IntoIterator<Item = String>,
        now: Instant,
    ) {
        let e = self.owners.entry(owner.clone()).or_default();
        e.creates.extend(names);
        e.since = Some(now);
    }

    /// Records that `owner` deleted pods with these UIDs.
    pub fn expect_deletions(
        &mut self,
        owner: &ObjectKey,
        uids: impl IntoIterator<Item = String>,
        now: Instant,
    ) {
        let e = self.owners.entry(owner.clone()).or_default();
        e.deletes.extend(uids);
        e.since = Some(now);
    }

    /// A pod named `name` was deleted (a watch event): a creation not yet seen will
    /// never be seen, so stop waiting for it.
    pub fn observe_deleted(&mut self, owner: &ObjectKey, name: &str, uid: &str) {
        if let Some(e) = self.owners.get_mut(owner) {
            e.creates.remove(name);
            e.deletes.remove(uid);
        }
    }

    /// Forgets an owner (it was deleted).
    pub fn remove(&mut self, owner: &ObjectKey) {
        self.owners.remove(owner);
    }

    /// Whether `owner` may create or delete now. `cached(name)`: a pod of that name is
    /// in the cache; `by_uid(uid)` is the cached pod with that UID. Expectations they
    /// fulfil are dropped.
    pub fn satisfied<'a>(
        &mut self,
        owner: &ObjectKey,
        cached: impl Fn(&str) -> bool,
        by_uid: impl Fn(&str) -> Option<&'a Value>,
        now: Instant,
    ) -> bool {
        let Some(e) = self.owners.get_mut(owner) else {
            return true;
        };
        e.creates.retain(|n| !cached(n));
        e.deletes
            .retain(|u| by_uid(u).is_some_and(|p| !api::meta::is_deleting(p)));
        let expired = e
            .since
            .is_some_and(|s| now.duration_since(s) >= EXPECTATIONS_TTL);
        if (e.creates.is_empty() && e.deletes.is_empty()) || expired {
            self.owners.remove(owner);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn creations_are_awaited_until_the_cache_shows_them() {
        let k = ObjectKey::new(Some("ns"), "web");
        let t0 = Instant::now();
        let mut e = Expectations::default();
        assert!(e.satisfied(&k, |_| false, |_| None, t0));
        e.expect_creations(&k, ["web-a".to_string(), "web-b".to_string()], t0);
        assert!(!e.satisfied(&k, |_| false, |_| None, t0));
        assert!(!e.satisfied(&k, |n| n == "web-a", |_| None, t0));
        // web-b was deleted before the cache ever showed it.
        e.observe_deleted(&k, "web-b", "uid-b");
        assert!(e.satisfied(&k, |_| false, |_| None, t0));
    }

    #[test]
    fn deletions_are_awaited_until_gone_or_terminating() {
        let k = ObjectKey::new(Some("ns"), "web");
        let t0 = Instant::now();
        let mut e = Expectations::default();
        e.expect_deletions(&k, ["u1".to_string()], t0);
        let live = json!({"metadata": {"uid": "u1"}});
        let going = json!({"metadata": {"uid": "u1", "deletionTimestamp": "2024-01-01T00:00:00Z"}});
        assert!(!e.satisfied(&k, |_| false, |_| Some(&live), t0));
        assert!(e.satisfied(&k, |_| false, |_| Some(&going), t0));
    }

    #[test]
    fn expectations_expire() {
        let k = ObjectKey::new(Some("ns"), "web");
        let t0 = Instant::now();
        let mut e = Expectations::default();
        e.expect_creations(&k, ["lost".to_string()], t0);
        assert!(!e.satisfied(&k, |_| false, |_| None, t0 + Duration::from_secs(10)));
        assert!(e.satisfied(&k, |_| false, |_| None, t0 + EXPECTATIONS_TTL));
    }
}
