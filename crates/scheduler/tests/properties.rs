//! Properties that must hold whatever the cluster: the scheduler never overcommits a
//! node, never ignores an untolerated NoSchedule/NoExecute taint, and always honours
//! nodeSelector.

use proptest::prelude::*;
use scheduler::{Config, Snapshot, schedule};
use serde_json::{Value, json};

const KEYS: [&str; 2] = ["dedicated", "gpu"];
const EFFECTS: [&str; 3] = ["NoSchedule", "NoExecute", "PreferNoSchedule"];
const DISKS: [&str; 2] = ["ssd", "hdd"];

#[derive(Debug, Clone)]
struct NodeGen {
    cpu_m: i64,
    mem_mi: i64,
    pods: i64,
    taint: Option<(usize, usize)>,
    disk: usize,
}

#[derive(Debug, Clone)]
struct PodGen {
    cpu_m: i64,
    mem_mi: i64,
    toleration: Option<usize>,
    selector: Option<usize>,
}

fn node_gen() -> impl Strategy<Value = NodeGen> {
    (
        500i64..4000,
        256i64..4096,
        1i64..8,
        proptest::option::of((0usize..2, 0usize..3)),
        0usize..2,
    )
        .prop_map(|(cpu_m, mem_mi, pods, taint, disk)| NodeGen {
            cpu_m,
            mem_mi,
            pods,
            taint,
            disk,
        })
}

fn pod_gen() -> impl Strategy<Value = PodGen> {
    (
        0i64..1500,
        0i64..1024,
        proptest::option::of(0usize..2),
        proptest::option::of(0usize..2),
    )
        .prop_map(|(cpu_m, mem_mi, toleration, selector)| PodGen {
            cpu_m,
            mem_mi,
            toleration,
            selector,
        })
}

fn node_json(i: usize, n: &NodeGen) -> Value {
    let taints: Vec<Value> = n
        .taint
        .iter()
        .map(|(k, e)| json!({"key": KEYS[*k], "value": "x", "effect": EFFECTS[*e]}))
        .collect();
    json!({
        "metadata": {"name": format!("n{i}"), "labels": {"disk": DISKS[n.disk]}},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": format!("{}m", n.cpu_m), "memory": format!("{}Mi", n.mem_mi), "pods": n.pods.to_string()},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

fn pod_json(i: usize, p: &PodGen) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "resources": {"requests": {
        "cpu": format!("{}m", p.cpu_m), "memory": format!("{}Mi", p.mem_mi)}}}]});
    if let Some(k) = p.toleration {
        spec["tolerations"] = json!([{"key": KEYS[k], "operator": "Exists"}]);
    }
    if let Some(d) = p.selector {
        spec["nodeSelector"] = json!({"disk": DISKS[d]});
    }
    json!({"metadata": {"name": format!("p{i}"), "namespace": "default"}, "spec": spec})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn placements_are_always_legal(
        nodes in proptest::collection::vec(node_gen(), 1..6),
        pods in proptest::collection::vec(pod_gen(), 1..40),
        binpack in any::<bool>(),
    ) {
        let mut snap = Snapshot::new();
        for (i, n) in nodes.iter().enumerate() {
            snap.add_node(&node_json(i, n)).unwrap();
        }
        let config = Config {
            strategy: if binpack { scheduler::Strategy::Binpack } else { scheduler::Strategy::Spread },
            ..Config::default()
        };
        for (i, p) in pods.iter().enumerate() {
            let pod = pod_json(i, p);
            let Ok(name) = schedule(&snap, &pod, &config) else { continue };
            let idx: usize = name[1..].parse().unwrap();
            let n = &nodes[idx];
            // Taints: a NoSchedule/NoExecute taint must be tolerated (key Exists).
            if let Some((k, e)) = n.taint
                && EFFECTS[e] != "PreferNoSchedule"
            {
                prop_assert_eq!(p.toleration, Some(k), "untolerated taint on {}", name);
            }
            // nodeSelector is always honoured.
            if let Some(d) = p.selector {
                prop_assert_eq!(n.disk, d);
            }
            snap.assume_pod(&pod, &name).unwrap();
            // Never overcommitted.
            let used = snap.requested(&name).unwrap();
            prop_assert!(used.milli_cpu <= n.cpu_m);
            prop_assert!(used.memory <= n.mem_mi << 20);
            prop_assert!(used.pods <= n.pods);
        }
    }

    #[test]
    fn unschedulable_means_no_node_fits(
        nodes in proptest::collection::vec(node_gen(), 1..5),
        pod in pod_gen(),
    ) {
        // When the scheduler refuses, checking every node by hand finds none that fits.
        let mut snap = Snapshot::new();
        for (i, n) in nodes.iter().enumerate() {
            snap.add_node(&node_json(i, n)).unwrap();
        }
        let fits = |n: &NodeGen| {
            n.cpu_m >= pod.cpu_m
                && n.mem_mi >= pod.mem_mi
                && pod.selector.is_none_or(|d| d == n.disk)
                && n.taint.is_none_or(|(k, e)| EFFECTS[e] == "PreferNoSchedule" || pod.toleration == Some(k))
        };
        let result = schedule(&snap, &pod_json(0, &pod), &Config::default());
        prop_assert_eq!(result.is_ok(), nodes.iter().any(fits));
    }
}
