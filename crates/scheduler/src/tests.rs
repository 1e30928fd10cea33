//! Scheduling tests, one table per plugin, plus end-to-end `schedule`/`preempt` cases.
//! Expected outcomes are Kubernetes' (the plugin named in each test).

use serde_json::{Value, json};

use crate::filters::{
    self, Cycle, inter_pod_affinity, node_affinity, node_name, node_ports, node_unschedulable,
    resources_fit, taint_toleration, topology_spread,
};
use crate::model::{NodeSpec, PodInfo};
use crate::scores;
use crate::{Config, Snapshot, Strategy, preempt, schedule, try_preempt};

fn node(name: &str, cpu: &str, mem: &str, labels: Value) -> Value {
    let mut l = labels.as_object().cloned().unwrap_or_default();
    l.insert("kubernetes.io/hostname".into(), json!(name));
    json!({
        "metadata": {"name": name, "labels": l},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

fn pod(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c"}]);
    }
    json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn with_labels(mut p: Value, labels: Value) -> Value {
    p["metadata"]["labels"] = labels;
    p
}

fn req(cpu: &str, mem: &str) -> Value {
    json!([{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}])
}

fn bound(mut p: Value, node: &str) -> Value {
    p["spec"]["nodeName"] = json!(node);
    p
}

fn spec_of(n: &Value) -> NodeSpec {
    NodeSpec::parse(n).unwrap()
}

fn info(p: &Value) -> PodInfo {
    PodInfo::parse(p).unwrap()
}

fn snap(nodes: &[Value], pods: &[Value]) -> Snapshot {
    let mut s = Snapshot::new();
    for n in nodes {
        s.add_node(n).unwrap();
    }
    for p in pods {
        s.add_pod(p).unwrap();
    }
    s
}

#[test]
fn node_unschedulable_table() {
    let mut cordoned = node("n", "1", "1Gi", json!({}));
    cordoned["spec"]["unschedulable"] = json!(true);
    let cases = [
        (node("n", "1", "1Gi", json!({})), json!([]), true),
        (cordoned.clone(), json!([]), false),
        (
            cordoned.clone(),
            json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]),
            true,
        ),
        (cordoned, json!([{"operator": "Exists"}]), true),
    ];
    for (n, tol, want) in cases {
        let p = info(&pod("p", json!({"tolerations": tol})));
        let r = node_unschedulable(&p, &spec_of(&n));
        assert_eq!(r.is_ok(), want, "tolerations {tol}");
        if let Err(f) = r {
            assert_eq!(f.reasons, vec![filters::REASON_UNSCHEDULABLE]);
            assert!(f.unresolvable);
        }
    }
}

#[test]
fn node_name_table() {
    let n = spec_of(&node("n1", "1", "1Gi", json!({})));
    for (name, want) in [(None, true), (Some("n1"), true), (Some("n2"), false)] {
        let mut spec = json!({});
        if let Some(name) = name {
            spec["nodeName"] = json!(name);
        }
        assert_eq!(
            node_name(&info(&pod("p", spec)), &n).is_ok(),
            want,
            "{name:?}"
        );
    }
}

#[test]
fn taint_toleration_table() {
    let tainted = |effect: &str| {
        let mut n = node("n", "1", "1Gi", json!({}));
        n["spec"]["taints"] = json!([{"key": "dedicated", "value": "gpu", "effect": effect}]);
        n
    };
    let cases = [
        (
            tainted("NoSchedule"),
            json!([]),
            Some("node(s) had untolerated taint {dedicated: gpu}"),
        ),
        (
            tainted("NoExecute"),
            json!([]),
            Some("node(s) had untolerated taint {dedicated: gpu}"),
        ),
        // PreferNoSchedule only lowers the score.
        (tainted("PreferNoSchedule"), json!([]), None),
        (
            tainted("NoSchedule"),
            json!([{"key": "dedicated", "value": "gpu"}]),
            None,
        ),
        (
            tainted("NoSchedule"),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
            None,
        ),
        (
            tainted("NoSchedule"),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
            Some("node(s) had untolerated taint {dedicated: gpu}"),
        ),
    ];
    for (n, tol, want) in cases {
        let p = info(&pod("p", json!({"tolerations": tol})));
        let got = taint_toleration(&p, &spec_of(&n))
            .err()
            .map(|f| f.reasons[0].clone());
        assert_eq!(got.as_deref(), want, "{tol} on {}", n["spec"]);
    }
}

#[test]
fn not_ready_node_needs_toleration() {
    let mut n = node("n", "1", "1Gi", json!({}));
    n["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    let plain = info(&pod("p", json!({})));
    let err = taint_toleration(&plain, &spec_of(&n)).unwrap_err();
    assert_eq!(
        err.reasons,
        vec!["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    );
    // DaemonSet pods tolerate not-ready and still land there.
    let ds = info(&pod(
        "p",
        json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]}),
    ));
    assert!(taint_toleration(&ds, &spec_of(&n)).is_ok());
}

#[test]
fn node_affinity_table() {
    let n = spec_of(&node("n1", "1", "1Gi", json!({"disk": "ssd", "zone": "a"})));
    let term = |e: Value| {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": e}}}})
    };
    let cases = [
        (json!({"nodeSelector": {"disk": "ssd"}}), true),
        (json!({"nodeSelector": {"disk": "hdd"}}), false),
        (
            json!({"nodeSelector": {"disk": "ssd", "gpu": "yes"}}),
            false,
        ),
        (
            term(
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]),
            ),
            true,
        ),
        // Terms are ORed.
        (
            term(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ])),
            true,
        ),
        (
            term(
                json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
            ),
            false,
        ),
        // An empty list of terms matches nothing.
        (term(json!([])), false),
        // nodeSelector and affinity must both hold.
        (
            {
                let mut t =
                    term(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]));
                t["nodeSelector"] = json!({"disk": "hdd"});
                t
            },
            false,
        ),
    ];
    for (spec, want) in cases {
        let r = node_affinity(&info(&pod("p", spec.clone())), &n);
        assert_eq!(r.is_ok(), want, "{spec}");
        if let Err(f) = r {
            assert_eq!(f.reasons, vec![filters::REASON_NODE_AFFINITY]);
        }
    }
}

#[test]
fn node_ports_table() {
    let port = |p: i64, ip: &str, proto: &str| json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": p, "hostIP": ip, "protocol": proto}]}]});
    let s = snap(
        &[node("n", "1", "1Gi", json!({}))],
        &[bound(pod("a", port(8080, "", "TCP")), "n")],
    );
    let state = &s.nodes["n"];
    let cases = [
        (port(8080, "", "TCP"), false),
        (port(8080, "127.0.0.1", "TCP"), false),
        (port(8080, "", "UDP"), true),
        (port(8081, "", "TCP"), true),
        (json!({}), true),
    ];
    for (spec, want) in cases {
        let r = node_ports(&info(&pod("p", spec.clone())), state);
        assert_eq!(r.is_ok(), want, "{spec}");
    }
}

#[test]
fn resources_fit_table() {
    let mut n = node("n", "2", "4Gi", json!({}));
    n["status"]["allocatable"]["pods"] = json!("3");
    n["status"]["allocatable"]["example.com/gpu"] = json!("1");
    let s = snap(
        &[n.clone()],
        &[
            bound(pod("a", json!({"containers": req("1500m", "1Gi")})), "n"),
            bound(pod("b", json!({})), "n"),
        ],
    );
    let state = &s.nodes["n"];
    let spec = spec_of(&n);
    let gpu = |q: &str| json!([{"name": "c", "resources": {"requests": {"example.com/gpu": q}}}]);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"containers": req("500m", "3Gi")}), vec![]),
        (
            json!({"containers": req("501m", "1Gi")}),
            vec!["Insufficient cpu"],
        ),
        (
            json!({"containers": req("1", "4Gi")}),
            vec!["Insufficient cpu", "Insufficient memory"],
        ),
        (json!({"containers": gpu("1")}), vec![]),
        (
            json!({"containers": gpu("2")}),
            vec!["Insufficient example.com/gpu"],
        ),
        (
            json!({"containers": [{"name": "c", "resources": {"requests": {"ephemeral-storage": "11Gi"}}}]}),
            vec!["Insufficient ephemeral-storage"],
        ),
        // Init containers: max(init) vs sum(app), so a 600m init container does not fit.
        (
            json!({"containers": req("100m", "0"), "initContainers": req("600m", "0")}),
            vec!["Insufficient cpu"],
        ),
        // Overhead counts.
        (
            json!({"containers": req("400m", "0"), "overhead": {"cpu": "200m"}}),
            vec!["Insufficient cpu"],
        ),
    ];
    for (pspec, want) in cases {
        let r = resources_fit(&info(&pod("p", pspec.clone())), state, &spec);
        let got: Vec<String> = r.err().map(|f| f.reasons).unwrap_or_default();
        assert_eq!(got, want, "{pspec}");
    }
    // The pod count: two placed + one more = allocatable 3 still fits; a fourth does not.
    let mut s2 = s.clone();
    s2.add_pod(&bound(pod("c", json!({})), "n")).unwrap();
    let r = resources_fit(&info(&pod("p", json!({}))), &s2.nodes["n"], &spec);
    assert_eq!(r.unwrap_err().reasons, vec!["Too many pods"]);
}

fn anti(key: &str, labels: Value) -> Value {
    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}})
}

fn aff(key: &str, labels: Value) -> Value {
    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}})
}

#[test]
fn inter_pod_affinity_table() {
    let nodes = [
        node("a1", "4", "4Gi", json!({"zone": "a"})),
        node("a2", "4", "4Gi", json!({"zone": "a"})),
        node("b1", "4", "4Gi", json!({"zone": "b"})),
        node("x", "4", "4Gi", json!({})),
    ];
    let db = bound(
        with_labels(pod("db", json!({})), json!({"app": "db"})),
        "a1",
    );
    let lonely = bound(
        with_labels(
            pod(
                "lonely",
                json!({"affinity": anti("zone", json!({"app": "web"}))}),
            ),
            json!({"app": "lonely"}),
        ),
        "b1",
    );
    let s = snap(&nodes, &[db, lonely]);
    type Case = (Value, Value, [Option<&'static str>; 4]);
    let cases: Vec<Case> = vec![
        // Affinity to db in the same zone: zone a only; node x lacks the key.
        (
            json!({"affinity": aff("zone", json!({"app": "db"}))}),
            json!({"app": "x"}),
            [
                None,
                None,
                Some(filters::REASON_AFFINITY),
                Some(filters::REASON_AFFINITY),
            ],
        ),
        // Anti-affinity to db per zone: not zone a.
        (
            json!({"affinity": anti("zone", json!({"app": "db"}))}),
            json!({"app": "x"}),
            [
                Some(filters::REASON_ANTI_AFFINITY),
                Some(filters::REASON_ANTI_AFFINITY),
                None,
                None,
            ],
        ),
        // The existing "lonely" pod repels app=web from zone b (the other direction).
        (
            json!({}),
            json!({"app": "web"}),
            [
                None,
                None,
                Some(filters::REASON_EXISTING_ANTI_AFFINITY),
                None,
            ],
        ),
        // First pod of a self-affine group: nothing matches yet, it matches itself.
        (
            json!({"affinity": aff("zone", json!({"app": "cache"}))}),
            json!({"app": "cache"}),
            [None, None, None, Some(filters::REASON_AFFINITY)],
        ),
        // Affinity to something absent, not matching itself: nowhere.
        (
            json!({"affinity": aff("zone", json!({"app": "ghost"}))}),
            json!({"app": "x"}),
            [
                Some(filters::REASON_AFFINITY),
                Some(filters::REASON_AFFINITY),
                Some(filters::REASON_AFFINITY),
                Some(filters::REASON_AFFINITY),
            ],
        ),
    ];
    for (spec, labels, want) in cases {
        let p = info(&with_labels(pod("p", spec.clone()), labels));
        let cycle = Cycle::new(&s, &p);
        for (i, n) in ["a1", "a2", "b1", "x"].iter().enumerate() {
            let node = s.nodes[*n].spec.as_ref().unwrap();
            let got = inter_pod_affinity(&cycle, &s, &p, node)
                .err()
                .map(|f| f.reasons[0].clone());
            assert_eq!(got.as_deref(), want[i], "{spec} on {n}");
        }
    }
}

#[test]
fn anti_affinity_respects_namespaces() {
    let nodes = [node("a", "4", "4Gi", json!({}))];
    let mut other_ns = bound(with_labels(pod("db", json!({})), json!({"app": "db"})), "a");
    other_ns["metadata"]["namespace"] = json!("prod");
    let mut s = snap(&nodes, &[other_ns]);
    let p = info(&pod(
        "p",
        json!({"affinity": anti("kubernetes.io/hostname", json!({"app": "db"}))}),
    ));
    // Default: only the pod's own namespace is considered.
    let cycle = Cycle::new(&s, &p);
    assert!(inter_pod_affinity(&cycle, &s, &p, s.nodes["a"].spec.as_ref().unwrap()).is_ok());
    // A namespaceSelector picks namespaces by label.
    s.set_namespace_labels("prod", &json!({"env": "prod"}));
    let mut spec = json!({"affinity": anti("kubernetes.io/hostname", json!({"app": "db"}))});
    spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["namespaceSelector"] =
        json!({"matchLabels": {"env": "prod"}});
    let p = info(&pod("p", spec));
    let cycle = Cycle::new(&s, &p);
    assert!(inter_pod_affinity(&cycle, &s, &p, s.nodes["a"].spec.as_ref().unwrap()).is_err());
}

fn spread(key: &str, skew: i64, when: &str, labels: Value) -> Value {
    json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key,
        "whenUnsatisfiable": when, "labelSelector": {"matchLabels": labels}}]})
}

#[test]
fn topology_spread_table() {
    let nodes = [
        node("a1", "4", "4Gi", json!({"zone": "a"})),
        node("a2", "4", "4Gi", json!({"zone": "a"})),
        node("b1", "4", "4Gi", json!({"zone": "b"})),
        node("x", "4", "4Gi", json!({})),
    ];
    let web =
        |n: &str, node: &str| bound(with_labels(pod(n, json!({})), json!({"app": "web"})), node);
    // zone a has 2 web pods, zone b none.
    let s = snap(&nodes, &[web("w1", "a1"), web("w2", "a2")]);
    let cases: Vec<(Value, [Option<&str>; 4])> = vec![
        // maxSkew 1: only zone b (0 + 1 - 0 = 1); zone a would be 3.
        (
            spread("zone", 1, "DoNotSchedule", json!({"app": "web"})),
            [
                Some(filters::REASON_SPREAD),
                Some(filters::REASON_SPREAD),
                None,
                Some(filters::REASON_SPREAD_LABEL),
            ],
        ),
        // maxSkew 3: zone a (2 + 1 - 0 = 3) is allowed.
        (
            spread("zone", 3, "DoNotSchedule", json!({"app": "web"})),
            [None, None, None, Some(filters::REASON_SPREAD_LABEL)],
        ),
        // ScheduleAnyway is not a filter.
        (
            spread("zone", 1, "ScheduleAnyway", json!({"app": "web"})),
            [None, None, None, None],
        ),
        // Per hostname: a1 and a2 have 1, b1 has 0; min 0, so a1/a2 give skew 2.
        (
            spread(
                "kubernetes.io/hostname",
                1,
                "DoNotSchedule",
                json!({"app": "web"}),
            ),
            [
                Some(filters::REASON_SPREAD),
                Some(filters::REASON_SPREAD),
                None,
                None,
            ],
        ),
    ];
    for (spec, want) in cases {
        let p = info(&with_labels(pod("p", spec.clone()), json!({"app": "web"})));
        let cycle = Cycle::new(&s, &p);
        for (i, n) in ["a1", "a2", "b1", "x"].iter().enumerate() {
            let node = s.nodes[*n].spec.as_ref().unwrap();
            let got = topology_spread(&cycle, node)
                .err()
                .map(|f| f.reasons[0].clone());
            assert_eq!(got.as_deref(), want[i], "{spec} on {n}");
        }
    }
}

#[test]
fn topology_spread_min_domains() {
    // One zone with 1 pod and minDomains 2: the global minimum is taken as 0, so with
    // maxSkew 1 another pod in zone a (1 + 1 - 0 = 2) is refused.
    let nodes = [node("a1", "4", "4Gi", json!({"zone": "a"}))];
    let s = snap(
        &nodes,
        &[bound(
            with_labels(pod("w", json!({})), json!({"app": "web"})),
            "a1",
        )],
    );
    let mut spec = spread("zone", 1, "DoNotSchedule", json!({"app": "web"}));
    let p = info(&with_labels(pod("p", spec.clone()), json!({"app": "web"})));
    let node = s.nodes["a1"].spec.as_ref().unwrap();
    // Without minDomains: the only domain is the minimum, skew 1 is fine.
    assert!(topology_spread(&Cycle::new(&s, &p), node).is_ok());
    spec["topologySpreadConstraints"][0]["minDomains"] = json!(2);
    let p = info(&with_labels(pod("p", spec), json!({"app": "web"})));
    assert!(topology_spread(&Cycle::new(&s, &p), node).is_err());
}

#[test]
fn fit_error_message_counts_reasons_per_node() {
    let s = snap(
        &[
            node("a", "1", "1Gi", json!({"disk": "ssd"})),
            node("b", "4", "4Gi", json!({})),
            node("c", "4", "4Gi", json!({})),
        ],
        &[],
    );
    let p = pod(
        "p",
        json!({"containers": req("2", "0"), "nodeSelector": {"disk": "ssd"}}),
    );
    let err = schedule(&s, &p, &Config::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    );
    assert!(err.preemption_might_help());
    let empty = Snapshot::new();
    assert_eq!(
        schedule(&empty, &p, &Config::default())
            .unwrap_err()
            .to_string(),
        "0/0 nodes are available: no nodes available to schedule pods."
    );
}

#[test]
fn spread_strategy_prefers_emptiest_binpack_fullest() {
    let nodes = [
        node("a", "4", "8Gi", json!({})),
        node("b", "4", "8Gi", json!({})),
    ];
    let s = snap(
        &nodes,
        &[bound(pod("x", json!({"containers": req("2", "4Gi")})), "a")],
    );
    let p = pod("p", json!({"containers": req("500m", "512Mi")}));
    assert_eq!(schedule(&s, &p, &Config::default()).unwrap(), "b");
    let binpack = Config {
        strategy: Strategy::Binpack,
        ..Config::default()
    };
    assert_eq!(schedule(&s, &p, &binpack).unwrap(), "a");
}

#[test]
fn allocation_scores() {
    // LeastAllocated on 4 cpu / 8Gi with 1 cpu / 2Gi requested: (75 + 75) / 2.
    let n = node("a", "4", "8Gi", json!({}));
    let s = snap(std::slice::from_ref(&n), &[]);
    let p = info(&pod("p", json!({"containers": req("1", "2Gi")})));
    let spec = spec_of(&n);
    assert_eq!(
        scores::allocation(Strategy::Spread, &p, &s.nodes["a"], &spec),
        75
    );
    assert_eq!(
        scores::allocation(Strategy::Binpack, &p, &s.nodes["a"], &spec),
        25
    );
    // Request-less pods count as 100m / 200Mi for scoring.
    let p0 = info(&pod("p", json!({})));
    let least = scores::allocation(Strategy::Spread, &p0, &s.nodes["a"], &spec);
    assert_eq!(
        least,
        ((4000 - 100) * 100 / 4000 + (8192 - 200) * 100 / 8192) / 2
    );
}

#[test]
fn normalization_rules() {
    let mut s = vec![0, 5, 10];
    scores::default_normalize(&mut s, false);
    assert_eq!(s, vec![0, 50, 100]);
    let mut s = vec![0, 1, 2];
    scores::default_normalize(&mut s, true);
    assert_eq!(s, vec![100, 50, 0]);
    let mut s = vec![0, 0];
    scores::default_normalize(&mut s, true);
    assert_eq!(s, vec![100, 100]);
    let mut s = vec![-5, 0, 5];
    scores::min_max_normalize(&mut s);
    assert_eq!(s, vec![0, 50, 100]);
}

#[test]
fn preferred_node_affinity_wins() {
    let nodes = [
        node("a", "4", "8Gi", json!({"disk": "hdd"})),
        node("b", "4", "8Gi", json!({"disk": "ssd"})),
    ];
    // Make b a bit fuller so resources alone would pick a.
    let s = snap(
        &nodes,
        &[bound(pod("x", json!({"containers": req("1", "1Gi")})), "b")],
    );
    let p = pod(
        "p",
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
        ]}}}),
    );
    assert_eq!(schedule(&s, &p, &Config::default()).unwrap(), "b");
    assert_eq!(
        schedule(&s, &pod("q", json!({})), &Config::default()).unwrap(),
        "a"
    );
}

#[test]
fn prefer_no_schedule_taint_is_avoided() {
    let mut a = node("a", "4", "8Gi", json!({}));
    a["spec"]["taints"] = json!([{"key": "k", "effect": "PreferNoSchedule"}]);
    let b = node("b", "4", "8Gi", json!({}));
    let s = snap(
        &[a, b],
        &[bound(pod("x", json!({"containers": req("1", "1Gi")})), "b")],
    );
    assert_eq!(
        schedule(&s, &pod("p", json!({})), &Config::default()).unwrap(),
        "b"
    );
    let tolerant = pod(
        "p",
        json!({"tolerations": [{"key": "k", "operator": "Exists"}]}),
    );
    assert_eq!(schedule(&s, &tolerant, &Config::default()).unwrap(), "a");
}

#[test]
fn preferred_pod_affinity_and_anti_affinity() {
    let nodes = [
        node("a", "4", "8Gi", json!({})),
        node("b", "4", "8Gi", json!({})),
    ];
    let s = snap(
        &nodes,
        &[bound(
            with_labels(
                pod("db", json!({"containers": req("1", "1Gi")})),
                json!({"app": "db"}),
            ),
            "a",
        )],
    );
    let pref = |kind: &str| {
        json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
             "topologyKey": "kubernetes.io/hostname"}}]}}})
    };
    assert_eq!(
        schedule(&s, &pod("p", pref("podAffinity")), &Config::default()).unwrap(),
        "a"
    );
    assert_eq!(
        schedule(&s, &pod("p", pref("podAntiAffinity")), &Config::default()).unwrap(),
        "b"
    );
}

#[test]
fn controller_pods_spread_over_zones() {
    let nodes = [
        node(
            "a1",
            "8",
            "16Gi",
            json!({"topology.kubernetes.io/zone": "a"}),
        ),
        node(
            "a2",
            "8",
            "16Gi",
            json!({"topology.kubernetes.io/zone": "a"}),
        ),
        node(
            "b1",
            "8",
            "16Gi",
            json!({"topology.kubernetes.io/zone": "b"}),
        ),
    ];
    let mut s = snap(&nodes, &[]);
    let owned = |i: usize| {
        let mut p = pod(&format!("web-{i}"), json!({}));
        p["metadata"]["ownerReferences"] =
            json!([{"kind": "ReplicaSet", "name": "web", "uid": "rs-1", "controller": true}]);
        p
    };
    let mut placed = Vec::new();
    for i in 0..6 {
        let p = owned(i);
        let n = schedule(&s, &p, &Config::default()).unwrap();
        s.assume_pod(&p, &n).unwrap();
        placed.push(n);
    }
    let in_b = placed.iter().filter(|n| *n == "b1").count();
    // Zone weighting puts half of the replicas in the single-node zone b.
    assert_eq!(in_b, 3, "{placed:?}");
    for n in ["a1", "a2"] {
        assert!(placed.iter().any(|p| p == n), "{placed:?}");
    }
}

#[test]
fn schedule_anyway_spread_prefers_emptier_domain() {
    let nodes = [
        node("a1", "4", "8Gi", json!({"zone": "a"})),
        node("b1", "4", "8Gi", json!({"zone": "b"})),
    ];
    let web =
        |n: &str, node: &str| bound(with_labels(pod(n, json!({})), json!({"app": "web"})), node);
    // b1 is fuller in cpu, but zone a already has 2 web pods.
    let s = snap(
        &nodes,
        &[
            web("w1", "a1"),
            web("w2", "a1"),
            bound(pod("big", json!({"containers": req("2", "2Gi")})), "b1"),
        ],
    );
    let p = with_labels(
        pod(
            "p",
            spread("zone", 1, "ScheduleAnyway", json!({"app": "web"})),
        ),
        json!({"app": "web"}),
    );
    assert_eq!(schedule(&s, &p, &Config::default()).unwrap(), "b1");
}

#[test]
fn preemption_picks_node_with_lowest_priority_victims() {
    let nodes = [
        node("a", "2", "4Gi", json!({})),
        node("b", "2", "4Gi", json!({})),
    ];
    let prio = |name: &str, node: &str, cpu: &str, p: i64| {
        bound(
            pod(name, json!({"containers": req(cpu, "0"), "priority": p})),
            node,
        )
    };
    let s = snap(
        &nodes,
        &[
            prio("a-low", "a", "1", 10),
            prio("a-mid", "a", "1", 100),
            prio("b-low1", "b", "1", 5),
            prio("b-low2", "b", "1", 5),
        ],
    );
    let p = pod("p", json!({"containers": req("1", "0"), "priority": 1000}));
    // On a, either victim frees 1 cpu; the more important a-mid is reprieved first,
    // leaving a-low (priority 10). On b one priority-5 pod suffices. Kubernetes picks
    // the node whose most important victim has the lowest priority: b.
    let (node, victims) = preempt(&s, &p, &Config::default()).unwrap();
    assert_eq!(node, "b");
    assert_eq!(victims.len(), 1);
    assert!(victims[0].starts_with("default/b-low"));
    // A pod of priority 7 can only evict priority-5 pods.
    let p7 = pod("p", json!({"containers": req("1", "0"), "priority": 7}));
    assert_eq!(preempt(&s, &p7, &Config::default()).unwrap().0, "b");
    // A pod of priority 5 finds no victims anywhere.
    let p5 = pod("p", json!({"containers": req("1", "0"), "priority": 5}));
    assert_eq!(
        try_preempt(&s, &p5, &Config::default()).unwrap_err(),
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
    // A pod too big for a node even after evicting every lower-priority pod.
    let huge = pod("p", json!({"containers": req("3", "0"), "priority": 1000}));
    assert_eq!(
        try_preempt(&s, &huge, &Config::default()).unwrap_err(),
        "preemption: 0/2 nodes are available: 2 Insufficient cpu."
    );
}

#[test]
fn preemption_reprieves_victims_it_does_not_need() {
    let nodes = [node("a", "3", "4Gi", json!({}))];
    let s = snap(
        &nodes,
        &[
            bound(
                pod("v1", json!({"containers": req("1", "0"), "priority": 1})),
                "a",
            ),
            bound(
                pod("v2", json!({"containers": req("1", "0"), "priority": 2})),
                "a",
            ),
            bound(
                pod("v3", json!({"containers": req("1", "0"), "priority": 3})),
                "a",
            ),
        ],
    );
    let p = pod("p", json!({"containers": req("2", "0"), "priority": 100}));
    let (node, mut victims) = preempt(&s, &p, &Config::default()).unwrap();
    victims.sort();
    assert_eq!(node, "a");
    assert_eq!(victims, vec!["default/v1", "default/v2"]);
}

#[test]
fn preemption_skips_unresolvable_nodes_and_never_policy() {
    let nodes = [node("a", "1", "4Gi", json!({"disk": "hdd"}))];
    let s = snap(
        &nodes,
        &[bound(
            pod("v", json!({"containers": req("1", "0"), "priority": 1})),
            "a",
        )],
    );
    let p = pod(
        "p",
        json!({"containers": req("1", "0"), "priority": 100, "nodeSelector": {"disk": "ssd"}}),
    );
    assert_eq!(
        try_preempt(&s, &p, &Config::default()).unwrap_err(),
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    let never = pod(
        "p",
        json!({"containers": req("1", "0"), "priority": 100, "preemptionPolicy": "Never"}),
    );
    assert!(preempt(&s, &never, &Config::default()).is_none());
    let ok = pod("p", json!({"containers": req("1", "0"), "priority": 100}));
    let off = Config {
        preemption: false,
        ..Config::default()
    };
    assert!(preempt(&s, &ok, &off).is_none());
    assert_eq!(
        preempt(&s, &ok, &Config::default()).unwrap().1,
        vec!["default/v"]
    );
}

#[test]
fn invalid_pod_is_reported_not_panicking() {
    let s = snap(&[node("a", "1", "1Gi", json!({}))], &[]);
    let p = pod("p", json!({"containers": req("lots", "0")}));
    let e = schedule(&s, &p, &Config::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("0/1 nodes are available: invalid pod:"),
        "{e}"
    );
    assert!(!e.preemption_might_help());
}

#[test]
fn the_search_stops_after_enough_feasible_nodes_as_kubernetes_does() {
    // Kubernetes' numFeasibleNodesToFind: small clusters are searched whole.
    assert_eq!(crate::nodes_to_find(50, 0), 50);
    assert_eq!(crate::nodes_to_find(99, 0), 99);
    // 1,000 nodes: 50 - 8 = 42 %; 5,000 nodes: 50 - 40 = 10 %; 10,000: at least 5 %.
    assert_eq!(crate::nodes_to_find(1000, 0), 420);
    assert_eq!(crate::nodes_to_find(5000, 0), 500);
    assert_eq!(crate::nodes_to_find(10_000, 0), 500);
    // Never fewer than 100; 100 % (or more) means every node.
    assert_eq!(crate::nodes_to_find(150, 10), 100);
    assert_eq!(crate::nodes_to_find(5000, 100), 5000);
}

#[test]
fn a_partial_search_still_finds_the_only_fitting_node() {
    // 1,000 nodes, 420 to find: only one node matches the selector, wherever the search
    // starts it goes on until every node was tried.
    let nodes: Vec<Value> = (0..1000)
        .map(|i| {
            let labels = if i == 777 {
                json!({"disk": "ssd"})
            } else {
                json!({})
            };
            node(&format!("n{i:04}"), "4", "8Gi", labels)
        })
        .collect();
    let s = snap(&nodes, &[]);
    for i in 0..5 {
        let p = pod(
            &format!("p{i}"),
            json!({"containers": req("100m", "64Mi"), "nodeSelector": {"disk": "ssd"}}),
        );
        assert_eq!(schedule(&s, &p, &Config::default()).unwrap(), "n0777");
    }
    // Nothing fits: the diagnosis covers every node.
    let p = pod(
        "none",
        json!({"containers": req("100m", "64Mi"), "nodeSelector": {"disk": "nvme"}}),
    );
    let err = schedule(&s, &p, &Config::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("0/1000 nodes are available"), "{err}");
}
