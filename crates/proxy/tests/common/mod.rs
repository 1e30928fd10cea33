//! Test fixtures: "pods" as network namespaces on a bridge of our own, backends in them
//! (busybox httpd, a UDP responder), the proxy running with a unique prefix, and guards
//! that remove all of it even when a test fails.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use testkit::{Server, eventually};

fn rand_u32() -> u32 {
    rand::random()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {args:?} ({e}); install iproute2/nftables/busybox-static")
        })
}

fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails clearly if a tool the tests need is missing.
pub fn require_tools() {
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("busybox", "busybox-static"),
    ] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "`{tool}` is missing: apt-get install -y {pkg}");
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create network namespaces and nft tables: run them as root"
    );
}

/// A bridge with a random 10.2xx.yy.0/24, and namespaces ("pods") attached to it.
pub struct Net {
    /// Bridge name.
    pub bridge: String,
    /// `10.2xx.yy`.
    pub net: [u8; 3],
    tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    dirs: Vec<tempfile::TempDir>,
}

impl Net {
    /// A new bridge (gateway .1) on a subnet no route on this host uses yet.
    pub fn new() -> Net {
        let routes = String::from_utf8_lossy(&run(&["ip", "-4", "route"]).stdout).to_string();
        let (tag, net) = loop {
            let r = rand_u32();
            let net = [10, 200 + (r % 50) as u8, (r >> 8) as u8];
            if !routes.contains(&format!("{}.{}.{}.0/24", net[0], net[1], net[2])) {
                break (format!("{:06x}", r >> 8 & 0xffffff), net);
            }
        };
        let bridge = format!("dpb{tag}");
        let n = Net {
            bridge: bridge.clone(),
            net,
            tag,
            namespaces: Vec::new(),
            children: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            dirs: Vec::new(),
        };
        // A fixed address: a bridge without one takes the lowest MAC of its ports, so it
        // would change as pods join, and pods still sending to the old one lose packets
        // (dropped as addressed to another host) until their ARP entry is refreshed.
        let t = &n.tag;
        let mac = format!("02:64:70:{}:{}:{}", &t[0..2], &t[2..4], &t[4..6]);
        must(&[
            "ip", "link", "add", &bridge, "address", &mac, "type", "bridge",
        ]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", n.gateway()),
            "dev",
            &bridge,
        ]);
        must(&["ip", "link", "set", &bridge, "up"]);
        n
    }

    /// The bridge's address (the pods' gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], 1)
    }

    /// The subnet, e.g. `10.212.7.0/24`.
    pub fn cidr(&self) -> String {
        format!("{}.{}.{}.0/24", self.net[0], self.net[1], self.net[2])
    }

    /// Namespace name of pod `i`.
    pub fn ns(&self, i: u8) -> String {
        format!("dpn{}-{i}", self.tag)
    }

    /// Address of pod `i`.
    pub fn ip(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], 10 + i)
    }

    /// Creates pod `i`: a namespace with `eth0` on the bridge (hairpin on, as the
    /// bridge CNI plugin sets it) and a default route via the gateway.
    pub fn add_pod(&mut self, i: u8) -> Ipv4Addr {
        let ns = self.ns(i);
        must(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let host = format!("dpv{}{i}", self.tag);
        let peer = format!("dpp{}{i}", self.tag);
        must(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
        ]);
        must(&["ip", "link", "set", &peer, "netns", &ns]);
        must(&["ip", "link", "set", &host, "master", &self.bridge]);
        must(&[
            "ip",
            "link",
            "set",
            &host,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        must(&["ip", "link", "set", &host, "up"]);
        let ip = self.ip(i);
        let e = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &ns];
            v.extend_from_slice(args);
            must(&v);
        };
        e(&["ip", "link", "set", &peer, "name", "eth0"]);
        e(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        e(&["ip", "link", "set", "eth0", "up"]);
        e(&["ip", "link", "set", "lo", "up"]);
        e(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &self.gateway().to_string(),
        ]);
        ip
    }

    /// Runs `busybox httpd` on port 8080 in pod `i`, serving `body`; waits until it
    /// answers.
    pub async fn httpd(&mut self, i: u8, body: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), body).expect("write index");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(i),
                "busybox",
                "httpd",
                "-f",
                "-p",
                "8080",
                "-h",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start busybox httpd");
        self.children.push(child);
        self.dirs.push(dir);
        let addr = SocketAddr::from((self.ip(i), 8080));
        eventually("httpd to answer", Duration::from_secs(10), || async move {
            http_get(addr).await.ok().filter(|b| b == body)
        })
        .await;
    }

    /// A UDP responder on `port` in pod `i`: answers every datagram with `body`. The
    /// socket is opened inside the namespace from a thread that entered it.
    pub fn udp_responder(&mut self, i: u8, port: u16, body: &str) {
        let ns_path = format!("/run/netns/{}", self.ns(i));
        let body = body.to_string();
        let stop = self.stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let f = std::fs::File::open(&ns_path).expect("open netns");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind udp");
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(body.as_bytes(), from);
                }
            }
        });
        rx.recv().expect("udp responder started");
        self.threads.push(t);
    }

    /// Runs a command in pod `i` (async: the proxy and DNS keep running meanwhile),
    /// killed after 20 s. (busybox 1.35's `wget -T` crashes, hence the outer timeout.)
    pub async fn exec(&self, i: u8, args: &[&str]) -> std::process::Output {
        let out = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.ns(i)])
            .args(args)
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(20), out)
            .await
            .unwrap_or_else(|_| panic!("{args:?} in pod {i} hung"))
            .expect("ip netns exec")
    }

    /// `busybox wget` of `http://addr/` from pod `i`: the body, or None on failure.
    pub async fn wget(&self, i: u8, addr: SocketAddr) -> Option<String> {
        let out = self
            .exec(
                i,
                &[
                    "busybox",
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    &format!("http://{addr}/"),
                ],
            )
            .await;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
    }
}

/// A plain HTTP/1.0 GET of `/`: the body, trimmed.
pub async fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
            .unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "http timeout"))?
}

/// One UDP request/response to `addr` from a fresh socket (a new conntrack entry).
pub async fn udp_ask(addr: SocketAddr) -> std::io::Result<String> {
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    sock.connect(addr).await?;
    sock.send(b"who").await?;
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "udp timeout"))??;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// A random prefix for this test's proxy, and its nft table name.
pub fn prefix() -> String {
    format!("DPT{:06X}", rand_u32() & 0xffffff)
}

/// The proxy running in this test; on drop it is stopped and its table deleted.
pub struct RunningProxy {
    pub prefix: String,
    handle: Option<tokio::task::JoinHandle<Result<(), proxy::ProxyError>>>,
}

impl RunningProxy {
    pub fn start(client: client::Client, net: &Net) -> RunningProxy {
        let prefix = prefix();
        let cfg = proxy::ProxyConfig {
            node_name: "test-node".into(),
            node_ips: vec![net.gateway().into()],
            chain_prefix: prefix.clone(),
            pod_cidr: net.cidr(),
            cluster_cidr: None,
        };
        let handle = tokio::spawn(proxy::run(client, cfg));
        RunningProxy {
            prefix,
            handle: Some(handle),
        }
    }

    pub fn table(&self) -> String {
        self.prefix.to_ascii_lowercase()
    }

    /// Our table as `nft` lists it ("" if absent).
    pub async fn listing(&self) -> String {
        let out = tokio::process::Command::new("nft")
            .args(["list", "table", "ip", &self.table()])
            .output()
            .await
            .expect("nft");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Waits until the listing satisfies `f` (the proxy synced).
    pub async fn wait_rules(&self, what: &str, f: impl Fn(&str) -> bool) {
        if let Some(h) = &self.handle {
            assert!(!h.is_finished(), "the proxy stopped");
        }
        eventually(what, Duration::from_secs(10), || async {
            let l = self.listing().await;
            f(&l).then_some(())
        })
        .await;
    }

    /// Stops the proxy and removes its rules with `proxy::cleanup`.
    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
            let r = h.await;
            if let Ok(Err(e)) = r {
                panic!("the proxy failed: {e}");
            }
        }
        proxy::cleanup(&self.prefix).await.expect("cleanup");
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
        let _ = run(&["nft", "delete", "table", "ip", &self.table()]);
    }
}

/// A random cluster IP inside the server's 10.96.0.0/12.
pub fn random_cluster_ip() -> Ipv4Addr {
    let r = rand_u32();
    Ipv4Addr::new(
        10,
        96 + (r % 16) as u8,
        (r >> 8) as u8,
        2 + (r >> 16) as u8 % 250,
    )
}

/// Creates a Service.
pub async fn create_service(c: &client::Client, svc: Value) -> Value {
    c.create(
        &client::Resource::SERVICES,
        Some("default"),
        &svc,
        &Default::default(),
    )
    .await
    .expect("create service")
}

/// An EndpointSlice for `service` with `(ip, ready, hostname)` endpoints and `ports`.
pub fn slice(
    service: &str,
    name: &str,
    eps: &[(Ipv4Addr, bool, Option<&str>)],
    ports: Value,
) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, ready, host)| {
            let mut e = json!({"addresses": [ip.to_string()],
                "conditions": {"ready": ready, "serving": ready, "terminating": false}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// Creates or replaces an EndpointSlice.
pub async fn put_slice(c: &client::Client, obj: Value) {
    let r = client::Resource::ENDPOINTSLICES;
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    match c.get(&r, Some("default"), &name).await {
        Ok(cur) => {
            let mut o = obj;
            o["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            c.replace(&r, Some("default"), &name, &o, &Default::default())
                .await
                .expect("replace slice");
        }
        Err(e) if e.is_not_found() => {
            c.create(&r, Some("default"), &obj, &Default::default())
                .await
                .expect("create slice");
        }
        Err(e) => panic!("get slice: {e}"),
    }
}
