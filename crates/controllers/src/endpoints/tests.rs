use super::*;
use serde_json::json;

fn svc(ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": ports}
    })
}

fn http() -> Value {
    json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}])
}

fn pod(name: &str, ip: &str, ready: bool) -> Arc<Value> {
    Arc::new(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
            {"name": "web", "containerPort": 8080, "protocol": "TCP"},
            {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
}

fn create(w: Option<Write>) -> Value {
    match w {
        Some(Write::Create(v)) => v,
        other => panic!("expected a create, got {other:?}"),
    }
}

#[test]
fn endpoints_split_ready_and_not_ready_pods() {
    let pods = vec![
        pod("b", "10.0.0.2", true),
        pod("a", "10.0.0.1", true),
        pod("c", "10.0.0.3", false),
        // No IP yet: not an endpoint at all.
        Arc::new(
            json!({"metadata": {"name": "d", "namespace": "ns", "labels": {"app": "web"}},
                        "spec": {}, "status": {"phase": "Pending"}}),
        ),
    ];
    let ep = create(plan_endpoints("ns", "web", Some(&svc(http())), &pods, None));
    assert_eq!(ep["metadata"]["name"], "web");
    assert_eq!(ep["metadata"]["labels"]["app"], "web");
    assert_eq!(
        ep["metadata"]["labels"][ENDPOINTS_MANAGED_BY_LABEL],
        ENDPOINTS_MANAGER
    );
    let s = &ep["subsets"][0];
    let ips: Vec<&str> = s["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["10.0.0.1", "10.0.0.2"], "sorted by IP");
    assert_eq!(s["notReadyAddresses"][0]["ip"], "10.0.0.3");
    assert_eq!(
        s["addresses"][0]["targetRef"],
        json!({"kind": "Pod", "namespace": "ns", "name": "a", "uid": "u-a"})
    );
    assert_eq!(s["addresses"][0]["nodeName"], "n1");
    assert_eq!(
        s["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
}

#[test]
fn unchanged_endpoints_are_not_rewritten_and_changes_update_in_place() {
    let s = svc(http());
    let pods = vec![pod("a", "10.0.0.1", true)];
    let mut ep = create(plan_endpoints("ns", "web", Some(&s), &pods, None));
    ep["metadata"]["resourceVersion"] = json!("5");
    assert_eq!(
        plan_endpoints("ns", "web", Some(&s), &pods, Some(&ep)),
        None
    );
    // The pod turns not ready: moved to notReadyAddresses, same object (CAS on rv).
    let pods = vec![pod("a", "10.0.0.1", false)];
    match plan_endpoints("ns", "web", Some(&s), &pods, Some(&ep)) {
        Some(Write::Update(o)) => {
            assert_eq!(o["metadata"]["resourceVersion"], "5");
            assert!(o["subsets"][0].get("addresses").is_none());
            assert_eq!(o["subsets"][0]["notReadyAddresses"][0]["ip"], "10.0.0.1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn terminating_pods_leave_endpoints_but_stay_in_slices_as_terminating() {
    let mut p = (*pod("a", "10.0.0.1", true)).clone();
    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let pods = vec![Arc::new(p)];
    let s = svc(http());
    let ep = create(plan_endpoints("ns", "web", Some(&s), &pods, None));
    assert_eq!(ep["subsets"], json!([]));
    let w = plan_slices("ns", "web", Some(&s), &pods, &[]);
    let Write::Create(slice) = &w[0] else {
        panic!("{w:?}")
    };
    // Kubernetes: ready is never true for a terminating pod; serving keeps readiness.
    assert_eq!(
        slice["endpoints"][0]["conditions"],
        json!({"ready": false, "serving": true, "terminating": true})
    );
}

#[test]
fn named_target_ports_resolve_per_pod_and_group_subsets() {
    let ports = json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}]);
    let mut other = (*pod("b", "10.0.0.2", true)).clone();
    other["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090);
    // A pod without the named port is left out of that port.
    let mut none = (*pod("c", "10.0.0.3", true)).clone();
    none["spec"]["containers"][0]["ports"] = json!([]);
    let pods = vec![pod("a", "10.0.0.1", true), Arc::new(other), Arc::new(none)];
    let ep = create(plan_endpoints("ns", "web", Some(&svc(ports)), &pods, None));
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2, "{subsets:?}");
    let by_port: BTreeMap<i64, &str> = subsets
        .iter()
        .map(|s| {
            (
                s["ports"][0]["port"].as_i64().unwrap(),
                s["addresses"][0]["ip"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_port[&8080], "10.0.0.1");
    assert_eq!(by_port[&9090], "10.0.0.2");
}

#[test]
fn port_resolution_follows_find_port() {
    let p = pod("a", "10.0.0.1", true);
    assert_eq!(
        resolve_port(&p, &json!({"port": 80, "targetPort": 8080})),
        Some(8080)
    );
    assert_eq!(resolve_port(&p, &json!({"port": 80})), Some(80));
    assert_eq!(
        resolve_port(&p, &json!({"port": 80, "targetPort": "web"})),
        Some(8080)
    );
    // The protocol must match too.
    assert_eq!(
        resolve_port(&p, &json!({"port": 53, "targetPort": "dns"})),
        None
    );
    assert_eq!(
        resolve_port(
            &p,
            &json!({"port": 53, "protocol": "UDP", "targetPort": "dns"})
        ),
        Some(53)
    );
    assert_eq!(
        resolve_port(&p, &json!({"port": 80, "targetPort": "nope"})),
        None
    );
}

#[test]
fn slices_are_labelled_owned_and_carry_conditions() {
    let s = svc(http());
    let pods = vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)];
    let w = plan_slices("ns", "web", Some(&s), &pods, &[]);
    assert_eq!(w.len(), 1);
    let Write::Create(slice) = &w[0] else {
        panic!("{w:?}")
    };
    assert_eq!(slice["apiVersion"], "discovery.k8s.io/v1");
    assert_eq!(slice["metadata"]["generateName"], "web-");
    assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
    assert_eq!(
        slice["metadata"]["labels"][SLICE_MANAGED_BY_LABEL],
        SLICE_MANAGER
    );
    assert_eq!(slice["metadata"]["labels"]["app"], "web");
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Service");
    assert_eq!(owner["uid"], "svc-uid");
    assert_eq!(owner["controller"], true);
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let eps = slice["endpoints"].as_array().unwrap();
    assert_eq!(eps[0]["addresses"], json!(["10.0.0.1"]));
    assert_eq!(eps[0]["conditions"]["ready"], true);
    assert_eq!(eps[0]["nodeName"], "n1");
    assert_eq!(eps[0]["targetRef"]["name"], "a");
    assert_eq!(eps[1]["conditions"]["ready"], false);
    assert_eq!(eps[1]["conditions"]["serving"], false);
}

fn stored(mut v: Value, name: &str) -> Arc<Value> {
    v["metadata"]["name"] = json!(name);
    v["metadata"]["uid"] = json!(format!("uid-{name}"));
    v["metadata"]["resourceVersion"] = json!("1");
    Arc::new(v)
}

#[test]
fn slices_are_kept_updated_or_deleted_as_needed() {
    let s = svc(http());
    let pods = vec![pod("a", "10.0.0.1", true)];
    let Write::Create(first) = plan_slices("ns", "web", Some(&s), &pods, &[]).remove(0) else {
        panic!()
    };
    let existing = vec![stored(first, "web-abcde")];
    assert!(plan_slices("ns", "web", Some(&s), &pods, &existing).is_empty());
    // A new ready pod: the slice is updated in place, not recreated.
    let pods2 = vec![pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)];
    let w = plan_slices("ns", "web", Some(&s), &pods2, &existing);
    let [Write::Update(u)] = w.as_slice() else {
        panic!("{w:?}")
    };
    assert_eq!(u["metadata"]["name"], "web-abcde");
    assert_eq!(u["endpoints"].as_array().unwrap().len(), 2);
    // A duplicate slice is removed.
    let dup = stored((*existing[0]).clone(), "web-zzzzz");
    let w = plan_slices("ns", "web", Some(&s), &pods, &[existing[0].clone(), dup]);
    assert_eq!(
        w,
        [Write::Delete {
            name: "web-zzzzz".into(),
            uid: "uid-web-zzzzz".into()
        }]
    );
}

#[test]
fn no_pods_leaves_one_empty_placeholder_slice() {
    let w = plan_slices("ns", "web", Some(&svc(http())), &[], &[]);
    let [Write::Create(slice)] = w.as_slice() else {
        panic!("{w:?}")
    };
    assert_eq!(slice["endpoints"], json!([]));
}

#[test]
fn large_services_are_split_at_100_endpoints_per_slice() {
    let pods: Vec<Arc<Value>> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                true,
            )
        })
        .collect();
    let w = plan_slices("ns", "web", Some(&svc(http())), &pods, &[]);
    let sizes: Vec<usize> = w
        .iter()
        .map(|w| match w {
            Write::Create(s) => s["endpoints"].as_array().unwrap().len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
}

#[test]
fn headless_services_without_ports_publish_bare_addresses() {
    let mut s = svc(json!([]));
    s["spec"]["clusterIP"] = json!("None");
    let mut p = (*pod("a", "10.0.0.1", true)).clone();
    p["spec"]["hostname"] = json!("a");
    p["spec"]["subdomain"] = json!("web");
    let pods = vec![Arc::new(p)];
    let ep = create(plan_endpoints("ns", "web", Some(&s), &pods, None));
    assert_eq!(ep["metadata"]["labels"][HEADLESS_LABEL], "");
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
    assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "a");
    assert!(ep["subsets"][0].get("ports").is_none());
    let w = plan_slices("ns", "web", Some(&s), &pods, &[]);
    let [Write::Create(slice)] = w.as_slice() else {
        panic!("{w:?}")
    };
    assert_eq!(slice["metadata"]["labels"][HEADLESS_LABEL], "");
    assert_eq!(slice["endpoints"][0]["hostname"], "a");
    // A non-headless service without ports publishes nothing.
    let ep = create(plan_endpoints(
        "ns",
        "web",
        Some(&svc(json!([]))),
        &pods,
        None,
    ));
    assert_eq!(ep["subsets"], json!([]));
}

#[test]
fn publish_not_ready_addresses_makes_every_pod_ready() {
    let mut s = svc(http());
    s["spec"]["publishNotReadyAddresses"] = json!(true);
    let ep = create(plan_endpoints(
        "ns",
        "web",
        Some(&s),
        &[pod("a", "10.0.0.1", false)],
        None,
    ));
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.0.1");
}

#[test]
fn deleted_or_selectorless_services_lose_only_what_we_wrote() {
    let s = svc(http());
    let pods = vec![pod("a", "10.0.0.1", true)];
    let ours = stored(
        create(plan_endpoints("ns", "web", Some(&s), &pods, None)),
        "web",
    );
    let gone = plan_endpoints("ns", "web", None, &pods, Some(&ours));
    assert_eq!(
        gone,
        Some(Write::Delete {
            name: "web".into(),
            uid: "uid-web".into()
        })
    );
    let mut no_sel = s.clone();
    no_sel["spec"]["selector"] = Value::Null;
    assert!(matches!(
        plan_endpoints("ns", "web", Some(&no_sel), &pods, Some(&ours)),
        Some(Write::Delete { .. })
    ));
    // Endpoints a user wrote for a selector-less Service are theirs.
    let user = Arc::new(
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "x"},
        "subsets": [{"addresses": [{"ip": "192.168.1.1"}]}]}),
    );
    assert_eq!(
        plan_endpoints("ns", "web", Some(&no_sel), &pods, Some(&user)),
        None
    );
    // Slices: all of ours go.
    let Write::Create(slice) = plan_slices("ns", "web", Some(&s), &pods, &[]).remove(0) else {
        panic!()
    };
    let slice = stored(slice, "web-abcde");
    assert_eq!(
        plan_slices("ns", "web", None, &pods, std::slice::from_ref(&slice)),
        [Write::Delete {
            name: "web-abcde".into(),
            uid: "uid-web-abcde".into()
        }]
    );
    // ExternalName services get nothing.
    let mut ext = s.clone();
    ext["spec"]["type"] = json!("ExternalName");
    assert_eq!(
        plan_slices("ns", "web", Some(&ext), &pods, &[slice]).len(),
        1
    );
    assert_eq!(plan_endpoints("ns", "web", Some(&ext), &pods, None), None);
}

#[test]
fn pods_of_other_namespaces_or_labels_are_ignored() {
    let mut other_ns = (*pod("x", "10.0.0.9", true)).clone();
    other_ns["metadata"]["namespace"] = json!("other");
    let mut other_labels = (*pod("y", "10.0.0.8", true)).clone();
    other_labels["metadata"]["labels"] = json!({"app": "db"});
    let mut failed = (*pod("z", "10.0.0.7", true)).clone();
    failed["status"]["phase"] = json!("Failed");
    let pods = vec![Arc::new(other_ns), Arc::new(other_labels), Arc::new(failed)];
    let ep = create(plan_endpoints("ns", "web", Some(&svc(http())), &pods, None));
    assert_eq!(ep["subsets"], json!([]));
}
