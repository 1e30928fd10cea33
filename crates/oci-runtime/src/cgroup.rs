//! Reading and cleaning up container cgroups (v1 controllers, or the unified v2 hierarchy).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::RuntimeError;

/// Resource usage of one container, read from its cgroup.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Cumulative CPU time of all the container's processes, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory charged to the cgroup (includes page cache), bytes.
    pub memory_usage_bytes: u64,
    /// usage − inactive_file (what the kubelet calls the working set), bytes.
    pub memory_working_set_bytes: u64,
    /// Memory limit, if one is set.
    pub memory_limit_bytes: Option<u64>,
    /// When the numbers were read.
    pub timestamp: SystemTime,
}

/// The cgroup hierarchies mounted on this host.
#[derive(Clone, Debug)]
pub(crate) struct Hierarchies {
    /// Unified-only (cgroup v2) host: the mount point.
    pub v2_only: Option<PathBuf>,
    /// v1 hierarchies: (controllers / name=..., mount point).
    pub v1: Vec<(Vec<String>, PathBuf)>,
    /// A v2 hierarchy mounted beside v1 (hybrid), if any.
    pub hybrid_unified: Option<PathBuf>,
}

impl Hierarchies {
    /// Parses /proc/self/mountinfo.
    pub(crate) fn detect() -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| RuntimeError::io("reading /proc/self/mountinfo", e))?;
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        for line in text.lines() {
            // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = match left.split(' ').nth(4) {
                Some(m) => PathBuf::from(m.replace("\\040", " ")),
                None => continue,
            };
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let superopts = r.next().unwrap_or("");
            match fstype {
                "cgroup" => {
                    let ctrls: Vec<String> = superopts
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "relatime"
                                    | "noatime"
                                    | "nosuid"
                                    | "nodev"
                                    | "noexec"
                            )
                        })
                        .map(str::to_string)
                        .collect();
                    v1.push((ctrls, mount_point));
                }
                "cgroup2" => v2.push(mount_point),
                _ => {}
            }
        }
        if v1.is_empty() {
            let v2_only = v2.into_iter().next();
            if v2_only.is_none() {
                return Err(RuntimeError::InvalidSpec(
                    "no cgroup filesystem is mounted".into(),
                ));
            }
            Ok(Hierarchies {
                v2_only,
                v1,
                hybrid_unified: None,
            })
        } else {
            Ok(Hierarchies {
                v2_only: None,
                v1,
                hybrid_unified: v2.into_iter().next(),
            })
        }
    }

    /// The directory of `cgroup_path` in the v1 hierarchy holding `controller`.
    fn v1_dir(&self, controller: &str, cgroup_path: &str) -> Option<PathBuf> {
        self.v1
            .iter()
            .find(|(ctrls, _)| ctrls.iter().any(|c| c == controller))
            .map(|(_, mp)| mp.join(cgroup_path.trim_start_matches('/')))
    }

    /// Every directory `cgroup_path` may have in any hierarchy.
    pub(crate) fn all_dirs(&self, cgroup_path: &str) -> Vec<PathBuf> {
        let rel = cgroup_path.trim_start_matches('/');
        let mut dirs: Vec<PathBuf> = self.v1.iter().map(|(_, mp)| mp.join(rel)).collect();
        dirs.extend(
            self.v2_only
                .iter()
                .chain(self.hybrid_unified.iter())
                .map(|mp| mp.join(rel)),
        );
        dirs
    }

    /// Removes `cgroup_path` from every hierarchy (it must be empty of processes); missing is fine.
    pub(crate) fn remove(&self, cgroup_path: &str) -> Result<(), RuntimeError> {
        if cgroup_path.trim_matches('/').is_empty() {
            return Ok(());
        }
        for dir in self.all_dirs(cgroup_path) {
            remove_tree(&dir)?;
        }
        Ok(())
    }

    /// Whether the cgroup recorded an OOM kill.
    pub(crate) fn oom_killed(&self, cgroup_path: &str) -> bool {
        let (file, key) = match &self.v2_only {
            Some(mp) => (
                mp.join(cgroup_path.trim_start_matches('/'))
                    .join("memory.events"),
                "oom_kill",
            ),
            None => match self.v1_dir("memory", cgroup_path) {
                Some(d) => (d.join("memory.oom_control"), "oom_kill"),
                None => return false,
            },
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| keyed(&t, key))
            .is_some_and(|n| n > 0)
    }

    /// Reads CPU and memory usage.
    pub(crate) fn stats(&self, cgroup_path: &str) -> Result<Stats, RuntimeError> {
        let rel = cgroup_path.trim_start_matches('/');
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p)
                .map_err(|e| RuntimeError::io(format!("reading {}", p.display()), e))
        };
        if let Some(mp) = &self.v2_only {
            let dir = mp.join(rel);
            let cpu = keyed(&read(dir.join("cpu.stat"))?, "usage_usec").unwrap_or(0) * 1000;
            let usage = parse_u64(&read(dir.join("memory.current"))?);
            let inactive = keyed(&read(dir.join("memory.stat"))?, "inactive_file").unwrap_or(0);
            let limit = read(dir.join("memory.max"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Ok(Stats {
                cpu_usage_ns: cpu,
                memory_usage_bytes: usage,
                memory_working_set_bytes: usage.saturating_sub(inactive),
                memory_limit_bytes: limit,
                timestamp: SystemTime::now(),
            });
        }
        let not_mounted =
            |c: &str| RuntimeError::InvalidSpec(format!("cgroup v1 controller {c} is not mounted"));
        let cpu_dir = self
            .v1_dir("cpuacct", cgroup_path)
            .ok_or_else(|| not_mounted("cpuacct"))?;
        let mem_dir = self
            .v1_dir("memory", cgroup_path)
            .ok_or_else(|| not_mounted("memory"))?;
        let cpu = parse_u64(&read(cpu_dir.join("cpuacct.usage"))?);
        let usage = parse_u64(&read(mem_dir.join("memory.usage_in_bytes"))?);
        let inactive =
            keyed(&read(mem_dir.join("memory.stat"))?, "total_inactive_file").unwrap_or(0);
        // An unlimited v1 cgroup reports a huge page-aligned number.
        let limit = read(mem_dir.join("memory.limit_in_bytes"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|l| *l < (1u64 << 62));
        Ok(Stats {
            cpu_usage_ns: cpu,
            memory_usage_bytes: usage,
            memory_working_set_bytes: usage.saturating_sub(inactive),
            memory_limit_bytes: limit,
            timestamp: SystemTime::now(),
        })
    }
}

fn parse_u64(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

/// Value of `key` in a "key value" per-line file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// rmdir a cgroup directory, children first (cgroupfs directories cannot be removed recursively).
fn remove_tree(dir: &Path) -> Result<(), RuntimeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(RuntimeError::io(
                format!("listing cgroup {}", dir.display()),
                e,
            ));
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(
            format!("removing cgroup {} (processes still in it?)", dir.display()),
            e,
        )),
    }
}
