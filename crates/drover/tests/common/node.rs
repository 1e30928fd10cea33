//! A real node agent for end-to-end tests: its own bridge, pod range and node name (so
//! tests run in parallel), the test busybox image imported, and `drover reset` after.

use super::{Server, drover_bin, wait_for};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The image the tests run: Debian's static busybox as an OCI image, imported into
/// every test node (a non-latest tag, so IfNotPresent is the default pull policy).
pub const BUSYBOX: &str = "drover.local/busybox:1.36";

/// A name fragment unique to this process and call.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let x = t
        ^ (u64::from(std::process::id()) << 32)
        ^ N.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 so neighbouring inputs give unrelated outputs.
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The node a test cluster runs.
pub struct Node {
    /// Node name.
    pub name: String,
    /// Its pod bridge.
    pub bridge: String,
    /// Its pod range.
    pub pod_cidr: String,
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Node {
    /// Picks names and imports the busybox image into `dir`.
    pub fn prepare(dir: &Path) -> Node {
        let u = unique();
        let node = Node {
            name: format!("node-{:06x}", u & 0xff_ffff),
            bridge: format!("drt{:08x}", (u >> 24) as u32),
            pod_cidr: format!("10.{}.{}.0/24", 64 + (u >> 8) % 64, u % 256),
        };
        let archive = dir.join("busybox.tar");
        run(
            Command::new(drover_bin())
                .args(["image", "build-busybox", "--tag", BUSYBOX, "--output"])
                .arg(&archive),
            "building the busybox image",
        );
        run(
            Command::new(drover_bin())
                .args(["image", "import", "--data-dir"])
                .arg(dir)
                .arg(&archive),
            "importing the busybox image",
        );
        node
    }

    /// The `drover server` flags for this node's local agent.
    pub fn flags(&self) -> Vec<String> {
        [
            "--node-name",
            &self.name,
            "--bridge",
            &self.bridge,
            "--pod-cidr",
            &self.pod_cidr,
            "--agent-port",
            "0",
            // Tests never send DNS beyond the cluster.
            "--no-dns-upstream",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Removes everything the agent made (containers, mounts, sandboxes, bridge).
    pub fn reset(&self, dir: &Path) {
        let out = Command::new(drover_bin())
            .args(["reset", "--data-dir"])
            .arg(dir)
            .args(["--node-name", &self.name, "--bridge", &self.bridge])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "drover reset failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("drover reset: {e}"),
        }
    }
}

impl Server {
    /// The node agent's name.
    pub fn node_name(&self) -> &str {
        self.node
            .as_ref()
            .map(|n| n.name.as_str())
            .expect("a server with a node")
    }

    /// Waits until the local node is Ready.
    pub fn wait_node_ready(&self) {
        let name = self.node_name().to_string();
        wait_for(
            &format!("node {name} Ready"),
            Duration::from_secs(60),
            || {
                let out = self.kubectl_output(&[
                    "get",
                    "node",
                    &name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ]);
                (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
            },
        );
    }

    /// A pod as JSON (None when it does not exist).
    pub fn pod(&self, name: &str) -> Option<Value> {
        let out = self.kubectl_output(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("pod json"))
    }

    /// Waits until pod `name` satisfies `f`, returning it.
    pub fn wait_pod(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let found = super::try_wait_for(timeout, || {
            let p = self.pod(name)?;
            let ok = f(&p);
            last = p.clone();
            ok.then_some(p)
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out waiting for pod {name} to be {what}; last seen:\n{}\nevents:\n{}",
                serde_json::to_string_pretty(&last["status"]).unwrap_or_default(),
                self.kubectl(&[
                    "get",
                    "events",
                    "--field-selector",
                    &format!("involvedObject.name={name}")
                ])
            )
        })
    }

    /// Waits until pod `name` is Running and Ready; returns it.
    pub fn wait_pod_ready(&self, name: &str) -> Value {
        self.wait_pod(name, "Running and Ready", Duration::from_secs(60), |p| {
            p["status"]["phase"] == "Running"
                && p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
    }

    /// The IP of a running pod.
    pub fn pod_ip(&self, name: &str) -> String {
        self.wait_pod_ready(name)["status"]["podIP"]
            .as_str()
            .expect("podIP")
            .to_string()
    }

    /// The `drover` command for this server's data directory.
    pub fn drover(&self, args: &[&str]) -> String {
        run(
            Command::new(drover_bin()).args(args),
            &format!("drover {args:?}"),
        )
    }
}

/// One HTTP GET over plain TCP (pod IPs live in namespaces the test made); returns the body.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if !out.starts_with("HTTP/1.") || out.split_whitespace().nth(1).is_none_or(|c| c != "200") {
        return None;
    }
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}
