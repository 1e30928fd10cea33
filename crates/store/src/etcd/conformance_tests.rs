//! The shared conformance suite against a real etcd (Debian's `etcd-server`), one etcd
//! process per test on free loopback ports, plus what only etcd can show: restarts,
//! another client's compaction, prefixes sharing one cluster.

use super::*;
use crate::{SharedStore, conformance};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A real etcd on loopback with its data in a temporary directory, killed (by PID) on drop.
struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl EtcdServer {
    fn start() -> EtcdServer {
        let mut server = EtcdServer {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
        };
        server.spawn();
        server
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .arg("--name")
            .arg("drover-test")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("drover-test={peer}")])
            .args(["--listen-metrics-urls", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`etcd` is not installed: the etcd backend tests need Debian's etcd-server \
                 (run scripts/setup.sh)"
            ),
            Err(e) => panic!("cannot start etcd: {e}"),
        };
        self.child = Some(child);
        self.wait_healthy();
    }

    /// Polls etcd's /health until it reports healthy (or etcd exits, or 60s pass).
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "etcd exited ({status}) before it was ready:\n{}",
                    log_tail(self.dir.path())
                );
            }
            if healthy(self.client_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy:\n{}",
                log_tail(self.dir.path())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILLs etcd and starts it again on the same data directory and ports.
    fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    async fn store(&self, prefix: &str) -> EtcdStore {
        EtcdStore::connect(&[self.endpoint()], prefix)
            .await
            .unwrap()
    }

    async fn shared(&self) -> SharedStore {
        Arc::new(self.store(DEFAULT_PREFIX).await)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn next_event(w: &mut WatchStream) -> Event {
    match tokio::time::timeout(Duration::from_secs(30), w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crud_with_compare() {
    let etcd = EtcdServer::start();
    conformance::crud_with_compare(etcd.shared().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pages_and_past_revisions() {
    let etcd = EtcdServer::start();
    conformance::list_pages_and_past_revisions(etcd.shared().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_swap() {
    let etcd = EtcdServer::start();
    conformance::concurrent_compare_and_swap(etcd.shared().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_delivers_every_event_in_order() {
    let etcd = EtcdServer::start();
    conformance::watch_delivers_every_event_in_order(etcd.shared().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction() {
    let etcd = EtcdServer::start();
    conformance::compaction(etcd.shared().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_an_etcd_restart() {
    let mut etcd = EtcdServer::start();
    let (rev, compacted) = {
        let s = etcd.store(DEFAULT_PREFIX).await;
        for i in 0..50 {
            s.create(&format!("/d/{i:03}"), vec![i]).await.unwrap();
        }
        let last = s.delete("/d/049", None).await.unwrap().mod_revision;
        s.compact(last - 10).await.unwrap();
        (s.current_revision(), s.compacted_revision())
    };
    assert_eq!(compacted, rev - 10);
    // SIGKILL: etcd acknowledges a write only after its WAL is fsync'ed.
    etcd.restart();
    let s = etcd.store(DEFAULT_PREFIX).await;
    assert_eq!(s.current_revision(), rev, "revisions never go back");
    assert_eq!(
        s.compacted_revision(),
        compacted,
        "a new client finds the compaction point"
    );
    let page = s.list("/d/", None, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 49);
    assert_eq!(page.items[7].value, vec![7]);
    assert!(s.create("/d/new", vec![1]).await.unwrap() > rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_clients_compaction_is_reported_as_compacted() {
    let etcd = EtcdServer::start();
    let a = etcd.store(DEFAULT_PREFIX).await;
    let b = etcd.store(DEFAULT_PREFIX).await;
    let r1 = a.create("/x/a", b"1".to_vec()).await.unwrap();
    let r2 = a.update("/x/a", b"2".to_vec(), r1).await.unwrap();
    let r3 = a.update("/x/a", b"3".to_vec(), r2).await.unwrap();
    a.compact(r3).await.unwrap();
    // `b` has not seen the compaction: etcd's answers tell it.
    assert_eq!(b.compacted_revision(), 0);
    match b.list("/x/", None, Some(r1), 0).await {
        Err(StoreError::Compacted { compacted, .. }) => assert_eq!(compacted, r3),
        other => panic!("a read before the compaction point must fail, got {other:?}"),
    }
    let c = etcd.store(DEFAULT_PREFIX).await;
    let mut w = {
        // A watch whose start is compacted ends with Compacted (410 Gone for kubectl).
        let stale = EtcdStore {
            inner: Arc::new(Inner {
                kv: c.inner.kv.clone(),
                watch: c.inner.watch.clone(),
                prefix: c.inner.prefix.clone(),
                endpoints: c.inner.endpoints.clone(),
                revision: AtomicI64::new(r3),
                compacted: AtomicI64::new(0),
            }),
        };
        stale.watch("/x/", r1).unwrap()
    };
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(StoreError::Compacted { compacted, .. }))) => assert_eq!(compacted, r3),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // Compacting again to an older point is a no-op, not an error.
    b.compact(r2).await.unwrap();
    assert_eq!(b.compacted_revision(), r3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prefixes_isolate_stores_sharing_one_etcd() {
    let etcd = EtcdServer::start();
    let a = etcd.store("/drover-a").await;
    let b = etcd.store("/drover-b/").await;
    a.create("/core/pods/x", b"a".to_vec()).await.unwrap();
    b.create("/core/pods/x", b"b".to_vec()).await.unwrap();
    assert_eq!(a.get("/core/pods/x").await.unwrap().unwrap().value, b"a");
    let page = b.list("/core/", None, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].key, "/core/pods/x");
    assert_eq!(page.items[0].value, b"b");
    assert_eq!(a.count("/").await.unwrap(), 1);
    // The raw etcd key is the prefix followed by the store key.
    let raw = a
        .inner
        .kv()
        .get("/drover-b/core/pods/x", None)
        .await
        .unwrap();
    assert_eq!(raw.kvs()[0].value(), b"b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_etcd_is_a_clear_error() {
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let err = EtcdStore::connect(std::slice::from_ref(&endpoint), DEFAULT_PREFIX)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot reach etcd at {endpoint}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_resumes_across_an_etcd_restart_without_losing_events() {
    let mut etcd = EtcdServer::start();
    let s = etcd.store(DEFAULT_PREFIX).await;
    let r1 = s.create("/r/a", b"1".to_vec()).await.unwrap();
    let mut w = s.watch("/r/", r1 - 1).unwrap();
    assert_eq!(next_event(&mut w).await.kv.mod_revision, r1);
    etcd.restart();
    // The same client reconnects; the watch picks up after the last event it delivered.
    let r2 = s.update("/r/a", b"2".to_vec(), r1).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kind, ev.kv.mod_revision), (EventKind::Put, r2));
    assert_eq!(ev.prev.map(|p| p.value), Some(b"1".to_vec()));
}
