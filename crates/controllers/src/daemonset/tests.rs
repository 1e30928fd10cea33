use super::*;
use serde_json::json;

fn now() -> Time {
    util::parse_time(&json!("2024-01-01T00:10:00Z")).unwrap()
}

fn ds() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    })
}

fn node(name: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}})
}

fn arcs(v: Vec<Value>) -> Vec<Arc<Value>> {
    v.into_iter().map(Arc::new).collect()
}

fn names(v: &[Arc<Value>]) -> Vec<&str> {
    v.iter().map(|p| util::name(p)).collect()
}

/// A daemon pod of `owner` on `node` (as the controller makes it, then bound).
fn pod(name: &str, owner: &Value, node: &str, ready: bool) -> Value {
    let mut p = pod_for_node(owner, node);
    p["metadata"]["name"] = json!(name);
    p["metadata"]["uid"] = json!(format!("uid-{name}"));
    p["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    p["spec"]["nodeName"] = json!(node);
    p["status"] = if ready {
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:01:00Z"}]})
    } else {
        json!({"phase": "Pending"})
    };
    p
}

#[test]
fn one_pod_per_node_pinned_by_node_affinity() {
    let nodes = arcs(vec![node("n1"), node("n2"), node("n3")]);
    let p = plan(&ds(), &nodes, &[], true, now());
    assert_eq!(p.create_on, ["n1", "n2", "n3"]);
    assert_eq!(p.status["desiredNumberScheduled"], 3);
    assert_eq!(p.status["currentNumberScheduled"], 0);
    // Kubernetes pins the pod with a required affinity on metadata.name, not nodeName,
    // so the scheduler still binds it (and checks resources).
    let pod = pod_for_node(&ds(), "n2");
    assert!(pod["spec"]["nodeName"].is_null());
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!({"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]})
    );
    assert_eq!(target_node(&pod), Some("n2"));
    assert_eq!(pod["metadata"]["generateName"], "agent-");
    assert_eq!(pod["metadata"]["labels"]["app"], "agent");
    assert_eq!(
        pod["metadata"]["labels"][REVISION_LABEL],
        current_hash(&ds())
    );
    assert_eq!(pod["metadata"]["labels"][TEMPLATE_GENERATION_LABEL], "2");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
}

#[test]
fn a_node_that_joins_later_gets_a_pod_and_covered_nodes_do_not() {
    let d = ds();
    let pods = arcs(vec![pod("a", &d, "n1", true)]);
    let nodes = arcs(vec![node("n1"), node("n2")]);
    let p = plan(&d, &nodes, &pods, true, now());
    assert_eq!(p.create_on, ["n2"]);
    assert!(p.delete.is_empty());
    // An unbound pod aimed at n2 through its affinity counts as n2's pod.
    let mut pending = pod_for_node(&d, "n2");
    pending["metadata"]["name"] = json!("b");
    pending["metadata"]["uid"] = json!("uid-b");
    let pods = arcs(vec![pod("a", &d, "n1", true), pending]);
    let p = plan(&d, &nodes, &pods, true, now());
    assert!(p.create_on.is_empty());
    assert_eq!(p.status["currentNumberScheduled"], 2);
    assert_eq!(p.status["numberReady"], 1);
}

#[test]
fn node_selector_and_required_affinity_choose_nodes() {
    let mut d = ds();
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    let mut ssd = node("ssd");
    ssd["metadata"]["labels"]["disk"] = json!("ssd");
    let nodes = arcs(vec![ssd.clone(), node("hdd")]);
    assert_eq!(plan(&d, &nodes, &[], true, now()).create_on, ["ssd"]);

    let mut d = ds();
    d["spec"]["template"]["spec"]["affinity"] = json!({"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["ssd"]}]}
    ]}}});
    // Terms are ORed: hdd matches the first term, ssd the second.
    assert_eq!(plan(&d, &nodes, &[], true, now()).create_on, ["ssd", "hdd"]);
    // Gt compares integers; an empty term matches nothing.
    let mut big = node("big");
    big["metadata"]["labels"]["cpus"] = json!("64");
    let gt = json!({"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["8"]}]});
    assert!(term_matches(&gt, &big));
    assert!(!term_matches(&gt, &node("n")));
    assert!(!term_matches(&json!({}), &big));
}

#[test]
fn a_node_that_stops_matching_loses_its_pod() {
    let mut d = ds();
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "edge"});
    let mut n1 = node("n1");
    n1["metadata"]["labels"]["role"] = json!("edge");
    let pods = arcs(vec![pod("a", &d, "n1", true), pod("b", &d, "n2", true)]);
    let p = plan(&d, &arcs(vec![n1, node("n2")]), &pods, true, now());
    assert_eq!(names(&p.delete), ["b"]);
    assert_eq!(p.status["numberMisscheduled"], 1);
    assert_eq!(p.status["desiredNumberScheduled"], 1);
    // A pod for a node that was deleted goes too.
    let p = plan(&d, &[], &pods, true, now());
    assert_eq!(names(&p.delete).len(), 2);
}

#[test]
fn taints_need_tolerations_and_noexecute_evicts() {
    let d = ds();
    let mut tainted = node("gpu");
    tainted["spec"]["taints"] = json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]);
    let mut evicting = node("bad");
    evicting["spec"]["taints"] = json!([{"key": "broken", "effect": "NoExecute"}]);
    let mut soft = node("soft");
    soft["spec"]["taints"] = json!([{"key": "x", "effect": "PreferNoSchedule"}]);
    let pods = arcs(vec![pod("a", &d, "gpu", true), pod("b", &d, "bad", true)]);
    let nodes = arcs(vec![tainted.clone(), evicting, soft]);
    let p = plan(&d, &nodes, &pods, true, now());
    // NoSchedule: no new pod, but the existing one may stay; NoExecute evicts it;
    // PreferNoSchedule is no obstacle.
    assert_eq!(p.create_on, ["soft"]);
    assert_eq!(names(&p.delete), ["b"]);
    assert_eq!(p.status["desiredNumberScheduled"], 1);

    let mut tolerant = ds();
    tolerant["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]);
    assert_eq!(
        plan(&tolerant, &arcs(vec![tainted.clone()]), &[], true, now()).create_on,
        ["gpu"]
    );
    // A wrong value does not tolerate; Exists with an empty key tolerates everything.
    assert!(!tolerates(
        &json!({"key": "gpu", "value": "false", "effect": "NoSchedule"}),
        &tainted["spec"]["taints"][0]
    ));
    assert!(tolerates(
        &json!({"operator": "Exists"}),
        &tainted["spec"]["taints"][0]
    ));
    assert!(!tolerates(
        &json!({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}),
        &tainted["spec"]["taints"][0]
    ));
}

#[test]
fn daemon_pods_tolerate_cordoned_and_not_ready_nodes_by_default() {
    // Kubernetes adds node.kubernetes.io/unschedulable:NoSchedule and not-ready /
    // unreachable:NoExecute tolerations to every daemon pod.
    let mut cordoned = node("c");
    cordoned["spec"]["unschedulable"] = json!(true);
    cordoned["spec"]["taints"] = json!([
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]);
    let p = plan(&ds(), &arcs(vec![cordoned]), &[], true, now());
    assert_eq!(p.create_on, ["c"]);
    let pod = pod_for_node(&ds(), "c");
    let tols = pod["spec"]["tolerations"].as_array().unwrap();
    assert!(
        tols.iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable"
                && t["effect"] == "NoExecute"
                && t["operator"] == "Exists")
    );
    // network-unavailable only for host-network daemons.
    assert!(
        !tols
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/network-unavailable")
    );
    let mut hn = ds();
    hn["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    let tols = pod_for_node(&hn, "c")["spec"]["tolerations"].clone();
    assert!(
        tols.as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/network-unavailable")
    );
}

#[test]
fn failed_pods_and_duplicates_are_replaced() {
    let d = ds();
    let mut failed = pod("f", &d, "n1", false);
    failed["status"]["phase"] = json!("Failed");
    let mut dup = pod("dup", &d, "n2", true);
    dup["metadata"]["creationTimestamp"] = json!("2024-01-01T00:05:00Z");
    let pods = arcs(vec![failed, pod("keep", &d, "n2", true), dup]);
    let p = plan(&d, &arcs(vec![node("n1"), node("n2")]), &pods, true, now());
    assert_eq!(p.create_on, ["n1"]);
    let mut del = names(&p.delete);
    del.sort();
    assert_eq!(del, ["dup", "f"]);
    // Kubernetes' event for the failed pod; the duplicate goes without one.
    assert_eq!(
        p.notes,
        [Note::warning(
            "FailedDaemonPod",
            "Found failed daemon pod ns/f on node n1, will try to kill it"
        )]
    );
}

#[test]
fn finished_pods_are_noted_only_when_they_are_deleted() {
    let d = ds();
    let mut done = pod("s", &d, "n1", false);
    done["status"]["phase"] = json!("Succeeded");
    let pods = arcs(vec![done]);
    let nodes = arcs(vec![node("n1")]);
    let p = plan(&d, &nodes, &pods, true, now());
    assert_eq!(
        p.notes,
        [Note::normal(
            "SucceededDaemonPod",
            "Found succeeded daemon pod ns/s on node n1, will try to delete it"
        )]
    );
    // Nothing is deleted while earlier writes are unseen: nothing to tell either.
    assert!(plan(&d, &nodes, &pods, false, now()).notes.is_empty());
    // Healthy pods make no events.
    let pods = arcs(vec![pod("ok", &d, "n1", true)]);
    assert!(plan(&d, &nodes, &pods, true, now()).notes.is_empty());
}

#[test]
fn other_owners_pods_and_terminating_pods_are_ignored() {
    let d = ds();
    let mut theirs = pod("t", &d, "n1", true);
    theirs["metadata"]["ownerReferences"][0]["uid"] = json!("other");
    let mut going = pod("g", &d, "n1", true);
    going["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:00Z");
    let p = plan(
        &d,
        &arcs(vec![node("n1")]),
        &arcs(vec![theirs, going]),
        true,
        now(),
    );
    assert_eq!(p.create_on, ["n1"]);
    assert!(p.delete.is_empty());
}

#[test]
fn unsatisfied_expectations_block_writes_but_not_status() {
    let p = plan(&ds(), &arcs(vec![node("n1")]), &[], false, now());
    assert!(p.create_on.is_empty());
    assert_eq!(p.status["desiredNumberScheduled"], 1);
}

#[test]
fn rolling_update_replaces_at_most_max_unavailable_at_a_time() {
    let old = ds();
    let mut new = ds();
    new["metadata"]["generation"] = json!(3);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:2");
    let nodes = arcs((1..=4).map(|i| node(&format!("n{i}"))).collect());
    let pods = arcs(
        (1..=4)
            .map(|i| pod(&format!("p{i}"), &old, &format!("n{i}"), true))
            .collect(),
    );
    let p = plan(&new, &nodes, &pods, true, now());
    // Default maxUnavailable 1: one old pod at a time.
    assert_eq!(p.delete.len(), 1);
    assert_eq!(p.status["updatedNumberScheduled"], 0);
    assert_eq!(p.status["numberAvailable"], 4);
    assert_eq!(p.status["observedGeneration"], 3);

    new["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}});
    assert_eq!(plan(&new, &nodes, &pods, true, now()).delete.len(), 2);
    // A node already without an available pod uses up the budget: only unavailable old
    // pods may go then.
    let mut pods2: Vec<Value> = (1..=3)
        .map(|i| pod(&format!("p{i}"), &old, &format!("n{i}"), true))
        .collect();
    pods2.push(pod("new4", &new, "n4", false));
    pods2.push(pod("p5", &old, "n5", false));
    let nodes5 = arcs((1..=5).map(|i| node(&format!("n{i}"))).collect());
    new["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}});
    let p = plan(&new, &nodes5, &arcs(pods2), true, now());
    assert_eq!(names(&p.delete), ["p5"]);
    assert_eq!(p.status["updatedNumberScheduled"], 1);
    assert_eq!(p.status["numberUnavailable"], 2);

    // OnDelete never deletes for an update.
    new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    assert!(plan(&new, &nodes, &pods, true, now()).delete.is_empty());
}

#[test]
fn status_reports_a_finished_rollout() {
    let d = ds();
    let nodes = arcs(vec![node("n1"), node("n2")]);
    let pods = arcs(vec![pod("a", &d, "n1", true), pod("b", &d, "n2", true)]);
    let p = plan(&d, &nodes, &pods, true, now());
    // What `kubectl rollout status ds` waits for: updated == available == desired at the
    // observed generation.
    assert_eq!(p.status["desiredNumberScheduled"], 2);
    assert_eq!(p.status["updatedNumberScheduled"], 2);
    assert_eq!(p.status["numberAvailable"], 2);
    assert_eq!(p.status["numberReady"], 2);
    assert_eq!(p.status["numberUnavailable"], 0);
    assert_eq!(p.status["observedGeneration"], 2);
    assert!(p.create_on.is_empty() && p.delete.is_empty());
}

#[test]
fn min_ready_seconds_delays_availability_and_requeues() {
    let mut d = ds();
    d["spec"]["minReadySeconds"] = json!(600);
    let pods = arcs(vec![pod("a", &d, "n1", true)]);
    let p = plan(&d, &arcs(vec![node("n1")]), &pods, true, now());
    assert_eq!(p.status["numberReady"], 1);
    assert_eq!(p.status["numberAvailable"], 0);
    // Ready at 00:01:00, available at 00:11:00: 60 s from now (+1 s slack).
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(61)));
}
