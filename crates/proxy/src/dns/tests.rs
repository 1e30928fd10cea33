use super::*;
use serde_json::json;

fn zone() -> Zone {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "web", "namespace": "ns"},
               "spec": {"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80}, {"port": 81}]}}),
        json!({"metadata": {"name": "db", "namespace": "ns"},
               "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
        json!({"metadata": {"name": "ext", "namespace": "ns"},
               "spec": {"type": "ExternalName", "externalName": "Example.org."}}),
    ]
    .iter()
    .map(|o| Service::from_json(o).unwrap())
    .collect();
    let slices = vec![
        Slice::from_endpoint_slice(&json!({
            "metadata": {"name": "db-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.2"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.0.3"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.4"], "conditions": {"ready": false}},
            ],
        }))
        .unwrap(),
    ];
    Zone::build("cluster.local", &services, &slices)
}

fn recs(a: Answer) -> Vec<Rec> {
    match a {
        Answer::Records(r) => r.into_iter().map(|(_, r)| r).collect(),
        other => panic!("expected records, got {other:?}"),
    }
}

#[test]
fn cluster_ip_service() {
    let z = zone();
    assert_eq!(
        recs(z.lookup("WEB.ns.svc.cluster.local.", RecordType::A)),
        vec![Rec::A("10.96.0.5".parse().unwrap())]
    );
    assert_eq!(
        z.lookup("web.ns.svc.cluster.local", RecordType::AAAA),
        Answer::NoData
    );
    assert_eq!(
        recs(z.lookup("_http._tcp.web.ns.svc.cluster.local", RecordType::SRV)),
        vec![Rec::Srv {
            port: 80,
            target: "web.ns.svc.cluster.local".into()
        }]
    );
    assert_eq!(
        recs(z.lookup("5.0.96.10.in-addr.arpa.", RecordType::PTR)),
        vec![Rec::Ptr("web.ns.svc.cluster.local".into())]
    );
}

#[test]
fn headless_service() {
    let z = zone();
    assert_eq!(
        recs(z.lookup("db.ns.svc.cluster.local", RecordType::A)),
        vec![
            Rec::A("10.244.0.2".parse().unwrap()),
            Rec::A("10.244.0.3".parse().unwrap())
        ]
    );
    assert_eq!(
        recs(z.lookup("db-0.db.ns.svc.cluster.local", RecordType::A)),
        vec![Rec::A("10.244.0.2".parse().unwrap())]
    );
    assert_eq!(
        recs(z.lookup("10-244-0-3.db.ns.svc.cluster.local", RecordType::A)),
        vec![Rec::A("10.244.0.3".parse().unwrap())]
    );
    assert_eq!(
        recs(z.lookup("_pg._tcp.db.ns.svc.cluster.local", RecordType::SRV)),
        vec![
            Rec::Srv {
                port: 5432,
                target: "10-244-0-3.db.ns.svc.cluster.local".into()
            },
            Rec::Srv {
                port: 5432,
                target: "db-0.db.ns.svc.cluster.local".into()
            },
        ]
    );
    assert_eq!(
        recs(z.lookup("2.0.244.10.in-addr.arpa", RecordType::PTR)),
        vec![Rec::Ptr("db-0.db.ns.svc.cluster.local".into())]
    );
    // Not ready: not published.
    assert_eq!(
        z.lookup("10-244-0-4.db.ns.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
}

#[test]
fn external_name_unknown_and_foreign_names() {
    let z = zone();
    assert_eq!(
        recs(z.lookup("ext.ns.svc.cluster.local", RecordType::A)),
        vec![Rec::Cname("example.org".into())]
    );
    assert_eq!(
        z.lookup("nope.ns.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        z.lookup("ns.svc.cluster.local", RecordType::A),
        Answer::NoData
    );
    assert_eq!(z.lookup("cluster.local", RecordType::A), Answer::NoData);
    assert_eq!(z.lookup("example.org", RecordType::A), Answer::NotOurs);
    assert_eq!(z.lookup("notcluster.local", RecordType::A), Answer::NotOurs);
    assert_eq!(
        z.lookup("9.9.9.9.in-addr.arpa", RecordType::PTR),
        Answer::NotOurs
    );
    assert_eq!(
        recs(z.lookup("10-1-2-3.ns.pod.cluster.local", RecordType::A)),
        vec![Rec::A("10.1.2.3".parse().unwrap())]
    );
}

#[test]
fn reverse_names() {
    assert_eq!(
        parse_reverse("4.3.2.1.in-addr.arpa"),
        Some("1.2.3.4".parse().unwrap())
    );
    let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let name: String = v6
        .octets()
        .iter()
        .rev()
        .flat_map(|b| [b & 0xf, b >> 4])
        .map(|n| format!("{n:x}."))
        .collect::<String>()
        + "ip6.arpa";
    assert_eq!(parse_reverse(&name), Some(IpAddr::V6(v6)));
    assert_eq!(parse_reverse("1.2.3.in-addr.arpa"), None);
}

#[test]
fn resolv_conf_nameservers() {
    let r = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver  2001:db8::53\nnameserver fe80::1%eth0\noptions ndots:5\n";
    assert_eq!(
        upstreams_from_resolv_conf(r),
        vec![
            "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::53]:53".parse().unwrap()
        ]
    );
}

fn query_bytes(name: &str, t: RecordType) -> Vec<u8> {
    use hickory_server::proto::op::{MessageType, OpCode, Query};
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

#[tokio::test(start_paused = true)]
async fn silent_upstreams_give_up_within_the_budget() {
    // Loopback sockets that take the query and never answer (a dead resolver).
    let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let servers = [a.local_addr().unwrap(), b.local_addr().unwrap()];
    let raw = query_bytes("example.org.", RecordType::A);
    let start = tokio::time::Instant::now();
    assert_eq!(forward(&raw, &servers, false).await, None);
    // The paused clock moves only by the timeouts: the client gets its SERVFAIL before
    // a stub resolver's 5 s retry, and both upstreams had their turn.
    assert!(start.elapsed() <= FORWARD_BUDGET, "{:?}", start.elapsed());
    assert!(FORWARD_BUDGET < Duration::from_secs(5));
    let mut buf = [0u8; 512];
    for s in [&a, &b] {
        let n = s.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &raw[..]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusing_upstream_leaves_its_time_to_the_next() {
    // A closed port (ICMP refused at once) then a working stub.
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let stub = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let servers = [closed, stub.local_addr().unwrap()];
    let raw = query_bytes("example.org.", RecordType::A);
    let answer = async {
        let mut buf = [0u8; 512];
        let (n, from) = stub.recv_from(&mut buf).await.unwrap();
        let mut reply = buf[..n].to_vec();
        reply[2] |= 0x80; // QR: a response, same id.
        stub.send_to(&reply, from).await.unwrap();
        reply
    };
    let (got, sent) = tokio::join!(forward(&raw, &servers, false), answer);
    assert_eq!(got, Some(sent));
}
