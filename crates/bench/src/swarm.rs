//! Docker Swarm mode as the reference for `deploy`: Debian's docker.io, a dockerd the
//! benchmark starts on a private socket and data directory (`--storage-driver vfs
//! --iptables=false --bridge=none`), a one-node swarm on loopback, the same busybox image
//! loaded with `docker load`, and `docker service create --replicas P`. Everything it
//! starts or makes is stopped and removed on drop: the service, the swarm, the containers,
//! dockerd and its containerd and shims (by PID), mounts, the directory, the
//! `docker_gwbridge` bridge and any iptables chains that were not there before.

use crate::tools::{free_port, run};
use crate::{BUSYBOX, BenchError, procs, progress, say};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's docker client (it matches the 20.10 daemon; a newer client may be on PATH).
pub const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const SKOPEO: &str = "/usr/bin/skopeo";
const SERVICE: &str = "bench";

/// What Swarm took to run the replicas.
#[derive(Clone, Debug)]
pub struct SwarmFigures {
    /// Seconds from `docker service create` to `docker service ls` showing P/P.
    pub seconds: f64,
    /// (dockerd + containerd + shims RSS after − before) / P, in MiB.
    pub mb_per_pod: f64,
}

/// None when Docker Swarm can run here, else what to install.
pub fn missing() -> Option<String> {
    let need = [
        (DOCKER, "docker.io"),
        (DOCKERD, "docker.io"),
        ("/usr/bin/containerd", "containerd"),
        (SKOPEO, "skopeo"),
    ];
    let absent: Vec<_> = need
        .iter()
        .filter(|(p, _)| !Path::new(p).exists())
        .collect();
    if absent.is_empty() {
        return None;
    }
    let paths: Vec<&str> = absent.iter().map(|(p, _)| *p).collect();
    let mut pkgs: Vec<&str> = absent.iter().map(|(_, k)| *k).collect();
    pkgs.dedup();
    Some(format!(
        "{} missing: install Docker with `apt-get install -y {}` (Debian's packages; \
         the benchmark starts its own dockerd, no service needs to run)",
        paths.join(", "),
        pkgs.join(" ")
    ))
}

/// Runs `replicas` busybox tasks as a Swarm service and measures them (blocking; minutes).
pub fn measure(oci_archive: &Path, replicas: usize) -> Result<SwarmFigures, BenchError> {
    if let Some(m) = missing() {
        return Err(BenchError::Missing(m));
    }
    let mut swarm = Swarm::start()?;
    crate::check_interrupted()?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    say("docker: swarm init on loopback");
    swarm.swarm = true;
    run(
        swarm.docker().args([
            "swarm",
            "init",
            "--advertise-addr",
            &addr,
            "--listen-addr",
            &addr,
        ]),
        "docker swarm init",
    )?;
    say(format_args!(
        "docker: loading {BUSYBOX} (skopeo → docker-archive → docker load)"
    ));
    let archive = swarm.dir.path().join("busybox.docker.tar");
    run(
        Command::new(SKOPEO)
            .arg("copy")
            .arg(format!("oci-archive:{}", oci_archive.display()))
            .arg(format!("docker-archive:{}:{BUSYBOX}", archive.display())),
        "skopeo copy oci-archive → docker-archive",
    )?;
    run(
        swarm.docker().arg("load").arg("-i").arg(&archive),
        "docker load",
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let before = swarm.rss_mb();
    crate::check_interrupted()?;

    say(format_args!(
        "docker: service create --replicas {replicas}, timed until {replicas}/{replicas}"
    ));
    let want = format!("{replicas}/{replicas}");
    let bar = progress(replicas as u64, "swarm tasks");
    let t = Instant::now();
    swarm.service = true;
    run(
        swarm.docker().args([
            "service",
            "create",
            "--detach",
            "--replicas",
            &replicas.to_string(),
            "--name",
            SERVICE,
            BUSYBOX,
            "sleep",
            "3600",
        ]),
        "docker service create",
    )?;
    let deadline = t + Duration::from_secs(600);
    loop {
        let shown = run(
            swarm
                .docker()
                .args(["service", "ls", "--filter", &format!("name={SERVICE}")])
                .args(["--format", "{{.Replicas}}"]),
            "docker service ls",
        )?;
        let shown = shown.trim();
        if let Some(n) = shown.split('/').next().and_then(|n| n.trim().parse().ok()) {
            bar.set_position(n);
        }
        if shown == want {
            break;
        }
        crate::check_interrupted()?;
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!(
                "Docker Swarm showed {shown} of {want} replicas after 600 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let seconds = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    std::thread::sleep(Duration::from_secs(2));
    let after = swarm.rss_mb();
    say("docker: removing the service, the swarm and dockerd");
    drop(swarm);
    Ok(SwarmFigures {
        seconds,
        mb_per_pod: (after - before) / replicas.max(1) as f64,
    })
}

/// Host state before dockerd ran, to remove exactly what it added.
struct Before {
    links: BTreeSet<String>,
    chains: BTreeSet<(String, String)>,
    paths: Vec<(PathBuf, bool)>,
}

/// Paths dockerd and its shims create outside the data directory.
const HOST_PATHS: [&str; 5] = [
    "/etc/docker/key.json",
    "/run/docker/plugins",
    "/run/docker",
    "/run/containerd/s",
    "/run/containerd",
];

struct Swarm {
    dir: tempfile::TempDir,
    dockerd: Option<Child>,
    before: Before,
    swarm: bool,
    service: bool,
}

impl Swarm {
    fn start() -> Result<Swarm, BenchError> {
        let dir = tempfile::tempdir().map_err(BenchError::io("creating dockerd's directory"))?;
        let before = Before {
            links: links(),
            chains: docker_chains(),
            paths: HOST_PATHS
                .iter()
                .map(|p| (PathBuf::from(p), Path::new(p).exists()))
                .collect(),
        };
        let log = std::fs::File::create(dir.path().join("dockerd.log"))
            .map_err(BenchError::io("creating dockerd's log"))?;
        say("docker: starting dockerd on a private socket (vfs, no iptables, no bridge)");
        let d = dir.path();
        let child = Command::new(DOCKERD)
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--bridge=none",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::Tool {
                what: "starting dockerd".into(),
                detail: e.to_string(),
            })?;
        let mut swarm = Swarm {
            dir,
            dockerd: Some(child),
            before,
            swarm: false,
            service: false,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = swarm
                .docker()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            let exited = swarm
                .dockerd
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(swarm.dir.path().join("dockerd.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(BenchError::Tool {
                    what: "dockerd".into(),
                    detail: format!(
                        "did not answer on its socket ({}); its log ends with:\n{}",
                        exited.map_or("still starting after 60 s".to_string(), |s| s.to_string()),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(swarm)
    }

    /// Debian's docker client pointed at this dockerd (its own config dir, not ~/.docker).
    fn docker(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_CONFIG", self.dir.path().join("client"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .stdin(Stdio::null());
        c
    }

    fn needle(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// dockerd + its containerd + every containerd shim of this run, in MiB.
    fn rss_mb(&self) -> f64 {
        let mut pids = procs::find("containerd", &self.needle());
        if let Some(c) = &self.dockerd {
            pids.push(c.id());
        }
        procs::rss_mb(&pids)
    }

    fn quiet(&self, args: &[&str]) -> String {
        self.docker()
            .args(args)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.service {
            self.quiet(&["service", "rm", SERVICE]);
        }
        if self.swarm {
            self.quiet(&["swarm", "leave", "--force"]);
        }
        let ids: Vec<String> = self
            .quiet(&["ps", "-aq"])
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            self.quiet(&args);
        }
        if let Some(mut child) = self.dockerd.take() {
            procs::signal(child.id(), false);
            if !procs::wait_gone(&[child.id()], Duration::from_secs(30)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // Its containerd and shims, and any container they left (by PID, this run's only).
        let left = procs::find("containerd", &self.needle());
        for &p in &left {
            procs::signal(p, true);
        }
        procs::wait_gone(&left, Duration::from_secs(10));
        let runc_root = self.dir.path().join("exec/runtime-runc/moby");
        if runc_root.exists() {
            let list = Command::new("/usr/sbin/runc")
                .arg("--root")
                .arg(&runc_root)
                .args(["list", "-q"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for id in list.split_whitespace() {
                let _ = Command::new("/usr/sbin/runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["delete", "-f", id])
                    .output();
            }
        }
        for m in procs::mounts_under(self.dir.path()) {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        let added: Vec<String> = links().difference(&self.before.links).cloned().collect();
        let veths = added
            .iter()
            .filter(|l| l.starts_with("veth") && self.owns_veth(l));
        let bridges = added.iter().filter(|l| l.starts_with("docker"));
        for link in veths.chain(bridges).collect::<Vec<_>>() {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        remove_new_chains(&self.before.chains);
        for (path, existed) in &self.before.paths {
            if *existed {
                continue;
            }
            if path.ends_with("key.json") {
                let _ = std::fs::remove_file(path);
            } else {
                let _ = std::fs::remove_dir(path); // only when empty: never others' state
            }
        }
    }
}

impl Swarm {
    /// A new veth on the host is this run's only if its master is a bridge dockerd made.
    fn owns_veth(&self, link: &str) -> bool {
        let out = Command::new("ip")
            .args(["-o", "link", "show", link])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.contains("master docker")
    }
}

/// The host's network links by name.
fn links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// `(table, chain)` for every iptables chain named DOCKER*.
fn docker_chains() -> BTreeSet<(String, String)> {
    let out = Command::new("iptables-save")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut table = String::new();
    let mut chains = BTreeSet::new();
    for l in out.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(c) = l.strip_prefix(':')
            && c.starts_with("DOCKER")
        {
            let name = c.split_whitespace().next().unwrap_or(c);
            chains.insert((table.clone(), name.to_string()));
        }
    }
    chains
}

/// Removes DOCKER* chains that were not there before (and the rules jumping to them).
fn remove_new_chains(before: &BTreeSet<(String, String)>) {
    let new: Vec<(String, String)> = docker_chains().difference(before).cloned().collect();
    if new.is_empty() {
        return;
    }
    let out = Command::new("iptables-save")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut table = String::new();
    for l in out.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(rule) = l.strip_prefix("-A ") {
            let jumps_to_new = new
                .iter()
                .any(|(t, c)| *t == table && rule.ends_with(&format!("-j {c}")));
            if jumps_to_new {
                let _ = Command::new("iptables")
                    .args(["-t", &table, "-D"])
                    .args(rule.split_whitespace())
                    .output();
            }
        }
    }
    for (t, c) in &new {
        let _ = Command::new("iptables").args(["-t", t, "-F", c]).output();
    }
    for (t, c) in &new {
        let _ = Command::new("iptables").args(["-t", t, "-X", c]).output();
    }
}
