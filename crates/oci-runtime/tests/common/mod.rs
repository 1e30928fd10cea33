//! Test fixtures: a busybox rootfs, a Runtime in temp dirs, and guards that clean up.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use oci_runtime::{ContainerSpec, Runtime, RuntimeConfig};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt};

pub fn rand_suffix() -> String {
    let mut r = rand::rng();
    (0..8)
        .map(|_| char::from(b'a' + r.random_range(0..26u8)))
        .collect()
}

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install -y runc conmon busybox-static iproute2"
    );
}

/// Builds ROOT/bin/busybox plus applet symlinks.
pub fn make_rootfs(root: &Path) {
    require("/usr/bin/busybox");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["tmp", "etc", "proc", "sys", "dev", "data"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", bin.join("busybox")).unwrap();
    let out = std::process::Command::new("/usr/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        let name = name.trim();
        if name.is_empty() || name == "busybox" || name.contains('/') {
            continue;
        }
        let _ = std::os::unix::fs::symlink("busybox", bin.join(name));
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// One test's runtime: temp dirs, a unique cgroup parent, and the containers to remove on drop.
pub struct Env {
    pub rt: Runtime,
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub cgroup_parent: String,
    ids: Mutex<Vec<String>>,
}

impl Env {
    pub fn new() -> Env {
        require("/usr/sbin/runc");
        require("/usr/bin/conmon");
        let dir = tempfile::Builder::new()
            .prefix("ocirt")
            .tempdir_in("/tmp")
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs);
        let cgroup_parent = format!("/drover-test-{}", rand_suffix());
        let rt = Runtime::new(Self::config(dir.path(), &cgroup_parent)).unwrap();
        Env {
            rt,
            dir,
            rootfs,
            cgroup_parent,
            ids: Mutex::new(Vec::new()),
        }
    }

    pub fn config(dir: &Path, cgroup_parent: &str) -> RuntimeConfig {
        RuntimeConfig {
            runtime: "/usr/sbin/runc".into(),
            runtime_root: dir.join("runc"),
            conmon: "/usr/bin/conmon".into(),
            state_dir: dir.join("state"),
            cgroup_parent: cgroup_parent.into(),
        }
    }

    /// A fresh Runtime on the same directories (an agent restart).
    pub fn restarted(&self) -> Runtime {
        Runtime::new(Self::config(self.dir.path(), &self.cgroup_parent)).unwrap()
    }

    /// A spec with a unique id, registered for cleanup.
    pub fn spec(&self, args: &[&str]) -> ContainerSpec {
        let id = format!("t-{}", rand_suffix());
        self.ids.lock().unwrap().push(id.clone());
        ContainerSpec {
            id: id.clone(),
            rootfs: self.rootfs.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path: self.dir.path().join("logs").join(format!("{id}.log")),
            labels: BTreeMap::from([("test".to_string(), "yes".to_string())]),
            ..Default::default()
        }
    }

    pub async fn run(&self, spec: &ContainerSpec) {
        self.rt.create(spec).await.unwrap();
        self.rt.start(&spec.id).await.unwrap();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap());
        let rt = self.rt.clone();
        let parent = self.cgroup_parent.clone();
        // Drop cannot await; run the cleanup on its own thread and runtime.
        let _ = std::thread::spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            r.block_on(async {
                for id in ids {
                    if let Err(e) = rt.remove(&id).await {
                        eprintln!("cleanup of {id} failed: {e}");
                    }
                }
            });
            if let Err(e) = rt.remove_cgroup(&parent) {
                eprintln!("cleanup of cgroup {parent} failed: {e}");
            }
        })
        .join();
    }
}

/// Reads from `r` until the accumulated output contains `needle` (or panics after 20 s).
pub async fn read_until<R: AsyncRead + Unpin + ?Sized>(r: &mut R, needle: &str) -> String {
    let mut acc = Vec::new();
    let fut = async {
        let mut buf = [0u8; 4096];
        loop {
            if String::from_utf8_lossy(&acc).contains(needle) {
                return;
            }
            let n = r.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "EOF before {needle:?}; got {:?}",
                String::from_utf8_lossy(&acc)
            );
            acc.extend_from_slice(&buf[..n]);
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .is_err()
    {
        panic!("timed out waiting for {needle:?}");
    }
    String::from_utf8_lossy(&acc).to_string()
}

/// Polls `f` until it returns true (or panics after 20 s).
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct NetNs(pub String);

impl NetNs {
    pub fn new() -> NetNs {
        require("/usr/sbin/ip");
        let name = format!("drvt-{}", rand_suffix());
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name} failed");
        NetNs(name)
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}
