//! The Deployment reconcile logic, pure (Kubernetes' `pkg/controller/deployment`): one
//! sync step computes which ReplicaSets to adopt, release, create, scale and delete, the
//! Deployment's revision annotation and its status. The driver applies the writes in
//! order; the next sync (level-triggered) takes the following step.

use crate::util::{self, Time, controller_ref, int};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::sync::Arc;

/// The pod-template-hash label on ReplicaSets and their pods.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had (it is reused by a rollback).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled (proportional scaling).
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Kubernetes caps the revision-history annotation at this many characters.
const MAX_REV_HISTORY_CHARS: usize = 2000;

/// One write to a ReplicaSet.
#[derive(Clone, Debug, PartialEq)]
pub enum RsWrite {
    /// Create this ReplicaSet.
    Create(Value),
    /// Replace the ReplicaSet with this copy (its resourceVersion makes it a CAS).
    Update(Value),
    /// Delete the ReplicaSet `name` (precondition: `uid`).
    Delete {
        /// Its name.
        name: String,
        /// Its UID.
        uid: String,
    },
}

/// What one sync of a Deployment does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphan ReplicaSets matching the selector: add our controller reference.
    pub adopt: Vec<Arc<Value>>,
    /// Our ReplicaSets that stopped matching: remove our reference.
    pub release: Vec<Arc<Value>>,
    /// The Deployment's new `metadata.annotations` when the revision changed.
    pub annotations: Option<Map<String, Value>>,
    /// ReplicaSet writes, in order.
    pub writes: Vec<RsWrite>,
    /// The new status, when it differs from the current one.
    pub status: Option<Value>,
    /// Sync again after this long (progress deadline, minReadySeconds).
    pub requeue_after: Option<std::time::Duration>,
}

/// A working copy of an owned ReplicaSet.
#[derive(Clone, Debug)]
struct Rs {
    obj: Value,
    created: bool,
    dirty: bool,
}

impl Rs {
    fn replicas(&self) -> i64 {
        int(&self.obj["spec"]["replicas"])
    }
    fn available(&self) -> i64 {
        int(&self.obj["status"]["availableReplicas"])
    }
    fn name(&self) -> &str {
        util::name(&self.obj)
    }
    fn created_at(&self) -> Option<Time> {
        util::created(&self.obj)
    }
    fn revision(&self) -> i64 {
        revision(&self.obj)
    }
}

fn revision(o: &Value) -> i64 {
    util::annotation(o, REVISION)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A Deployment with its accessors (`deploymentutil`).
/// Whether `d` rolls out by the Recreate strategy (old pods all gone before new ones).
pub fn is_recreate(d: &Value) -> bool {
    d["spec"]["strategy"]["type"].as_str() == Some("Recreate")
}

struct Deploy<'a> {
    d: &'a Value,
}

impl Deploy<'_> {
    fn replicas(&self) -> i64 {
        self.d["spec"]["replicas"].as_i64().unwrap_or(1)
    }
    fn is_rolling(&self) -> bool {
        !is_recreate(self.d)
    }
    /// `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down); both 0
    /// makes maxUnavailable 1.
    fn fenceposts(&self) -> (i64, i64) {
        let ru = &self.d["spec"]["strategy"]["rollingUpdate"];
        let dflt = json!("25%");
        let surge_v = ru.get("maxSurge").filter(|v| !v.is_null()).unwrap_or(&dflt);
        let unav_v = ru
            .get("maxUnavailable")
            .filter(|v| !v.is_null())
            .unwrap_or(&dflt);
        let surge = util::scaled_value(surge_v, self.replicas(), true);
        let unavailable = util::scaled_value(unav_v, self.replicas(), false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }
    fn max_surge(&self) -> i64 {
        if self.is_rolling() {
            self.fenceposts().0
        } else {
            0
        }
    }
    fn max_unavailable(&self) -> i64 {
        if !self.is_rolling() || self.replicas() == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas())
    }
    fn progress_deadline(&self) -> Option<i64> {
        self.d["spec"]["progressDeadlineSeconds"]
            .as_i64()
            .filter(|&s| s != i64::from(i32::MAX))
    }
    fn paused(&self) -> bool {
        self.d["spec"]["paused"].as_bool() == Some(true)
    }
    fn name(&self) -> &str {
        util::name(self.d)
    }
}

/// `EqualIgnoreHash`: templates equal once the pod-template-hash label is removed, with
/// Kubernetes' semantic equality (empty and absent alike).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
            l.remove(HASH_LABEL);
        }
        util::normalize(&t)
    };
    strip(a) == strip(b)
}

fn by_creation(a: &Rs, b: &Rs) -> Ordering {
    a.created_at()
        .cmp(&b.created_at())
        .then_with(|| a.name().cmp(b.name()))
}

/// Plans one sync of `d` given every ReplicaSet and every pod of its namespace.
pub fn plan(d: &Value, all_rs: &[Arc<Value>], pods: &[Arc<Value>], now: Time) -> Plan {
    let dep = Deploy { d };
    let mut out = Plan::default();
    let sel = util::selector(&d["spec"]["selector"]);
    // Kubernetes refuses to act on a selector that selects everything.
    if sel.is_empty() || sel.is_nothing() {
        return out;
    }
    let d_uid = util::uid(d);
    let deleting = api::meta::is_deleting(d);
    let mut owned: Vec<Rs> = Vec::new();
    for rs in all_rs {
        let matches = sel.matches(api::meta::labels(rs));
        match controller_ref(rs) {
            Some(r) if r["uid"].as_str() == Some(d_uid) => {
                if matches {
                    owned.push(Rs {
                        obj: (**rs).clone(),
                        created: false,
                        dirty: false,
                    });
                } else if !deleting {
                    out.release.push(rs.clone());
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && !api::meta::is_deleting(rs) {
                    out.adopt.push(rs.clone());
                    owned.push(Rs {
                        obj: (**rs).clone(),
                        created: false,
                        dirty: false,
                    });
                }
            }
        }
    }
    owned.sort_by(by_creation);
    let mut st = Step {
        dep,
        owned,
        new_idx: None,
        conditions: d["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        collision_count: d["status"]["collisionCount"].as_i64(),
        annotations: None,
        now,
    };
    if deleting {
        st.find_new();
        return st.finish(out, false);
    }
    st.paused_conditions();
    st.find_new();
    if st.dep.paused() || st.is_scaling_event() {
        st.sync_revision();
        st.scale();
        if st.dep.paused() {
            st.cleanup(&mut out);
        }
        return st.finish(out, false);
    }
    if st.dep.is_rolling() {
        st.sync_revision();
        if st.new_idx.is_none() && !st.create_new(all_rs) {
            return st.finish(out, false);
        }
        if st.reconcile_new() || st.reconcile_old() {
            return st.finish(out, true);
        }
        if st.complete() {
            st.cleanup(&mut out);
        }
        st.finish(out, true)
    } else {
        st.sync_revision();
        // Recreate: old ReplicaSets to zero, wait for their pods, then the new one.
        let mut scaled = false;
        for i in 0..st.owned.len() {
            if Some(i) != st.new_idx && st.owned[i].replicas() != 0 {
                st.scale_rs(i, 0);
                scaled = true;
            }
        }
        if scaled || st.old_pods_running(pods) {
            return st.finish(out, true);
        }
        if st.new_idx.is_none() && !st.create_new(all_rs) {
            return st.finish(out, true);
        }
        if let Some(n) = st.new_idx {
            let want = st.dep.replicas();
            if st.owned[n].replicas() != want {
                st.scale_rs(n, want);
            }
        }
        if st.complete() {
            st.cleanup(&mut out);
        }
        st.finish(out, true)
    }
}

/// The state of one sync step.
struct Step<'a> {
    dep: Deploy<'a>,
    owned: Vec<Rs>,
    new_idx: Option<usize>,
    conditions: Vec<Value>,
    collision_count: Option<i64>,
    annotations: Option<Map<String, Value>>,
    now: Time,
}

impl Step<'_> {
    fn is_active(&self, i: usize) -> bool {
        self.owned[i].replicas() > 0
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
    fn find_new(&mut self) {
        let t = &self.dep.d["spec"]["template"];
        self.new_idx = self
            .owned
            .iter()
            .position(|rs| equal_ignore_hash(&rs.obj["spec"]["template"], t));
    }

    fn max_old_revision(&self) -> i64 {
        self.owned
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.new_idx)
            .map(|(_, r)| r.revision())
            .max()
            .unwrap_or(0)
    }

    /// Sets the Deployment's revision annotation.
    fn set_deployment_revision(&mut self, rev: &str) {
        let mut a = self.dep.d["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if a.get(REVISION).and_then(Value::as_str) != Some(rev) {
            a.insert(REVISION.into(), json!(rev));
            self.annotations = Some(a);
        }
    }

    /// For an existing new ReplicaSet: its annotations, revision and minReadySeconds
    /// follow the Deployment (`getNewReplicaSet` with an existing one).
    fn sync_revision(&mut self) {
        let Some(n) = self.new_idx else { return };
        let new_rev = self.max_old_revision() + 1;
        let mut rs = self.owned[n].obj.clone();
        let mut changed = set_new_rs_annotations(self.dep.d, &mut rs, new_rev, true, &self.dep);
        let mrs = self.dep.d["spec"]["minReadySeconds"].clone();
        if int(&rs["spec"]["minReadySeconds"]) != int(&mrs) {
            rs["spec"]["minReadySeconds"] = json!(int(&mrs));
            changed = true;
        }
        if changed {
            self.owned[n].obj = rs;
            self.owned[n].dirty = true;
        }
        let rev = util::annotation(&self.owned[n].obj, REVISION)
            .unwrap_or_default()
            .to_string();
        self.set_deployment_revision(&rev);
        if self.dep.progress_deadline().is_some()
            && find_cond(&self.conditions, "Progressing").is_none()
        {
            let msg = format!("Found new replica set {:?}", self.owned[n].name());
            set_condition(
                &mut self.conditions,
                cond("Progressing", "True", "FoundNewReplicaSet", &msg, self.now),
            );
        }
    }

    /// Creates the new ReplicaSet; false when a hash collision was found (the
    /// collision count is raised and the next sync tries another name).
    fn create_new(&mut self, all_rs: &[Arc<Value>]) -> bool {
        let d = self.dep.d;
        let template = &d["spec"]["template"];
        let hash = util::template_hash(template, self.collision_count);
        let name = format!("{}-{}", self.dep.name(), hash);
        if let Some(existing) = all_rs.iter().find(|r| util::name(r) == name) {
            let ours =
                controller_ref(existing).and_then(|r| r["uid"].as_str()) == Some(util::uid(d));
            if !(ours && equal_ignore_hash(&existing["spec"]["template"], template)) {
                self.collision_count = Some(self.collision_count.unwrap_or(0) + 1);
            }
            return false;
        }
        let mut t = template.clone();
        t["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut meta = json!({
            "name": name,
            "labels": t["metadata"]["labels"].clone(),
            "ownerReferences": [util::owner_ref("apps/v1", "Deployment", d)],
        });
        if let Some(ns) = api::meta::namespace(d) {
            meta["namespace"] = json!(ns);
        }
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta,
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(&d["spec"]["minReadySeconds"]),
                "selector": selector,
                "template": t,
            },
        });
        let new_rev = self.max_old_revision() + 1;
        self.owned.push(Rs {
            obj: rs.clone(),
            created: true,
            dirty: true,
        });
        let n = self.owned.len() - 1;
        self.new_idx = Some(n);
        let count = self.new_rs_new_replicas();
        rs["spec"]["replicas"] = json!(count);
        set_new_rs_annotations(d, &mut rs, new_rev, false, &self.dep);
        self.owned[n].obj = rs;
        self.set_deployment_revision(&new_rev.to_string());
        if self.dep.progress_deadline().is_some() {
            let msg = format!("Created new replica set {name:?}");
            set_condition(
                &mut self.conditions,
                cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &msg,
                    self.now,
                ),
            );
        }
        true
    }

    /// `NewRSNewReplicas`: how big the new ReplicaSet may be now.
    fn new_rs_new_replicas(&self) -> i64 {
        let Some(n) = self.new_idx else { return 0 };
        let cur = self.owned[n].replicas();
        if !self.dep.is_rolling() {
            return self.dep.replicas();
        }
        let total: i64 = self.owned.iter().map(Rs::replicas).sum();
        let max_total = self.dep.replicas() + self.dep.max_surge();
        if total >= max_total {
            return cur;
        }
        let up = (max_total - total).min(self.dep.replicas() - cur);
        cur + up
    }

    /// Sets a ReplicaSet's size and its desired/max replicas annotations.
    fn scale_rs(&mut self, i: usize, size: i64) {
        let desired = self.dep.replicas().to_string();
        let max = (self.dep.replicas() + self.dep.max_surge()).to_string();
        let rs = &mut self.owned[i];
        let need_annotations = util::annotation(&rs.obj, DESIRED_REPLICAS)
            != Some(desired.as_str())
            || util::annotation(&rs.obj, MAX_REPLICAS) != Some(max.as_str());
        if rs.replicas() == size && !need_annotations {
            return;
        }
        rs.obj["spec"]["replicas"] = json!(size);
        rs.obj["metadata"]["annotations"][DESIRED_REPLICAS] = json!(desired);
        rs.obj["metadata"]["annotations"][MAX_REPLICAS] = json!(max);
        rs.dirty = true;
    }

    /// `reconcileNewReplicaSet`: scale the new ReplicaSet up (within maxSurge) or down
    /// (to replicas). True if it changed.
    fn reconcile_new(&mut self) -> bool {
        let Some(n) = self.new_idx else { return false };
        let want = self.dep.replicas();
        let cur = self.owned[n].replicas();
        if cur == want {
            return false;
        }
        let size = if cur > want {
            want
        } else {
            self.new_rs_new_replicas()
        };
        if size == cur {
            return false;
        }
        self.scale_rs(n, size);
        true
    }

    fn old_indices(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.owned.len())
            .filter(|&i| Some(i) != self.new_idx)
            .collect();
        v.sort_by(|&a, &b| by_creation(&self.owned[a], &self.owned[b]));
        v
    }

    /// `reconcileOldReplicaSets`: scale old ReplicaSets down within maxUnavailable,
    /// unhealthy replicas first. True if any changed.
    fn reconcile_old(&mut self) -> bool {
        let old = self.old_indices();
        let old_count: i64 = old.iter().map(|&i| self.owned[i].replicas()).sum();
        if old_count == 0 {
            return false;
        }
        let all: i64 = self.owned.iter().map(Rs::replicas).sum();
        let min_available = self.dep.replicas() - self.dep.max_unavailable();
        let new_unavailable = self
            .new_idx
            .map(|n| self.owned[n].replicas() - self.owned[n].available())
            .unwrap_or(0);
        let max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // cleanupUnhealthyReplicas.
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let (r, a) = (self.owned[i].replicas(), self.owned[i].available());
            if r == 0 || r == a {
                continue;
            }
            let n = (max_scaled_down - cleaned).min(r - a);
            self.scale_rs(i, r - n);
            cleaned += n;
        }
        // scaleDownOldReplicaSetsForRollingUpdate.
        let available: i64 = self.owned.iter().map(Rs::available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &old {
                if scaled >= total {
                    break;
                }
                let r = self.owned[i].replicas();
                if r == 0 {
                    continue;
                }
                let n = r.min(total - scaled);
                self.scale_rs(i, r - n);
                scaled += n;
            }
        }
        cleaned + scaled > 0
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    fn is_scaling_event(&self) -> bool {
        let want = self.dep.replicas().to_string();
        (0..self.owned.len())
            .filter(|&i| self.is_active(i))
            .any(|i| {
                util::annotation(&self.owned[i].obj, DESIRED_REPLICAS).is_some_and(|d| d != want)
            })
    }

    /// `scale`: follow a replica change, proportionally across active ReplicaSets in the
    /// middle of a rolling update.
    fn scale(&mut self) {
        let want = self.dep.replicas();
        let active: Vec<usize> = (0..self.owned.len())
            .filter(|&i| self.is_active(i))
            .collect();
        // FindActiveOrLatest.
        let target = match active.len() {
            0 => self.new_idx.or_else(|| {
                (0..self.owned.len()).max_by(|&a, &b| by_creation(&self.owned[a], &self.owned[b]))
            }),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = target {
            self.scale_rs(i, want);
            return;
        }
        // IsSaturated: the new ReplicaSet is complete; old ones go to zero.
        if let Some(n) = self.new_idx {
            let rs = &self.owned[n];
            if rs.replicas() == want
                && util::annotation(&rs.obj, DESIRED_REPLICAS) == Some(want.to_string().as_str())
                && rs.available() == want
            {
                for i in active {
                    if i != n {
                        self.scale_rs(i, 0);
                    }
                }
                return;
            }
        }
        if !self.dep.is_rolling() {
            return;
        }
        let current: i64 = active.iter().map(|&i| self.owned[i].replicas()).sum();
        let allowed = if want > 0 {
            want + self.dep.max_surge()
        } else {
            0
        };
        let to_add = allowed - current;
        let mut order = active.clone();
        // Bigger first; on a tie newer first when growing, older first when shrinking.
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&self.owned[a], &self.owned[b]);
            rb.replicas().cmp(&ra.replicas()).then_with(|| {
                if to_add > 0 {
                    by_creation(rb, ra)
                } else {
                    by_creation(ra, rb)
                }
            })
        });
        let mut sizes: Vec<(usize, i64)> = Vec::new();
        let mut added = 0;
        for &i in &order {
            let r = self.owned[i].replicas();
            if to_add != 0 {
                let p = self.proportion(i, to_add, added);
                sizes.push((i, r + p));
                added += p;
            } else {
                sizes.push((i, r));
            }
        }
        if to_add != 0
            && let Some(first) = sizes.first_mut()
        {
            first.1 = (first.1 + to_add - added).max(0);
        }
        for (i, s) in sizes {
            self.scale_rs(i, s);
        }
    }

    /// `GetProportion`.
    fn proportion(&self, i: usize, to_add: i64, added: i64) -> i64 {
        let rs = &self.owned[i];
        if rs.replicas() == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = {
            let want = self.dep.replicas();
            if want == 0 {
                -rs.replicas()
            } else {
                let dep_replicas = want + self.dep.max_surge();
                let annotated = util::annotation(&rs.obj, MAX_REPLICAS)
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or_else(|| int(&self.dep.d["status"]["replicas"]));
                if annotated == 0 {
                    0
                } else {
                    let size = (rs.replicas() * dep_replicas) as f64 / annotated as f64;
                    size.round() as i64 - rs.replicas()
                }
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `oldPodsRunning` (Recreate): old ReplicaSets still report pods, or pods they own
    /// are not terminal.
    fn old_pods_running(&self, pods: &[Arc<Value>]) -> bool {
        let old = self.old_indices();
        if old
            .iter()
            .any(|&i| int(&self.owned[i].obj["status"]["replicas"]) > 0)
        {
            return true;
        }
        let uids: Vec<&str> = old.iter().map(|&i| util::uid(&self.owned[i].obj)).collect();
        pods.iter().any(|p| {
            controller_ref(p)
                .and_then(|r| r["uid"].as_str())
                .is_some_and(|u| uids.contains(&u))
                && !matches!(util::phase(p), "Failed" | "Succeeded")
        })
    }

    /// `calculateStatus`.
    fn status(&self) -> Value {
        let sum = |f: &dyn Fn(&Rs) -> i64| self.owned.iter().map(f).sum::<i64>();
        let available = sum(&|r| r.available());
        let total = sum(&|r| r.replicas());
        let updated = self
            .new_idx
            .map(|n| int(&self.owned[n].obj["status"]["replicas"]))
            .unwrap_or(0);
        let mut s = json!({
            "observedGeneration": int(&self.dep.d["metadata"]["generation"]),
            "replicas": sum(&|r| int(&r.obj["status"]["replicas"])),
            "updatedReplicas": updated,
            "readyReplicas": sum(&|r| int(&r.obj["status"]["readyReplicas"])),
            "availableReplicas": available,
            "unavailableReplicas": (total - available).max(0),
        });
        if let Some(c) = self.collision_count {
            s["collisionCount"] = json!(c);
        }
        s
    }

    /// `DeploymentComplete` for the status this step would write.
    fn complete(&self) -> bool {
        let s = self.status();
        let want = self.dep.replicas();
        int(&s["updatedReplicas"]) == want
            && int(&s["replicas"]) == want
            && int(&s["availableReplicas"]) == want
            && int(&s["observedGeneration"]) >= int(&self.dep.d["metadata"]["generation"])
    }

    /// `checkPausedConditions`.
    fn paused_conditions(&mut self) {
        if self.dep.progress_deadline().is_none() {
            return;
        }
        let reason = find_cond(&self.conditions, "Progressing")
            .and_then(|c| c["reason"].as_str())
            .unwrap_or_default()
            .to_string();
        if self.dep.paused() && reason != "DeploymentPaused" {
            set_condition(
                &mut self.conditions,
                cond(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    self.now,
                ),
            );
        } else if !self.dep.paused() && reason == "DeploymentPaused" {
            set_condition(
                &mut self.conditions,
                cond(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                    self.now,
                ),
            );
        }
    }

    /// `cleanupDeployment`: delete the oldest fully scaled-down ReplicaSets beyond
    /// revisionHistoryLimit.
    fn cleanup(&self, out: &mut Plan) {
        let Some(limit) = self.dep.d["spec"]["revisionHistoryLimit"].as_i64() else {
            return;
        };
        let mut cleanable: Vec<&Rs> = self
            .old_indices()
            .into_iter()
            .map(|i| &self.owned[i])
            .filter(|r| {
                !r.created
                    && r.replicas() == 0
                    && int(&r.obj["status"]["replicas"]) == 0
                    && !api::meta::is_deleting(&r.obj)
                    && int(&r.obj["metadata"]["generation"])
                        <= int(&r.obj["status"]["observedGeneration"])
            })
            .collect();
        let diff = cleanable.len() as i64 - limit.max(0);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            a.revision()
                .cmp(&b.revision())
                .then_with(|| by_creation(a, b))
        });
        for r in cleanable.into_iter().take(diff as usize) {
            out.writes.push(RsWrite::Delete {
                name: r.name().to_string(),
                uid: util::uid(&r.obj).to_string(),
            });
        }
    }

    /// Emits the writes and the status (with the Available condition, and the
    /// Progressing one when `rollout`), and when to sync again.
    fn finish(mut self, mut out: Plan, rollout: bool) -> Plan {
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for rs in &self.owned {
            if rs.created {
                creates.push(RsWrite::Create(rs.obj.clone()));
            } else if rs.dirty {
                updates.push(RsWrite::Update(rs.obj.clone()));
            }
        }
        // Creations first, then scaling, then any deletions already planned.
        let deletes = std::mem::take(&mut out.writes);
        out.writes = creates.into_iter().chain(updates).chain(deletes).collect();
        out.annotations = self.annotations.take();

        let mut s = self.status();
        let want = self.dep.replicas();
        let min_available = want - self.dep.max_unavailable();
        let available = int(&s["availableReplicas"]);
        let c = if available >= min_available {
            cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                self.now,
            )
        } else {
            cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                self.now,
            )
        };
        set_condition(&mut self.conditions, c);
        let deadline = self.dep.progress_deadline();
        if rollout && let Some(secs) = deadline {
            let new_name = self
                .new_idx
                .map(|n| self.owned[n].name().to_string())
                .unwrap_or_default();
            let current = find_cond(&self.conditions, "Progressing").cloned();
            let complete_before = int(&s["replicas"]) == int(&s["updatedReplicas"])
                && current
                    .as_ref()
                    .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
            if !complete_before {
                let d = self.dep.d;
                let complete = int(&s["updatedReplicas"]) == want
                    && int(&s["replicas"]) == want
                    && available == want
                    && int(&s["observedGeneration"]) >= int(&d["metadata"]["generation"]);
                let old = &d["status"];
                let progressing = int(&s["updatedReplicas"]) > int(&old["updatedReplicas"])
                    || int(&s["replicas"]) - int(&s["updatedReplicas"])
                        < int(&old["replicas"]) - int(&old["updatedReplicas"])
                    || int(&s["readyReplicas"]) > int(&old["readyReplicas"])
                    || available > int(&old["availableReplicas"]);
                if complete {
                    let msg = format!("ReplicaSet {new_name:?} has successfully progressed.");
                    set_condition(
                        &mut self.conditions,
                        cond(
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            &msg,
                            self.now,
                        ),
                    );
                } else if progressing {
                    let msg = format!("ReplicaSet {new_name:?} is progressing.");
                    let mut c = cond("Progressing", "True", "ReplicaSetUpdated", &msg, self.now);
                    if let Some(cur) = &current
                        && cur["status"] == "True"
                    {
                        c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
                    }
                    // Progress refreshes lastUpdateTime: the deadline counts from here.
                    self.conditions.retain(|x| x["type"] != "Progressing");
                    self.conditions.push(c);
                } else if timed_out(current.as_ref(), secs, self.now) {
                    let msg = format!("ReplicaSet {new_name:?} has timed out progressing.");
                    set_condition(
                        &mut self.conditions,
                        cond(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            &msg,
                            self.now,
                        ),
                    );
                }
            }
            // requeueStuckDeployment: wake up when the deadline passes.
            if let Some(c) = find_cond(&self.conditions, "Progressing")
                && c["status"] == "True"
                && c["reason"] != "NewReplicaSetAvailable"
                && let Some(t) = util::parse_time(&c["lastUpdateTime"])
            {
                let left = (t + time::Duration::seconds(secs) - self.now)
                    .as_seconds_f64()
                    .max(0.0);
                out.requeue_after = Some(std::time::Duration::from_secs_f64(left + 1.0));
            }
        }
        if !self.conditions.is_empty() {
            s["conditions"] = json!(self.conditions);
        }
        let old = &self.dep.d["status"];
        if crate::replicaset::status_differs(self.dep.d, &s) || old["conditions"] != s["conditions"]
        {
            out.status = Some(s);
        }
        out
    }
}

/// `DeploymentTimedOut`: the Progressing condition was last updated more than the
/// deadline ago.
fn timed_out(c: Option<&Value>, secs: i64, now: Time) -> bool {
    let Some(c) = c else { return false };
    match c["reason"].as_str() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => util::parse_time(&c["lastUpdateTime"])
            .is_some_and(|t| t + time::Duration::seconds(secs) < now),
    }
}

fn cond(ty: &str, status: &str, reason: &str, message: &str, now: Time) -> Value {
    let t = util::format_time(now);
    json!({"type": ty, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
           "reason": reason, "message": message})
}

fn find_cond<'a>(conds: &'a [Value], ty: &str) -> Option<&'a Value> {
    conds.iter().find(|c| c["type"] == ty)
}

/// `SetDeploymentCondition`: no change for the same status and reason; the transition
/// time survives a reason change within one status.
fn set_condition(conds: &mut Vec<Value>, mut c: Value) {
    if let Some(cur) = find_cond(conds, c["type"].as_str().unwrap_or_default()) {
        if cur["status"] == c["status"] && cur["reason"] == c["reason"] {
            return;
        }
        if cur["status"] == c["status"] {
            c["lastTransitionTime"] = cur["lastTransitionTime"].clone();
        }
    }
    let ty = c["type"].clone();
    conds.retain(|x| x["type"] != ty);
    conds.push(c);
}

/// Annotations a ReplicaSet never copies from its Deployment.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// `SetNewReplicaSetAnnotations`: copy the Deployment's annotations, raise the revision
/// (remembering the old one in revision-history) and, for a new ReplicaSet, the
/// desired/max replicas. True if anything changed.
fn set_new_rs_annotations(
    d: &Value,
    rs: &mut Value,
    new_rev: i64,
    exists: bool,
    dep: &Deploy<'_>,
) -> bool {
    let mut changed = false;
    let mut ann = rs["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(da) = d["metadata"]["annotations"].as_object() {
        for (k, v) in da {
            if !skip_copy(k) && ann.get(k) != Some(v) {
                ann.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    let old = ann
        .get(REVISION)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let old_int = if old.is_empty() {
        0
    } else {
        match old.parse::<i64>() {
            Ok(v) => v,
            Err(_) => {
                rs["metadata"]["annotations"] = Value::Object(ann);
                return changed;
            }
        }
    };
    if old_int < new_rev {
        ann.insert(REVISION.into(), json!(new_rev.to_string()));
        changed = true;
        if !old.is_empty() {
            let hist = ann
                .get(REVISION_HISTORY)
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut h = if hist.is_empty() {
                old.clone()
            } else {
                format!("{hist},{old}")
            };
            while h.len() > MAX_REV_HISTORY_CHARS {
                match h.split_once(',') {
                    Some((_, rest)) => h = rest.to_string(),
                    None => break,
                }
            }
            ann.insert(REVISION_HISTORY.into(), json!(h));
        }
    }
    if !exists {
        let desired = dep.replicas().to_string();
        let max = (dep.replicas() + dep.max_surge()).to_string();
        ann.insert(DESIRED_REPLICAS.into(), json!(desired));
        ann.insert(MAX_REPLICAS.into(), json!(max));
        changed = true;
    }
    rs["metadata"]["annotations"] = Value::Object(ann);
    changed
}

#[cfg(test)]
mod tests;
