//! Real pod sandboxes with Debian's CNI plugins (run as root). Every test uses its own bridge,
//! subnet, netns prefix and state directory, and a Drop guard destroys them even on failure.

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use podnet::{Ipv4Net, NetError, Network, NetworkConfig, PodSandbox, PortMapping};
use rand::Rng;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "podnet tests need root (network namespaces, bridges, mounts, iptables)"
    );
    for tool in ["/usr/sbin/ip", "/usr/sbin/iptables-save"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: apt-get install -y iproute2 iptables"
        );
    }
}

/// A test network with unique names; `Drop` destroys it (sandboxes, bridge, state).
struct TestNet {
    net: Arc<Network>,
    bridge: String,
    prefix: String,
    state: Option<tempfile::TempDir>,
}

impl TestNet {
    fn new() -> Self {
        Self::with_prefix_len(24)
    }

    fn with_prefix_len(prefix_len: u8) -> Self {
        require_root();
        let mut rng = rand::rng();
        let tag: u32 = rng.random();
        let subnet = Ipv4Net::new(
            Ipv4Addr::new(10, rng.random_range(200..=254), rng.random(), 0),
            prefix_len,
        )
        .unwrap()
        .trunc();
        let bridge = format!("dtb{tag:08x}");
        let prefix = format!("dt{tag:08x}-");
        let state = tempfile::tempdir().unwrap();
        let net = Network::new(NetworkConfig {
            bridge: bridge.clone(),
            subnet,
            state_dir: state.path().join("cni"),
            netns_prefix: prefix.clone(),
            ..Default::default()
        })
        .unwrap();
        TestNet {
            net: Arc::new(net),
            bridge,
            prefix,
            state: Some(state),
        }
    }

    fn bridge_ports(&self) -> usize {
        std::fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn allocation_file(&self, ip: Ipv4Addr) -> PathBuf {
        self.net.ipam_dir().join("drover").join(ip.to_string())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let net = self.net.clone();
        let res = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(net.destroy())
        })
        .join();
        if !matches!(res, Ok(Ok(()))) {
            eprintln!("destroy failed ({res:?}); cleaning up by hand");
        }
        // Belt and braces: whatever destroy left behind.
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let _ = std::process::Command::new("ip")
                .args(["link", "delete", &self.bridge])
                .status();
        }
        if let Some(state) = self.state.take() {
            // Unmount any namespace files left under the state dir before deleting it.
            unmount_below(state.path());
            drop(state);
        }
    }
}

fn unmount_below(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in mounts.lines() {
        if let Some(mp) = line.split(' ').nth(4)
            && Path::new(mp).starts_with(dir)
        {
            let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs `f` in a fresh thread that has joined the namespace at `path` (type `kind`).
fn in_ns<T: Send + 'static>(
    path: &Path,
    kind: CloneFlags,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let file = File::open(path).unwrap();
    std::thread::spawn(move || {
        setns(&file, kind).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A TCP server on `port` inside the pod's network namespace that greets every client with
/// `hello from <name>`. It lives as long as the test's runtime.
fn serve_in_pod(sb: &PodSandbox, port: u16, name: &str) {
    let listener = in_ns(&sb.netns, CloneFlags::CLONE_NEWNET, move || {
        let l = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    });
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let greeting = format!("hello from {name}\n");
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(greeting.as_bytes()).await;
        }
    });
}

/// Connects (retrying until the path is up, at most 20 s) and reads the greeting.
fn fetch_greeting(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                return out.trim().to_owned();
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("connect {addr}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("could not connect to {addr}: {e}"),
        }
    }
}

async fn greeting_from_host(addr: SocketAddr) -> String {
    tokio::task::spawn_blocking(move || fetch_greeting(addr))
        .await
        .unwrap()
}

async fn greeting_from_pod(from: &PodSandbox, addr: SocketAddr) -> String {
    let netns = from.netns.clone();
    tokio::task::spawn_blocking(move || {
        in_ns(&netns, CloneFlags::CLONE_NEWNET, move || {
            fetch_greeting(addr)
        })
    })
    .await
    .unwrap()
}

fn nat_rules() -> String {
    let out = std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    assert!(out.status.success(), "iptables-save failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `cond` until it holds (at most 10 s).
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_talk_and_clean_up() {
    let t = TestNet::new();
    let net = &t.net;
    let (ua, ub) = (uid(), uid());
    let a = net.create_sandbox(&ua, "pod-a", &[]).await.unwrap();
    let b = net.create_sandbox(&ub, "pod-b", &[]).await.unwrap();

    // Addresses.
    assert_ne!(a.ip, b.ip);
    for sb in [&a, &b] {
        assert!(
            net.subnet().contains(&sb.ip),
            "{} outside {}",
            sb.ip,
            net.subnet()
        );
        assert_ne!(sb.ip, net.gateway());
        assert_eq!(sb.gateway, net.gateway());
        assert_eq!(sb.interface, "eth0");
        assert!(t.allocation_file(sb.ip).exists());
    }
    assert_eq!(
        a.netns,
        Path::new("/run/netns").join(format!("{}{ua}", t.prefix))
    );
    assert_eq!(t.bridge_ports(), 2);

    // iproute2 sees the namespace and the address on eth0.
    let name = a.netns.file_name().unwrap().to_str().unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", name, "ip", "-4", "-o", "addr", "show", "dev", "eth0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{}/", a.ip)),
        "{out:?}"
    );

    // lo is up with its address (what the loopback plugin would have done).
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", name, "ip", "-o", "addr", "show", "dev", "lo",
        ])
        .output()
        .unwrap();
    let lo = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(lo.contains("127.0.0.1/8"), "{lo}");
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", name, "ip", "-o", "link", "show", "dev", "lo",
        ])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&out.stdout);
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");

    // IPC and UTS namespaces are real, distinct from the host's, and carry the hostname.
    let host_ipc = std::fs::metadata("/proc/self/ns/ipc").unwrap().ino();
    assert_ne!(std::fs::metadata(&a.ipc_ns).unwrap().ino(), host_ipc);
    assert_ne!(
        std::fs::metadata(&a.ipc_ns).unwrap().ino(),
        std::fs::metadata(&b.ipc_ns).unwrap().ino()
    );
    let uts = a.uts_ns.clone().unwrap();
    let hostname = in_ns(&uts, CloneFlags::CLONE_NEWUTS, || {
        nix::unistd::gethostname().unwrap()
    });
    assert_eq!(hostname, "pod-a");

    // Host -> pod, and pod -> pod across the bridge.
    serve_in_pod(&a, 8080, "a");
    serve_in_pod(&b, 8080, "b");
    assert_eq!(
        greeting_from_host(SocketAddr::from((a.ip, 8080))).await,
        "hello from a"
    );
    assert_eq!(
        greeting_from_pod(&a, SocketAddr::from((b.ip, 8080))).await,
        "hello from b"
    );
    assert_eq!(
        greeting_from_pod(&b, SocketAddr::from((a.ip, 8080))).await,
        "hello from a"
    );

    // Idempotent create, records, listing.
    assert_eq!(net.create_sandbox(&ua, "pod-a", &[]).await.unwrap(), a);
    assert_eq!(net.sandbox(&ua).unwrap(), Some(a.clone()));
    let mut listed: Vec<String> = net
        .list_sandboxes()
        .unwrap()
        .into_iter()
        .map(|s| s.pod_uid)
        .collect();
    listed.sort();
    let mut expected = vec![ua.clone(), ub.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(net.list_pod_uids().unwrap(), expected);

    // Remove A: veth, netns, IP allocation, IPC/UTS namespaces and record are gone.
    net.remove_sandbox(&ua).await.unwrap();
    assert!(!a.netns.exists());
    assert!(!a.ipc_ns.exists());
    assert!(!uts.exists());
    assert!(!t.allocation_file(a.ip).exists());
    wait_for("A's veth to leave the bridge", || t.bridge_ports() == 1).await;
    assert_eq!(net.sandbox(&ua).unwrap(), None);
    assert_eq!(net.list_pod_uids().unwrap(), vec![ub.clone()]);
    // B is untouched.
    assert_eq!(
        greeting_from_host(SocketAddr::from((b.ip, 8080))).await,
        "hello from b"
    );

    // Remove twice is fine; re-create gets an address again.
    net.remove_sandbox(&ua).await.unwrap();
    let a2 = net.create_sandbox(&ua, "pod-a", &[]).await.unwrap();
    assert!(net.subnet().contains(&a2.ip));
    assert_ne!(a2.ip, b.ip);
    assert!(t.allocation_file(a2.ip).exists());

    // Destroy removes everything, including the bridge.
    net.destroy().await.unwrap();
    assert!(!Path::new("/sys/class/net").join(&t.bridge).exists());
    assert!(!a2.netns.exists() && !b.netns.exists());
    assert!(net.list_pod_uids().unwrap().is_empty());
    assert!(!net.config().state_dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_port_mapping_via_portmap() {
    let t = TestNet::new();
    let net = &t.net;
    let host_port: u16 = rand::rng().random_range(30000..40000);
    let u = uid();
    let ports = [PortMapping {
        host_port,
        container_port: 8080,
        protocol: "TCP".into(),
        host_ip: None,
    }];
    let sb = net.create_sandbox(&u, "web", &ports).await.unwrap();
    serve_in_pod(&sb, 8080, "web");
    assert!(
        nat_rules().contains(&u),
        "portmap left no rule naming the pod"
    );

    // Through the bridge address (a local address of this host) and through loopback.
    assert_eq!(
        greeting_from_host(SocketAddr::from((net.gateway(), host_port))).await,
        "hello from web"
    );
    assert_eq!(
        greeting_from_host(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port))).await,
        "hello from web"
    );

    net.remove_sandbox(&u).await.unwrap();
    assert!(
        !nat_rules().contains(&u),
        "portmap rules survived the removal"
    );
    net.remove_sandbox(&u).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_add_leaves_nothing_behind() {
    // A /30 has room for exactly one pod (.1 is the gateway).
    let t = TestNet::with_prefix_len(30);
    let net = &t.net;
    let (ua, ub) = (uid(), uid());
    let a = net.create_sandbox(&ua, "a", &[]).await.unwrap();
    let err = net.create_sandbox(&ub, "b", &[]).await.unwrap_err();
    assert!(matches!(err, NetError::Plugin(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("bridge") && msg.contains("no IP addresses available"),
        "{msg}"
    );

    assert!(!net.netns_path(&ub).exists());
    assert!(net.sandbox(&ub).unwrap().is_none());
    assert_eq!(net.list_pod_uids().unwrap(), vec![ua.clone()]);
    wait_for("the failed pod's veth to disappear", || {
        t.bridge_ports() == 1
    })
    .await;
    assert!(t.allocation_file(a.ip).exists());

    // Once A is gone, B fits.
    net.remove_sandbox(&ua).await.unwrap();
    let b = net.create_sandbox(&ub, "b", &[]).await.unwrap();
    assert_eq!(b.ip, a.ip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_survives_lost_namespace_and_broken_record() {
    let t = TestNet::new();
    let net = &t.net;
    let u = uid();
    let sb = net.create_sandbox(&u, "x", &[]).await.unwrap();
    let record = net
        .config()
        .state_dir
        .join("pods")
        .join(&u)
        .join("sandbox.json");
    assert!(record.exists());

    // The namespace vanished behind our back and the record is garbage.
    nix::mount::umount2(&sb.netns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_file(&sb.netns).unwrap();
    std::fs::write(&record, b"{\"version\": 1, \"sandb").unwrap();
    assert!(net.sandbox(&u).is_err());
    assert!(net.list_sandboxes().unwrap().is_empty());
    assert_eq!(net.list_pod_uids().unwrap(), vec![u.clone()]);

    net.remove_sandbox(&u).await.unwrap();
    assert!(!t.allocation_file(sb.ip).exists(), "IP not released");
    assert!(!sb.ipc_ns.exists());
    assert!(net.list_pod_uids().unwrap().is_empty());
    wait_for("the veth to disappear", || t.bridge_ports() == 0).await;
    net.remove_sandbox(&u).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_recovers_a_half_created_sandbox() {
    let t = TestNet::new();
    let net = &t.net;
    let u = uid();
    let first = net.create_sandbox(&u, "x", &[]).await.unwrap();
    // Simulate a crash between CNI ADD and writing the record.
    std::fs::remove_file(
        net.config()
            .state_dir
            .join("pods")
            .join(&u)
            .join("sandbox.json"),
    )
    .unwrap();
    assert_eq!(net.sandbox(&u).unwrap(), None);
    assert_eq!(net.list_pod_uids().unwrap(), vec![u.clone()]);

    let second = net.create_sandbox(&u, "x", &[]).await.unwrap();
    assert!(second.netns.exists());
    assert_eq!(t.bridge_ports(), 1, "the old veth must have been removed");
    // Exactly one allocation for this pod.
    let owned = std::fs::read_dir(net.ipam_dir().join("drover"))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|c| c.starts_with(&u)))
        .count();
    assert_eq!(owned, 1);
    if first.ip != second.ip {
        assert!(!t.allocation_file(first.ip).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_get_distinct_addresses() {
    let t = TestNet::new();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..6 {
        let net = t.net.clone();
        set.spawn(async move { net.create_sandbox(&uid(), &format!("p{i}"), &[]).await });
    }
    let mut ips = Vec::new();
    while let Some(r) = set.join_next().await {
        ips.push(r.unwrap().unwrap().ip);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 6);
    assert_eq!(t.bridge_ports(), 6);
    assert_eq!(t.net.list_sandboxes().unwrap().len(), 6);
}

#[tokio::test]
async fn bad_arguments_are_rejected() {
    let t = TestNet::new();
    for bad in ["../etc", "", "a/b"] {
        assert!(matches!(
            t.net.create_sandbox(bad, "h", &[]).await,
            Err(NetError::InvalidArgument(_))
        ));
    }
    let port0 = [PortMapping {
        host_port: 0,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: None,
    }];
    assert!(matches!(
        t.net.create_sandbox(&uid(), "h", &port0).await,
        Err(NetError::InvalidArgument(_))
    ));
    assert!(t.net.list_pod_uids().unwrap().is_empty());
}

#[test]
fn network_is_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Network>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_finds_and_removes_sandboxes() {
    let t = TestNet::new();
    let host_port: u16 = rand::rng().random_range(40000..50000);
    let u = uid();
    let ports = [PortMapping {
        host_port,
        container_port: 9090,
        protocol: "tcp".into(),
        host_ip: Some("127.0.0.1".into()),
    }];
    let started = Instant::now();
    let sb = t.net.create_sandbox(&u, "svc", &ports).await.unwrap();
    eprintln!(
        "create_sandbox with a host port took {:?}",
        started.elapsed()
    );

    // A second agent process would build a new Network from the same configuration.
    let restarted = Network::new(t.net.config().clone()).unwrap();
    assert_eq!(restarted.sandbox(&u).unwrap(), Some(sb.clone()));
    assert_eq!(restarted.list_sandboxes().unwrap(), vec![sb.clone()]);
    // Idempotent create on the restarted agent returns the same sandbox.
    assert_eq!(
        restarted.create_sandbox(&u, "svc", &ports).await.unwrap(),
        sb
    );

    serve_in_pod(&sb, 9090, "svc");
    assert_eq!(
        greeting_from_host(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port))).await,
        "hello from svc"
    );

    // DEL uses the recorded ports and result: the portmap rules go too.
    let started = Instant::now();
    restarted.remove_sandbox(&u).await.unwrap();
    eprintln!(
        "remove_sandbox with a host port took {:?}",
        started.elapsed()
    );
    assert!(
        !nat_rules().contains(&u),
        "portmap rules survived the removal"
    );
    assert!(!sb.netns.exists());
    assert!(!t.allocation_file(sb.ip).exists());
    assert_eq!(t.net.sandbox(&u).unwrap(), None);
}

/// create_sandbox_early sends the namespace files, already mounted, before the sandbox is
/// complete; an existing sandbox sends its own; a failure to make them drops the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_namespaces_come_before_the_sandbox() {
    let t = TestNet::new();
    let u = uid();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let net = t.net.clone();
    let task = {
        let u = u.clone();
        tokio::spawn(async move { net.create_sandbox_early(&u, "early", &[], Some(tx)).await })
    };
    let ns = rx.await.unwrap();
    // Joinable now: the namespace file is a live nsfs mount.
    assert_eq!(
        std::fs::metadata(&ns.netns).unwrap().dev(),
        std::fs::metadata("/proc/self/ns/net").unwrap().dev()
    );
    let sb = task.await.unwrap().unwrap();
    assert_eq!(ns.netns, sb.netns);
    assert_eq!(ns.ipc_ns, sb.ipc_ns);
    assert_eq!(ns.uts_ns, sb.uts_ns);

    let (tx, rx) = tokio::sync::oneshot::channel();
    let again = t
        .net
        .create_sandbox_early(&u, "early", &[], Some(tx))
        .await
        .unwrap();
    assert_eq!(again, sb);
    assert_eq!(rx.await.unwrap().netns, sb.netns);

    let (tx, rx) = tokio::sync::oneshot::channel();
    assert!(
        t.net
            .create_sandbox_early("bad uid!", "x", &[], Some(tx))
            .await
            .is_err()
    );
    assert!(rx.await.is_err());
    t.net.remove_sandbox(&u).await.unwrap();
}
