//! A `drover server` with its local node agent (real runc containers, CNI networking) on
//! a bridge, pod range and node name of its own, with a busybox image imported so pods
//! never pull; `drover reset` removes everything the agent made when it is dropped.

use crate::tools::{require_file, require_root, run};
use crate::{BenchError, BenchServer, say};
use client::Resource;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The image the scenarios run: Debian's static busybox as an OCI image, imported into
/// the node before it starts (a non-latest tag, so the default pull policy is IfNotPresent).
pub const BUSYBOX: &str = "drover.local/busybox:1.36";

/// A server with a real node agent, reset and removed on drop.
pub struct NodeServer {
    server: BenchServer,
    exe: PathBuf,
    /// The node's name.
    pub name: String,
    /// Its pod bridge.
    pub bridge: String,
    /// Its pod range.
    pub pod_cidr: String,
    /// The busybox OCI archive that was imported (for reference systems to load too).
    pub image_archive: PathBuf,
}

impl NodeServer {
    /// Builds and imports the busybox image, starts `exe server` with its agent (room
    /// for `max_pods` pods) and waits until the node is Ready.
    pub async fn start(
        exe: &Path,
        max_pods: u32,
        scenario: &str,
    ) -> Result<NodeServer, BenchError> {
        require_root(scenario)?;
        require_file("/usr/sbin/runc", "runc")?;
        require_file("/usr/bin/conmon", "conmon")?;
        require_file("/usr/lib/cni/bridge", "containernetworking-plugins")?;
        require_file("/usr/bin/busybox", "busybox-static")?;
        let dir = tempfile::tempdir().map_err(BenchError::io("creating a data directory"))?;
        let r: u64 = rand::random();
        let name = format!("bench-{:06x}", r & 0xff_ffff);
        let bridge = format!("drb{:08x}", (r >> 24) as u32);
        let pod_cidr = format!("10.{}.{}.0/24", 128 + (r >> 56) % 64, (r >> 48) % 256);
        let image_archive = dir.path().join("busybox.oci.tar");
        say(format_args!("building and importing {BUSYBOX}"));
        run(
            Command::new(exe)
                .args(["image", "build-busybox", "--tag", BUSYBOX, "--output"])
                .arg(&image_archive),
            "drover image build-busybox",
        )?;
        run(
            Command::new(exe)
                .args(["image", "import", "--data-dir"])
                .arg(dir.path())
                .arg(&image_archive),
            "drover image import",
        )?;
        say(format_args!(
            "starting drover server with its agent (node {name}, bridge {bridge}, pods {pod_cidr})"
        ));
        let flags: Vec<String> = [
            "--node-name",
            &name,
            "--bridge",
            &bridge,
            "--pod-cidr",
            &pod_cidr,
            "--agent-port",
            "0",
            "--max-pods",
            &max_pods.to_string(),
            "--no-dns-upstream",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // The agent starts only after the API serves, so a failed start leaves nothing to reset.
        let server = BenchServer::start_in(exe, dir, &flags)?;
        let node = NodeServer {
            server,
            exe: exe.to_path_buf(),
            name,
            bridge,
            pod_cidr,
            image_archive,
        };
        node.wait_ready().await?;
        Ok(node)
    }

    async fn wait_ready(&self) -> Result<(), BenchError> {
        let client = self.server.client()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(n) = client.get(&Resource::NODES, None, &self.name).await {
                let ready = n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                if ready {
                    return Ok(());
                }
            }
            if !crate::procs::alive(self.server.pid()) {
                return Err(BenchError::Timeout(format!(
                    "the server exited before node {} was Ready:\n{}",
                    self.name,
                    self.server.log_tail()
                )));
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout(format!(
                    "node {} was not Ready within 90 s; the server said:\n{}",
                    self.name,
                    self.server.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The server (API client, RSS, log).
    pub fn server(&self) -> &BenchServer {
        &self.server
    }

    /// The conmon processes monitoring this node's containers.
    pub fn conmon_pids(&self) -> Vec<u32> {
        crate::procs::find("conmon", &self.server.data_dir().to_string_lossy())
    }

    /// Resident memory the node spends: the server (API server, controllers, scheduler
    /// and agent in one process) plus every conmon of this node, in MiB.
    pub fn node_rss_mb(&self) -> f64 {
        let mut pids = self.conmon_pids();
        pids.push(self.server.pid());
        crate::procs::rss_mb(&pids)
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        self.server.kill();
        say(format_args!(
            "removing node {}'s containers and bridge {} (drover reset)",
            self.name, self.bridge
        ));
        reset(&self.exe, self.server.data_dir(), &self.name, &self.bridge);
    }
}

fn reset(exe: &Path, dir: &Path, name: &str, bridge: &str) {
    let out = Command::new(exe)
        .args(["reset", "--data-dir"])
        .arg(dir)
        .args(["--node-name", name, "--bridge", bridge])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "bench: drover reset failed ({}); remove bridge {bridge} and the containers under {} by hand: {}",
            o.status,
            dir.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("bench: cannot run drover reset: {e}"),
    }
}
