use super::*;
use serde_json::json;

fn now() -> Time {
    util::parse_time(&json!("2024-01-01T00:10:00Z")).unwrap()
}

fn sts(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "ns", "uid": "sts-uid", "generation": 1},
        "spec": {
            "replicas": replicas, "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
        }
    })
}

/// Pod `ord` of `set` as the controller makes it, in the given state.
fn pod(set: &Value, ord: usize, ready: bool) -> Arc<Value> {
    let rev = update_revision_name(set);
    let mut p = pod_for(set, &set["spec"]["template"], &rev, ord);
    p["metadata"]["uid"] = json!(format!("uid-{ord}-{rev}"));
    p["status"] = if ready {
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]})
    } else {
        json!({"phase": "Pending"})
    };
    Arc::new(p)
}

fn rev(set: &Value, n: i64) -> Arc<Value> {
    Arc::new(revision_object(set, n))
}

fn names(v: &[Value]) -> Vec<String> {
    v.iter().map(|p| util::name(p).to_string()).collect()
}

fn deleted(p: &SetPlan) -> Vec<String> {
    p.delete.iter().map(|p| util::name(p).to_string()).collect()
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_in_order() {
    let s = sts(3);
    let p = plan(&s, &[], &[], now());
    assert_eq!(names(&p.create), ["web-0"]);
    assert!(p.create_revision.is_some());
    // web-0 exists but is not Ready: wait.
    let p = plan(&s, &[pod(&s, 0, false)], &[rev(&s, 1)], now());
    assert!(p.create.is_empty());
    assert!(p.create_revision.is_none());
    // web-0 Ready: web-1 next.
    let p = plan(&s, &[pod(&s, 0, true)], &[rev(&s, 1)], now());
    assert_eq!(names(&p.create), ["web-1"]);
    // A hole at web-1 is filled before web-2 is considered.
    let p = plan(
        &s,
        &[pod(&s, 0, true), pod(&s, 2, true)],
        &[rev(&s, 1)],
        now(),
    );
    assert_eq!(names(&p.create), ["web-1"]);
}

#[test]
fn parallel_creates_all_at_once() {
    let mut s = sts(3);
    s["spec"]["podManagementPolicy"] = json!("Parallel");
    let p = plan(&s, &[pod(&s, 0, false)], &[], now());
    assert_eq!(names(&p.create), ["web-1", "web-2"]);
}

#[test]
fn pods_have_stable_identity() {
    let s = sts(1);
    let p = plan(&s, &[], &[], now());
    let pod = &p.create[0];
    assert_eq!(pod["metadata"]["name"], "web-0");
    assert_eq!(pod["spec"]["hostname"], "web-0");
    assert_eq!(pod["spec"]["subdomain"], "nginx");
    let l = &pod["metadata"]["labels"];
    assert_eq!(l["app"], "web");
    assert_eq!(l[POD_NAME_LABEL], "web-0");
    assert_eq!(l[POD_INDEX_LABEL], "0");
    assert_eq!(l[REVISION_LABEL], update_revision_name(&s));
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    assert_eq!(ordinal(&s, pod), Some(0));
    assert_eq!(ordinal(&s, &json!({"metadata": {"name": "web-01"}})), None);
    assert_eq!(ordinal(&s, &json!({"metadata": {"name": "webby-1"}})), None);
}

#[test]
fn volume_claim_templates_give_each_pod_its_claim() {
    let mut s = sts(1);
    s["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    let p = plan(&s, &[], &[], now());
    assert_eq!(names(&p.create_claims), ["data-web-0"]);
    assert_eq!(p.create_claims[0]["metadata"]["labels"]["app"], "web");
    assert_eq!(
        p.create[0]["spec"]["volumes"],
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}])
    );
}

#[test]
fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
    let s = sts(1);
    let pods = vec![pod(&s, 0, true), pod(&s, 1, true), pod(&s, 2, true)];
    let p = plan(&s, &pods, &[rev(&s, 1)], now());
    assert_eq!(deleted(&p), ["web-2"]);
    // While web-2 terminates nothing else goes.
    let mut going = (*pods[2]).clone();
    going["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:00Z");
    let p = plan(
        &s,
        &[pods[0].clone(), pods[1].clone(), Arc::new(going)],
        &[rev(&s, 1)],
        now(),
    );
    assert!(p.delete.is_empty());
    // Parallel removes all condemned pods at once.
    let mut par = s.clone();
    par["spec"]["podManagementPolicy"] = json!("Parallel");
    let pods: Vec<_> = (0..3).map(|i| pod(&par, i, true)).collect();
    let mut d = deleted(&plan(&par, &pods, &[rev(&par, 1)], now()));
    d.sort();
    assert_eq!(d, ["web-1", "web-2"]);
}

#[test]
fn scale_down_waits_while_a_remaining_pod_is_unhealthy() {
    let s = sts(1);
    let pods = vec![pod(&s, 0, false), pod(&s, 1, true)];
    assert!(plan(&s, &pods, &[rev(&s, 1)], now()).delete.is_empty());
}

#[test]
fn failed_pods_are_recreated() {
    let s = sts(2);
    let mut failed = (*pod(&s, 0, false)).clone();
    failed["status"]["phase"] = json!("Failed");
    let p = plan(
        &s,
        &[Arc::new(failed), pod(&s, 1, true)],
        &[rev(&s, 1)],
        now(),
    );
    assert_eq!(deleted(&p), ["web-0"]);
    assert!(p.create.is_empty());
    assert_eq!(
        p.notes,
        [Note::warning(
            "RecreatingFailedPod",
            "StatefulSet ns/web is recreating failed Pod web-0"
        )]
    );
    // A succeeded pod is recreated too, with a Normal event; healthy sets say nothing.
    let mut done = (*pod(&s, 0, false)).clone();
    done["status"]["phase"] = json!("Succeeded");
    let p = plan(&s, &[Arc::new(done)], &[rev(&s, 1)], now());
    assert_eq!(
        p.notes,
        [Note::normal(
            "RecreatingTerminatedPod",
            "StatefulSet ns/web is recreating terminated Pod web-0"
        )]
    );
    let p = plan(
        &s,
        &[pod(&s, 0, true), pod(&s, 1, true)],
        &[rev(&s, 1)],
        now(),
    );
    assert!(p.notes.is_empty());
}

#[test]
fn pod_and_claim_events_use_the_statefulset_wording() {
    assert_eq!(
        pod_note("create", "web", "web-0", None),
        Note::normal(
            "SuccessfulCreate",
            "create Pod web-0 in StatefulSet web successful"
        )
    );
    assert_eq!(
        pod_note("delete", "web", "web-1", None),
        Note::normal(
            "SuccessfulDelete",
            "delete Pod web-1 in StatefulSet web successful"
        )
    );
    assert_eq!(
        pod_note("create", "web", "web-0", Some(&"quota exceeded")),
        Note::warning(
            "FailedCreate",
            "create Pod web-0 in StatefulSet web failed error: quota exceeded"
        )
    );
    assert_eq!(
        pod_note("delete", "web", "web-1", Some(&"forbidden")).reason,
        "FailedDelete"
    );
    assert_eq!(
        claim_note("web", "web-0", "data-web-0", None),
        Note::normal(
            "SuccessfulCreate",
            "create Claim data-web-0 Pod web-0 in StatefulSet web success"
        )
    );
    assert_eq!(
        claim_note("web", "web-0", "data-web-0", Some(&"no storage")),
        Note::warning(
            "FailedCreate",
            "create Claim data-web-0 for Pod web-0 in StatefulSet web failed error: no storage"
        )
    );
}

fn updated_set(old: &Value) -> Value {
    let mut s = old.clone();
    s["metadata"]["generation"] = json!(2);
    s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    s["status"] = json!({"currentRevision": update_revision_name(old)});
    s
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down() {
    let old = sts(3);
    let new = updated_set(&old);
    assert_ne!(update_revision_name(&old), update_revision_name(&new));
    let revs = vec![rev(&old, 1)];
    let pods: Vec<_> = (0..3).map(|i| pod(&old, i, true)).collect();
    let p = plan(&new, &pods, &revs, now());
    assert_eq!(p.create_revision.as_ref().unwrap()["revision"], 2);
    assert_eq!(deleted(&p), ["web-2"]);
    assert_eq!(p.status["currentRevision"], update_revision_name(&old));
    assert_eq!(p.status["updateRevision"], update_revision_name(&new));
    // web-2 recreated at the new revision but not Ready yet: wait.
    let revs = vec![rev(&old, 1), rev(&new, 2)];
    let pods = vec![pod(&old, 0, true), pod(&old, 1, true), pod(&new, 2, false)];
    assert!(plan(&new, &pods, &revs, now()).delete.is_empty());
    // Ready: web-1 next.
    let pods = vec![pod(&old, 0, true), pod(&old, 1, true), pod(&new, 2, true)];
    let p = plan(&new, &pods, &revs, now());
    assert_eq!(deleted(&p), ["web-1"]);
    // All updated and ready: the update revision becomes current.
    let pods: Vec<_> = (0..3).map(|i| pod(&new, i, true)).collect();
    let p = plan(&new, &pods, &revs, now());
    assert!(p.delete.is_empty());
    assert_eq!(p.status["currentRevision"], update_revision_name(&new));
    assert_eq!(p.status["currentReplicas"], 3);
    assert_eq!(p.status["updatedReplicas"], 3);
    assert_eq!(p.status["readyReplicas"], 3);
}

#[test]
fn partition_keeps_lower_ordinals_on_the_current_revision() {
    let old = sts(3);
    let mut new = updated_set(&old);
    new["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
    let revs = vec![rev(&old, 1), rev(&new, 2)];
    let pods = vec![pod(&old, 0, true), pod(&old, 1, true), pod(&new, 2, true)];
    assert!(plan(&new, &pods, &revs, now()).delete.is_empty());
    // A deleted pod below the partition comes back with the old template.
    let pods = vec![pod(&old, 0, true), pod(&new, 2, true)];
    let p = plan(&new, &pods, &revs, now());
    assert_eq!(names(&p.create), ["web-1"]);
    assert_eq!(p.create[0]["spec"]["containers"][0]["image"], "nginx:1");
    assert_eq!(
        p.create[0]["metadata"]["labels"][REVISION_LABEL],
        update_revision_name(&old)
    );
}

#[test]
fn on_delete_never_deletes_for_an_update() {
    let old = sts(2);
    let mut new = updated_set(&old);
    new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    let pods: Vec<_> = (0..2).map(|i| pod(&old, i, true)).collect();
    assert!(plan(&new, &pods, &[rev(&old, 1)], now()).delete.is_empty());
}

#[test]
fn status_counts_replicas() {
    let s = sts(3);
    let pods = vec![pod(&s, 0, true), pod(&s, 1, false)];
    let p = plan(&s, &pods, &[rev(&s, 1)], now());
    assert_eq!(p.status["replicas"], 2);
    assert_eq!(p.status["readyReplicas"], 1);
    assert_eq!(p.status["currentReplicas"], 2);
    assert_eq!(p.status["updatedReplicas"], 2);
    assert_eq!(p.status["observedGeneration"], 1);
}

#[test]
fn revisions_store_the_template_as_a_replace_patch() {
    let s = sts(1);
    let r = revision_object(&s, 4);
    assert_eq!(r["metadata"]["name"], update_revision_name(&s));
    assert_eq!(r["data"]["spec"]["template"]["$patch"], "replace");
    assert_eq!(r["revision"], 4);
    assert_eq!(revision_template(&r), s["spec"]["template"]);
    assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "sts-uid");
}

#[test]
fn writing_a_zero_collision_count_keeps_the_revision() {
    // Regression: the first status write (collisionCount 0) must not look like a new
    // template, or every pod would be rolled right after creation.
    let s = sts(1);
    let mut written = s.clone();
    written["status"] = json!({"collisionCount": 0});
    assert_eq!(update_revision_name(&s), update_revision_name(&written));
    written["status"] = json!({"collisionCount": 1});
    assert_ne!(update_revision_name(&s), update_revision_name(&written));
}
