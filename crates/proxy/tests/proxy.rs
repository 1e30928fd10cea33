//! The node proxy against the real kernel and the real API server: "pods" are network
//! namespaces we make, Services and EndpointSlices are written by hand (deterministic;
//! no controllers), and traffic is counted per backend.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

async fn count_host(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let body = http_get(addr)
            .await
            .expect("request through the cluster IP");
        *counts.entry(body).or_insert(0) += 1;
    }
    counts
}

fn ports_http() -> serde_json::Value {
    json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
}

#[tokio::test]
async fn cluster_ip_balances_follows_readiness_rejects_and_hairpins() {
    require_tools();
    let server = Server::start();
    let c = server.client();
    let mut net = Net::new();
    for i in 0..4 {
        net.add_pod(i);
    }
    for i in 0..3 {
        net.httpd(i, &format!("b{i}")).await;
    }
    // Pod 3 is a client only.
    let cip = random_cluster_ip();
    let self_ip = random_cluster_ip();
    create_service(
        &c,
        json!({"metadata": {"name": "web"}, "spec": {"clusterIP": cip.to_string(),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
    .await;
    create_service(
        &c,
        json!({"metadata": {"name": "self"}, "spec": {"clusterIP": self_ip.to_string(),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
    .await;
    let all = |ready: [bool; 3]| {
        slice(
            "web",
            "web-1",
            &[
                (net.ip(0), ready[0], None),
                (net.ip(1), ready[1], None),
                (net.ip(2), ready[2], None),
            ],
            ports_http(),
        )
    };
    put_slice(&c, all([true, true, true])).await;
    put_slice(
        &c,
        slice("self", "self-1", &[(net.ip(0), true, None)], ports_http()),
    )
    .await;

    let proxy = RunningProxy::start(c.clone(), &net);
    let vip = SocketAddr::from((cip, 80));
    proxy
        .wait_rules("rules for both services", |l| {
            l.contains(&cip.to_string()) && l.contains(&self_ip.to_string())
        })
        .await;

    // A port the service does not have: refused here, never routed out.
    let err = http_get(SocketAddr::from((cip, 81)))
        .await
        .expect_err("unserved port");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // Fair share from the host: 300 requests over 3 backends, each within 50% of 100.
    let counts = count_host(vip, 300).await;
    assert_eq!(counts.len(), 3, "every backend answers: {counts:?}");
    for (b, n) in &counts {
        assert!(
            (50..=150).contains(n),
            "backend {b} got {n} of 300: {counts:?}"
        );
    }

    // From inside another pod, through busybox wget.
    let mut seen = BTreeMap::new();
    for _ in 0..30 {
        let body = net.wget(3, vip).await.expect("wget from a pod");
        *seen.entry(body).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "a pod reaches every backend: {seen:?}");

    // Hairpin: pod 0 reaches itself through its service's VIP.
    assert_eq!(
        net.wget(0, SocketAddr::from((self_ip, 80)))
            .await
            .as_deref(),
        Some("b0"),
        "a pod reaches itself through the VIP (hairpin + masquerade)"
    );

    // b1 turns not ready: it gets no traffic once the rules follow (within seconds).
    put_slice(&c, all([true, false, true])).await;
    let b1 = format!("dnat to {}:8080", net.ip(1));
    proxy
        .wait_rules("b1 out of the rules", |l| !l.contains(&b1))
        .await;
    let counts = count_host(vip, 60).await;
    assert!(
        !counts.contains_key("b1"),
        "not-ready b1 got traffic: {counts:?}"
    );
    assert_eq!(counts.len(), 2, "{counts:?}");

    // And back.
    put_slice(&c, all([true, true, true])).await;
    eventually(
        "b1 to get traffic again",
        Duration::from_secs(10),
        || async { (http_get(vip).await.ok()? == "b1").then_some(()) },
    )
    .await;

    // No ready endpoint: connections are refused at once (ICMP port unreachable), they
    // do not hang.
    put_slice(&c, all([false, false, false])).await;
    proxy
        .wait_rules("the no-endpoint reject rule", |l| {
            !l.contains("svc-default/web/") && l.contains(&format!("{cip} . tcp . 80"))
        })
        .await;
    let err = http_get(vip).await.expect_err("no endpoint: must fail");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "no endpoint: refused, not {err}"
    );
    let out = net
        .exec(
            3,
            &[
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{vip}/"),
            ],
        )
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "a pod sees 'connection refused': {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Deleting the service removes its rules.
    c.delete(
        &client::Resource::SERVICES,
        Some("default"),
        "web",
        &Default::default(),
    )
    .await
    .expect("delete service");
    proxy
        .wait_rules("the service's rules gone", |l| {
            !l.contains(&cip.to_string())
        })
        .await;

    let table = proxy.table();
    proxy.stop().await;
    let ruleset = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&ruleset.stdout).contains(&table),
        "cleanup left table {table}"
    );
}

#[tokio::test]
async fn node_port_session_affinity_and_udp() {
    require_tools();
    let server = Server::start();
    let c = server.client();
    let mut net = Net::new();
    for i in 0..4 {
        net.add_pod(i);
    }
    for i in 0..3 {
        net.httpd(i, &format!("b{i}")).await;
        net.udp_responder(i, 9000, &format!("u{i}"));
    }
    let cip = random_cluster_ip();
    let sticky_ip = random_cluster_ip();
    let node_port = 30000 + (rand::random::<u16>() % 2768);
    create_service(
        &c,
        json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": cip.to_string(),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": node_port},
                      {"name": "echo", "port": 9000, "protocol": "UDP"}]}}),
    )
    .await;
    create_service(
        &c,
        json!({"metadata": {"name": "sticky"}, "spec": {"clusterIP": sticky_ip.to_string(),
            "sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
    )
    .await;
    let eps: Vec<_> = (0..3).map(|i| (net.ip(i), true, None)).collect();
    put_slice(
        &c,
        slice(
            "web",
            "web-1",
            &eps,
            json!([{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "echo", "port": 9000, "protocol": "UDP"}]),
        ),
    )
    .await;
    put_slice(&c, slice("sticky", "sticky-1", &eps, ports_http())).await;

    let proxy = RunningProxy::start(c.clone(), &net);
    proxy
        .wait_rules("rules for both services", |l| {
            l.contains(&cip.to_string())
                && l.contains(&sticky_ip.to_string())
                && l.contains(&node_port.to_string())
        })
        .await;

    // NodePort on 127.0.0.1 from the host: balanced like the cluster IP.
    let np = SocketAddr::from(([127, 0, 0, 1], node_port));
    let counts = count_host(np, 90).await;
    assert_eq!(
        counts.len(),
        3,
        "NodePort on 127.0.0.1 reaches every backend: {counts:?}"
    );
    // NodePort on the node address from a pod.
    let via_node = SocketAddr::from((net.gateway(), node_port));
    assert!(
        net.wget(3, via_node)
            .await
            .is_some_and(|b| b.starts_with('b')),
        "NodePort on a node IP from a pod"
    );

    // UDP through the cluster IP: every fresh socket is a new flow, balanced.
    let udp = SocketAddr::from((cip, 9000));
    let mut counts = BTreeMap::new();
    for _ in 0..90 {
        let body = udp_ask(udp).await.expect("UDP through the cluster IP");
        *counts.entry(body).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3, "UDP reaches every backend: {counts:?}");
    for (b, n) in &counts {
        assert!(*n >= 10, "UDP backend {b} got {n} of 90: {counts:?}");
    }

    // ClientIP affinity: one client sticks to one backend.
    let sticky = SocketAddr::from((sticky_ip, 80));
    let first = http_get(sticky).await.expect("sticky request");
    for _ in 0..30 {
        assert_eq!(http_get(sticky).await.expect("sticky request"), first);
    }
    let from_pod = net.wget(3, sticky).await.expect("sticky from a pod");
    for _ in 0..10 {
        assert_eq!(
            net.wget(3, sticky).await.as_deref(),
            Some(from_pod.as_str())
        );
    }

    let table = proxy.table();
    proxy.stop().await;
    let ruleset = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    assert!(!String::from_utf8_lossy(&ruleset.stdout).contains(&table));
}

#[tokio::test]
async fn rejects_bad_prefix_and_cleanup_of_absent_table_is_fine() {
    assert!(proxy::table_name("1abc").is_err());
    assert!(proxy::table_name("ABCDEFGHIJK").is_err());
    assert!(proxy::table_name("a-b").is_err());
    assert_eq!(proxy::table_name("DRV1A2B").unwrap(), "drv1a2b");
    require_tools();
    proxy::cleanup(&prefix()).await.expect("absent table");
}
