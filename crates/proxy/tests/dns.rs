//! The cluster DNS server against the real API server, queried over UDP and TCP on
//! loopback (and once with busybox nslookup). Upstream is a loopback stub, never a real
//! resolver.

mod common;

use common::*;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Binds UDP and TCP on the same free loopback port.
async fn bind_pair() -> (tokio::net::UdpSocket, tokio::net::TcpListener, SocketAddr) {
    loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
            return (udp, tcp, addr);
        }
    }
}

fn query_bytes(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

async fn ask_udp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    sock.send(&query_bytes(name, t)).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("DNS answer over UDP")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn ask_tcp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let q = query_bytes(name, t);
    let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(&q).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("DNS answer over TCP")
        .unwrap();
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// The answers as text: `A 1.2.3.4`, `SRV 80 target.`, `CNAME x.`, `PTR x.`.
fn answers(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => format!("A {}", a.0),
            RData::AAAA(a) => format!("AAAA {}", a.0),
            RData::CNAME(c) => format!("CNAME {}", c.0),
            RData::PTR(p) => format!("PTR {}", p.0),
            RData::SRV(s) => format!("SRV {} {}", s.port, s.target),
            other => format!("{other:?}"),
        })
        .collect();
    v.sort();
    v
}

/// A loopback upstream that answers every A query with 203.0.113.7.
async fn stub_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_available = true;
            for query in &q.queries {
                r.add_query(query.clone());
                r.add_answer(hickory_server::proto::rr::Record::from_rdata(
                    query.name.clone(),
                    60,
                    RData::A(hickory_server::proto::rr::rdata::A(
                        "203.0.113.7".parse().unwrap(),
                    )),
                ));
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    (addr, h)
}

#[tokio::test]
async fn dns_answers_follow_the_api() {
    let server = Server::start();
    let c = server.client();
    let cip = random_cluster_ip();
    create_service(
        &c,
        json!({"metadata": {"name": "web"}, "spec": {"clusterIP": cip.to_string(),
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    )
    .await;
    create_service(
        &c,
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None",
            "ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    create_service(
        &c,
        json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.org"}}),
    )
    .await;
    put_slice(
        &c,
        slice(
            "db",
            "db-1",
            &[
                ("10.250.0.2".parse().unwrap(), true, Some("db-0")),
                ("10.250.0.3".parse().unwrap(), true, None),
                ("10.250.0.4".parse().unwrap(), false, Some("db-2")),
            ],
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        ),
    )
    .await;

    let (upstream, stub) = stub_upstream().await;
    let (udp, tcp, addr) = bind_pair().await;
    let cfg = proxy::DnsConfig {
        listen: addr,
        cluster_domain: "cluster.local".into(),
        upstream: vec![upstream],
    };
    let dns = tokio::spawn(proxy::serve_dns_on(c.clone(), cfg, udp, tcp));

    let web = "web.default.svc.cluster.local.";
    eventually(
        "the service's A record",
        Duration::from_secs(10),
        || async {
            let m = ask_udp(addr, web, RecordType::A).await;
            (answers(&m) == vec![format!("A {cip}")]).then_some(())
        },
    )
    .await;
    let m = ask_tcp(addr, web, RecordType::A).await;
    assert_eq!(answers(&m), vec![format!("A {cip}")], "over TCP");
    assert!(m.metadata.authoritative);

    let m = ask_udp(
        addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(answers(&m), vec!["SRV 80 web.default.svc.cluster.local."]);
    assert_eq!(m.additionals.len(), 1, "the target's address comes along");
    let m = ask_udp(
        addr,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(answers(&m), vec!["SRV 53 web.default.svc.cluster.local."]);

    let o = cip.octets();
    let rev = format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]);
    let m = ask_udp(addr, &rev, RecordType::PTR).await;
    assert_eq!(answers(&m), vec!["PTR web.default.svc.cluster.local."]);

    // Headless: ready endpoints only, per-host names, SRV per endpoint, PTR.
    let m = ask_udp(addr, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answers(&m), vec!["A 10.250.0.2", "A 10.250.0.3"]);
    let m = ask_udp(addr, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answers(&m), vec!["A 10.250.0.2"]);
    let m = ask_tcp(
        addr,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        answers(&m),
        vec![
            "SRV 5432 10-250-0-3.db.default.svc.cluster.local.",
            "SRV 5432 db-0.db.default.svc.cluster.local."
        ]
    );
    let m = ask_udp(addr, "2.0.250.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(answers(&m), vec!["PTR db-0.db.default.svc.cluster.local."]);

    // ExternalName: a CNAME.
    let m = ask_udp(addr, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answers(&m), vec!["CNAME example.org."]);

    // Unknown names in the domain: NXDOMAIN with the SOA.
    let m = ask_udp(addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);

    // Other names go to the upstream (the loopback stub).
    let m = ask_udp(addr, "example.org.", RecordType::A).await;
    assert_eq!(answers(&m), vec!["A 203.0.113.7"]);

    // busybox nslookup, as a pod's tools would ask.
    let out = tokio::process::Command::new("busybox")
        .args(["nslookup", "-type=SRV", &format!("-port={}", addr.port())])
        .args(["_pg._tcp.db.default.svc.cluster.local", "127.0.0.1"])
        .output()
        .await
        .expect("busybox nslookup");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("db-0.db.default.svc.cluster.local"),
        "busybox nslookup: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Changes follow the watches: a new endpoint appears, a deleted service is gone.
    put_slice(
        &c,
        slice(
            "db",
            "db-1",
            &[
                ("10.250.0.2".parse().unwrap(), true, Some("db-0")),
                ("10.250.0.4".parse().unwrap(), true, Some("db-2")),
            ],
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        ),
    )
    .await;
    eventually("db-2 to appear", Duration::from_secs(10), || async {
        let m = ask_udp(addr, "db-2.db.default.svc.cluster.local.", RecordType::A).await;
        (answers(&m) == vec!["A 10.250.0.4"]).then_some(())
    })
    .await;
    c.delete(
        &client::Resource::SERVICES,
        Some("default"),
        "web",
        &Default::default(),
    )
    .await
    .unwrap();
    eventually("web to be gone", Duration::from_secs(10), || async {
        let m = ask_udp(addr, web, RecordType::A).await;
        (m.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;

    assert!(!dns.is_finished(), "the DNS server stopped");
    dns.abort();
    stub.abort();
}

#[tokio::test]
async fn without_upstreams_other_names_fail() {
    let server = Server::start();
    let (udp, tcp, addr) = bind_pair().await;
    let cfg = proxy::DnsConfig {
        listen: addr,
        cluster_domain: "cluster.local".into(),
        upstream: vec![],
    };
    let dns = tokio::spawn(proxy::serve_dns_on(server.client(), cfg, udp, tcp));
    eventually("the zone to load", Duration::from_secs(10), || async {
        let m = ask_udp(addr, "kubernetes.default.svc.cluster.local.", RecordType::A).await;
        (m.metadata.response_code != ResponseCode::ServFail).then_some(())
    })
    .await;
    let m = ask_udp(addr, "example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    dns.abort();
}

/// Stub resolvers send A and AAAA back to back from one socket (glibc's parallel
/// lookups; some with the same id). Every query gets its own answer, also while the
/// zone is rebuilt underneath (endpoints changing as in a rolling update).
#[tokio::test]
async fn parallel_a_and_aaaa_from_one_socket_are_all_answered_while_the_zone_churns() {
    let server = Server::start();
    let c = server.client();
    let cip = random_cluster_ip();
    create_service(
        &c,
        json!({"metadata": {"name": "roll"}, "spec": {"clusterIP": cip.to_string(),
            "ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    let (udp, tcp, addr) = bind_pair().await;
    let cfg = proxy::DnsConfig {
        listen: addr,
        cluster_domain: "cluster.local".into(),
        upstream: vec![],
    };
    let dns = tokio::spawn(proxy::serve_dns_on(c.clone(), cfg, udp, tcp));
    let name = "roll.default.svc.cluster.local.";
    eventually(
        "the service's A record",
        Duration::from_secs(10),
        || async {
            let m = ask_udp(addr, name, RecordType::A).await;
            (answers(&m) == vec![format!("A {cip}")]).then_some(())
        },
    )
    .await;
    let churn = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..60u8 {
                let eps = [(
                    std::net::Ipv4Addr::new(10, 251, 0, 2 + i % 2),
                    i % 3 != 0,
                    None,
                )];
                let ports = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
                put_slice(&c, slice("roll", "roll-1", &eps, ports)).await;
            }
        })
    };
    let mut rounds = 0;
    while !churn.is_finished() || rounds < 50 {
        rounds += 1;
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(addr).await.unwrap();
        let same_id = rounds % 2 == 0;
        let a = query_bytes(name, RecordType::A);
        let mut aaaa = query_bytes(name, RecordType::AAAA);
        if same_id {
            aaaa[..2].copy_from_slice(&a[..2]);
        }
        sock.send(&a).await.unwrap();
        sock.send(&aaaa).await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65535];
        for _ in 0..2 {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("round {rounds}: a query got no answer (got {got:?})"))
                .unwrap();
            let m = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
            got.push((m.queries[0].query_type(), answers(&m)));
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                (RecordType::A, vec![format!("A {cip}")]),
                (RecordType::AAAA, vec![])
            ],
            "round {rounds}"
        );
    }
    churn.await.unwrap();
    assert!(!dns.is_finished(), "the DNS server stopped");
    dns.abort();
}
